"""A-weighted loudness with the settings of prepared data: n_fft 2048 (at every rate, raised to a
power of two >= hop if needed), centred frames, n_samples / hop frames.

`dsp.compute_loudness` keeps the reference's low-level defaults (n_fft 512, and the extra final
frame); its values depend on n_fft (mean power over bins: about 6 dB between 512 and 2048 on a
tone), so curves for a trained model come from here (or `ddsp_lab.features.compute`), never from
the dsp defaults.
"""
from __future__ import annotations

import math

from torch import Tensor

from .. import dsp
from .framing import context_frames, frame_hop

LOUDNESS_N_FFT = 2048  # the reference's data preparation (ddsp.spectral_ops.compute_loudness in prepare_tfrecord)


def loudness_n_fft(n_fft: int, hop: int) -> int:
    """n_fft raised to a power of two >= hop if needed (a frame must cover its hop)."""
    return max(n_fft, 1 << math.ceil(math.log2(hop)))


def compute_loudness_frames(audio: Tensor, sample_rate: int, frame_rate: int,
                            n_fft: int = LOUDNESS_N_FFT) -> Tensor:
    """A-weighted loudness (dB) [batch, n_samples / hop]: dsp.compute_loudness with centred frames,
    the final extra frame dropped. n_fft 2048 at every rate, as the reference's data preparation
    (values depend on n_fft: mean power over bins), raised to a power of two >= hop if needed."""
    hop = frame_hop(sample_rate, frame_rate, audio.shape[-1])
    n_fft = loudness_n_fft(n_fft, hop)
    ld = dsp.compute_loudness(audio, sample_rate, frame_rate, n_fft=n_fft, padding="center")
    return ld[..., : audio.shape[-1] // hop]


def recording_loudness(audio: Tensor, sample_rate: int, frame_rate: int, n_fft: int = LOUDNESS_N_FFT,
                       block_frames: int = 4096) -> Tensor:
    """Loudness of a whole recording, in blocks of frames: audio [n_samples] (any length) ->
    [n_samples // hop] dB, frame j centred on sample j * hop. Each block reads n_fft / 2 samples of
    real audio beyond its ends, so the result equals one pass; a window of a recording gets the
    values of compute_loudness_frames wherever a frame's n_fft samples lie inside the window."""
    if audio.dim() != 1:
        raise ValueError(f"audio must be one recording [n_samples], got {tuple(audio.shape)}")
    hop = frame_hop(sample_rate, frame_rate)
    n_fft = loudness_n_fft(n_fft, hop)
    n_frames, margin = audio.shape[-1] // hop, context_frames(n_fft // 2, hop)
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
