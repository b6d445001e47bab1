"""Noise keyed by position: the same sample of the same seeded render has the same value however
the render is cut into chunks (one shot, chunk by chunk, block by block in real time), on any
device. A torch.Generator cannot promise that: its stream depends on how the draws are split.
"""
from __future__ import annotations

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF


def _mul32(x, c: int):
    """(x * c) mod 2**32 for x in [0, 2**32) (an int64 tensor or an int), without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & 0xFFFFFFFF  # a literal: TorchScript reads no globals


def _hash32(x):
    """A 32-bit integer mix (xor-shift / multiply, 'lowbias32' constants) on values in [0, 2**32)
    (int64 tensors or ints)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class PositionalNoise:
    """Uniform(-1, 1) noise whose value at (batch row, sample position) depends only on
    (seed, stream, row, position). Give it where a processor takes a `generator` (or to
    ProcessorGroup.run / DDSP.render as `generator`; the group gives each random processor its own
    stream): a chunked or streamed render then draws exactly the noise of the one-shot render.

    Args:
        seed: any int. stream: separates the draws of several processors under one seed.
    """

    def __init__(self, seed: int, stream: int = 0):
        self.seed, self.stream_id = int(seed), int(stream)

    def stream(self, stream: int) -> "PositionalNoise":
        return PositionalNoise(self.seed, stream)

    def __repr__(self) -> str:
        return f"PositionalNoise(seed={self.seed}, stream={self.stream_id})"

    def key(self) -> int:
        """The 32-bit key of (seed, stream) that `uniform_at` mixes with rows and positions."""
        return int(_hash32((self.seed & _MASK32) ^ _hash32(((self.seed >> 32) & _MASK32) ^ (self.stream_id & _MASK32))))

    def uniform(self, batch: int, start: int, n: int, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> Tensor:
        """[batch, n] values for positions start .. start + n - 1, in [-1, 1)."""
        pos = start + torch.arange(n, dtype=torch.int64, device=device)
        return uniform_at(self.key(), pos, batch).to(dtype)


def uniform_at(key: int, positions: Tensor, batch: int) -> Tensor:
    """PositionalNoise's values [batch, n] (float32, in [-1, 1)) at int64 sample positions [n] for
    a key (PositionalNoise.key()). TorchScript- and ONNX-exportable (ddsp_lab.realtime draws the
    same noise)."""
    rows = torch.arange(batch, dtype=torch.int64, device=positions.device)[:, None]
    pos = positions[None, :]
    h = _hash32(_hash32((rows ^ key) ^ 0x9E3779B9) ^ (pos >> 32) ^ 0x85EBCA6B)
    h = _hash32(h ^ (pos & 0xFFFFFFFF))
    unit = (h >> 8).to(torch.float32) * (1.0 / 16777216.0)  # 24 bits: exact in float32 (no float64 needed)
    return unit * 2.0 - 1.0  # exact too: the values of a float64 computation
