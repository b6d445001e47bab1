"""Shared fixtures: floating dtypes, devices (CUDA skipped where absent) and seeding."""
from __future__ import annotations

import numpy as np
import pytest
import torch

DTYPES = (torch.float32, torch.float64)
DEVICES = ("cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA not available")))


@pytest.fixture(params=DTYPES, ids=("float32", "float64"))
def dtype(request) -> torch.dtype:
    """Each test runs once per floating dtype."""
    return request.param


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """'cpu', plus 'cuda' (skipped when torch.cuda.is_available() is False)."""
    return torch.device(request.param)


@pytest.fixture
def seed() -> int:
    """Seeds torch and numpy; returns the seed (for a local torch.Generator if wanted)."""
    torch.manual_seed(0)
    np.random.seed(0)
    return 0


@pytest.fixture(scope="module")
def one_intra_op_thread():
    """For modules of small tensors (`pytestmark = pytest.mark.usefixtures(...)`): a second
    intra-op thread buys nothing there, and on a busy 2-core machine its spin-waits slowed an
    optimisation test ~50x. Restored afterwards."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """Six 1 s demo examples prepared with CREPE tiny (no Viterbi): the training tests' data."""
    from ddsp_lab.data import DemoSource, PrepareConfig, prepare

    out = tmp_path_factory.mktemp("demo")
    prepare(DemoSource(6), out, PrepareConfig("demo", example_seconds=1.0, crepe_model="tiny", viterbi=False),
            progress=False)
    return out
