"""Prepare throughput: seconds of audio per second of wall time, CREPE tiny and full, against bare
torchcrepe inference (torchcrepe.predict, Viterbi, same audio, same run).

    python benchmarks/prepare.py [--seconds-tiny 64 --seconds-full 8 --seconds-long 180 --device cpu --threads 2]

Two cases:
- examples: 8 s files cut at a 4 s hop (no overlap), against torchcrepe over the same 4 s examples.
  Goal: everything around CREPE (reading, resampling, loudness, decoding, writing Arrow) costs under
  15 % on top of CREPE itself.
- long: 90 s files cut into 4 s examples at the default 1 s hop (each second of audio in 4
  examples), against ONE torchcrepe pass over each whole file (the audio's own duration). prepare
  analyses each recording once, so the goal is under 1.3x that pass (it was about 4x when every
  window was analysed).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def make_folder(root: Path, seconds: float, sr: int = 16000, file_seconds: float = 8.0) -> None:
    rng = np.random.default_rng(0)
    n_files = max(1, int(round(seconds / file_seconds)))
    for i in range(n_files):
        t = np.arange(int(file_seconds * sr)) / sr
        f0 = 110 * 2 ** (rng.uniform(0, 3) + 0.02 * np.sin(2 * np.pi * 5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / sr
        audio = sum(0.3 / k * np.sin(k * phase) for k in range(1, 8)) + 0.003 * rng.standard_normal(len(t))
        sf.write(root / f"take_{i:03d}.wav", audio.astype(np.float32), sr)


def bare_crepe(folder: Path, model: str, device: str) -> float:
    from ddsp_lab.features import import_torchcrepe

    tc = import_torchcrepe()
    audio = [torch.from_numpy(sf.read(p, dtype="float32")[0])[None] for p in sorted(folder.glob("*.wav"))]
    tc.predict(audio[0][:, :16000], 16000, 64, 50, 2000, model, device=device, batch_size=1024)  # load
    t0 = time.perf_counter()
    for a in audio:
        for s in range(0, a.shape[1] - 64000 + 1, 64000):  # the same 4 s examples prepare makes
            tc.predict(a[:, s:s + 64000], 16000, 64, 50, 2000, model, decoder=tc.decode.viterbi,
                       device=device, batch_size=1024)
    return time.perf_counter() - t0


def bare_crepe_one_pass(folder: Path, model: str, device: str) -> float:
    """torchcrepe over each whole file once (Viterbi): the cost of analysing the audio's duration."""
    from ddsp_lab.features import import_torchcrepe

    tc = import_torchcrepe()
    audio = [torch.from_numpy(sf.read(p, dtype="float32")[0])[None] for p in sorted(folder.glob("*.wav"))]
    tc.predict(audio[0][:, :16000], 16000, 64, 50, 2000, model, decoder=tc.decode.viterbi, device=device,
               batch_size=1024)  # load the weights and compile the decoder outside the timing
    t0 = time.perf_counter()
    for a in audio:
        tc.predict(a, 16000, 64, 50, 2000, model, decoder=tc.decode.viterbi, device=device, batch_size=1024)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run_prepare(folder: Path, out: Path, model: str, device: str, hop_seconds: float = 4.0) -> float:
    from ddsp_lab.data import FolderSource, PrepareConfig, prepare
    from ddsp_lab.features import CrepeF0

    CrepeF0(model, device=device)  # load the weights outside the timing, as for the bare run
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # few files: empty validation / test splits are expected here
        warnings.simplefilter("ignore")
        prepare(FolderSource(str(folder), hop_seconds=hop_seconds), out, PrepareConfig("folder", crepe_model=model),
                device=device, progress=False)
    return time.perf_counter() - t0


def long_files(seconds: float, model: str, device: str) -> None:
    """The long case (see the module docstring)."""
    tmp = Path(tempfile.mkdtemp())
    try:
        for name, total in (("warm", 20.0), ("audio", seconds)):
            (tmp / name).mkdir()
            make_folder(tmp / name, total, file_seconds=min(90.0, total))
        run_prepare(tmp / "warm", tmp / "warm_out", model, device, hop_seconds=1.0)  # caches and JIT
        audio_s = sum(sf.info(p).duration for p in (tmp / "audio").glob("*.wav"))
        crepe_s = bare_crepe_one_pass(tmp / "audio", model, device)
        prep_s = run_prepare(tmp / "audio", tmp / "out", model, device, hop_seconds=1.0)
        from ddsp_lab.data import load_prepared

        n_examples = len(load_prepared(tmp / "out"))
        print(f"long {model:4s}: {audio_s:.0f} s of audio in {n_examples} examples at a 1 s hop | prepare "
              f"{prep_s:6.1f} s | one bare torchcrepe pass {crepe_s:6.1f} s | ratio {prep_s / crepe_s:4.2f}x "
              f"(goal < 1.3x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds-tiny", type=float, default=64.0)
    ap.add_argument("--seconds-full", type=float, default=16.0)
    ap.add_argument("--seconds-long", type=float, default=180.0, help="audio of the long case (0: skip)")
    ap.add_argument("--long-model", default="tiny")
    ap.add_argument("--skip-examples", action="store_true", help="only the long case")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"device {args.device}, {args.threads} threads, 4 s examples at 16 kHz / 250 Hz, Viterbi")
    if args.seconds_long > 0:
        long_files(args.seconds_long, args.long_model, args.device)
    for model, seconds in (() if args.skip_examples else (("tiny", args.seconds_tiny), ("full", args.seconds_full))):
        tmp = Path(tempfile.mkdtemp())
        try:
            (tmp / "audio").mkdir()
            make_folder(tmp / "audio", seconds)
            audio_s = sum(sf.info(p).duration for p in (tmp / "audio").glob("*.wav"))
            run_prepare(tmp / "audio", tmp / "warm", model, args.device)  # warm caches and JIT
            crepe_s = bare_crepe(tmp / "audio", model, args.device)
            prep_s = run_prepare(tmp / "audio", tmp / "out", model, args.device)
            print(f"crepe {model:4s}: {audio_s:.0f} s of audio | prepare {prep_s:6.1f} s "
                  f"({audio_s / prep_s:6.1f} s audio/s) | bare torchcrepe {crepe_s:6.1f} s "
                  f"({audio_s / crepe_s:6.1f} s audio/s) | overhead {100 * (prep_s / crepe_s - 1):+5.1f} %")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
