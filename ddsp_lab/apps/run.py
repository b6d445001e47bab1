"""The application commands: `ddsp-lab transfer|control|dereverb|reverb|interpolate` (conf/<command>.yaml)."""
from __future__ import annotations

from pathlib import Path

import torch

from .io import AppResult, read_input


def _model(cfg):
    from .. import load

    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return load(cfg.checkpoint, map_location=device, trusted_targets=cfg.get("trusted_targets") or ()).to(device)


def _out(cfg, stem: str, command: str) -> Path:
    return Path(cfg.out) if cfg.out else Path.cwd() / f"{stem}.{command}.wav"


def _report(command: str, result: AppResult, written: list[Path], notes: list[str]) -> None:
    print(f"ddsp-lab {command}: {result.seconds:.2f} s of audio at {result.sample_rate} Hz")
    for note in notes + result.notes:
        print(f"  {note}")
    for path in written:
        print(f"  wrote {path.resolve()}")


def run_app(command: str, cfg) -> AppResult:
    from . import control, dereverb, interpolate, timbre_transfer
    from ..media import save_wav

    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    common = {"chunk_seconds": cfg.chunk_seconds, "seed": cfg.seed, "crepe_model": cfg.crepe_model}
    written: list[Path] = []
    notes: list[str] = []
    if command == "transfer":
        audio, sr, notes = read_input(cfg.audio)
        result = timbre_transfer(_model(cfg), audio, sr, auto_adjust=cfg.auto_adjust, pitch_shift=cfg.pitch_shift,
                                 loudness_shift=cfg.loudness_shift, confidence_threshold=cfg.confidence_threshold,
                                 quiet_db=cfg.quiet_db, attenuate_db=cfg.attenuate_db, **common)
        out = _out(cfg, Path(cfg.audio).stem, command)
    elif command == "control":
        if (cfg.notes is None) == (cfg.audio is None):
            raise SystemExit("ddsp-lab control: give notes=\"A4:0:0.5 C5:0.5:0.5:90 ...\" (or notes=<file.csv>) or "
                             "audio=<file>, one of them")
        edits = {k: cfg[k] for k in ("pitch_shift", "pitch_scale", "loudness_shift", "loudness_scale")}
        if cfg.notes is not None:
            notes_arg = " ".join(cfg.notes) if not isinstance(cfg.notes, str) else cfg.notes  # a Hydra list
            result = control(_model(cfg), notes=notes_arg, vibrato_hz=cfg.vibrato_hz,
                             vibrato_cents=cfg.vibrato_cents, **edits, **common)
            stem = Path(cfg.notes).stem if str(cfg.notes).endswith(".csv") else "notes"
        else:
            audio, sr, notes = read_input(cfg.audio)
            result = control(_model(cfg), audio=audio, sample_rate=sr, confidence_threshold=cfg.confidence_threshold,
                             **edits, **common)
            stem = Path(cfg.audio).stem
        out = _out(cfg, stem, command)
    elif command == "dereverb":
        audio, sr, notes = read_input(cfg.audio)
        result = dereverb(_model(cfg), audio, sr, **common)
        out = _out(cfg, Path(cfg.audio).stem, command)
        written.append(save_wav(out.with_name(out.stem + "_wet.wav"), result.info["wet"], result.sample_rate))
    elif command == "interpolate":
        a, sr_a, notes_a = read_input(cfg.audio_a, "audio_a")
        b, sr_b, notes_b = read_input(cfg.audio_b, "audio_b")
        notes = notes_a + notes_b
        result = interpolate(_model(cfg), a, sr_a, b, sr_b, alpha=cfg.alpha, **common)
        out = _out(cfg, f"{Path(cfg.audio_a).stem}-{Path(cfg.audio_b).stem}", command)
    elif command == "reverb":
        return _reverb(cfg)
    else:
        raise ValueError(f"unknown application {command!r}")
    written = result.save(out, png=cfg.png) + written
    _report(command, result, written, notes)
    return result


def _reverb(cfg) -> AppResult:
    from .reverb import apply_reverb, impulse_response
    from ..media import save_wav

    if (cfg.checkpoint is None) == (cfg.ir is None):
        raise SystemExit("ddsp-lab reverb: give checkpoint=<ckpt> (its learned impulse response) or ir=<ir.wav>, "
                         "one of them")
    written, notes = [], []
    if cfg.checkpoint is not None:
        model = _model(cfg)
        ir, ir_sr = impulse_response(model, cfg.node, cfg.seed), model.sample_rate
        base = Path(cfg.out) if cfg.out else Path.cwd() / f"{Path(cfg.checkpoint).parent.parent.name or 'model'}.reverb.wav"
        ir_path = save_wav(base.with_name(base.stem + "_ir.wav"), ir, ir_sr, subtype="FLOAT")
        written.append(ir_path)
        notes.append(f"the learned impulse response: {ir.numel()} taps, {ir.numel() / ir_sr:.2f} s, "
                     f"energy after 50 ms {float(ir[int(0.05 * ir_sr):].square().sum()):.3g}")
    else:
        ir, ir_sr, notes = read_input(cfg.ir, "ir")
    if cfg.audio is None:
        result = AppResult(ir, ir_sr, 0, title="the learned impulse response")
        if cfg.png:
            from .io import save_figure

            written.append(save_figure(written[0].with_suffix(".png"), result))
        _report("reverb", result, written, notes)
        return result
    audio, sr, read_notes = read_input(cfg.audio)
    result = apply_reverb(audio, sr, ir, ir_sr, keep_tail=cfg.keep_tail)
    out = _out(cfg, Path(cfg.audio).stem, "reverb")
    written = written + result.save(out, png=cfg.png)
    _report("reverb", result, written, notes + read_notes)
    return result
