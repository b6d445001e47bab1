"""Encoders: audio / features -> latent inputs for the decoder."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import dsp
from .layers import REFERENCE_LAYER_NORM_EPS
from .preprocessors import F0_RANGE


class ZEncoder(nn.Module):
    """The paper's z encoder: MFCCs (30) -> layer norm -> GRU (512) -> dense (16), resampled to the
    model's time steps. Adds 'z' [batch, time_steps, z_dims].

    Args:
        time_steps: the model's frames. z_dims: latent size. rnn_channels: GRU size.
        n_mfcc, fft_size, mel_bins, overlap: the MFCC front-end (the reference: 30 coefficients,
            FFT 1024, 128 mel bands, 75 % overlap, 20 Hz - 8 kHz).
        z_time_steps: resolution of z before upsampling (None: the MFCC frame rate).
    The MFCCs are computed in float32 outside autocast (`mfcc`); the layers after them may run
    under autocast.
    """

    def __init__(self, time_steps: int = 1000, z_dims: int = 16, rnn_channels: int = 512, n_mfcc: int = 30,
                 fft_size: int = 1024, mel_bins: int = 128, overlap: float = 0.75, sample_rate: int = 16000,
                 z_time_steps: int | None = None, layer_norm_eps: float = REFERENCE_LAYER_NORM_EPS):
        super().__init__()
        self.time_steps, self.z_time_steps = time_steps, z_time_steps
        self.mfcc_args = dict(fft_size=fft_size, mel_bins=mel_bins, mfcc_bins=n_mfcc, overlap=overlap,
                              sample_rate=sample_rate, hi_hz=sample_rate / 2)
        self.norm = nn.LayerNorm(n_mfcc, eps=layer_norm_eps)
        self.rnn = nn.GRU(n_mfcc, rnn_channels, batch_first=True)
        self.dense = nn.Linear(rnn_channels, z_dims)

    def mfcc(self, audio: Tensor) -> Tensor:
        """[batch, n_samples] -> MFCCs [batch, n_mfcc_frames, n_mfcc], float32 even under autocast."""
        return dsp.full_precision(dsp.compute_mfcc, audio, **self.mfcc_args)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        if "audio" not in features:
            raise ValueError(f"ZEncoder needs 'audio' among the features {sorted(features)}")
        mfcc = self.mfcc(features["audio"])
        if self.z_time_steps is not None:
            mfcc = dsp.resample(mfcc, self.z_time_steps)
        z, _ = self.rnn(self.norm(mfcc))
        z = dsp.resample(self.dense(z), self.time_steps)
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
    distribution over pitch bins per frame; f0 is its expectation (in MIDI, bins evenly spaced over
    `midi_range`), resampled to the model's time steps. Adds 'f0_hz', 'f0_scaled' (MIDI / 127, as
    the preprocessor) and 'f0_probs' [batch, time_steps, f0_bins], replacing any dataset f0.

    Args:
        time_steps: the model's frames. sample_rate: of the audio.
        spectrum: 'logmel' (the reference's unsupervised config: 229 bands 0-8 kHz, FFT 2048, 75 %
            overlap) or 'cqt' (nnAudio; `cqt_bins` bins from `cqt_fmin`, `cqt_bins_per_octave`).
        channels, blocks: ResNet stages (each after the first halves the frequency axis).
        f0_bins, midi_range: the output distribution (256 bins, MIDI 12-108: 16 Hz - 4.2 kHz).
    """

    predicts_f0 = True

    def __init__(self, time_steps: int = 1000, sample_rate: int = 16000, spectrum: str = "logmel",
                 mel_bins: int = 229, fft_size: int = 2048, overlap: float = 0.75,
                 cqt_fmin: float = 32.70, cqt_bins: int = 168, cqt_bins_per_octave: int = 24, cqt_hop: int = 256,
                 channels: tuple[int, ...] = (32, 64, 128), blocks: tuple[int, ...] = (1, 2, 2),
                 f0_bins: int = 256, midi_range: tuple[float, float] = (12.0, 108.0)):
        super().__init__()
        if spectrum not in ("logmel", "cqt"):
            raise ValueError(f"spectrum must be 'logmel' or 'cqt', got {spectrum!r}")
        if len(channels) != len(blocks) or not channels:
            raise ValueError(f"channels {channels} and blocks {blocks} must name the same stages (>= 1)")
        self.time_steps, self.spectrum, self.sample_rate = time_steps, spectrum, sample_rate
        self.mel_args = dict(lo_hz=0.0, hi_hz=min(8000.0, sample_rate / 2), bins=mel_bins, fft_size=fft_size,
                             overlap=overlap, sample_rate=sample_rate)
        self.cqt = (dsp.CQT(sample_rate, cqt_hop, cqt_fmin, cqt_bins, cqt_bins_per_octave)
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
        """[batch, n_samples] -> [batch, n_spectral_frames, n_freq], float32 even under autocast (the
        ResNet after it may run in reduced precision)."""
        if self.cqt is not None:
            return dsp.full_precision(self._log_cqt, audio)
        return dsp.full_precision(dsp.compute_logmel, audio, **self.mel_args)

    def _log_cqt(self, audio: Tensor) -> Tensor:
        return dsp.safe_log(self.cqt(audio))

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        if "audio" not in features:
            raise ValueError(f"F0ResNetEncoder needs 'audio' among the features {sorted(features)}")
        x = self.stem(self.log_spectrum(features["audio"])[:, None])  # [b, c, t, f]
        x = torch.relu(self.norm(self.blocks(x)))
        x = x.permute(0, 2, 1, 3).flatten(2)  # [b, t, c * f]
        probs = torch.softmax(self.dense_out(x), dim=-1)
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
