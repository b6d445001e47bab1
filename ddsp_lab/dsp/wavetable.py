"""Wavetable synthesis, table lookup and the variable-length delay line."""
from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_f0, check_positive_int, check_rank, check_sample_rate
from .phase import TWO_PI, cumulative_phase
from .resample import _source_positions, resample, upsample_with_windows


def _lookup_positions(phase: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    pos = (phase * n).clamp(0.0, float(n))
    i0 = pos.floor().clamp(max=n - 1)
    return i0.long(), (i0 + 1).long(), pos - i0


def linear_lookup(phase: Tensor, wavetables: Tensor) -> Tensor:
    """Read periodic tables at phase in [0, 1] with linear interpolation.

    The table wraps (its first sample is appended) and position = phase * n_wavetable.

    Args:
        phase: [batch, n_samples] or [batch, n_samples, 1].
        wavetables: [batch, n_wavetable] (static) or [batch, n_samples, n_wavetable].
    Returns:
        [batch, n_samples].
    """
    if phase.dim() == 3:
        phase = phase[..., 0]
    check_rank("phase", phase, (2,), "[batch, n_samples(, 1)]")
    check_rank("wavetables", wavetables, (2, 3), "[batch, n_wavetable] or [batch, n_samples, n_wavetable]")
    wt = torch.cat([wavetables, wavetables[..., :1]], dim=-1)
    n = wt.shape[-1] - 1
    i0, i1, w = _lookup_positions(phase, n)
    if wt.dim() == 2:
        v0, v1 = torch.gather(wt, 1, i0), torch.gather(wt, 1, i1)
    else:
        v0 = torch.gather(wt.expand(phase.shape[0], -1, -1), 2, i0[..., None])[..., 0]
        v1 = torch.gather(wt.expand(phase.shape[0], -1, -1), 2, i1[..., None])[..., 0]
    return v0 + (v1 - v0) * w


def _lookup_frames(phase: Tensor, tables: Tensor, n_samples: int) -> Tensor:
    """Lookup in frame-wise tables [batch, n_frames, n] linearly interpolated over time, without
    materialising [batch, n_samples, n] (lookup is linear in the table)."""
    batch, n_frames, n_wt = tables.shape
    src = _source_positions(n_frames, n_samples, True, tables.device)
    f0 = src.floor().clamp(max=n_frames - 1)
    wf = (src - f0).to(tables.dtype)
    f0 = f0.long()
    f1 = (f0 + 1).clamp(max=n_frames - 1)
    wt = torch.cat([tables, tables[..., :1]], dim=-1).reshape(batch, -1)  # [b, n_frames * (n + 1)]
    i0, i1, w = _lookup_positions(phase, n_wt)

    def read(frame_idx: Tensor) -> Tensor:
        base = frame_idx * (n_wt + 1)
        v0, v1 = torch.gather(wt, 1, base + i0), torch.gather(wt, 1, base + i1)
        return v0 + (v1 - v0) * w

    a, b = read(f0.expand(batch, -1)), read(f1.expand(batch, -1))
    return a + (b - a) * wf


def wavetable_synthesis(frequencies: Tensor, amplitudes: Tensor, wavetables: Tensor,
                        n_samples: int = 64000, sample_rate: float = 16000) -> Tensor:
    """Wavetable oscillator.

    Phase is the EXCLUSIVE running sum of f / sample_rate in cycles (first sample at phase 0, the
    reference's convention); frequencies upsampled linearly, amplitudes with overlapping windows,
    frame-wise tables interpolated linearly over time.

    Args:
        frequencies: [batch, n_frames, 1] Hz.
        amplitudes: [batch, n_frames, 1].
        wavetables: [batch, n_wavetable] or [batch, n_frames, n_wavetable].
    Returns:
        [batch, n_samples].
    """
    check_rank("frequencies", frequencies, (3,), "[batch, n_frames, 1]")
    check_rank("amplitudes", amplitudes, (3,), "[batch, n_frames, 1]")
    check_f0("frequencies", frequencies)
    check_positive_int("n_samples", n_samples)
    check_sample_rate("sample_rate", sample_rate)
    amp_env = upsample_with_windows(amplitudes, n_samples)[..., 0]
    f_env = resample(frequencies, n_samples)[..., 0]
    phase = cumulative_phase(f_env, TWO_PI / sample_rate, dim=1)
    cycles = torch.remainder(phase - f_env * (TWO_PI / sample_rate), TWO_PI) / TWO_PI  # exclusive
    if wavetables.dim() == 3 and wavetables.shape[1] > 1:
        audio = _lookup_frames(cycles, wavetables, n_samples)
    else:
        audio = linear_lookup(cycles, wavetables[:, 0] if wavetables.dim() == 3 else wavetables)
    return audio * amp_env


def harmonic_distribution_to_wavetable(harmonic_distribution: Tensor, n_wavetable: int = 2048) -> Tensor:
    """One period of a harmonic spectrum: [..., n_harmonics] -> [..., n_wavetable] (cosine phase)."""
    n_h = harmonic_distribution.shape[-1]
    n_bins = n_wavetable // 2 + 1
    if n_h + 1 > n_bins:
        raise ValueError(f"n_wavetable={n_wavetable} holds at most {n_bins - 1} harmonics, got {n_h}")
    spec = torch.nn.functional.pad(harmonic_distribution, (1, n_bins - n_h - 1))
    return torch.fft.irfft(spec, n=n_wavetable) * (n_wavetable / 2)


def variable_length_delay(phase: Tensor, audio: Tensor, max_length: int = 512) -> Tensor:
    """Delay each sample by phase * max_length samples (linear interpolation between taps).

    phase in [0, 1]; 1.0 wraps to a delay of 0, as in the reference.

    Args:
        phase: [batch, n_samples] or [batch, n_samples, 1].
        audio: [batch, n_samples].
    """
    if phase.dim() == 3:
        phase = phase[..., 0]
    check_rank("audio", audio, (2,), "[batch, n_samples]")
    if phase.shape != audio.shape:
        raise ValueError(f"phase must be [batch, n_samples(, 1)] like audio {tuple(audio.shape)}, "
                         f"got {tuple(phase.shape)}")
    check_positive_int("max_length", max_length)
    n = audio.shape[1]
    d0, d1, w = _lookup_positions(phase, max_length)
    d1 = torch.remainder(d1, max_length)
    padded = torch.nn.functional.pad(audio, (max_length, 0))
    t = torch.arange(n, device=audio.device) + max_length
    v0, v1 = torch.gather(padded, 1, t - d0), torch.gather(padded, 1, t - d1)
    return v0 + (v1 - v0) * w
