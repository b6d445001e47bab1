"""Training speed and memory: the paper's solo-violin model (experiment=solo_violin), 4 s examples
at 16 kHz (64000 samples, 1000 frames), at batch 16 and 32.

    python benchmarks/train.py                          # batch 16,32; eager, compiled, plain; CPU, 2 threads
    python benchmarks/train.py --batch 32 --modes eager --steps 3
    python benchmarks/train.py --device cuda --steps 50 --warmup 10
    python benchmarks/train.py --trainer                # also a short Lightning Trainer.fit per batch

The model is built as `ddsp-lab train experiment=solo_violin` builds it (conf/train.yaml composed
with Hydra, `ddsp_lab.training.build_model`; model.f0_metric=false, trainer=cpu|gpu by --device). A
step is what Lightning does per training batch, timed by a manual loop without a Trainer: forward,
compute_losses(...)["total"], backward, gradient-norm clip 3, the config's optimizer (Adam 3e-4) and
scheduler steps, zero_grad. The batch is synthetic (fixed seed): a harmonic tone with vibrato on a
200-600 Hz f0 track plus a little noise, loudness -40..-10 dB. Precision follows the trainer config
(CPU: 32; conf/trainer/gpu.yaml: bf16-mixed, as autocast around forward + loss) unless --precision.

Modes: eager (the baseline of the ratios, timed in the same run; no guard); guard (the step through
the training module's non-finite-step guard, as Lightning calls it, with the shipped fused Adam:
the verdict goes to the kernel as found_inf) and guard_copy (the guard as it was before: foreach
Adam, parameters and optimizer state copied each step and restored with torch.where), printed
side by side at the end; compiled (torch.compile of forward
+ loss, so backward runs through AOTAutograd; clip and optimizer stay eager; nn.GRU is a graph break
by design in Dynamo, and the count of breaks is printed); plain (eager, with the Harmonic synth's
signal computed by `baseline_plain.harmonic_plain`, the reference-style port: sample-rate envelopes,
one cumsum, one sin). With --trainer, `pytorch_lightning.Trainer.fit` from the same trainer config
runs the same number of steps on the same batch, showing Lightning's per-step overhead (logging,
the model's non-finite-step guard, data loading).
Each configuration runs in a fresh subprocess. Steps are timed one by one (CPU: the clock around
each; CUDA: events between steps, one synchronise after the last, so the host queues ahead as in
training). Prints ms/step (median of --steps after --warmup),
steps/s, examples/s, real-time factor (audio seconds trained per wall second), the first step's
time (compilation), peak memory (CPU: RSS high-water mark of one step in a fresh subprocess above
the resident memory before it, as benchmarks/dsp.py; CUDA: max_memory_allocated over the timed
steps, parameters and optimizer state included), the speed-up over eager, and the projected wall
time of 30k steps at batch 32 (the reference's advised training length).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dsp import _proc_status_kb, sync  # noqa: E402  (one RSS reader, one synchronise)

ADVISED_STEPS, ADVISED_BATCH = 30_000, 32  # the reference authors' advised training length
MODES = ("eager", "compiled", "plain", "guard_copy", "guard")


def compose_config(device: str, precision: str | None = None):
    """conf/train.yaml + experiment=solo_violin, as the CLI composes it."""
    from hydra import compose, initialize_config_dir

    from ddsp_lab.conf import CONF_DIR  # importing ddsp_lab registers the `eval` resolver of train.yaml

    overrides = ["experiment=solo_violin", "model.f0_metric=false", "logger=csv",
                 f"trainer={'gpu' if device.startswith('cuda') else 'cpu'}",
                 f"run_dir={Path(tempfile.gettempdir()) / 'ddsp_lab_bench_train'}"]  # no hydra run here
    if precision:
        overrides.append(f"++trainer.precision={precision}")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose("train", overrides=overrides)


def synthetic_batch(n_batch: int, cfg, device: str, seed: int = 0) -> dict[str, Tensor]:
    """audio [b, n_samples], f0_hz / f0_confidence / loudness_db [b, n_frames, 1]."""
    from ddsp_lab import dsp

    g = torch.Generator().manual_seed(seed)
    n_frames, n_samples, sr = int(cfg.n_frames), int(cfg.n_samples), int(cfg.sample_rate)
    t = torch.arange(n_frames) / cfg.frame_rate  # seconds
    f0_hz = (200.0 + 400.0 * torch.rand(n_batch, 1, generator=g)) * (1 + 0.01 * torch.sin(2 * torch.pi * 5.5 * t))
    swell = 0.5 - 0.5 * torch.cos(2 * torch.pi * t / cfg.example_seconds)  # one crescendo per example
    level = 0.5 + 0.5 * torch.rand(n_batch, 1, generator=g)
    loudness_db = -40.0 + 30.0 * swell * level  # -40 dB up to between -25 and -10 dB
    amps = dsp.db_to_amplitude(loudness_db)[..., None]
    dist = (1.0 / torch.arange(1, 9)).expand(n_batch, n_frames, 8)  # 8 harmonics, 1/k
    audio = dsp.harmonic_synthesis(f0_hz[..., None], amps, harmonic_distribution=dist,
                                   n_samples=n_samples, sample_rate=sr)
    audio = audio + 0.003 * torch.randn(n_batch, n_samples, generator=g)
    batch = {"audio": audio, "f0_hz": f0_hz[..., None], "f0_confidence": torch.ones(n_batch, n_frames, 1),
             "loudness_db": loudness_db[..., None]}
    return {k: v.float().to(device) for k, v in batch.items()}


def use_plain_harmonic(model) -> None:
    """Swap the Harmonic node's signal for baseline_plain.harmonic_plain (which scales the raw
    controls itself); the group still receives the library's scaled controls for its outputs."""
    from baseline_plain import harmonic_plain

    from ddsp_lab.processors import Harmonic

    harmonic = next(p for p in model.synth.processors if isinstance(p, Harmonic))

    def forward_with_controls(amps: Tensor, dist: Tensor, f0_hz: Tensor, n_samples: int | None = None) -> tuple[Tensor, dict]:
        controls = harmonic.get_controls(amps, dist, f0_hz)
        with torch.device(f0_hz.device):  # harmonic_plain makes its harmonic numbers on the default device
            signal = harmonic_plain(amps, dist, f0_hz, harmonic.resolve_n_samples(n_samples), harmonic.sample_rate)
        return signal, controls

    harmonic.forward_with_controls = forward_with_controls


def make_step(model, batch: dict[str, Tensor], mode: str, cfg) -> Callable[[], None]:
    """One optimisation step as Lightning runs it with the config's trainer (automatic
    optimisation, gradient_clip_val by norm, the scheduler stepped every step)."""
    configured = model.configure_optimizers()
    opt = configured["optimizer"] if isinstance(configured, dict) else configured
    scheduler = configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
    amp_dtype = torch.bfloat16 if precision_of(cfg) == "bf16-mixed" else None
    clip_norm = float(cfg.trainer.gradient_clip_val)  # 3: the reference's clip
    if mode == "plain":
        use_plain_harmonic(model)

    def loss_fn(b: dict[str, Tensor]) -> Tensor:
        amp = torch.autocast(model.device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with amp:  # as Lightning's mixed precision: the model keeps its synth and losses in float32
            return model.compute_losses(b, model(b))["total"]

    if mode == "compiled":
        loss_fn = torch.compile(loss_fn)

    def step() -> None:
        loss_fn(batch).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)  # no host read: a tensor result
        opt.step()
        if scheduler is not None:
            scheduler.step()
        opt.zero_grad(set_to_none=True)

    def closure() -> Tensor:  # what Lightning's closure and _after_closure do, in that order
        loss = loss_fn(batch)
        loss.backward()
        model.on_before_optimizer_step(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        return loss

    def guarded_step() -> None:  # the module's non-finite-step guard around the optimizer, as in training
        model.optimizer_step(0, 0, opt, closure)
        if scheduler is not None:
            scheduler.step()
        opt.zero_grad(set_to_none=True)

    if mode == "guard_copy":  # the guard as it was: parameters and optimizer state copied and restored each step
        model.skip_mode = lambda optimizer: "copy"
    return guarded_step if mode.startswith("guard") else step


def precision_of(cfg) -> str:
    return str(cfg.trainer.get("precision", "32"))


def build_step(n_batch: int, mode: str, args) -> Callable[[], None]:
    from ddsp_lab.training import build_model

    torch.manual_seed(0)
    cfg = compose_config(args.device, args.precision)
    if mode == "guard_copy":  # the optimizer before fused Adam became the default
        cfg.model.optimizer.fused = False
    model = build_model(cfg).to(args.device).train()
    return make_step(model, synthetic_batch(n_batch, cfg, args.device), mode, cfg)


def time_mode(n_batch: int, mode: str, args) -> dict:
    step = build_step(n_batch, mode, args)
    t0 = time.perf_counter()
    step()
    sync(args.device)
    first = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
        step()
    sync(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = step_times(step, args.steps, args.device)
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None
    return {"batch": n_batch, "mode": mode, "seconds": statistics.median(times), "first_s": first,
            "peak_mb": peak_mb, "graph_breaks": graph_breaks()}


def step_times(step: Callable[[], None], n_steps: int, device: str) -> list[float]:
    """Seconds per step. On CUDA, events between steps and one synchronise at the end, so the host
    keeps queueing ahead as in training; on CPU, the clock around each step."""
    if not device.startswith("cuda"):
        times = []
        for _ in range(n_steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        return times
    events = [torch.cuda.Event(enable_timing=True) for _ in range(n_steps + 1)]
    events[0].record()
    for event in events[1:]:
        step()
        event.record()
    torch.cuda.synchronize()
    return [a.elapsed_time(b) / 1000 for a, b in zip(events, events[1:])]


def graph_breaks() -> int | None:
    from torch._dynamo.utils import counters

    return sum(counters["graph_break"].values()) if "graph_break" in counters else None


def measure_peak_mb(n_batch: int, mode: str, args) -> float:
    """Peak resident memory of one step above the resident memory before it (CPU, Linux): the
    kernel's high-water mark is reset through /proc/self/clear_refs just before the step; the parent
    runs this child with MALLOC_MMAP_THRESHOLD_ fixed so freed large blocks leave RSS."""
    step = build_step(n_batch, mode, args)
    for _ in range(max(1, args.warmup)):  # Adam's state, compilation, caches
        step()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _proc_status_kb("VmRSS")
    step()
    return (_proc_status_kb("VmHWM") - before) / 1024


def time_trainer(n_batch: int, args) -> dict:
    """Trainer.fit from the composed trainer config for warmup + steps steps on the same batch;
    the step time is the median gap between consecutive on_train_batch_end calls after warm-up."""
    import hydra
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from ddsp_lab.training import build_model

    torch.manual_seed(0)
    cfg = compose_config(args.device, args.precision)
    model = build_model(cfg)
    batch = synthetic_batch(n_batch, cfg, "cpu")  # the Trainer moves each batch to the device
    n_steps = max(1, args.warmup) + args.steps
    examples = [{k: v[i % n_batch] for k, v in batch.items()} for i in range(n_steps * n_batch)]
    ends: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_end(self, *_) -> None:
            sync(args.device)  # a host sync per step: this mode measures the Trainer as a whole
            ends.append(time.perf_counter())

    trainer = hydra.utils.instantiate(
        cfg.trainer, max_steps=n_steps, logger=False, callbacks=[Clock()], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        default_root_dir=tempfile.mkdtemp(prefix="ddsp_lab_bench_"))
    t0 = time.perf_counter()
    trainer.fit(model, train_dataloaders=DataLoader(examples, batch_size=n_batch, num_workers=0))
    gaps = [b - a for a, b in zip(ends, ends[1:])][max(1, args.warmup) - 1:]
    return {"batch": n_batch, "mode": "trainer", "seconds": statistics.median(gaps), "first_s": ends[0] - t0,
            "peak_mb": None, "graph_breaks": None}


def child_cmd(args, flag: str, n_batch: int, mode: str) -> list[str]:
    cmd = [sys.executable, __file__, flag, str(n_batch), mode, "--device", args.device, "--threads",
           str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    return cmd + (["--precision", args.precision] if args.precision else [])


def run_child(args, n_batch: int, mode: str) -> dict:
    out = subprocess.run(child_cmd(args, "--child", n_batch, mode), capture_output=True, text=True)
    if out.returncode != 0:
        return {"batch": n_batch, "mode": mode, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_memory_child(args, n_batch: int, mode: str) -> float | None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run(child_cmd(args, "--memory-child", n_batch, mode), capture_output=True, text=True, env=env)
    return float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None


def print_row(r: dict, rows: list[dict], example_seconds: float) -> None:
    name = f"batch {r['batch']:3d}  {r['mode']:9s}"
    if "error" in r:
        print(f"{name} ERROR {r['error']}", flush=True)
        return
    s, audio_s = r["seconds"], r["batch"] * example_seconds
    eager = next((o["seconds"] for o in rows if o["batch"] == r["batch"] and o["mode"] == "eager"
                  and "seconds" in o), None)
    ratio = f"x{eager / s:5.2f}" if eager else "    -"
    peak = f"{r['peak_mb']:7.0f} MB" if r.get("peak_mb") is not None else "      - MB"
    breaks = f"  graph breaks {r['graph_breaks']}" if r["mode"] == "compiled" else ""
    print(f"{name} {s * 1000:9.1f} ms/step {1 / s:7.2f} steps/s {r['batch'] / s:8.1f} ex/s  RTF {audio_s / s:7.1f}"
          f"  peak {peak}  vs eager {ratio}  first step {r['first_s']:6.1f} s{breaks}", flush=True)


def print_projection(rows: list[dict]) -> None:
    at_advised = [r for r in rows if r.get("batch") == ADVISED_BATCH and "seconds" in r]
    if not at_advised:
        print(f"\n(no batch-{ADVISED_BATCH} rows: no projection of {ADVISED_STEPS} steps)")
        return
    print(f"\nprojected wall time of {ADVISED_STEPS} steps at batch {ADVISED_BATCH} (goal: < 30 min on one H100):")
    for r in at_advised:
        minutes = ADVISED_STEPS * r["seconds"] / 60
        print(f"  {r['mode']:9s} {minutes:8.1f} min ({minutes / 60:.1f} h)")


def time_guard_phase(args, fused: bool, copy: bool, n_steps: int = 20) -> float:
    """ms of the optimizer phase alone (the guard's verdict, the clip, the step with its skip
    mechanism), with fixed gradients: the part of a step the guard's design changes."""
    from ddsp_lab.training import build_model

    torch.manual_seed(0)
    cfg = compose_config(args.device, args.precision)
    cfg.model.optimizer.fused = fused
    model = build_model(cfg).to(args.device).train()
    if copy:
        model.skip_mode = lambda optimizer: "copy"
    opt = model.configure_optimizers()["optimizer"]
    grads = [torch.randn_like(p) * 1e-3 for p in model.parameters()]

    def closure() -> Tensor:
        for p, g in zip(model.parameters(), grads):
            p.grad = g.clone()
        model.on_before_optimizer_step(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.trainer.gradient_clip_val))
        return torch.zeros(())

    for _ in range(3):
        model.optimizer_step(0, 0, opt, closure)
    sync(args.device)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        model.optimizer_step(0, 0, opt, closure)
    sync(args.device)
    return 1000 * (time.perf_counter() - t0) / n_steps


def print_guard_phase(args) -> None:
    old, new = time_guard_phase(args, fused=False, copy=True), time_guard_phase(args, fused=True, copy=False)
    print(f"optimizer phase alone (verdict + clip + step, fixed gradients, solo_violin's parameters): "
          f"{old:.1f} ms before (foreach Adam, copy and restore) -> {new:.1f} ms now (fused Adam, found_inf): "
          f"x{old / new:.2f}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", default="16,32", help="comma-separated batch sizes")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1: Adam state, compile)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {','.join(MODES)}")
    ap.add_argument("--no-compile", action="store_true", help="drop the compiled mode")
    ap.add_argument("--no-memory", action="store_true", help="skip the CPU memory subprocesses")
    ap.add_argument("--trainer", action="store_true", help="also time Lightning's Trainer.fit (eager)")
    ap.add_argument("--precision", default=None, choices=("32", "bf16-mixed"),
                    help="override the trainer config's precision (CPU: 32, CUDA: bf16-mixed)")
    ap.add_argument("--child", nargs=2, metavar=("BATCH", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", nargs=2, metavar=("BATCH", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.warmup < 1 or args.steps < 1:
        ap.error(f"--warmup and --steps must be >= 1, got {args.warmup} and {args.steps}")
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        ap.error(f"--modes must be among {MODES}, got {sorted(unknown)}")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        print(measure_peak_mb(int(args.memory_child[0]), args.memory_child[1], args))
        return
    if args.child:
        from ddsp_lab.runtime import tune_cpu_allocator

        tune_cpu_allocator()  # as `ddsp-lab train` runs
        n_batch, mode = int(args.child[0]), args.child[1]
        print(json.dumps(time_trainer(n_batch, args) if mode == "trainer" else time_mode(n_batch, mode, args)))
        return
    modes = [m for m in args.modes.split(",") if not (args.no_compile and m == "compiled")]
    modes = sorted(modes, key=MODES.index) + (["trainer"] if args.trainer else [])  # eager first: the baseline
    cfg = compose_config(args.device, args.precision)
    print(f"solo_violin training step: {cfg.n_samples} samples, {cfg.n_frames} frames, {cfg.n_harmonics} "
          f"harmonics, precision {precision_of(cfg)}; {args.device}, {args.threads} threads, torch "
          f"{torch.__version__}; median of {args.steps} steps after {args.warmup} warm-up; "
          f"load average {os.getloadavg()[0]:.1f} (other jobs on the cores distort CPU figures)")
    rows: list[dict] = []
    for n_batch in (int(b) for b in args.batch.split(",")):
        for mode in modes:
            rows.append(run_child(args, n_batch, mode))
            if args.device == "cpu" and mode != "trainer" and not args.no_memory and "error" not in rows[-1]:
                rows[-1]["peak_mb"] = run_memory_child(args, n_batch, mode)
            print_row(rows[-1], rows, float(cfg.example_seconds))
    print_projection(rows)
    if {"guard", "guard_copy"} & set(modes):
        print_guard_phase(args)
    by = {(r["batch"], r["mode"]): r for r in rows if "error" not in r}
    for n_batch in sorted({r["batch"] for r in rows}):
        if (n_batch, "guard") in by and (n_batch, "guard_copy") in by:
            new, old = by[n_batch, "guard"]["seconds"], by[n_batch, "guard_copy"]["seconds"]
            print(f"non-finite-step guard, batch {n_batch}: {1000 * old:.0f} ms/step before (foreach Adam, parameters "
                  f"and state copied and restored each step) -> {1000 * new:.0f} ms/step now (fused Adam, found_inf "
                  f"on the device, nothing copied): {1 / old:.3f} -> {1 / new:.3f} steps/s, x{old / new:.2f}")


if __name__ == "__main__":
    main()
