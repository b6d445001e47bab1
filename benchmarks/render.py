"""Long renders: one shot vs chunked (state carried), speed and peak memory.

    python benchmarks/render.py                       # 60 s and 180 s, solo-violin model, CPU 2 threads
    python benchmarks/render.py --seconds 60 --chunks 1 10 --device cuda

The model is the paper's solo-violin one (`experiment=solo_violin`: 60 harmonics, 65 noise bands, a
trainable 3 s reverb; RNN-FC decoder, GRU 512) built as `ddsp-lab train` builds it (untrained:
the cost does not depend on the weights), rendered by `DDSP.synthesize(f0, loudness, seed=0,
chunk_seconds=...)` from a vibrato f0 curve and a loudness curve. Each configuration runs in a
fresh subprocess: the peak is the resident-memory high-water mark of the render above the
resident memory before it (CPU, Linux: /proc/self/clear_refs, as benchmarks/dsp.py), or
max_memory_allocated (CUDA). Prints wall seconds, the real-time factor (audio seconds rendered per
wall second), peak MB, each against one shot (the baseline, measured in the same run), and the
largest difference between the chunked and the one-shot audio.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dsp import _proc_status_kb, sync  # noqa: E402


def build(device: str):
    from hydra import compose, initialize_config_dir

    from ddsp_lab.conf import CONF_DIR
    from ddsp_lab.training import build_model

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("train", overrides=["experiment=solo_violin", "model.f0_metric=false", "logger=csv",
                                          "run_dir=/tmp/ddsp_lab_bench_render"])
    torch.manual_seed(0)
    return build_model(cfg).model.to(device).eval()


def curves(seconds: float, device: str):
    n = int(seconds * 250)
    t = torch.arange(n, device=device) / 250.0
    f0 = (440.0 * 2 ** (0.02 * torch.sin(2 * torch.pi * 5.5 * t) + 0.5 * torch.sin(2 * torch.pi * 0.1 * t)))[None, :, None]
    ld = (-30.0 + 10.0 * torch.sin(2 * torch.pi * 0.3 * t))[None, :, None]
    return f0, ld


def child(seconds: float, chunk: float | None, device: str, out: str | None) -> dict:
    torch.set_num_threads(2) if device == "cpu" else None
    model = build(device)
    f0, ld = curves(seconds, device)
    model.synthesize(f0[:, :250], ld[:, :250], seed=0, chunk_seconds=chunk)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _proc_status_kb("VmRSS")
    sync(device)
    t0 = time.perf_counter()
    audio = model.synthesize(f0, ld, seed=0, chunk_seconds=chunk)
    sync(device)
    wall = time.perf_counter() - t0
    peak = ((torch.cuda.max_memory_allocated() - base) / 2**20 if device.startswith("cuda")
            else (_proc_status_kb("VmHWM") - base) / 1024)
    if out:
        torch.save(audio.cpu(), out)
    return {"wall_s": wall, "peak_mb": peak, "n_samples": audio.shape[-1]}


def run(seconds: float, chunk: float | None, device: str, out: str) -> dict:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, __file__, "--child", "--seconds", str(seconds), "--device", device, "--out", out]
    if chunk is not None:
        cmd += ["--chunk", str(chunk)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        return {"error": res.stderr.strip().splitlines()[-1][:200]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[60.0, 180.0])
    ap.add_argument("--chunks", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--chunk", type=float, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.seconds[0], args.chunk, args.device, args.out)))
        return
    tmp = Path("/tmp/ddsp_lab_bench_render")
    tmp.mkdir(exist_ok=True)
    print(f"solo-violin model, {args.device}; one shot is the baseline of the ratios (same run)")
    print(f"{'audio':>7} {'render':>12} {'wall s':>8} {'x real time':>12} {'peak MB':>9} {'speed vs 1 shot':>16} "
          f"{'memory vs 1 shot':>17} {'max |diff|':>11}")
    for seconds in args.seconds:
        one = run(seconds, None, args.device, str(tmp / "one.pt"))
        ref = torch.load(tmp / "one.pt") if "error" not in one else None
        rows = [("one shot", one, None)]
        for chunk in args.chunks:
            r = run(seconds, chunk, args.device, str(tmp / "chunk.pt"))
            diff = float((torch.load(tmp / "chunk.pt") - ref).abs().max()) if ref is not None and "error" not in r else None
            rows.append((f"chunks {chunk:g} s", r, diff))
        for name, r, diff in rows:
            if "error" in r:
                print(f"{seconds:6.0f}s {name:>12} failed: {r['error']}")
                continue
            speed = one["wall_s"] / r["wall_s"] if "error" not in one else float("nan")
            mem = r["peak_mb"] / one["peak_mb"] if "error" not in one else float("nan")
            print(f"{seconds:6.0f}s {name:>12} {r['wall_s']:8.2f} {seconds / r['wall_s']:12.1f} {r['peak_mb']:9.0f} "
                  f"{speed:15.2f}x {mem:16.2f}x {'' if diff is None else f'{diff:11.1e}'}")


if __name__ == "__main__":
    main()
