"""Phase without float64: fixed-point cycles in int64, for devices that have no float64 (Apple MPS).

The accurate phase paths (`dsp.phase`) sum frame totals and chunk offsets in float64. Where a device
has none, ddsp_lab counts phase as an integer number of 2**-48 cycles instead: every sum and wrap is
then exact integer arithmetic (a wrap is `& (2**48 - 1)`), and only the per-sample increment
f / sample_rate is rounded, to 2**-48 cycles. That increment is formed from float32 products that
are exact: f is split into two 12-bit halves (Veltkamp's split, 4097 = 2**12 + 1) and
2**48 / sample_rate into four 12-bit pieces, so each of the eight partial products holds at most 24
bits; each is rounded to an integer and they are summed in int64. Error of one increment: a few
units of 2**-48 cycles (1e-14); after 60 s at 48 kHz the phase of a sustained 20 kHz partial is
3.4e-7 rad from the exact phase, the float32 output's own rounding (the float64 path's running sum
has drifted 2.1e-6 rad by then; tests/test_float64_free.py). The phase leaves as float32
radians in [0, 2 pi) (24 bits of the cycle: 4e-7 rad, as the float64 path's float32 output); a
streamed oscillator carries it between chunks in float32 (2**-25 cycles of rounding per chunk).
Within a segment the phase's quadratic term is split (quotient and remainder by 2 hop) so that no
product exceeds int64 for hops up to 4096.

`float64_free()` forces this path on any device (tests run it on CPU); on MPS it is taken by itself.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import Tensor

BITS = 48
ONE = 1 << BITS  # one cycle
MASK = ONE - 1
_CHUNK = 4096  # values summed before a wrap (4096 * 2**48 < 2**63)
_forced = [False]


@contextlib.contextmanager
def float64_free() -> Iterator[None]:
    """Within the block, the oscillators' phase runs without float64 on every device (as on MPS)."""
    before = _forced[0]
    _forced[0] = True
    try:
        yield
    finally:
        _forced[0] = before


def active(device: torch.device) -> bool:
    """Whether phases on `device` are accumulated in fixed point (no float64 there, or forced)."""
    return _forced[0] or torch.device(device).type == "mps"


def phase_dtype(device: torch.device) -> torch.dtype:
    """The dtype an oscillator's phase state has on `device`: float64, or float32 radians where the
    fixed-point path runs (the state then carries 24 bits of the cycle between chunks)."""
    return torch.float32 if active(device) else torch.float64


def _pieces(scale: float) -> tuple[float, ...]:
    """scale (> 0) as four float32-exact numbers of 12 significant bits each, summing to it within
    2**-48 relative."""
    out, rest = [], float(scale)
    for _ in range(4):
        if rest == 0.0:
            out.append(0.0)
            continue
        e = math.floor(math.log2(abs(rest))) - 11
        piece = round(rest / 2.0 ** e) * 2.0 ** e
        out.append(piece)
        rest -= piece
    return tuple(out)


def increments(x: Tensor, cycles_per_unit: float) -> Tensor:
    """x * cycles_per_unit in units of 2**-48 cycles, int64 (x: Hz with cycles_per_unit =
    1 / sample_rate; angular frequency with 1 / (2 pi))."""
    f = x.float()
    c = f * 4097.0  # Veltkamp: f = hi + lo exactly, 12 bits each
    hi = c - (c - f)
    lo = f - hi
    total = torch.zeros(f.shape, dtype=torch.int64, device=f.device)
    for k in _pieces(cycles_per_unit * ONE):
        if k:
            for part in (hi, lo):
                total = total + torch.round(part * k).to(torch.int64)
    return total


def to_radians(phase: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Fixed-point phase (any int64, wrapped here) -> radians in [0, 2 pi)."""
    cycles = ((phase & MASK) >> (BITS - 24)).to(dtype) * (1.0 / (1 << 24))
    return cycles * (2.0 * math.pi)


def from_radians(phase: Tensor) -> Tensor:
    """Radians (float32, any range) -> fixed-point phase in [0, 2**48)."""
    cycles = torch.remainder(phase.float(), 2.0 * math.pi) * (1.0 / (2.0 * math.pi))
    return torch.round(cycles * (1 << 24)).to(torch.int64) << (BITS - 24) & MASK


def cumsum(inc: Tensor, dim: int = -1) -> Tensor:
    """Inclusive running sum of fixed-point increments along dim, wrapped (exact, no overflow)."""
    x = inc.movedim(dim, -1) & MASK
    n = x.shape[-1]
    n_chunks = -(-n // _CHUNK)
    x = torch.nn.functional.pad(x, (0, n_chunks * _CHUNK - n)).reshape(*x.shape[:-1], n_chunks, _CHUNK)
    within = torch.cumsum(x, dim=-1)
    totals = within[..., -1] & MASK
    offsets = torch.cumsum(totals, dim=-1) - totals  # n_chunks * 2**48: fine up to 2**15 chunks (134 M values)
    out = (within + (offsets & MASK)[..., None]) & MASK
    return out.reshape(*x.shape[:-2], n_chunks * _CHUNK)[..., :n].movedim(-1, dim)


def total(inc: Tensor, dim: int = -1) -> Tensor:
    """The wrapped sum of fixed-point increments along dim."""
    return cumsum(inc, dim).select(dim, -1) if inc.shape[dim] else inc.sum(dim)


def segment_phase(f_frames_hz: Tensor, sample_rate: float, hop: int,
                  initial_phase: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """dsp.phase.segment_phase in fixed point: f_frames_hz [batch, n_frames + 1] -> (the per-sample
    phase [batch, n_frames, hop] in radians, f_frames_hz's dtype; the phase after the last sample,
    float32 radians [batch]). initial_phase: radians [batch] (None: 0)."""
    inc = increments(f_frames_hz, 1.0 / sample_rate)  # [b, n + 1]
    i0, i1 = inc[:, :-1], inc[:, 1:]
    # segment j sums i0 + (i1 - i0) m / hop over m < hop: hop i0 + (i1 - i0)(hop - 1) / 2
    totals = (hop * i0 + torch.div((i1 - i0) * (hop - 1), 2, rounding_mode="floor")) & MASK
    start = cumsum(totals, dim=1) - totals
    if initial_phase is not None:
        start = start + from_radians(initial_phase)[:, None]
    m = torch.arange(hop, dtype=torch.int64, device=inc.device)
    q, r = torch.div(i1 - i0, 2 * hop, rounding_mode="floor"), torch.remainder(i1 - i0, 2 * hop)
    mm = m * (m + 1)  # (i1 - i0) m (m + 1) / (2 hop) = q m (m + 1) + r m (m + 1) / (2 hop), each in int64
    within = (m + 1) * i0[..., None] + q[..., None] * mm + torch.div(r[..., None] * mm, 2 * hop, rounding_mode="floor")
    phase = to_radians(start[..., None] + within, f_frames_hz.dtype)
    return phase, to_radians(start[:, -1] + totals[:, -1])


def segment_end(f_frames_hz: Tensor, sample_rate: float, hop: int, initial_phase: Tensor | None = None) -> Tensor:
    """The phase after the last segment (float32 radians [batch]): segment_phase's second value."""
    inc = increments(f_frames_hz, 1.0 / sample_rate)
    i0, i1 = inc[:, :-1], inc[:, 1:]
    end = total(hop * i0 + torch.div((i1 - i0) * (hop - 1), 2, rounding_mode="floor"), dim=1)
    if initial_phase is not None:
        end = end + from_radians(initial_phase)
    return to_radians(end)


def segment_totals(f_frames_hz: Tensor, sample_rate: float, hop: int) -> Tensor:
    """Each segment's phase, wrapped to [0, 2 pi) (float32 radians): dsp.phase.segment_phase_totals
    where only totals modulo a cycle matter. f_frames_hz [batch, n_frames + 1, channels]."""
    inc = increments(f_frames_hz, 1.0 / sample_rate)
    i0, i1 = inc[:, :-1], inc[:, 1:]
    return to_radians(hop * i0 + torch.div((i1 - i0) * (hop - 1), 2, rounding_mode="floor"))
