"""Streaming: per-block compute time and real-time factor of StreamingModel, one CPU thread.

    python benchmarks/streaming.py                       # tiny, solo_violin, solo_48k; blocks 64..2048
    python benchmarks/streaming.py --models tiny --blocks 256 --seconds 5

Each model is built as `ddsp-lab train experiment=<name>` builds it (untrained: the cost does not
depend on the weights; its reverb, where it has one, is on: a 3 s trainable IR), wrapped in
`ddsp_lab.streaming.StreamingModel(model, block)`, warmed up for 1 s, then fed `--seconds` of
f0 / loudness curves block by block. Printed per block size: the median and 99th-percentile
compute time of one block, the block's duration, and the real-time factor (audio seconds per
compute second; > 1 is faster than real time). Eager PyTorch only so far (TorchScript and ONNX
Runtime are not built yet).
"""
from __future__ import annotations

import argparse
import time

import torch

EXPERIMENTS = {"tiny": ["experiment=tiny", "synth=harmonic_noise_reverb"], "solo_violin": ["experiment=solo_violin"],
               "solo_48k": ["experiment=solo_48k"]}


def build(name: str):
    from hydra import compose, initialize_config_dir

    from ddsp_lab.cli import CONF_DIR
    from ddsp_lab.training import build_model

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("train", overrides=[*EXPERIMENTS[name], "model.f0_metric=false", "logger=csv",
                                          "run_dir=/tmp/ddsp_lab_bench_streaming", "data.path=unused"])
    torch.manual_seed(0)
    return build_model(cfg).model.eval()


def curves(n_frames: int, frame_rate: int):
    t = torch.arange(n_frames) / frame_rate
    f0 = 440.0 * 2 ** (0.02 * torch.sin(2 * torch.pi * 5.5 * t) + 0.5 * torch.sin(2 * torch.pi * 0.1 * t))
    ld = -10.0 + 10.0 * torch.sin(2 * torch.pi * 0.3 * t)
    return f0[None], ld[None]


def measure(model, block: int, seconds: float) -> dict:
    from ddsp_lab.streaming import StreamingModel

    live = StreamingModel(model, block_size=block)
    per = live.frames_per_block
    n_blocks = max(1, int(seconds * model.sample_rate) // block)
    warm = max(1, model.sample_rate // block)
    f0, ld = curves((n_blocks + warm) * per, model.frame_rate)
    for i in range(warm):
        live(f0[:, i * per:(i + 1) * per], ld[:, i * per:(i + 1) * per])
    times = []
    for i in range(warm, warm + n_blocks):
        t0 = time.perf_counter()
        live(f0[:, i * per:(i + 1) * per], ld[:, i * per:(i + 1) * per])
        times.append(time.perf_counter() - t0)
    times_t = torch.tensor(times)
    duration = block / model.sample_rate
    return {"median_ms": float(times_t.median()) * 1e3, "p99_ms": float(torch.quantile(times_t, 0.99)) * 1e3,
            "block_ms": duration * 1e3, "rtf": duration * len(times) / float(times_t.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    parser.add_argument("--blocks", nargs="+", type=int, default=[64, 256, 512, 2048])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"StreamingModel, eager, 1 CPU thread, {args.seconds:g} s per case\n")
    print("| model | rate | block | block duration | median compute | p99 compute | real-time factor |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for name in args.models:
        model = build(name)
        for block in args.blocks:
            hop = model.hop_size
            size = -(-block // hop) * hop  # whole hops (48 kHz: 192-sample hops)
            if size > 4096:
                continue
            r = measure(model, size, args.seconds)
            print(f"| {name} | {model.sample_rate} | {size} | {r['block_ms']:.1f} ms | {r['median_ms']:.2f} ms | "
                  f"{r['p99_ms']:.2f} ms | {r['rtf']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
