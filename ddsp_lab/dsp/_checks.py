"""Shared argument checks: every message names the argument, the expectation and what came."""
from __future__ import annotations

import torch
from torch import Tensor


def shape_of(x: Tensor) -> tuple:
    return tuple(x.shape)


def check_rank(name: str, x: Tensor, ranks: tuple[int, ...], layout: str) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor {layout}, got {type(x).__name__}")
    if x.dim() not in ranks:
        raise ValueError(f"{name} must be {layout}, got shape {shape_of(x)}")


def check_floating(name: str, x: Tensor) -> None:
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def check_f0(name: str, f0_hz: Tensor) -> None:
    """f0 must be finite and >= 0. The value check reads the tensor, which on a GPU would stall
    the host on every call (no host syncs in hot paths): it runs on CPU tensors in eager mode;
    on accelerators f0 is validated where data enters (feature extraction, data loading)."""
    check_floating(name, f0_hz)
    if f0_hz.device.type == "cpu" and not torch.compiler.is_compiling():
        bad = ~torch.isfinite(f0_hz) | (f0_hz < 0)
        if bool(bad.any()):
            raise ValueError(f"{name} must be finite and >= 0 Hz, got NaN, inf or negative values "
                             f"(min {float(torch.nan_to_num(f0_hz).min()):.4g})")


def check_batch(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise ValueError(f"{name_a} and {name_b} must share the batch size (or one of them be 1), "
                         f"got {shape_of(a)} and {shape_of(b)}")


def check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_sample_rate(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name} must be a positive number of Hz, got {value!r}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
