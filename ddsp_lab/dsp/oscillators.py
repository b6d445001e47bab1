"""Oscillators: sinusoidal bank, harmonic synthesis, wavetables, variable delay, sinusoid <-> harmonic.

Shapes: frame-wise controls [batch, n_frames, channels]; sample-wise envelopes
[batch, n_samples, channels]; audio [batch, n_samples]. Frequencies in Hz, amplitudes linear.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ._checks import check_batch, check_f0, check_positive_int, check_rank, check_sample_rate
from . import fixed_phase
from ._cache import cached_constant
from .phase import TWO_PI, _constant, cumulative_phase, segment_end_phase, segment_phase
from .precision import tracing
from .resample import resample
from .units import safe_divide


def remove_above_nyquist(frequency_envelopes: Tensor, amplitude_envelopes: Tensor,
                         sample_rate: float = 16000) -> Tensor:
    """Zero the amplitudes of sinusoids at or above Nyquist (f >= sample_rate / 2)."""
    return torch.where(frequency_envelopes >= sample_rate / 2.0,
                       torch.zeros_like(amplitude_envelopes), amplitude_envelopes)


def get_harmonic_frequencies(frequencies: Tensor, n_harmonics: int) -> Tensor:
    """[batch, n_frames, 1] f0 in Hz -> [batch, n_frames, n_harmonics] f0 * (1, 2, ..., n)."""
    k = torch.arange(1, n_harmonics + 1, device=frequencies.device, dtype=frequencies.dtype)
    return frequencies * k


def normalize_harmonics(harmonic_distribution: Tensor, f0_hz: Tensor | None = None,
                        sample_rate: float | None = None) -> Tensor:
    """Remove harmonics at or above Nyquist (when f0_hz and sample_rate are given), then scale the
    distribution to sum to one over harmonics (all-zero stays zero)."""
    if sample_rate is not None and f0_hz is not None:
        freqs = get_harmonic_frequencies(f0_hz, harmonic_distribution.shape[-1])
        harmonic_distribution = remove_above_nyquist(freqs, harmonic_distribution, sample_rate)
    total = harmonic_distribution.sum(-1, keepdim=True)
    return safe_divide(harmonic_distribution, total)


def oscillator_bank(frequency_envelopes: Tensor, amplitude_envelopes: Tensor,
                    sample_rate: float = 16000, sum_sinusoids: bool = True,
                    initial_phase: Tensor | None = None) -> Tensor:
    """Sinusoids from sample-wise frequency and amplitude envelopes.

    Phase is the inclusive running sum of 2 pi f / sample_rate, accumulated accurately
    (`phase.cumulative_phase`); amplitudes are zeroed where f >= Nyquist, sample by sample.

    Args:
        frequency_envelopes: [batch, n_samples, n_sinusoids] Hz.
        amplitude_envelopes: [batch, n_samples, n_sinusoids] linear.
        initial_phase: [batch, n_sinusoids] phase before the first sample (a chunk continuing a
            signal: the previous chunk's `end_phase`); None: 0.
    Returns:
        [batch, n_samples] (or [batch, n_samples, n_sinusoids] without summing).
    """
    check_rank("frequency_envelopes", frequency_envelopes, (3,), "[batch, n_samples, n_sinusoids]")
    check_rank("amplitude_envelopes", amplitude_envelopes, (3,), "[batch, n_samples, n_sinusoids]")
    check_sample_rate("sample_rate", sample_rate)
    amps = remove_above_nyquist(frequency_envelopes, amplitude_envelopes, sample_rate)
    phase = cumulative_phase(frequency_envelopes, TWO_PI / sample_rate, dim=1)
    if initial_phase is not None:
        phase = torch.remainder(phase + initial_phase.to(phase.dtype)[:, None], _constant(TWO_PI, phase))
    audio = amps * torch.sin(phase)
    return audio.sum(-1) if sum_sinusoids else audio


def end_phase(frequency_envelopes: Tensor, sample_rate: float, initial_phase: Tensor | None = None) -> Tensor:
    """The phase after the last sample of frequency_envelopes [batch, n_samples, channels] (Hz),
    wrapped, float64 [batch, channels]: the initial_phase of the chunk that follows."""
    if fixed_phase.active(frequency_envelopes.device):
        total = fixed_phase.total(fixed_phase.increments(frequency_envelopes, 1.0 / sample_rate), dim=1)
        if initial_phase is not None:
            total = total + fixed_phase.from_radians(initial_phase)
        return fixed_phase.to_radians(total)
    total = frequency_envelopes.to(torch.float64).sum(1)
    total = total * _constant(TWO_PI / sample_rate, total)  # float64 constants in an exported graph too
    if initial_phase is not None:
        total = total + initial_phase.to(torch.float64)
    return torch.remainder(total, _constant(TWO_PI, total))


def _segment_weights(method: str, hop: int, dtype, device) -> tuple[Tensor, Tensor]:
    """Weights of frame j and frame j + 1 for sample m of segment j, per amplitude resampling."""
    w = _segment_weights_table(method, hop, dtype=dtype, device=device)
    return w[0], w[1]


@cached_constant
def _segment_weights_table(method: str, hop: int) -> Tensor:
    m = torch.arange(hop, dtype=torch.float64)
    if method == "window":
        rise = 0.5 - 0.5 * torch.cos(math.pi * m / hop)
    elif method == "linear":
        rise = m / hop
    else:  # nearest, add_endpoint: floor
        rise = torch.zeros_like(m)
    return torch.stack([1.0 - rise, rise])


def _harmonic_chunk(phase: Tensor, f_sample: Tensor, amps_a: Tensor, amps_b: Tensor,
                    w_a: Tensor, w_b: Tensor, nyquist: float, lo: int = 0, hi: int = -1,
                    work: Optional[Tensor] = None) -> Tensor:
    """One block of frame segments.

    phase, f_sample: [batch, n_seg, hop] fundamental phase (rad) and frequency (Hz) per sample.
    amps_a, amps_b: [batch, n_seg, n_harmonics] amplitudes of the segment's two frames.
    Returns [batch, n_seg, hop] = sum_k (w_a amps_a_k + w_b amps_b_k) [k f < nyq] sin(k phase):
    the window-upsampled amplitude envelope is never formed; the two frame weights are applied
    after a [2, n_harmonics] x [n_harmonics, hop] product per segment.
    lo, hi (`_audible_range`): harmonics 1..lo are known to be below Nyquist at every sample and
    those above hi at none, so only 1..hi get sines and only lo+1..hi the sample-wise mask
    (defaults: every harmonic, every mask). work: a flat buffer of at least the block's
    [batch, n_seg, hi, hop] elements for the sines without autograd (a fresh 8 MB tensor per block
    costs more in page faults than its sines).
    """
    n_h = amps_a.shape[-1]
    hi = n_h if hi < 0 else max(1, min(hi, n_h))  # all silent: one masked row keeps the shape and the graph
    lo = min(lo, hi)
    # harmonics on the second-last axis, samples on the last: every broadcast product below runs
    # along contiguous samples (k innermost made the two products 10x slower than the sines on CPU)
    k = torch.arange(1, hi + 1, device=phase.device, dtype=phase.dtype)[:, None]
    if torch.is_grad_enabled():
        sines = torch.sin(phase[..., None, :] * k)  # [b, s, hi, hop]
        if lo == 0:
            sines = torch.where(f_sample[..., None, :] * k < nyquist, sines, torch.zeros_like(sines))
        elif hi > lo:
            top = sines[..., lo:, :]
            top = torch.where(f_sample[..., None, :] * k[lo:] < nyquist, top, torch.zeros_like(top))
            sines = torch.cat([sines[..., :lo, :], top], dim=-2)
    else:  # same values, in place: two passes fewer over the largest tensor
        n = phase.shape[0] * phase.shape[1] * hi * phase.shape[2]
        if work is not None and work.numel() >= n:
            sines = torch.mul(phase[..., None, :], k, out=work[:n].view(phase.shape[0], phase.shape[1], hi, phase.shape[2]))
        else:
            sines = torch.mul(phase[..., None, :], k)
        sines = sines.sin_()
        if hi > lo:
            sines[..., lo:, :].masked_fill_(f_sample[..., None, :] * k[lo:] >= nyquist, 0.0)
    ab = torch.stack([amps_a[..., :hi], amps_b[..., :hi]], dim=-2)  # [b, s, 2, hi]
    mixed = torch.matmul(ab, sines)  # [b, s, 2, hop]
    return mixed[..., 0, :] * w_a + mixed[..., 1, :] * w_b


_CHUNK_ELEMENTS = 1 << 21


def _audible_range(f_sample: Tensor, n_h: int, nyquist: float) -> tuple[int, int]:
    """(lo, hi): harmonics 1..lo are below Nyquist at every sample of the block, harmonics above hi
    at none. Rounding is monotonic, so k * f <= k * f_max sample by sample in the tensor's dtype:
    the test `k * f < nyquist` of `_harmonic_chunk` is decided for whole rows outside (lo, hi]."""
    k = torch.arange(1, n_h + 1, device=f_sample.device, dtype=f_sample.dtype)
    lo = int((k * f_sample.max() < nyquist).sum())
    hi = int((k * f_sample.min() < nyquist).sum())
    return lo, hi


def _harmonic_chunk_host(phase: Tensor, f_sample: Tensor, amps_a: Tensor, amps_b: Tensor,
                         w_a: Tensor, w_b: Tensor, nyquist: float, work: Optional[Tensor] = None) -> Tensor:
    """`_harmonic_chunk` skipping what is silent (`_audible_range`). Reads two numbers from the
    tensors (a host synchronisation), so it is for CPU tensors only."""
    lo, hi = _audible_range(f_sample, amps_a.shape[-1], nyquist)
    return _harmonic_chunk(phase, f_sample, amps_a, amps_b, w_a, w_b, nyquist, lo, hi, work)


def _harmonic_segments(f0_frames: Tensor, harmonic_amplitudes: Tensor, hop: int,
                       sample_rate: float, amp_resample_method: str,
                       next_frame: tuple[Tensor, Tensor] | None = None,
                       initial_phase: Tensor | None = None) -> Tensor:
    """Exact harmonic synthesis when n_samples = n_frames * hop (linear f0, no shifts).
    next_frame: (f0 [b, 1, 1], amplitudes [b, 1, n_h]) of the frame after the last (a chunk of a
    longer signal); None: the last frame is held (the end of the signal)."""
    batch, n_frames, n_h = harmonic_amplitudes.shape
    f_next, a_next = next_frame if next_frame is not None else (f0_frames[:, -1:], harmonic_amplitudes[:, -1:])
    f_ext = torch.cat([f0_frames, f_next.expand(batch, 1, 1)], dim=1)[..., 0]  # [b, n_frames + 1]
    a_ext = torch.cat([harmonic_amplitudes, a_next.expand(batch, 1, n_h)], dim=1)
    phase = segment_phase(f_ext, sample_rate, hop, initial_phase)  # [b, n_frames, hop]
    m = torch.arange(hop, device=f0_frames.device, dtype=f0_frames.dtype) / hop
    f_sample = f_ext[:, :-1, None] + (f_ext[:, 1:, None] - f_ext[:, :-1, None]) * m
    w_a, w_b = _segment_weights(amp_resample_method, hop, f0_frames.dtype, f0_frames.device)
    step = max(1, _CHUNK_ELEMENTS // max(1, batch * hop * n_h))
    use_ckpt = torch.is_grad_enabled() and (f0_frames.requires_grad or harmonic_amplitudes.requires_grad)
    # eager on CPU, reading how many harmonics are audible costs nothing; in a graph (torch.compile:
    # a graph break per block; a traced or exported engine: a frozen decision) and on accelerators
    # (a synchronisation) every harmonic is computed
    host = phase.device.type == "cpu" and not tracing()
    chunk = _harmonic_chunk_host if host else _harmonic_chunk
    work = (torch.empty(batch * step * n_h * hop, dtype=phase.dtype, device=phase.device)
            if host and not torch.is_grad_enabled() else None)
    outs = []
    for j in range(0, n_frames, step):
        e = min(j + step, n_frames)
        args = (phase[:, j:e], f_sample[:, j:e], a_ext[:, j:e], a_ext[:, j + 1:e + 1],
                w_a, w_b, sample_rate / 2.0)
        if use_ckpt:
            outs.append(checkpoint(chunk, *args, use_reentrant=False))
        elif host:
            outs.append(chunk(*args, work=work))
        else:
            outs.append(chunk(*args))
    return torch.cat(outs, dim=1).reshape(batch, n_frames * hop)


def harmonic_chunk(f0_hz: Tensor, amplitudes: Tensor, hop: int, sample_rate: float = 16000,
                   amp_resample_method: str = "window", next_frame: tuple[Tensor, Tensor] | None = None,
                   initial_phase: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One chunk of a harmonic signal rendered piece by piece (streaming, long renders).

    Args:
        f0_hz: [batch, n_frames, 1] Hz; amplitudes: [batch, n_frames, n_harmonics] (overall
            amplitude times the normalised distribution), the chunk's frames.
        hop: samples per frame (the chunk renders n_frames * hop samples).
        next_frame: (f0 [batch, 1, 1], amplitudes [batch, 1, n_harmonics]) of the first frame after
            the chunk, which the last segment interpolates towards; None: the signal ends here
            (the last frame is held, as harmonic_synthesis does at the end).
        initial_phase: [batch] fundamental phase before the chunk (float64; None: 0).
    Returns:
        (audio [batch, n_frames * hop], the fundamental phase after the chunk [batch] float64).
        Chunks rendered in order, each given the next one's first frame, equal
        harmonic_synthesis(n_samples=n_frames * hop) over the whole signal.
    """
    check_rank("f0_hz", f0_hz, (3,), "[batch, n_frames, 1]")
    check_rank("amplitudes", amplitudes, (3,), "[batch, n_frames, n_harmonics]")
    check_positive_int("hop", hop)
    batch = max(f0_hz.shape[0], amplitudes.shape[0])
    f0_hz, amplitudes = f0_hz.expand(batch, -1, -1), amplitudes.expand(batch, -1, -1)
    audio = _harmonic_segments(f0_hz, amplitudes, hop, sample_rate, amp_resample_method, next_frame, initial_phase)
    f_next = next_frame[0] if next_frame is not None else f0_hz[:, -1:]
    f_ext = torch.cat([f0_hz, f_next.expand(batch, 1, 1)], dim=1)[..., 0]
    return audio, segment_end_phase(f_ext, sample_rate, hop, initial_phase)


def harmonic_synthesis(frequencies: Tensor, amplitudes: Tensor,
                       harmonic_shifts: Tensor | None = None,
                       harmonic_distribution: Tensor | None = None, n_samples: int = 64000,
                       sample_rate: float = 16000, amp_resample_method: str = "window") -> Tensor:
    """Harmonic oscillator bank from frame-wise controls.

    Harmonic k has frequency k * f0 (times 1 + shift_k); frequencies are upsampled linearly,
    amplitudes (amplitudes * distribution) by `amp_resample_method` ('window' = overlapping Hann,
    as in the paper); harmonics at or above Nyquist are silenced sample by sample (no
    renormalisation here: `normalize_harmonics` does that at frame rate).

    Args:
        frequencies: [batch, n_frames, 1] f0 in Hz (>= 0).
        amplitudes: [batch, n_frames, 1] overall amplitude.
        harmonic_shifts: optional [batch, n_frames, n_harmonics] relative detuning.
        harmonic_distribution: optional [batch, n_frames, n_harmonics].
        n_samples: output length. The fast exact path needs n_samples % n_frames == 0, i.e. the
            frame rate must divide the sample rate; other lengths take the general path.
    Returns:
        [batch, n_samples] audio.
    """
    check_rank("frequencies", frequencies, (3,), "[batch, n_frames, 1]")
    check_rank("amplitudes", amplitudes, (3,), "[batch, n_frames, 1]")
    check_f0("frequencies", frequencies)
    check_positive_int("n_samples", n_samples)
    check_sample_rate("sample_rate", sample_rate)
    if frequencies.shape[-1] != 1 or amplitudes.shape[-1] != 1:
        raise ValueError(f"frequencies and amplitudes must be [batch, n_frames, 1], got "
                         f"{tuple(frequencies.shape)} and {tuple(amplitudes.shape)}")
    check_batch("frequencies", frequencies, "amplitudes", amplitudes)
    n_frames = frequencies.shape[1]
    for name, t in (("amplitudes", amplitudes), ("harmonic_distribution", harmonic_distribution),
                    ("harmonic_shifts", harmonic_shifts)):
        if t is not None and (t.dim() != 3 or t.shape[1] != n_frames):
            raise ValueError(f"{name} must be [batch, n_frames={n_frames}, ...] like frequencies, "
                             f"got {tuple(t.shape)}")
    if harmonic_distribution is not None:
        n_h = harmonic_distribution.shape[-1]
    elif harmonic_shifts is not None:
        n_h = harmonic_shifts.shape[-1]
    else:
        n_h = 1
    harm_amps = amplitudes * harmonic_distribution if harmonic_distribution is not None else amplitudes
    harm_amps = harm_amps.expand(-1, -1, n_h) if harm_amps.shape[-1] != n_h else harm_amps
    if amp_resample_method == "window" and n_samples % n_frames:
        raise ValueError(f"n_samples ({n_samples}) must be a multiple of the number of frames "
                         f"({n_frames}) for amp_resample_method='window' (the frame rate must divide "
                         f"the sample rate); use amp_resample_method='linear' otherwise")
    fast = (harmonic_shifts is None and n_samples % n_frames == 0
            and amp_resample_method in ("window", "linear", "nearest"))
    if fast:
        batch = max(frequencies.shape[0], harm_amps.shape[0])
        return _harmonic_segments(frequencies.expand(batch, -1, -1), harm_amps.expand(batch, -1, -1),
                                  n_samples // n_frames, sample_rate, amp_resample_method)
    freqs = get_harmonic_frequencies(frequencies, n_h)
    if harmonic_shifts is not None:
        freqs = freqs * (1.0 + harmonic_shifts)
    freq_env = resample(freqs, n_samples)
    amp_env = resample(harm_amps, n_samples, method=amp_resample_method)
    return oscillator_bank(freq_env, amp_env, sample_rate)
