"""Timbre transfer of a 60 s recording: real-time factor with CREPE tiny, CREPE full and f0 given.

    python benchmarks/apps.py                    # CPU, 2 threads, 60 s, the solo-violin model
    python benchmarks/apps.py --seconds 20 --device cuda

The model is the paper's solo-violin one (`experiment=solo_violin`: RNN-FC decoder with a 512 GRU,
60 harmonics, 65 noise bands, the trainable 3 s reverb), built as `ddsp-lab train` builds it
(untrained: the cost does not depend on the weights) and given training statistics, so that
auto_adjust runs as for a trained checkpoint. The input is a 44.1 kHz recording (a vibrato tone
with a loudness swell), transferred by `ddsp_lab.apps.timbre_transfer` (resampling, loudness,
CREPE unless f0 is given, auto_adjust, the render in 10 s chunks). Each case runs twice (the first
loads CREPE's weights); the second is timed and split into its parts: features (resampling,
loudness, CREPE), adjustment, render. The render alone is the same as benchmarks/render.py's
chunked one, which says where its time goes (the GRU's 15000 sequential steps per minute).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dsp import sync  # noqa: E402
from render import build  # noqa: E402


def recording(seconds: float, sr: int = 44100) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    f0 = 392.0 * 2 ** (0.01 * torch.sin(2 * torch.pi * 5.5 * t))
    phase = 2 * torch.pi * torch.cumsum(f0, 0) / sr
    tone = sum(torch.sin(k * phase) / k for k in range(1, 9))
    return (0.1 * tone * (0.6 + 0.4 * torch.sin(2 * torch.pi * 0.25 * t))).float()


def statistics() -> dict:
    """Quantiles like those of a violin corpus (MIDI 55-88, loudness -10 .. 20 dB)."""
    levels = torch.linspace(0, 1, 101)
    return {"f0_midi_quantiles": (55 + 33 * levels).tolist(), "loudness_db_quantiles": (-40 + 60 * levels).tolist(),
            "loudness_db_confident_quantiles": (-10 + 30 * levels).tolist()}


def case(model, audio, name: str, device: str, **kwargs) -> dict:
    from ddsp_lab import apps
    from ddsp_lab.apps import transfer as T

    timings: dict[str, float] = {}
    original = T.recording_features, model.render

    def timed(label, fn):
        def wrapper(*a, **k):
            sync(device)
            t0 = time.perf_counter()
            out = fn(*a, **k)
            sync(device)
            timings[label] = timings.get(label, 0.0) + time.perf_counter() - t0
            return out
        return wrapper

    T.recording_features, model.render = timed("features", original[0]), timed("render", original[1])
    try:
        warm = {k: v[:500] if k == "f0_hz" else v for k, v in kwargs.items()}
        apps.timbre_transfer(model, audio[:44100 * 2], 44100, **warm)  # warm-up (CREPE's weights)
        timings.clear()
        t0 = time.perf_counter()
        result = apps.timbre_transfer(model, audio, 44100, **kwargs)
        sync(device)
        wall = time.perf_counter() - t0
    finally:
        T.recording_features, model.render = original
    seconds = result.seconds
    return {"case": name, "wall": wall, "rtf": seconds / wall, "features": timings.get("features", 0.0),
            "render": timings.get("render", 0.0), "other": wall - sum(timings.values())}


def main() -> None:
    from ddsp_lab.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # as the `ddsp-lab transfer` command runs
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=["given", "tiny", "full"], choices=["given", "tiny", "full"],
                        help="f0 given, CREPE tiny, CREPE full (full takes minutes per minute of audio on CPU)")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    model = build(args.device)
    model.dataset_statistics = statistics()
    audio = recording(args.seconds)
    n_frames = int(args.seconds * 250)
    f0 = 392.0 * 2 ** (0.01 * torch.sin(2 * torch.pi * 5.5 * torch.arange(n_frames) / 250.0))
    where = f"{args.device}" + (f", {args.threads} threads" if args.device == "cpu" else "")
    print(f"timbre transfer of {args.seconds:g} s (44.1 kHz input -> the solo-violin model at 16 kHz), {where}\n")
    print("| input f0 | wall | real-time factor | features (resample, loudness, CREPE) | render | other |")
    print("|---|---|---|---|---|---|", flush=True)
    kwargs = {"given": ("f0 given", {"f0_hz": f0}), "tiny": ("CREPE tiny", {"crepe_model": "tiny"}),
              "full": ("CREPE full", {"crepe_model": "full"})}
    for name in args.cases:
        label, extra = kwargs[name]
        r = case(model, audio, label, args.device, **extra)
        print(f"| {r['case']} | {r['wall']:.2f} s | {r['rtf']:.2f} | {r['features']:.2f} s | {r['render']:.2f} s | "
              f"{r['other']:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
