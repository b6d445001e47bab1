"""Processor base: raw controls -> scaled controls (get_controls) -> signal (get_signal).

Each processor owns its scaling, so networks stay interchangeable and synthesis is testable with
hand-made controls (call get_signal directly). Scale functions are named by strings in configs.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import Tensor, nn

from .. import dsp

SCALE_FNS: dict[str, Callable[[Tensor], Tensor]] = {
    "exp_sigmoid": dsp.exp_sigmoid,
    "sigmoid": torch.sigmoid,
    "softplus": nn.functional.softplus,
    "frequencies_sigmoid": dsp.frequencies_sigmoid,
    "frequencies_softmax": dsp.frequencies_softmax,
    "identity": lambda x: x,
}


def get_scale_fn(scale_fn: str | Callable | None) -> Callable[[Tensor], Tensor] | None:
    """None | a name in SCALE_FNS | a callable -> callable or None."""
    if scale_fn is None or callable(scale_fn):
        return scale_fn
    if scale_fn not in SCALE_FNS:
        raise ValueError(f"scale_fn must be None, a callable or one of {sorted(SCALE_FNS)}, got {scale_fn!r}")
    return SCALE_FNS[scale_fn]


class Processor(nn.Module):
    """Base class. Subclasses implement get_controls(*raw) -> dict and get_signal(**controls).

    forward(*raw_controls) returns the signal; `forward_with_controls` also returns the controls.
    `control_sizes` maps each raw input name to its channel count (None: any / not a control),
    used to check that a decoder's outputs fit a synth stack.
    """

    def get_controls(self, *args, **kwargs) -> dict[str, Tensor]:
        raise NotImplementedError

    def get_signal(self, *args, **kwargs) -> Tensor:
        raise NotImplementedError

    def forward_with_controls(self, *args, **kwargs) -> tuple[Tensor, dict[str, Tensor]]:
        controls = self.get_controls(*args, **kwargs)
        return self.get_signal(**controls), controls

    def forward(self, *args, **kwargs) -> Tensor:
        return self.forward_with_controls(*args, **kwargs)[0]

    @property
    def input_names(self) -> tuple[str, ...]:
        params = inspect.signature(self.get_controls).parameters.values()
        return tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))

    @property
    def required_inputs(self) -> tuple[str, ...]:
        params = inspect.signature(self.get_controls).parameters.values()
        return tuple(p.name for p in params if p.default is inspect.Parameter.empty
                     and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))

    def control_sizes(self) -> dict[str, int | None]:
        return {name: None for name in self.input_names}


def check_audio(name: str, audio: Tensor) -> None:
    if audio.dim() != 2:
        raise ValueError(f"{name} must be [batch, n_samples], got shape {tuple(audio.shape)}")


def check_controls(name: str, x: Tensor, n_channels: int | None = None) -> None:
    if x.dim() != 3 or (n_channels is not None and x.shape[-1] != n_channels):
        want = f"[batch, n_frames, {n_channels if n_channels is not None else 'channels'}]"
        raise ValueError(f"{name} must be {want}, got shape {tuple(x.shape)}")
