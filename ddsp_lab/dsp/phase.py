"""Accurate phase accumulation.

A float32 running sum of angular frequency drifts by radians over long signals (ulp(1e5) ~ 0.008
rad, and rounding errors add up over millions of samples). ddsp_lab keeps phases accurate in float32:
  * `cumulative_phase`: per-sample frequencies; inclusive cumsum within short chunks in the working
    dtype (bounded magnitude), chunk offsets summed in float64 and wrapped to [0, 2 pi);
  * `segment_phase`: frame-wise frequencies linearly interpolated to the sample rate (what the
    harmonic synth does); the phase of every sample has a closed form per frame segment, so only
    the frame-level running sum is needed, done in float64 on [batch, n_frames] values.
Both equal the reference's inclusive cumsum (first sample has phase omega[0], not 0).
The segment functions compile with TorchScript and export to ONNX (ddsp_lab.realtime): their bodies
spell 2 pi out (TorchScript reads no module globals) and give float64 constants as tensors.
Devices without float64 (Apple MPS; forced anywhere by `dsp.float64_free()`) take the same
functions in fixed point (`dsp.fixed_phase`): integer cycles, exact sums, float32 radians out.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from . import fixed_phase
from .precision import tracing

TWO_PI = 2.0 * math.pi
_CHUNK = 64


def _constant(value: float, like: Tensor):
    """A scalar exact in like's dtype however the code runs: in a recorded graph (ddsp_lab.realtime)
    a tensor, since an ONNX graph stores Python floats, and torch.full's value, as float32 constants
    and TorchScript's torch.tensor(float) rounds through float32; in eager the Python float itself
    (exact in float64 arithmetic, and no host-to-device copy on a GPU's hot path)."""
    if torch.jit.is_scripting():
        return torch.full((), value, dtype=like.dtype, device=like.device)
    if tracing():
        return torch.tensor(value, dtype=like.dtype, device=like.device)
    return value


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype == torch.float32 or dtype == torch.float64:
        return torch.float64
    return torch.float32


def cumulative_phase(x: Tensor, scale: float = 1.0, dim: int = 1) -> Tensor:
    """Inclusive cumulative sum of `x * scale` along `dim`, wrapped to [0, 2 pi).

    Args:
        x: [..., n_samples, ...]: angular frequency (rad/sample, scale 1) or frequency in Hz with
            scale = 2 pi / sample_rate (better: the product is then formed in float64 for the
            chunk offsets, so a float32 omega's rounding does not accumulate).
    Returns:
        the phase, same shape and dtype as x, in [0, 2 pi).
    """
    if fixed_phase.active(x.device):
        return fixed_phase.to_radians(fixed_phase.cumsum(fixed_phase.increments(x, scale / (2.0 * math.pi)), dim), x.dtype)
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    n_chunks = -(-n // _CHUNK)
    pad = n_chunks * _CHUNK - n
    xc = (torch.nn.functional.pad(x, (0, pad)) if pad else x).reshape(*x.shape[:-1], n_chunks, _CHUNK)
    within = torch.cumsum(xc * scale, dim=-1)
    totals = xc.to(_acc_dtype(x.dtype))
    totals = totals.sum(-1) * _constant(scale, totals)  # accurate chunk totals
    offsets = torch.remainder(torch.cumsum(totals, dim=-1) - totals, _constant(2.0 * math.pi, totals)).to(x.dtype)
    phase = torch.remainder(within + offsets[..., None], _constant(2.0 * math.pi, within))
    return phase.reshape(*x.shape[:-1], n_chunks * _CHUNK)[..., :n].movedim(-1, dim)


def segment_phase_totals(f_frames_hz: Tensor, sample_rate: float, hop: int) -> Tensor:
    """Phase accumulated over each frame segment (unwrapped, float64; float32 for half inputs)
    for linearly interpolated frequency: f_frames_hz [batch, n_frames + 1, channels] (the frame
    after the last: the next frame, or the last repeated) -> [batch, n_frames, channels]. Without
    float64 (dsp.fixed_phase) the totals come wrapped to [0, 2 pi), in float32."""
    if fixed_phase.active(f_frames_hz.device):
        return fixed_phase.segment_totals(f_frames_hz, sample_rate, hop)
    w = f_frames_hz.to(_acc_dtype(f_frames_hz.dtype))
    w = w * _constant((2.0 * math.pi) / sample_rate, w)
    # Sum over m = 0..hop-1 of w_j + (w_{j+1} - w_j) m / hop.
    return hop * w[:, :-1] + (w[:, 1:] - w[:, :-1]) * ((hop - 1) / 2.0)


def segment_start_phase(f_frames_hz: Tensor, sample_rate: float, hop: int,
                        initial_phase: Tensor | None = None) -> Tensor:
    """Phase (wrapped) accumulated before each frame segment, for linearly interpolated frequency.

    Args:
        f_frames_hz: [batch, n_frames + 1, channels] frequencies at the frame positions, the last
            one the frame after the segment (add_endpoint convention: the last frame repeated).
        sample_rate: Hz.
        hop: samples per frame.
        initial_phase: [batch, channels] phase before the first segment (a chunk continuing a
            signal: the previous chunk's `end`); None: 0.
    Returns:
        [batch, n_frames, channels] float64 (float32 for half inputs) phases in [0, 2 pi).
        Angular frequencies are formed in float64: a float32 omega alone is off by ~1e-7 relative,
        i.e. 0.01 rad after a minute of a 440 Hz tone.
    """
    totals = segment_phase_totals(f_frames_hz, sample_rate, hop)
    start = torch.cumsum(totals, dim=1) - totals
    if initial_phase is not None:
        start = start + initial_phase.to(start.dtype)[:, None]
    return torch.remainder(start, _constant(2.0 * math.pi, start))


def segment_phase(f_frames_hz: Tensor, sample_rate: float, hop: int,
                  initial_phase: Tensor | None = None) -> Tensor:
    """Per-sample phase of a linearly interpolated frequency, shaped by segment.

    Args:
        f_frames_hz: [batch, n_frames + 1] Hz at frame positions (last frame repeated, or the next
            chunk's first frame).
        sample_rate: Hz.
        hop: samples per frame.
        initial_phase: [batch] phase before the first sample (None: 0).
    Returns:
        [batch, n_frames, hop] phases in [0, 2 pi), dtype of f_frames_hz. Sample m of segment j
        has phase start_j + (m + 1) w_j + (w_{j+1} - w_j) m (m + 1) / (2 hop) (inclusive sum).
    """
    if fixed_phase.active(f_frames_hz.device):
        return fixed_phase.segment_phase(f_frames_hz, sample_rate, hop, initial_phase)[0]
    init = initial_phase[:, None] if initial_phase is not None else None
    start = segment_start_phase(f_frames_hz[..., None], sample_rate, hop, init)[..., 0]
    dtype = f_frames_hz.dtype
    omega = f_frames_hz * ((2.0 * math.pi) / sample_rate)
    m = torch.arange(hop, device=f_frames_hz.device, dtype=dtype)
    w0, w1 = omega[:, :-1, None], omega[:, 1:, None]
    within = (m + 1.0) * w0 + (w1 - w0) * (m * (m + 1.0) / (2.0 * hop))
    return torch.remainder(within + start.to(dtype)[..., None], (2.0 * math.pi))


def segment_end_phase(f_frames_hz: Tensor, sample_rate: float, hop: int,
                      initial_phase: Tensor | None = None) -> Tensor:
    """The phase after the last segment of `segment_phase` (same arguments), wrapped, float64
    [batch]: the next chunk's initial_phase, so chunks continue exactly (float32 without float64:
    dsp.fixed_phase)."""
    if fixed_phase.active(f_frames_hz.device):
        return fixed_phase.segment_end(f_frames_hz, sample_rate, hop, initial_phase)
    total = segment_phase_totals(f_frames_hz[..., None], sample_rate, hop)[..., 0].sum(1)
    if initial_phase is not None:
        total = total + initial_phase.to(total.dtype)
    return torch.remainder(total, _constant(2.0 * math.pi, total))
