"""Encoders: audio / features -> latent inputs for the decoder, at the model's frames.

Every spectral front-end here frames the audio at the model's hop (sample_rate // frame_rate),
centred: frame i is centred on sample i * hop (as the f0 and loudness frames of ddsp_lab.data),
zeros beyond the ends (nnAudio's CQT: its reflection; it needs audio longer than half its longest
kernel), and an example of n_samples gives exactly n_samples // hop frames, for any
length. Nothing is resampled unless a fixed `time_steps` is asked for.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import dsp
from .layers import REFERENCE_LAYER_NORM_EPS
from .preprocessors import F0_RANGE


def model_hop(sample_rate: int, frame_rate: int) -> int:
    """Samples per model frame; the frame rate must divide the sample rate."""
    if frame_rate < 1 or sample_rate % frame_rate:
        raise ValueError(f"frame_rate must divide sample_rate ({sample_rate}), got {frame_rate!r}")
    return int(sample_rate) // int(frame_rate)


def centred_frames_input(audio: Tensor, frame_size: int, hop: int) -> tuple[Tensor, int]:
    """audio [batch, n_samples] -> (padded [batch, (n_frames - 1) * hop + frame_size], n_frames):
    framed without end padding (pad_end=False), every hop samples, the padded audio gives exactly
    n_frames = n_samples // hop frames of frame_size, frame i centred on sample i * hop."""
    n_frames = audio.shape[-1] // hop
    if n_frames < 1:
        raise ValueError(f"audio must hold at least one frame of {hop} samples, got {tuple(audio.shape)}")
    half = frame_size // 2
    padded = torch.nn.functional.pad(audio, (half, half))
    return padded[..., : (n_frames - 1) * hop + frame_size], n_frames


def overlap_for_hop(frame_size: int, hop: int) -> float:
    """The `overlap` argument of dsp's STFT front-ends that gives a hop of `hop` samples: they take
    int(frame_size * (1 - overlap)); aiming half a sample above hop keeps float rounding from
    landing on hop - 1."""
    return 1.0 - (hop + 0.5) / frame_size


class ZEncoder(nn.Module):
    """The paper's z encoder: MFCCs (30) -> layer norm -> GRU (512) -> dense (16), one z per model
    frame. Adds 'z' [batch, n_frames, z_dims], n_frames = n_samples // hop (the f0 / loudness frames).

    Args:
        time_steps: None (default): the audio's frames. An int resamples z to that many frames
            (a fixed-length model, the reference's style).
        z_dims: latent size. rnn_channels: GRU size.
        n_mfcc, fft_size, mel_bins: the MFCC front-end (the reference: 30 coefficients, FFT 1024,
            128 mel bands, 20 Hz - 8 kHz). Its hop is the model's, sample_rate // frame_rate (the
            reference takes 75 % overlap, then resamples to the model's frames: same window, 4x
            the frames at 16 kHz / 250 Hz, and no resampling).
    The MFCCs are computed in float32 outside autocast (`mfcc`); the layers after them may run
    under autocast.
    """

    def __init__(self, time_steps: int | None = None, z_dims: int = 16, rnn_channels: int = 512, n_mfcc: int = 30,
                 fft_size: int = 1024, mel_bins: int = 128, sample_rate: int = 16000, frame_rate: int = 250,
                 layer_norm_eps: float = REFERENCE_LAYER_NORM_EPS):
        super().__init__()
        self.time_steps, self.hop, self.fft_size = time_steps, model_hop(sample_rate, frame_rate), fft_size
        self.mfcc_args = dict(fft_size=fft_size, mel_bins=mel_bins, mfcc_bins=n_mfcc,
                              overlap=overlap_for_hop(fft_size, self.hop), pad_end=False,
                              sample_rate=sample_rate, hi_hz=sample_rate / 2)
        self.norm = nn.LayerNorm(n_mfcc, eps=layer_norm_eps)
        self.rnn = nn.GRU(n_mfcc, rnn_channels, batch_first=True)
        self.dense = nn.Linear(rnn_channels, z_dims)

    def mfcc(self, audio: Tensor) -> Tensor:
        """[batch, n_samples] -> MFCCs [batch, n_samples // hop, n_mfcc] (centred frames), float32
        even under autocast."""
        padded, _ = centred_frames_input(audio, self.fft_size, self.hop)
        return dsp.full_precision(dsp.compute_mfcc, padded, **self.mfcc_args)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        if "audio" not in features:
            raise ValueError(f"ZEncoder needs 'audio' among the features {sorted(features)}")
        z, _ = self.rnn(self.norm(self.mfcc(features["audio"])))
        z = self.dense(z)
        if self.time_steps is not None:
            z = dsp.resample(z, self.time_steps)
        return {**features, "z": z}


class _ResBlock(nn.Module):
    """Pre-activation residual block over [batch, channels, time, freq]: (norm -> ReLU -> conv 3x3)
    x 2; the first conv strides in frequency only, so every frame keeps its own output."""

    def __init__(self, ch_in: int, ch_out: int, freq_stride: int):
        super().__init__()
        groups = lambda c: math.gcd(c, 8)  # noqa: E731 - GroupNorm: batch-size independent (DDP, batch 1)
        self.norm1, self.norm2 = nn.GroupNorm(groups(ch_in), ch_in), nn.GroupNorm(groups(ch_out), ch_out)
        self.conv1 = nn.Conv2d(ch_in, ch_out, 3, stride=(1, freq_stride), padding=1)
        self.conv2 = nn.Conv2d(ch_out, ch_out, 3, padding=1)
        self.shortcut = (nn.Conv2d(ch_in, ch_out, 1, stride=(1, freq_stride))
                         if ch_in != ch_out or freq_stride != 1 else None)  # None: identity

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.norm1(x))
        y = self.conv2(torch.relu(self.norm2(self.conv1(h))))
        return y + (self.shortcut(h) if self.shortcut is not None else x)


class F0ResNetEncoder(nn.Module):
    """Unsupervised f0: a ResNet on a log spectrogram (log mel, or a log CQT from nnAudio) predicts a
    distribution over pitch bins per model frame; f0 is its expectation (in MIDI, bins evenly spaced
    over `midi_range`). Adds 'f0_hz', 'f0_scaled' (MIDI / 127, as the preprocessor) and 'f0_probs'
    [batch, n_frames, f0_bins], n_frames = n_samples // hop, replacing any dataset f0.

    Args:
        time_steps: None (default): the audio's frames. An int resamples the distribution to that
            many frames (a fixed-length model). sample_rate, frame_rate: of the audio and the model;
            the spectrum's hop is the model's (sample_rate // frame_rate), centred frames.
        spectrum: 'logmel' (the reference's unsupervised config: 229 bands 0-8 kHz, FFT 2048) or
            'cqt' (nnAudio; `cqt_bins` bins from `cqt_fmin`, `cqt_bins_per_octave`).
        channels, blocks: ResNet stages (each after the first halves the frequency axis; time is
            never strided, so every model frame gets its own prediction).
        f0_bins, midi_range: the output distribution (256 bins, MIDI 12-108: 16 Hz - 4.2 kHz).
    """

    predicts_f0 = True

    def __init__(self, time_steps: int | None = None, sample_rate: int = 16000, spectrum: str = "logmel",
                 mel_bins: int = 229, fft_size: int = 2048, frame_rate: int = 250,
                 cqt_fmin: float = 32.70, cqt_bins: int = 168, cqt_bins_per_octave: int = 24,
                 channels: tuple[int, ...] = (32, 64, 128), blocks: tuple[int, ...] = (1, 2, 2),
                 f0_bins: int = 256, midi_range: tuple[float, float] = (12.0, 108.0)):
        super().__init__()
        if spectrum not in ("logmel", "cqt"):
            raise ValueError(f"spectrum must be 'logmel' or 'cqt', got {spectrum!r}")
        if len(channels) != len(blocks) or not channels:
            raise ValueError(f"channels {channels} and blocks {blocks} must name the same stages (>= 1)")
        self.time_steps, self.spectrum, self.sample_rate = time_steps, spectrum, sample_rate
        self.hop, self.fft_size = model_hop(sample_rate, frame_rate), fft_size
        self.mel_args = dict(lo_hz=0.0, hi_hz=min(8000.0, sample_rate / 2), bins=mel_bins, fft_size=fft_size,
                             overlap=overlap_for_hop(fft_size, self.hop), pad_end=False, sample_rate=sample_rate)
        self.cqt = (dsp.CQT(sample_rate, self.hop, cqt_fmin, cqt_bins, cqt_bins_per_octave)
                    if spectrum == "cqt" else None)
        n_freq = mel_bins if spectrum == "logmel" else cqt_bins
        self.stem = nn.Conv2d(1, channels[0], 7, stride=(1, 2), padding=3)
        n_freq = (n_freq - 1) // 2 + 1
        layers, ch = [], channels[0]
        for i, (c, n) in enumerate(zip(channels, blocks)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(_ResBlock(ch, c, stride))
                n_freq = (n_freq - 1) // stride + 1
                ch = c
        self.blocks = nn.Sequential(*layers)
        self.norm = nn.GroupNorm(math.gcd(ch, 8), ch)
        self.dense_out = nn.Linear(ch * n_freq, f0_bins)
        self.register_buffer("bin_midi", torch.linspace(midi_range[0], midi_range[1], f0_bins), persistent=False)

    def log_spectrum(self, audio: Tensor) -> Tensor:
        """[batch, n_samples] -> [batch, n_samples // hop, n_freq] (centred frames), float32 even
        under autocast (the ResNet after it may run in reduced precision)."""
        if self.cqt is not None:
            return dsp.full_precision(self._log_cqt, audio)
        padded, _ = centred_frames_input(audio, self.fft_size, self.hop)
        return dsp.full_precision(dsp.compute_logmel, padded, **self.mel_args)

    def _log_cqt(self, audio: Tensor) -> Tensor:
        n_frames = audio.shape[-1] // self.hop
        if n_frames < 1:
            raise ValueError(f"audio must hold at least one frame of {self.hop} samples, got {tuple(audio.shape)}")
        # nnAudio centres its frames (frame i on sample i * hop): n // hop + 1 of them, the last dropped
        return dsp.safe_log(self.cqt(audio)[:, :n_frames])

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        if "audio" not in features:
            raise ValueError(f"F0ResNetEncoder needs 'audio' among the features {sorted(features)}")
        x = self.stem(self.log_spectrum(features["audio"])[:, None])  # [b, c, t, f]
        x = torch.relu(self.norm(self.blocks(x)))
        x = x.permute(0, 2, 1, 3).flatten(2)  # [b, t, c * f]
        probs = torch.softmax(self.dense_out(x), dim=-1)
        if self.time_steps is not None:
            probs = dsp.resample(probs, self.time_steps)
        f0_midi = (probs * self.bin_midi.to(probs.dtype)).sum(-1, keepdim=True)
        # Non-finite audio gives a non-finite f0; keep f0 in range (on the device, no sync) so that
        # the synth runs and the step is skipped by the model's guard on its non-finite loss.
        f0_midi = torch.where(torch.isfinite(f0_midi), f0_midi, self.bin_midi[:1].to(f0_midi.dtype))
        return {**features, "f0_hz": dsp.midi_to_hz(f0_midi), "f0_scaled": f0_midi / F0_RANGE, "f0_probs": probs}


class EncoderChain(nn.Module):
    """Runs encoders in turn on the features dict (e.g. F0ResNetEncoder then ZEncoder, the paper's
    unsupervised NSynth model). encoders: a list, or a {name: encoder} mapping (kept in order)."""

    def __init__(self, encoders):
        super().__init__()
        self.encoders = nn.ModuleList(encoders.values() if hasattr(encoders, "values") else encoders)
        self.predicts_f0 = any(getattr(e, "predicts_f0", False) for e in self.encoders)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        for encoder in self.encoders:
            features = encoder(features)
        return features
