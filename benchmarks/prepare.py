"""Prepare throughput: seconds of audio per second of wall time, CREPE tiny and full, against bare
torchcrepe inference (torchcrepe.predict, Viterbi, same audio, same run).

    python benchmarks/prepare.py [--seconds-tiny 64 --seconds-full 8 --device cpu --threads 2]

The goal: everything around CREPE (reading, resampling, loudness, decoding, writing Arrow) costs
under 15 % on top of CREPE itself.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
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
    from ddsp_lab._crepe import import_torchcrepe

    tc = import_torchcrepe()
    audio = [torch.from_numpy(sf.read(p, dtype="float32")[0])[None] for p in sorted(folder.glob("*.wav"))]
    tc.predict(audio[0][:, :16000], 16000, 64, 50, 2000, model, device=device, batch_size=1024)  # load
    t0 = time.perf_counter()
    for a in audio:
        for s in range(0, a.shape[1] - 64000 + 1, 64000):  # the same 4 s examples prepare makes
            tc.predict(a[:, s:s + 64000], 16000, 64, 50, 2000, model, decoder=tc.decode.viterbi,
                       device=device, batch_size=1024)
    return time.perf_counter() - t0


def run_prepare(folder: Path, out: Path, model: str, device: str) -> float:
    from ddsp_lab.data import FolderSource, PrepareConfig, prepare
    from ddsp_lab.data.features import CrepeF0

    CrepeF0(model, device=device)  # load the weights outside the timing, as for the bare run
    t0 = time.perf_counter()
    prepare(FolderSource(str(folder), hop_seconds=4.0), out, PrepareConfig("folder", crepe_model=model),
            device=device, progress=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds-tiny", type=float, default=64.0)
    ap.add_argument("--seconds-full", type=float, default=16.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, {args.threads} threads, 4 s examples at 16 kHz / 250 Hz, Viterbi")
    for model, seconds in (("tiny", args.seconds_tiny), ("full", args.seconds_full)):
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
