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
    index, _, wf = _source_positions(n_frames, n_samples, True, tables.device, tables.dtype)
    f0 = index.clamp(max=n_frames - 1)
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
                        n_samples: int = 64000, sample_rate: float = 16000,
                        initial_phase: Tensor | None = None) -> Tensor:
    """Wavetable oscillator.

    Phase is the EXCLUSIVE running sum of f / sample_rate in cycles (first sample at phase 0, the
    reference's convention); frequencies upsampled linearly, amplitudes with overlapping windows,
    frame-wise tables interpolated linearly over time.

    Args:
        frequencies: [batch, n_frames, 1] Hz.
        amplitudes: [batch, n_frames, 1].
        wavetables: [batch, n_wavetable] or [batch, n_frames, n_wavetable].
        initial_phase: [batch] phase (radians) before the first sample (a chunk continuing a
            signal, see oscillators.end_phase); None: 0.
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
    if initial_phase is not None:
        phase = phase + initial_phase.to(phase.dtype)[:, None]
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


def _delay_tap(padded: Tensor, t: Tensor, tap: Tensor, max_length: int) -> Tensor:
    """Read the reference's reversed delay frame at integer position `tap` [batch, n_samples].

    Taps 0 .. max_length - 1 are delays of that many samples; tap max_length is the frame's
    wrapped first entry (delay 0); any other tap lies outside the frame and reads 0.
    """
    inside = (tap >= 0) & (tap <= max_length)
    delay = torch.where(tap == max_length, 0, tap).clamp(0, max_length - 1)
    value = torch.gather(padded, 1, t - delay)
    return torch.where(inside, value, value.new_zeros(()))


def variable_length_delay(phase: Tensor, audio: Tensor, max_length: int = 512) -> Tensor:
    """Delay each sample by phase * max_length samples (linear interpolation between taps).

    As the reference (ddsp.core.variable_length_delay: a linear_lookup of reversed causal frames of
    max_length samples with the first entry appended), position p = phase * max_length reads
    sum_k relu(1 - |p - k|) * tap_k over k = 0 .. max_length, tap_k = audio[t - k] for
    k < max_length and tap_max_length = audio[t]. So phase in [0, 1) is a delay of 0 up to
    max_length samples; delays in (max_length - 1, max_length] fade into the wrapped audio[t]
    (phase 1.0 is a delay of 0); outside [0, 1] the lookup runs off the frame: p in
    (max_length, max_length + 1) gives (max_length + 1 - p) * audio[t], p in (-1, 0) gives
    (1 + p) * audio[t], and p <= -1 or p >= max_length + 1 reads silence (zero gradient).
    Samples before the start of the audio are zeros.

    Args:
        phase: [batch, n_samples] or [batch, n_samples, 1].
        audio: [batch, n_samples].
    Returns:
        [batch, n_samples].
    """
    if phase.dim() == 3:
        phase = phase[..., 0]
    check_rank("audio", audio, (2,), "[batch, n_samples]")
    if phase.shape != audio.shape:
        raise ValueError(f"phase must be [batch, n_samples(, 1)] like audio {tuple(audio.shape)}, "
                         f"got {tuple(phase.shape)}")
    check_positive_int("max_length", max_length)
    n = audio.shape[1]
    # Positions beyond [-1, max_length + 1] read zeros on both taps; clamping keeps the integer
    # taps finite (inf, huge values) without changing the result.
    pos = (phase * max_length).clamp(-2.0, max_length + 2.0)
    tap0 = pos.floor()
    w = pos - tap0
    tap0 = tap0.long()
    padded = torch.nn.functional.pad(audio, (max_length, 0))
    t = torch.arange(n, device=audio.device) + max_length
    v0 = _delay_tap(padded, t, tap0, max_length)
    v1 = _delay_tap(padded, t, tap0 + 1, max_length)
    return v0 + (v1 - v0) * w
