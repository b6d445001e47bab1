"""Encoders: audio / features -> latent inputs for the decoder."""
from __future__ import annotations

from torch import Tensor, nn

from .. import dsp
from .layers import REFERENCE_LAYER_NORM_EPS


class ZEncoder(nn.Module):
    """The paper's z encoder: MFCCs (30) -> layer norm -> GRU (512) -> dense (16), resampled to the
    model's time steps. Adds 'z' [batch, time_steps, z_dims].

    Args:
        time_steps: the model's frames. z_dims: latent size. rnn_channels: GRU size.
        n_mfcc, fft_size, mel_bins, overlap: the MFCC front-end (the reference: 30 coefficients,
            FFT 1024, 128 mel bands, 75 % overlap, 20 Hz - 8 kHz).
        z_time_steps: resolution of z before upsampling (None: the MFCC frame rate).
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

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        if "audio" not in features:
            raise ValueError(f"ZEncoder needs 'audio' among the features {sorted(features)}")
        mfcc = dsp.compute_mfcc(features["audio"], **self.mfcc_args)
        if self.z_time_steps is not None:
            mfcc = dsp.resample(mfcc, self.z_time_steps)
        z, _ = self.rnn(self.norm(mfcc))
        z = dsp.resample(self.dense(z), self.time_steps)
        return {**features, "z": z}
