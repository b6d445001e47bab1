"""Resampling: frame-rate controls -> sample rate (linear, nearest, cubic, overlapping Hann windows)
and band-limited resampling of audio between sample rates.

Index convention (ddsp / legacy TF1 image.resize, no half-pixel centres):
  add_endpoint=True : source position of output i is i * n_frames / n_out (the last frame is held
                      for the final n_out / n_frames samples);
  add_endpoint=False: i * (n_frames - 1) / (n_out - 1) (first and last values land on the ends).
torch.nn.functional.interpolate(align_corners=False) uses half-pixel centres and does not match.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._cache import cached_constant
from ._checks import check_choice, check_positive_int, check_rank, check_sample_rate

RESAMPLE_METHODS = ("linear", "nearest", "cubic", "window")
_CUBIC_A = -0.75  # TF1 legacy bicubic kernel parameter (Keys uses -0.5)
_CUBIC_TABLE = 1024  # TF evaluates the kernel from a 1024-entry table: fractions are quantised


def _source_positions(n_frames: int, n_out: int, add_endpoint: bool, device, dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Where each output step reads the frames, exactly: step i sits at i * num / den frames
    (num / den = n_frames / n_out, or (n_frames - 1) / (n_out - 1) without the end point).
    Returns (index = floor, remainder of i * num by den (int64), fraction = remainder / den in
    dtype), from integer arithmetic: exact however long the signal, and without float64."""
    num, den = (n_frames, n_out) if add_endpoint else ((n_frames - 1, n_out - 1) if n_out > 1 else (0, 1))
    i = torch.arange(n_out, dtype=torch.int64, device=device) * num
    index, rest = torch.div(i, den, rounding_mode="floor"), torch.remainder(i, den)
    return index, rest, rest.to(dtype) / den


def _to_3d(inputs: Tensor) -> tuple[Tensor, tuple]:
    """[n_frames] | [batch, n_frames] | [batch, n_frames, ...] -> [batch, n_frames, channels]."""
    shape = tuple(inputs.shape)
    if inputs.dim() == 1:
        return inputs[None, :, None], shape
    if inputs.dim() == 2:
        return inputs[:, :, None], shape
    return inputs.reshape(shape[0], shape[1], -1), shape


def _from_3d(x: Tensor, shape: tuple, n_out: int) -> Tensor:
    if len(shape) == 1:
        return x[0, :, 0]
    if len(shape) == 2:
        return x[:, :, 0]
    return x.reshape(shape[0], n_out, *shape[2:])


def _linear(x: Tensor, n_out: int, add_endpoint: bool) -> Tensor:
    n_frames = x.shape[1]
    index, _, frac = _source_positions(n_frames, n_out, add_endpoint, x.device, x.dtype)
    i0, w = index.clamp(max=n_frames - 1), frac[None, :, None]  # (index <= n_frames - 1 by construction)
    i1 = (i0 + 1).clamp(max=n_frames - 1)
    x0, x1 = x.index_select(1, i0), x.index_select(1, i1)
    return x0 + (x1 - x0) * w


def _nearest(x: Tensor, n_out: int, add_endpoint: bool) -> Tensor:
    n_frames = x.shape[1]
    index, rest, _ = _source_positions(n_frames, n_out, add_endpoint, x.device, x.dtype)
    if not add_endpoint:  # round half to even, as torch.round of the position
        den = max(1, n_out - 1)
        up = (2 * rest > den) | ((2 * rest == den) & (index % 2 == 1))
        index = index + up.long()
    return x.index_select(1, index.clamp(max=n_frames - 1))


def _cubic_kernel(d: Tensor) -> Tensor:
    a, d = _CUBIC_A, d.abs()
    near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
    far = ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
    return torch.where(d <= 1.0, near, torch.where(d < 2.0, far, torch.zeros_like(d)))


@cached_constant
def _cubic_table() -> Tensor:
    """The kernel's weights of frames -1, 0, 1, 2 at each of the table's fractions [1025, 4] (float64, CPU)."""
    t = torch.arange(_CUBIC_TABLE + 1, dtype=torch.float64) / _CUBIC_TABLE
    return torch.stack([_cubic_kernel(t - k) for k in (-1, 0, 1, 2)], dim=-1)


def _cubic(x: Tensor, n_out: int, add_endpoint: bool) -> Tensor:
    n_frames = x.shape[1]
    x0, rest, _ = _source_positions(n_frames, n_out, add_endpoint, x.device, x.dtype)
    # the fraction quantised to the kernel's table, as TF: round(rest / den * 1024), half to even
    den = n_out if add_endpoint else max(1, n_out - 1)
    q, r = torch.div(rest * _CUBIC_TABLE, den, rounding_mode="floor"), torch.remainder(rest * _CUBIC_TABLE, den)
    t = q + ((2 * r > den) | ((2 * r == den) & (q % 2 == 1))).long()
    weights = _cubic_table(dtype=x.dtype, device=x.device)[t]  # [n_out, 4]
    out = 0.0
    for j, k in enumerate((-1, 0, 1, 2)):
        idx = (x0 + k).clamp(0, n_frames - 1)
        w = weights[:, j][None, :, None]
        out = out + x.index_select(1, idx) * w
    return out


@cached_constant
def _hann_rise(hop: int) -> Tensor:
    n = torch.arange(hop, dtype=torch.float64)
    return 0.5 - 0.5 * torch.cos(math.pi * n / hop)


def upsample_with_windows(inputs: Tensor, n_timesteps: int, add_endpoint: bool = True) -> Tensor:
    """Upsample by overlap-adding periodic Hann windows of length 2 * hop, one per frame.

    Smooth (no corners at frame boundaries) and exact on constant inputs, since the windows sum to
    one. Output sample j * hop + m mixes frame j (window half 2) and frame j + 1 (window half 1).

    Args:
        inputs: [batch, n_frames, channels] (or [n_frames], [batch, n_frames], [batch, n_frames, ...]).
        n_timesteps: output length; must be a multiple of n_frames (of n_frames - 1 without the
            end point).
        add_endpoint: hold the last frame for the final hop (True, ddsp's default).
    Returns:
        [batch, n_timesteps, channels] (same rank as inputs).
    """
    x, shape = _to_3d(inputs)
    if add_endpoint:
        x = torch.cat([x, x[:, -1:]], dim=1)
    n_intervals = x.shape[1] - 1
    if n_intervals < 1 or n_timesteps % n_intervals != 0:
        raise ValueError(
            f"upsample_with_windows: n_timesteps ({n_timesteps}) must be a multiple of "
            f"{'n_frames' if add_endpoint else 'n_frames - 1'} ({n_intervals}); "
            f"got inputs of shape {shape}")
    hop = n_timesteps // n_intervals
    rise = _hann_rise(hop, dtype=x.dtype, device=x.device)  # periodic Hann, first half
    fall = 1.0 - rise  # second half of the periodic Hann
    out = x[:, :-1, None, :] * fall[:, None] + x[:, 1:, None, :] * rise[:, None]  # [b, j, hop, c]
    return _from_3d(out.reshape(x.shape[0], n_timesteps, x.shape[2]), shape, n_timesteps)


def resample(inputs: Tensor, n_timesteps: int, method: str = "linear",
             add_endpoint: bool = True) -> Tensor:
    """Resample frame-wise values along axis 1 (axis 0 for 1-D input) to n_timesteps.

    Args:
        inputs: [n_frames], [batch, n_frames], [batch, n_frames, channels] or
            [batch, n_frames, ..., channels]; only the time axis is resized.
        n_timesteps: output length (up- or down-sampling).
        method: 'linear' | 'nearest' | 'cubic' (TF1 legacy a=-0.75 kernel) | 'window'.
        add_endpoint: see the module docstring.
    """
    check_choice("method", method, RESAMPLE_METHODS)
    check_positive_int("n_timesteps", n_timesteps)
    check_rank("inputs", inputs, (1, 2, 3, 4, 5), "[n_frames], [batch, n_frames] or [batch, n_frames, ...]")
    if method == "window":
        return upsample_with_windows(inputs, n_timesteps, add_endpoint)
    x, shape = _to_3d(inputs)
    fn = {"linear": _linear, "nearest": _nearest, "cubic": _cubic}[method]
    return _from_3d(fn(x, n_timesteps, add_endpoint), shape, n_timesteps)


def _sinc_resample_kernels(orig: int, new: int, width: int, rolloff: float, dtype, device):
    """Polyphase windowed-sinc kernels [new, 1, 2 * pad + orig] for a ratio new / orig (reduced)."""
    cutoff = min(orig, new) * rolloff  # low-pass below the lower Nyquist, in units of the reduced rates
    pad = math.ceil(width * orig / cutoff)
    taps = torch.arange(-pad, pad + orig, dtype=torch.float64) / orig  # built on the CPU, then moved
    t = (taps[None, :] - torch.arange(new, dtype=torch.float64)[:, None] / new) * cutoff
    t = t.clamp(-width, width)
    window = torch.cos(t * math.pi / width / 2) ** 2  # Hann taper over +- width zero crossings
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, 1.0, t))
    return (sinc * window * cutoff / orig).to(dtype=dtype, device=device)[:, None, :], pad


def resample_audio(audio: Tensor, orig_sample_rate: int, new_sample_rate: int,
                   lowpass_width: int = 24, rolloff: float = 0.945) -> Tensor:
    """Band-limited resampling of audio [batch, n_samples] (or [n_samples]) between sample rates.

    Polyphase windowed-sinc interpolation at the rational ratio new/orig (reduced by their gcd);
    the anti-aliasing low-pass sits at rolloff x the lower Nyquist. Output length
    ceil(n_samples * new / orig).
    """
    check_sample_rate("orig_sample_rate", orig_sample_rate)
    check_sample_rate("new_sample_rate", new_sample_rate)
    for name, rate in (("orig_sample_rate", orig_sample_rate), ("new_sample_rate", new_sample_rate)):
        if int(rate) != rate:
            raise ValueError(f"{name} must be a whole number of Hz, got {rate!r}")
    check_rank("audio", audio, (1, 2), "[n_samples] or [batch, n_samples]")
    if orig_sample_rate == new_sample_rate:
        return audio
    squeeze = audio.dim() == 1
    x = audio[None] if squeeze else audio
    g = math.gcd(int(orig_sample_rate), int(new_sample_rate))
    orig, new = int(orig_sample_rate) // g, int(new_sample_rate) // g
    kernels, pad = _sinc_resample_kernels(orig, new, lowpass_width, rolloff, x.dtype, x.device)
    n = x.shape[-1]
    y = torch.nn.functional.conv1d(torch.nn.functional.pad(x[:, None], (pad, pad + orig)), kernels,
                                   stride=orig)  # [batch, new, n_blocks]
    y = y.transpose(1, 2).reshape(x.shape[0], -1)[:, : math.ceil(n * new / orig)]
    return y[0] if squeeze else y
