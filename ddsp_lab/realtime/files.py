"""Writing exported models: one file (TorchScript .ts or ONNX .onnx) and a JSON beside it that says
what a host needs (sample rate, block size, latency, the inputs with their units and ranges).

    from ddsp_lab import load
    from ddsp_lab.realtime import export
    info = export(load("runs/violin/checkpoints/best.ckpt"), "violin.ts", "torchscript", block_size=512)

TorchScript runs without ddsp_lab (torch.jit.load(path); forward(x [1, channels, block]) ->
[1, 1, block]; reset()). ONNX holds the per-block step with its state as inputs and outputs
(`state_in_*` -> `state_out_*`; feed the outputs back as the next block's inputs, starting from
zeros of the shapes the JSON lists).
"""
from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch

from .. import atomic
from ..dsp import midi_to_hz
from ..runtime import torch_threads
from .engine import BlockEngine, ScriptedStream

FORMATS = {"torchscript": ".ts", "onnx": ".onnx"}
NEUTONE_BLOCKED = (
    "format=neutone: the Neutone SDK (neutone-sdk 1.5.2, the newest on the package index) cannot be installed with "
    "this stack: it requires numpy<2.3 (the stack resolves numpy 2.4) and torchaudio, which `import neutone_sdk` "
    "loads and whose only wheels on the index are CUDA builds that fail to import with the stack's CPU torch "
    "(STACK.md). Export format=torchscript instead: the file is the TorchScript a Neutone wrapper would hold")


def _inputs(model, engine: BlockEngine) -> list[dict]:
    """The control channels, with units and the ranges the model was trained on (where the
    checkpoint carries its dataset's statistics)."""
    from ..models.record import training_loudness_quantiles, training_pitch_range, velocity_range

    stats = getattr(model, "dataset_statistics", None)
    pitch = training_pitch_range(stats)
    f0 = {"name": "f0_hz", "channel": 0, "unit": "Hz", "range": [0.0, model.sample_rate / 2.0],
          "note": "0 Hz or unvoiced frames: keep the last pitch and lower the loudness (the model was not trained "
                  "on jumps to 0)"}
    if pitch is not None:
        lo, _, hi = pitch
        f0["trained_range"] = [round(float(midi_to_hz(torch.tensor(m, dtype=torch.float64))), 2) for m in (lo, hi)]
        f0["trained_range_midi"] = [round(lo, 2), round(hi, 2)]
    loud = training_loudness_quantiles(stats)
    (_, _), silence = velocity_range(stats)
    ld = {"name": "loudness_db", "channel": 1, "unit": "dB (A-weighted power, ddsp_lab.features)",
          "range": [-80.0, 0.0] if loud is None else [round(float(silence), 2), round(float(loud[100]), 2)]}
    inputs = [f0, ld]
    for i in range(engine.z_dims):
        inputs.append({"name": f"z_{i}", "channel": 2 + i, "unit": "z (the model's encoder's latent)"})
    return inputs


def describe(model, engine: BlockEngine, fmt: str, path: Path, checkpoint: str | None = None) -> dict:
    """The JSON written beside an exported model."""
    from .. import __version__

    info = {
        "format": fmt, "file": path.name, "ddsp_lab": __version__, "torch": torch.__version__,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "sample_rate": engine.sample_rate, "block_size": engine.block_size, "hop_size": engine.hop,
        "frame_rate": int(model.frame_rate), "frames_per_block": engine.n_frames,
        "latency_samples": engine.latency, "latency_ms": round(1000.0 * engine.latency / engine.sample_rate, 3),
        "inputs": _inputs(model, engine),
        "synth": {"nodes": [{"name": name, "processor": type(proc).__name__, "inputs": list(inputs)} for proc, inputs, name
                            in zip(model.synth.processors, model.synth.inputs, model.synth.names)],
                  "output": model.synth.output},
    }
    if fmt == "torchscript":
        info["call"] = {"forward": f"x [1, {2 + engine.z_dims}, {engine.block_size}] float32, the inputs as audio-rate "
                                   f"signals (read at each frame's first sample, every {engine.hop} samples) -> "
                                   f"audio [1, 1, {engine.block_size}]", "reset": "() -> None: a new signal"}
    else:
        state = engine.initial_state()
        info["call"] = {"inputs": [{"name": "controls", "shape": [1, engine.n_frames, 2 + engine.z_dims],
                                    "dtype": "float32", "note": "one row per frame: the inputs above"}] +
                        [{"name": f"state_in_{n}", "shape": list(s.shape), "dtype": str(s.dtype).replace("torch.", ""),
                          "initial": "zeros"} for n, s in zip(engine.state_names, state)],
                        "outputs": [{"name": "audio", "shape": [1, engine.block_size], "dtype": "float32"}] +
                        [{"name": f"state_out_{n}", "note": f"the next block's state_in_{n}"} for n in engine.state_names]}
    return info


def export(model, path: str | Path, fmt: str = "torchscript", block_size: int = 512, seed: int = 0,
           checkpoint: str | None = None) -> dict:
    """Write `model` (a DDSP) as `fmt` ('torchscript' | 'onnx') to path, and path.with_suffix('.json');
    returns that JSON's dict. The exported model renders what StreamingModel(model, block_size,
    seed=seed) renders (within 1e-5)."""
    if fmt == "neutone":
        raise ValueError(NEUTONE_BLOCKED)
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)} (or neutone, which cannot be built here), got {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _cpu_copy(model)
    engine = BlockEngine(model, block_size, seed=seed).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        if fmt == "torchscript":
            engine.step(torch.zeros(1, engine.n_frames, 2 + engine.z_dims), *engine.initial_state())  # fills caches
            atomic.write_with(path, lambda f: torch.jit.save(ScriptedStream.compile(engine), f))
        else:
            _export_onnx(engine, path)
    info = describe(model, engine, fmt, path, checkpoint)
    atomic.write_text(path.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return info


def _cpu_copy(model):
    """The model as the exported file holds it (CPU, float32, eval), a copy: the caller's model
    stays where it was, in its own mode and precision."""
    return copy.deepcopy(model).cpu().float().eval()


def _export_onnx(engine: BlockEngine, path: Path) -> None:
    import logging

    try:
        import onnx  # noqa: F401  (torch.onnx's exporter needs onnx and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ValueError(f"format=onnx needs the onnx and onnxscript packages ({e}); bash scripts/install.sh "
                         f"installs them") from e
    controls = torch.zeros(1, engine.n_frames, 2 + engine.z_dims)
    args = (controls, *engine.initial_state())
    engine.step(*args)  # a first block fills the dsp caches (filter designs), so the graph holds them as constants
    names_in = ["controls"] + [f"state_in_{n}" for n in engine.state_names]
    names_out = ["audio"] + [f"state_out_{n}" for n in engine.state_names]
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnx_ir", "onnxscript", "torch.export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:  # the exporter reports each pass at INFO (and prints its progress)
        lg.setLevel(logging.ERROR)
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*(_flat_weights|LeafSpec).*")  # torch.export's own notes
            program = torch.onnx.export(engine, args, dynamo=True, input_names=names_in, output_names=names_out,
                                        optimize=True, verbose=False)
        atomic.write_to(path, lambda tmp: program.save(str(tmp)))
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def run_exported(path: str | Path, controls: torch.Tensor, info: dict | None = None) -> tuple[torch.Tensor, float]:
    """Play an exported file block by block as a host does, with torch (TorchScript) or
    onnxruntime (ONNX) only: controls [1, n_frames, channels] (f0 Hz, loudness dB[, z]), whole
    blocks -> (audio [n_frames * hop], seconds of compute)."""
    import time

    path = Path(path)
    info = info or json.loads(path.with_suffix(".json").read_text())
    per, hop = info["frames_per_block"], info["hop_size"]
    if controls.shape[1] % per:
        raise ValueError(f"controls must be whole blocks of {per} frames, got {controls.shape[1]} frames")
    blocks = []
    if info["format"] == "torchscript":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
            stream = torch.jit.load(str(path))
        x = controls.transpose(1, 2).repeat_interleave(hop, dim=-1).float()
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, x.shape[-1], per * hop):
                blocks.append(stream(x[:, :, i:i + per * hop])[0, 0])
        return torch.cat(blocks), time.perf_counter() - start
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    specs = info["call"]["inputs"][1:]
    state = {s["name"]: np.zeros(s["shape"], dtype=s["dtype"]) for s in specs}
    x = controls.float().numpy()
    start = time.perf_counter()
    for i in range(0, x.shape[1], per):
        out = session.run(None, {"controls": x[:, i:i + per], **state})
        blocks.append(out[0][0])
        state = {s["name"]: v for s, v in zip(specs, out[1:])}
    return torch.from_numpy(np.concatenate(blocks)), time.perf_counter() - start


def check_curves(model, seconds: float, block_frames: int) -> torch.Tensor:
    """Controls to check an export on: a glide with vibrato through the trained pitch range, notes
    swelling over the trained loudness and stopping (silences between them), z = 0 for a z model;
    whole blocks. [1, n_frames, 2 (+ z)]."""
    import math

    from ..models.record import training_pitch_range, velocity_range

    stats = getattr(model, "dataset_statistics", None)
    n = -(-int(seconds * model.frame_rate) // block_frames) * block_frames
    t = torch.arange(n, dtype=torch.float64) / model.frame_rate
    lo, _, hi = training_pitch_range(stats) or (55.0, 62.0, 69.0)
    midi = lo + (hi - lo) * (0.5 - 0.5 * torch.cos(2 * math.pi * t / max(seconds, 1e-3))) + \
        0.3 * torch.sin(2 * math.pi * 5.5 * t)
    (quiet, loud), silence = velocity_range(stats)
    swell = 0.5 - 0.5 * torch.cos(2 * math.pi * (t % 1.0) / 0.8)
    ld = torch.where((t % 1.0) < 0.8, quiet + (loud - quiet) * swell, torch.full_like(t, silence))
    f0 = midi_to_hz(midi)
    z = torch.zeros(1, n, BlockEngine.z_size(model), dtype=t.dtype)
    return torch.cat([f0[None, :, None], ld[None, :, None], z], -1).float()


def check_export(model, path: str | Path, info: dict, seconds: float = 2.0, seed: int = 0) -> dict:
    """Run the exported file on `check_curves` and compare it with the eager StreamingModel:
    {'max_abs_error', 'peak', 'real_time_factor', 'seconds'}."""
    from .streaming import StreamingModel

    controls = check_curves(model, seconds, info["frames_per_block"])
    out, compute = run_exported(path, controls, info)
    live = StreamingModel(_cpu_copy(model), block_size=info["block_size"], seed=seed)
    per, z = info["frames_per_block"], controls.shape[-1] > 2
    ref = torch.cat([live(controls[:, i:i + per, 0], controls[:, i:i + per, 1],
                          controls[:, i:i + per, 2:] if z else None)[0] for i in range(0, controls.shape[1], per)])
    audio_seconds = ref.numel() / info["sample_rate"]
    return {"max_abs_error": float((out - ref).abs().max()), "peak": float(ref.abs().max()),
            "real_time_factor": audio_seconds / max(compute, 1e-9), "seconds": audio_seconds}


def run_export(cfg) -> dict:
    """`ddsp-lab export checkpoint=... format=torchscript|onnx block_size=... [out=...]`."""
    from .. import load

    if cfg.format not in (*FORMATS, "neutone"):
        raise ValueError(f"format must be torchscript or onnx, got {cfg.format!r}")
    model = load(cfg.checkpoint, map_location="cpu", trusted_targets=cfg.get("trusted_targets") or ())
    ckpt = Path(cfg.checkpoint)
    suffix = FORMATS.get(cfg.format, "")
    run_name = ckpt.parent.parent.name if ckpt.parent.name == "checkpoints" else ckpt.stem
    out = Path(cfg.out) if cfg.out else Path.cwd() / f"{run_name}.b{cfg.block_size}{suffix}"
    if out.suffix != suffix:
        raise ValueError(f"out: a {cfg.format} file ends in {suffix}, got {out}")
    info = export(model, out, cfg.format, int(cfg.block_size), seed=int(cfg.seed), checkpoint=str(ckpt.resolve()))
    print(f"ddsp-lab export: {cfg.format}, {info['sample_rate']} Hz, blocks of {info['block_size']} samples "
          f"({info['frames_per_block']} frames), latency {info['latency_samples']} samples ({info['latency_ms']} ms)")
    names = ", ".join(f"{i['name']} ({i['unit'].split(' (')[0]})" for i in info["inputs"])
    print(f"  inputs: {names}" + (" per frame" if cfg.format == "onnx" else
                                  f", as {len(info['inputs'])} audio-rate channels"))
    if cfg.check:
        with torch_threads(1):  # what a host gives one voice: the check's real-time factor means that
            checked = check_export(model, out, info, float(cfg.check_seconds), int(cfg.seed))
        info["check"] = checked
        atomic.write_text(out.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
        print(f"  checked: {checked['seconds']:.2f} s of curves through the file equal the eager StreamingModel "
              f"within {checked['max_abs_error']:.1e} (peak {checked['peak']:.2f}); "
              f"{checked['real_time_factor']:.1f}x real time on one thread, first blocks included")
    print(f"  wrote {out.resolve()}\n  wrote {out.with_suffix('.json').resolve()}")
    return info
