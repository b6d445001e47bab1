"""Units and scaling: MIDI <-> Hz, amplitude/power <-> dB, the paper's scaled sigmoid, safe log.

Conventions follow magenta ddsp (so features and losses mean what they meant in the paper).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

DB_RANGE = 80.0  # ddsp's default dynamic range (dB)


def safe_log(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Natural log with x <= 0 replaced by eps (small positive values are NOT clamped, as in ddsp)."""
    return torch.log(torch.where(x <= 0.0, torch.full_like(x, eps), x))


def safe_divide(numerator: Tensor, denominator: Tensor, eps: float = 1e-7) -> Tensor:
    """numerator / denominator with zero denominators replaced by eps."""
    safe = torch.where(denominator == 0.0, torch.full_like(denominator, eps), denominator)
    return numerator / safe


def logb(x: Tensor, base: float = 2.0, eps: float = 1e-5) -> Tensor:
    return safe_log(x, eps) / math.log(base if base > 0 else eps)


def hop_size(sample_rate: int, frame_rate: int, n_samples: int | None = None, exact: bool = True) -> int:
    """Audio samples per control frame: the one frames <-> samples rule.

    exact (the framework's models, features and data): the frame rate must divide the sample rate,
    and n_samples, when given, must be whole hops. exact=False: sample_rate // frame_rate, the
    reference's low-level convention (dsp.compute_loudness accepts any rates).
    """
    if not sample_rate > 0 or not frame_rate > 0:
        raise ValueError(f"sample_rate and frame_rate must be > 0, got {sample_rate!r} and {frame_rate!r}")
    if exact and (int(sample_rate) != sample_rate or int(frame_rate) != frame_rate or sample_rate % frame_rate):
        raise ValueError(f"frame_rate ({frame_rate}) must divide sample_rate ({sample_rate}) to give an integer hop")
    hop = int(sample_rate // frame_rate)
    if hop < 1:
        raise ValueError(f"frame_rate ({frame_rate}) must not exceed sample_rate ({sample_rate})")
    if n_samples is not None and n_samples % hop:
        raise ValueError(f"n_samples ({n_samples}) must be a multiple of the hop sample_rate / frame_rate = {hop}")
    return hop


def semitones_to_ratio(semitones: float | Tensor) -> float | Tensor:
    """A frequency ratio for a pitch shift in semitones (12 per octave): f0 * ratio transposes."""
    return 2.0 ** (semitones / 12.0)


def midi_to_hz(notes: Tensor, midi_zero_silence: bool = False) -> Tensor:
    """MIDI note numbers -> Hz (A4 = 69 = 440 Hz). With midi_zero_silence, MIDI 0 -> 0 Hz."""
    hz = 440.0 * torch.pow(2.0, (notes - 69.0) / 12.0)
    if midi_zero_silence:
        hz = torch.where(notes == 0.0, torch.zeros_like(hz), hz)
    return hz


def hz_to_midi(frequencies: Tensor) -> Tensor:
    """Hz -> MIDI note numbers; Hz <= 0 maps to MIDI 0."""
    notes = 12.0 * (logb(frequencies, 2.0) - math.log2(440.0)) + 69.0
    return torch.where(frequencies <= 0.0, torch.zeros_like(notes), notes)


def power_to_db(power: Tensor, ref_db: float = 0.0, range_db: float = DB_RANGE) -> Tensor:
    """10 log10(power) - ref_db, floored at -range_db (and power floored at 10^(-range_db/10))."""
    pmin = 10.0 ** (-range_db / 10.0)
    db = 10.0 * torch.log10(torch.clamp(power, min=pmin))
    return torch.clamp(db - ref_db, min=-range_db)


def amplitude_to_db(amplitude: Tensor, ref_db: float = 0.0, range_db: float = DB_RANGE) -> Tensor:
    """20 log10(amplitude) - ref_db, floored at -range_db."""
    return power_to_db(amplitude ** 2, ref_db=ref_db, range_db=range_db)


def db_to_power(db: Tensor, ref_db: float = 0.0) -> Tensor:
    return torch.pow(10.0, (db + ref_db) / 10.0)


def db_to_amplitude(db: Tensor, ref_db: float = 0.0) -> Tensor:
    return torch.pow(10.0, (db + ref_db) / 20.0)


def exp_sigmoid(x: Tensor, exponent: float = 10.0, max_value: float = 2.0,
                threshold: float = 1e-7) -> Tensor:
    """The paper's scaled sigmoid: max_value * sigmoid(x) ** ln(exponent) + threshold.

    The threshold keeps amplitudes strictly positive (and log-magnitudes finite). Computed as
    max_value * exp(ln(exponent) * logsigmoid(x)): the same function, one transcendental pass
    fewer than a pow, and in place without autograd.
    """
    log_sig = torch.nn.functional.logsigmoid(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return max_value * torch.exp(math.log(exponent) * log_sig) + threshold
    return log_sig.mul_(math.log(exponent)).exp_().mul_(max_value).add_(threshold)


def sym_exp_sigmoid(x: Tensor, width: float = 8.0) -> Tensor:
    """Symmetric exp_sigmoid with its minimum (~1e-7) at 0: exp_sigmoid(width * (|x| / 2 - 1))."""
    return exp_sigmoid(width * (x.abs() / 2.0 - 1.0))


def soft_limit(x: Tensor, x_min: float = 0.0, x_max: float = 1.0) -> Tensor:
    """Smooth clipping to [x_min, x_max] with softplus."""
    return F.softplus(x) + x_min - F.softplus(x - (x_max - x_min))


def unit_to_midi(unit: Tensor, midi_min: float = 20.0, midi_max: float = 90.0,
                 clip: bool = False) -> Tensor:
    unit = unit.clamp(0.0, 1.0) if clip else unit
    return midi_min + (midi_max - midi_min) * unit


def midi_to_unit(midi: Tensor, midi_min: float = 20.0, midi_max: float = 90.0,
                 clip: bool = False) -> Tensor:
    unit = (midi - midi_min) / (midi_max - midi_min)
    return unit.clamp(0.0, 1.0) if clip else unit


def _hz_to_midi_scalar(hz: float) -> float:
    return 0.0 if hz <= 0 else 12.0 * (math.log2(hz) - math.log2(440.0)) + 69.0


def unit_to_hz(unit: Tensor, hz_min: float, hz_max: float, clip: bool = False) -> Tensor:
    """[0, 1] -> Hz, logarithmically (linear in MIDI) between hz_min and hz_max."""
    midi = unit_to_midi(unit, _hz_to_midi_scalar(hz_min), _hz_to_midi_scalar(hz_max), clip)
    return midi_to_hz(midi)


def hz_to_unit(hz: Tensor, hz_min: float, hz_max: float, clip: bool = False) -> Tensor:
    return midi_to_unit(hz_to_midi(hz), _hz_to_midi_scalar(hz_min), _hz_to_midi_scalar(hz_max), clip)
