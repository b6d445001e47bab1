"""The installed stack: the CPU/CUDA torch is kept, torchaudio is absent, torchcrepe imports offline."""
import importlib.util
import subprocess
import sys


def test_torchcrepe_imports_without_torchaudio_and_lightning_still_imports():
    code = ("from ddsp_lab.features import import_torchcrepe; import sys; tc = import_torchcrepe(); "
            "assert 'torchaudio' not in sys.modules; import pytorch_lightning, hydra, nnAudio; "
            "import os; assert os.path.exists(os.path.join(os.path.dirname(tc.__file__), 'assets', 'tiny.pth'))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_cli_lists_commands():
    out = subprocess.run([sys.executable, "-m", "ddsp_lab.cli", "--help"], capture_output=True, text=True,
                         check=True, timeout=120)
    assert "demo" in out.stdout


def test_no_torchaudio_installed():
    spec = importlib.util.find_spec("torchaudio")
    assert spec is None, "torchaudio must not be installed (its wheels break imports on this torch)"


def test_the_gpu_check_says_there_is_no_cuda_and_exits_0_here():
    """scripts/gpu-check.sh is the one command for a CUDA machine; on one without CUDA it says so."""
    import torch
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu-check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # it parses
    if torch.cuda.is_available():
        import pytest
        pytest.skip("a CUDA machine: run bash scripts/gpu-check.sh itself")
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "DDSP_LAB_PYTHON": sys.executable})
    assert out.returncode == 0 and "no CUDA device here" in out.stdout, out.stdout + out.stderr
