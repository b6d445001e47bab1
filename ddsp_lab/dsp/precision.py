"""Running DSP front-ends at full precision inside mixed-precision (autocast) networks."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

_REDUCED = (torch.float16, torch.bfloat16)


def full_precision(fn: Callable[..., Tensor], audio: Tensor, *args, **kwargs) -> Tensor:
    """fn(audio, *args, **kwargs) with autocast disabled for audio's device type and audio cast to
    float32 when it arrives in float16 / bfloat16 (float32 and float64 are kept).

    Spectral front-ends (STFT magnitudes, mel / DCT matmuls, CQT convolutions, logs) lose too much
    in reduced precision (bf16 keeps 8 bits of mantissa: ~0.4 % per value, before the log); the
    network layers that read their output may still run under autocast.
    """
    if audio.dtype in _REDUCED:
        audio = audio.float()
    with torch.autocast(device_type=audio.device.type, enabled=False):
        return fn(audio, *args, **kwargs)


def tracing() -> bool:
    """True while the code is being recorded into a graph (torch.jit.trace, torch.compile,
    torch.export / the ONNX exporter): a Python decision read from a tensor's values (a host
    shortcut) would be frozen into the graph there, so such shortcuts are skipped."""
    exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling() or (exporting is not None and exporting()))


def exporting() -> bool:
    """True while torch.export (and so the ONNX exporter) records the code: a graph for a runtime
    without complex tensors, where complex products run on real views (in eager they are ~10x
    faster as complex products)."""
    exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(exporting is not None and exporting())
