"""Streaming: per-block compute time and real-time factor of StreamingModel, one CPU thread.

    python benchmarks/streaming.py                       # tiny, solo_violin, solo_48k; blocks 64..2048
    python benchmarks/streaming.py --models tiny --blocks 256 --seconds 5

Each model is built as `ddsp-lab train experiment=<name>` builds it (untrained: the cost does not
depend on the weights; its reverb, where it has one, is on: a 3 s trainable IR), wrapped in
`ddsp_lab.realtime.StreamingModel(model, block)`, warmed up for 1 s, then fed `--seconds` of
f0 / loudness curves block by block, through three backends:
  eager        StreamingModel (PyTorch, the generic stream of any synth stack);
  torchscript  the exported per-block step (ddsp_lab.realtime: `ddsp-lab export format=torchscript`),
               torch.jit.script'ed with its state in buffers, as a libtorch / nn~ host runs it;
  onnxruntime  the same step exported to ONNX (`format=onnx`), state fed back as inputs.
Printed per case: the median and 99th-percentile compute time of one block, the block's
duration, and the real-time factor (audio seconds per compute second; > 1 is faster than real
time). A block whose p99 exceeds its duration would drop out in a host.
"""
from __future__ import annotations

import argparse
import time

import torch

EXPERIMENTS = {"tiny": ["experiment=tiny", "synth=harmonic_noise_reverb"], "solo_violin": ["experiment=solo_violin"],
               "solo_48k": ["experiment=solo_48k"]}


def build(name: str):
    from hydra import compose, initialize_config_dir

    from ddsp_lab.conf import CONF_DIR
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


def backends(model, block: int, which: list[str]):
    """{name: play(f0 [1, per], ld [1, per]) -> audio block} for each backend asked for."""
    import tempfile
    import warnings
    from pathlib import Path

    import numpy as np

    from ddsp_lab.realtime import export
    from ddsp_lab.realtime import StreamingModel

    out = {}
    if "eager" in which:
        live = StreamingModel(model, block_size=block)
        out["eager"] = lambda f0, ld: live(f0, ld)
    if "torchscript" in which:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export(model, Path(tmp) / "m.ts", "torchscript", block)
            ts = torch.jit.load(str(Path(tmp) / "m.ts"))
        hop = model.hop_size
        out["torchscript"] = lambda f0, ld: ts(torch.stack([f0, ld], 1).repeat_interleave(hop, -1))
    if "onnxruntime" in which:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            info = export(model, Path(tmp) / "m.onnx", "onnx", block)
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(Path(tmp) / "m.onnx"), options, providers=["CPUExecutionProvider"])
        specs = info["call"]["inputs"][1:]
        state = {s["name"]: np.zeros(s["shape"], dtype=s["dtype"]) for s in specs}

        def play(f0, ld):
            res = session.run(None, {"controls": torch.stack([f0, ld], -1).numpy(), **state})
            state.update({s["name"]: v for s, v in zip(specs, res[1:])})
            return res[0]
        out["onnxruntime"] = play
    return out


def measure(model, play, block: int, seconds: float) -> dict:
    per = block // model.hop_size
    n_blocks = max(1, int(seconds * model.sample_rate) // block)
    warm = max(3, model.sample_rate // block)
    f0, ld = curves((n_blocks + warm) * per, model.frame_rate)
    with torch.no_grad():
        for i in range(warm):
            play(f0[:, i * per:(i + 1) * per], ld[:, i * per:(i + 1) * per])
        times = []
        for i in range(warm, warm + n_blocks):
            t0 = time.perf_counter()
            play(f0[:, i * per:(i + 1) * per], ld[:, i * per:(i + 1) * per])
            times.append(time.perf_counter() - t0)
    times_t = torch.tensor(times)
    duration = block / model.sample_rate
    return {"median_ms": float(times_t.median()) * 1e3, "p99_ms": float(torch.quantile(times_t, 0.99)) * 1e3,
            "block_ms": duration * 1e3, "rtf": duration * len(times) / float(times_t.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    parser.add_argument("--blocks", nargs="+", type=int, default=[64, 256, 512, 2048])
    parser.add_argument("--backends", nargs="+", default=["eager", "torchscript", "onnxruntime"],
                        choices=["eager", "torchscript", "onnxruntime"])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"Streaming, 1 CPU thread, {args.seconds:g} s per case (after 1 s of warm-up); x: real-time factor\n")
    print("| model | rate | block | block duration | backend | median compute | p99 compute | real-time factor |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.models:
        model = build(name)
        for block in args.blocks:
            hop = model.hop_size
            size = -(-block // hop) * hop  # whole hops (48 kHz: 192-sample hops)
            if size > 4096:
                continue
            for backend, play in backends(model, size, args.backends).items():
                r = measure(model, play, size, args.seconds)
                late = " (p99 over the block)" if r["p99_ms"] > r["block_ms"] else ""
                print(f"| {name} | {model.sample_rate} | {size} | {r['block_ms']:.1f} ms | {backend} | "
                      f"{r['median_ms']:.2f} ms | {r['p99_ms']:.2f} ms{late} | x{r['rtf']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
