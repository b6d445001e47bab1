"""The frame convention every feature uses, and resampling of a whole recording in blocks.

An example of n_samples at frame_rate has exactly n_frames = n_samples / hop frames, hop =
sample_rate / frame_rate (must divide n_samples); frame i is centred on sample i * hop (centred
analysis windows, zero padding at both ends; the reference's extra final frame at n_samples is
dropped). A recording of any length has n_samples // hop frames.
"""
from __future__ import annotations

import math

from torch import Tensor

from .. import dsp


def frame_hop(sample_rate: int, frame_rate: int, n_samples: int | None = None) -> int:
    """Samples per frame; raises if the frame rate does not divide the sample rate (or n_samples)."""
    return dsp.hop_size(sample_rate, frame_rate, n_samples)


def context_frames(n_context_samples: int, hop: int) -> int:
    """Whole frames of context covering n_context_samples (half an analysis window)."""
    return -(-n_context_samples // hop)


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
