"""DSP speed and memory: the jobs of issue 3 at batch 16 x 4 s at 16 kHz (1000 frames).

    python benchmarks/dsp.py                    # all jobs, eager + compiled, 2 threads (CPU)
    python benchmarks/dsp.py --jobs a,d --no-compile
    python benchmarks/dsp.py --device cuda

Jobs: (a) Harmonic forward, 100 harmonics, half the rows glide 100 -> 1000 Hz; (b) FilteredNoise
forward, 65 bands; (c) MultiScaleSpectralLoss (mag + logmag) forward + backward; (d) Harmonic ->
loss forward + backward through the raw controls; (e) the paper's synth stack (Harmonic 100 +
FilteredNoise 65 + 3 s trainable Reverb + loss) forward + backward.
The timed processes tune glibc malloc as the `ddsp-lab` command does (ddsp_lab.runtime:
freed blocks stay in the heap instead of being faulted in again); --allocator default times glibc's
defaults instead. Prints seconds (median of --repeats after warm-up), real-time factor (audio seconds per second),
peak memory of the job (CPU: RSS high-water mark of a fresh subprocess above its baseline; CUDA:
max_memory_allocated), the speed-up over the plain reference-style torch baseline timed in the same
run (`baseline_plain.py`, jobs a and d; for b, each frame's FIR designed and FFT-convolved, as
dsp.frequency_filter did before its design matrix) and over the reference library's recorded figures
(TF 2.13, tf.function, quiet 2-core machine: ../shared/oracle/tf_timings.json, labelled 'TF rec.').
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
BATCH, SR, FR, SECONDS = 16, 16000, 250, 4.0
N_SAMPLES, N_FRAMES = int(SR * SECONDS), int(FR * SECONDS)
TF_RECORDED = {"a": 0.861, "b": 0.101, "c": 0.469, "d": 2.55}  # tf.function figures
# The fastest existing PyTorch port (looser conventions), as quoted in issue 3 for this kind of
# machine, next to one torch.sin over [16, 64000, 100] on the same machine (0.05 s). We cannot run
# that port here, so its figures are also shown scaled by our own sin timing from the same run.
FASTEST_PORT = {"a": 0.098, "b": 0.011, "c": 0.24, "d": 0.79}
FASTEST_PORT_SIN_S = 0.05
# The same port measured on this machine class (2 threads), as quoted in issue 13, whose goal is
# x1.3 ahead of these on (a), (b), (c). Absolute figures: the machine's speed varies between runs.
PORT_THIS_CLASS = {"a": 0.167, "b": 0.017, "c": 0.331}


def make_inputs(device: str):
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, N_FRAMES)
    f0 = 220.0 + 220.0 * torch.rand(BATCH, 1, 1, generator=g) + 0.0 * t[None, :, None]
    f0[: BATCH // 2] = (100.0 * 10.0 ** t)[None, :, None].expand(BATCH // 2, -1, -1)  # glide
    inputs = {
        "f0_hz": f0,
        "amps": torch.randn(BATCH, N_FRAMES, 1, generator=g),
        "harmonic_distribution": torch.randn(BATCH, N_FRAMES, 100, generator=g),
        "noise_magnitudes": torch.randn(BATCH, N_FRAMES, 65, generator=g),
        # a cheap target: building it must not set the memory high-water mark of the job
        "target": torch.randn(BATCH, N_SAMPLES, generator=g) * 0.1,
        "audio": torch.randn(BATCH, N_SAMPLES, generator=g) * 0.1,
    }
    return {k: v.to(device) for k, v in inputs.items()}


def build_job(job: str, impl: str, device: str):
    """Returns a zero-argument callable running the job once (forward, or forward + backward)."""
    from ddsp_lab import processors as P
    from ddsp_lab.losses import MultiScaleSpectralLoss

    x = make_inputs(device)
    loss = MultiScaleSpectralLoss()
    harmonic = P.Harmonic(N_SAMPLES, SR).to(device)
    noise = P.FilteredNoise(N_SAMPLES).to(device)
    reverb = P.Reverb(trainable=True, reverb_length=3 * SR).to(device)
    if impl == "baseline":
        from baseline_plain import harmonic_plain
        synth = lambda a, d, f: harmonic_plain(a, d, f, N_SAMPLES, SR)  # noqa: E731
    else:
        synth = harmonic

    def job_a():
        with torch.no_grad():
            return synth(x["amps"], x["harmonic_distribution"], x["f0_hz"])

    def job_b():
        with torch.no_grad():
            if impl == "baseline":  # each frame's FIR designed, then FFT-convolved (frequency_filter before its design matrix)
                from ddsp_lab import dsp

                mags = noise.get_controls(x["noise_magnitudes"])["magnitudes"]
                white = torch.rand(BATCH, N_SAMPLES, device=device) * 2.0 - 1.0
                return dsp.fft_convolve(white, dsp.frequency_impulse_response(mags, noise.window_size))
            return noise(x["noise_magnitudes"])

    audio = x["audio"].clone().requires_grad_(True)

    def job_c():
        audio.grad = None
        value = loss(x["target"], audio)
        value.backward()
        return value

    amps = x["amps"].clone().requires_grad_(True)
    dist = x["harmonic_distribution"].clone().requires_grad_(True)
    mags = x["noise_magnitudes"].clone().requires_grad_(True)

    def job_d():
        value = loss(x["target"], synth(amps, dist, x["f0_hz"]))
        value.backward()
        return value

    def job_e():
        wet = reverb(synth(amps, dist, x["f0_hz"]) + noise(mags))
        value = loss(x["target"], wet)
        value.backward()
        return value

    return {"a": job_a, "b": job_b, "c": job_c, "d": job_d, "e": job_e}[job]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_job(job: str, impl: str, device: str, compiled: bool, repeats: int) -> dict:
    fn = build_job(job, impl, device)
    if compiled:
        fn = torch.compile(fn)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fn()
    sync(device)
    first = time.perf_counter() - t0
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return {"job": job, "impl": impl, "compiled": compiled, "seconds": statistics.median(times),
            "first_call_s": first, "peak_mb": peak_mb}


def sin_calibration(threads: int) -> float:
    torch.set_num_threads(threads)
    x = torch.rand(BATCH, N_SAMPLES, 100)
    torch.sin(x)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        torch.sin(x)
        times.append(time.perf_counter() - t0)
    return min(times)


def _proc_status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_peak_mb(job: str, impl: str, device: str) -> float:
    """Peak resident memory of one call above the resident memory before it (CPU, Linux): the
    kernel's high-water mark is reset through /proc/self/clear_refs just before the call; the
    parent runs this child with MALLOC_MMAP_THRESHOLD_ fixed so freed large blocks leave RSS."""
    fn = build_job(job, impl, device)
    fn()  # warm-up (lazy initialisation, caches)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _proc_status_kb("VmRSS")
    fn()
    return (_proc_status_kb("VmHWM") - before) / 1024


def run_memory_child(args, job, impl) -> float | None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    cmd = [sys.executable, __file__, "--memory-child", job, impl, "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None


def run_child(args, job, impl, compiled) -> dict:
    cmd = [sys.executable, __file__, "--child", job, impl, str(int(compiled)), "--device", args.device,
           "--threads", str(args.threads), "--repeats", str(args.repeats), "--allocator", args.allocator]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"job": job, "impl": impl, "compiled": compiled, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", default="a,b,c,d,e")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("JOB", "IMPL", "COMPILED"))
    ap.add_argument("--memory-child", nargs=2, metavar=("JOB", "IMPL"))
    ap.add_argument("--json", default="")
    ap.add_argument("--allocator", choices=("tuned", "default"), default="tuned",
                    help="glibc malloc of the timed processes: tuned as `ddsp-lab` runs (default) or glibc's defaults")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        print(measure_peak_mb(*args.memory_child, args.device))
        return
    if args.child:
        if args.allocator == "tuned":
            from ddsp_lab.runtime import tune_cpu_allocator
            tune_cpu_allocator()
        job, impl, compiled = args.child
        print(json.dumps(time_job(job, impl, args.device, bool(int(compiled)), args.repeats)))
        return
    rows = []
    global SIN_S
    if args.device == "cpu":
        SIN_S = sin_calibration(args.threads)
        print(f"calibration: one torch.sin over [16, 64000, 100] takes {SIN_S * 1000:.0f} ms here "
              f"({FASTEST_PORT_SIN_S * 1000:.0f} ms where the fastest port's figures were taken)")
    print(f"allocator: {args.allocator}")
    for job in args.jobs.split(","):
        variants = [("ddsp_lab", False)] + ([] if args.no_compile else [("ddsp_lab", True)])
        if job in ("a", "b", "d") and not args.no_baseline:
            variants.append(("baseline", False))
        for impl, compiled in variants:
            rows.append(run_child(args, job, impl, compiled))
            if args.device == "cpu" and not compiled and "error" not in rows[-1]:
                rows[-1]["peak_mb"] = run_memory_child(args, job, impl)
            print_row(rows[-1], rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


SIN_S = 0.0


def print_row(r: dict, rows: list[dict]) -> None:
    name = f"({r['job']}) {r['impl']}{' compiled' if r['compiled'] else ' eager'}"
    if "error" in r:
        print(f"{name:28s} ERROR {r['error']}")
        return
    s = r["seconds"]
    extra = []
    if r["job"] in TF_RECORDED:
        extra.append(f"x{TF_RECORDED[r['job']] / s:5.1f} vs TF rec.")
        extra.append(f"x{FASTEST_PORT[r['job']] / s:4.2f} vs fastest port (abs.)")
        if r["job"] in PORT_THIS_CLASS:
            extra.append(f"x{PORT_THIS_CLASS[r['job']] / s:4.2f} vs port on this class (goal x1.3)")
        if SIN_S:
            scaled = FASTEST_PORT[r["job"]] * SIN_S / FASTEST_PORT_SIN_S
            extra.append(f"x{scaled / s:4.2f} vs fastest port (sin-scaled)")
    peak = f"{r['peak_mb']:6.0f} MB" if r.get("peak_mb") is not None else "     - MB"
    print(f"{name:28s} {s * 1000:8.1f} ms  RTF {BATCH * SECONDS / s:7.1f}  peak {peak}  "
          f"first call {r['first_call_s']:.1f} s  " + "  ".join(extra), flush=True)
    if r["impl"] == "baseline":
        for o in rows:
            if o["job"] == r["job"] and o["impl"] == "ddsp_lab" and "seconds" in o:
                mem = (f", memory {o['peak_mb']:.0f} vs {r['peak_mb']:.0f} MB"
                       if o.get("peak_mb") is not None and r.get("peak_mb") is not None else "")
                print(f"    ddsp_lab{' compiled' if o['compiled'] else ' eager'} vs plain baseline: "
                      f"x{s / o['seconds']:.2f} faster{mem}")


if __name__ == "__main__":
    main()
