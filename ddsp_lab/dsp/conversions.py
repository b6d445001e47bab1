"""Frequency scalings for network outputs, sinusoidal <-> harmonic conversions and streaming
(block-by-block) harmonic synthesis."""
from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_rank
from .oscillators import get_harmonic_frequencies, normalize_harmonics, remove_above_nyquist
from .phase import TWO_PI, cumulative_phase
from .resample import resample
from .units import safe_divide, unit_to_hz


def _add_depth_axis(freqs: Tensor, depth: int) -> Tensor:
    """[batch, n_frames, n * depth] -> [batch, n_frames, n, depth] (consecutive channels)."""
    if freqs.shape[-1] % depth:
        raise ValueError(f"freqs last axis ({freqs.shape[-1]}) must be a multiple of depth ({depth})")
    return freqs.reshape(*freqs.shape[:-1], freqs.shape[-1] // depth, depth)


def frequencies_softmax(freqs: Tensor, depth: int = 1, hz_min: float = 20.0,
                        hz_max: float = 8000.0) -> Tensor:
    """Network outputs -> Hz: softmax over `depth` log-spaced bins, expectation in [0, 1], then
    unit_to_hz. freqs [batch, n_frames, n * depth] (or [..., n, depth]) -> [batch, n_frames, n]."""
    if freqs.dim() == 3:
        freqs = _add_depth_axis(freqs, depth)
    probs = torch.softmax(freqs, dim=-1)
    bins = torch.linspace(0.0, 1.0, probs.shape[-1], dtype=probs.dtype, device=probs.device)
    return unit_to_hz((probs * bins).sum(-1), hz_min, hz_max)


def frequencies_sigmoid(freqs: Tensor, depth: int = 1, hz_min: float = 0.0,
                        hz_max: float = 8000.0) -> Tensor:
    """Network outputs -> Hz as a sum of `depth` sigmoid-scaled bands of decreasing width (coarse
    to fine). Note hz_min = 0 maps to MIDI 0 = 8.18 Hz, so each band adds at least 8.18 Hz (as in
    the reference). freqs [batch, n_frames, n * depth] -> [batch, n_frames, n]."""
    if freqs.dim() == 3:
        freqs = _add_depth_axis(freqs, depth)
    depth = freqs.shape[-1]
    probs = torch.sigmoid(freqs)
    remaining = hz_max - hz_min
    scale = remaining ** (1.0 / depth)
    out = 0.0
    for i in range(depth):
        if i < depth - 1:
            band_min, band_max = 0.0, remaining * (1.0 - 1.0 / scale)
            remaining -= band_max
        else:
            band_min, band_max = hz_min, remaining
        out = out + unit_to_hz(probs[..., i], band_min, band_max)
    return out


def harmonic_to_sinusoidal(harm_amp: Tensor, harm_dist: Tensor, f0_hz: Tensor,
                           sample_rate: float = 16000) -> tuple[Tensor, Tensor]:
    """Harmonic controls -> (sinusoid amplitudes, frequencies), each [batch, n_frames, n_harmonics];
    harmonics at or above Nyquist get zero amplitude (distribution renormalised)."""
    freqs = get_harmonic_frequencies(f0_hz, harm_dist.shape[-1])
    dist = normalize_harmonics(harm_dist, f0_hz, sample_rate)
    return harm_amp * dist, freqs


def sinusoidal_to_harmonic(sin_amps: Tensor, sin_freqs: Tensor, f0_hz: Tensor,
                           harmonic_width: float = 0.1, n_harmonics: int = 100,
                           sample_rate: float = 16000, normalize: bool = False) -> tuple[Tensor, Tensor]:
    """Project sinusoids onto the harmonics of f0 with a Gaussian kernel of width
    harmonic_width * f0.

    Args:
        sin_amps, sin_freqs: [batch, n_frames, n_sinusoids]; f0_hz: [batch, n_frames, 1].
    Returns:
        (harm_amp [batch, n_frames, 1], harm_dist [batch, n_frames, n_harmonics]).
    """
    harm_freqs = get_harmonic_frequencies(f0_hz, n_harmonics)  # [b, t, h]
    dist = safe_divide(sin_freqs[..., :, None] - harm_freqs[..., None, :], f0_hz[..., None]).abs()
    weights = torch.exp(-((dist / harmonic_width) ** 2))  # [b, t, s, h]
    if normalize:
        total = weights.sum(-2, keepdim=True)
        weights = torch.where(total > 1.0, weights / total, weights)
    harm_amps = (weights * sin_amps[..., None]).sum(-2)
    harm_amps = remove_above_nyquist(harm_freqs, harm_amps, sample_rate)
    harm_amp = harm_amps.sum(-1, keepdim=True)
    return harm_amp, safe_divide(harm_amps, harm_amp)


def streaming_harmonic_synthesis(frequencies: Tensor, amplitudes: Tensor,
                                 harmonic_distribution: Tensor | None = None,
                                 initial_phase: Tensor | None = None, n_samples: int = 64000,
                                 sample_rate: float = 16000) -> tuple[Tensor, Tensor]:
    """Block-by-block harmonic synthesis that carries the phase across calls (real-time use).

    Frame-rate Nyquist removal and renormalisation, amplitudes and f0 resampled linearly, harmonic
    k at k times the fundamental's phase (no per-sample Nyquist cut, as in the reference).

    Args:
        frequencies, amplitudes: [batch, n_frames, 1]; harmonic_distribution [batch, n_frames, h].
        initial_phase: [batch, 1, 1] radians (0 if None).
    Returns:
        (audio [batch, n_samples], final_phase [batch, 1, 1] in [0, 2 pi)).
    """
    check_rank("frequencies", frequencies, (3,), "[batch, n_frames, 1]")
    if harmonic_distribution is None:
        harmonic_distribution = torch.ones_like(amplitudes)
    dist = normalize_harmonics(harmonic_distribution, frequencies, sample_rate)
    amps = resample(amplitudes * dist, n_samples)  # [b, n, h]
    f_env = resample(frequencies, n_samples)  # [b, n, 1]
    phase = cumulative_phase(f_env, TWO_PI / sample_rate, dim=1)
    if initial_phase is not None:
        phase = torch.remainder(phase + initial_phase, TWO_PI)
    k = torch.arange(1, dist.shape[-1] + 1, dtype=phase.dtype, device=phase.device)
    audio = (amps * torch.sin(phase * k)).sum(-1)
    return audio, phase[:, -1:, :1]
