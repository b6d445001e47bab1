"""Constant tensors (filterbanks, transform matrices, weightings) cached per device and dtype.

A constant is built once in float64 on the CPU from plain parameters, then cast and moved to each
(device, dtype) it is asked for once: on a GPU that is one host-to-device copy per constant, not
one per call (a training step). The cached tensor is shared by every caller: never modify it in
place.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import Tensor

CACHE_SIZE = 64  # entries per constant: (parameters, device, dtype) triples; a mel matrix is ~1 MB


def _device_key(device: torch.device | str | None) -> str:
    return str(torch.device(device)) if device is not None else "cpu"


def cached_constant(build: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Decorator: build(*params) -> float64 CPU tensor becomes get(*params, dtype=, device=), the
    same tensor object for the same (params, device, dtype), with a bounded LRU cache
    (`get.cache_info()`, `get.cache_clear()`). params must be hashable (ints, floats)."""

    @functools.lru_cache(maxsize=CACHE_SIZE)
    def cached(params: tuple, device: str, dtype: torch.dtype) -> Tensor:
        # inference_mode(False): a first call inside torch.inference_mode (validation, predict)
        # must not cache an inference tensor, which training could then not save for backward.
        with torch.inference_mode(False), torch.no_grad():
            return build(*params).to(device=torch.device(device), dtype=dtype)

    @functools.wraps(build)
    def get(*params, dtype: torch.dtype = torch.float32,
            device: torch.device | str | None = None) -> Tensor:
        return cached(params, _device_key(device), dtype)

    get.cache_info, get.cache_clear = cached.cache_info, cached.cache_clear
    return get
