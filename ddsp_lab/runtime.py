"""Process-level settings for CPU speed, applied by the `ddsp-lab` command and on request, and
`torch_threads(n)`, a thread count for one block of code.

`tune_cpu_allocator()`: glibc's malloc hands large blocks back to the kernel when they are freed
(blocks above its mmap threshold are unmapped; the heap top above its trim threshold is trimmed),
so the next tensor of that size faults its pages in again. DSP on CPU allocates many 1-30 MB
tensors per call, and those page faults cost as much as the arithmetic: FilteredNoise of
benchmarks/dsp.py runs 1.6x faster with them gone. Tuned, blocks below 32 MiB come from the heap
and up to 1 GiB of freed heap is kept for reuse, as the jemalloc/tcmalloc allocators that
PyTorch's CPU performance guide recommends would do. The cost: the process keeps memory it has
freed (up to the trim threshold) instead of returning it at once.
"""
from __future__ import annotations

import ctypes
import os
import sys
from contextlib import contextmanager

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
ENV = "DDSP_LAB_MALLOC_TUNING"


def tune_cpu_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Set glibc malloc's mmap and trim thresholds for this process (see the module docstring).

    Returns True where they were set; False on other platforms or C libraries, or when the
    environment variable DDSP_LAB_MALLOC_TUNING=0 opts out. glibc caps mmap_threshold at 32 MiB.
    """
    if os.environ.get(ENV, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


@contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to n inside the block, put back after it (a measurement
    on one thread, as a host gives one voice, without changing the rest of the process)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Start-up chatter nobody can act on: Lightning's accelerator / tip lines and its own
# deprecation of its pytree helper, matplotlib's font-cache INFO, and the "fewer batches than the
# logging interval" notice (a train split streams across epochs here; plain progress lines print
# at log_every_n_steps regardless). Warnings a user can act on stay.
_QUIET_LOGGERS = ("lightning_fabric.utilities.rank_zero",
                  "pytorch_lightning.utilities.rank_zero", "matplotlib", "PIL")
_QUIET_WARNINGS = (r".*isinstance\(treespec, LeafSpec\).*",
                   r"The number of training batches \(\d+\) is smaller than the logging interval.*",
                   # a local run on a machine that has SLURM's tools (a login node, local-slurm.sh)
                   r"The `srun` command is available on your system but is not used.*")


def quiet_libraries() -> None:
    """Silence the libraries' start-up lines for this process (the `ddsp-lab` commands call it)."""
    import logging
    import warnings

    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in _QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def quiet_offline_wandb(logger_cfg) -> bool:
    """An offline W&B logger prints a dozen lines of its own (tracking, sync hints, a notice about a
    setting Lightning passes): silence them (WANDB_SILENT, unless the user set it); the command then
    says where the run is and how to sync it. True where it did."""
    if not logger_cfg or "WandbLogger" not in str(logger_cfg.get("_target_", "")) or not logger_cfg.get("offline"):
        return False
    os.environ.setdefault("WANDB_SILENT", "true")
    return True
