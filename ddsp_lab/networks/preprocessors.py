"""Preprocessors: batch features -> network-range inputs, frame for frame (any length)."""
from __future__ import annotations

from torch import Tensor, nn

from .. import dsp
from ..features.loudness import LOUDNESS_N_FFT, compute_loudness_frames

F0_RANGE = 127.0  # MIDI: f0_scaled = hz_to_midi(f0) / 127
DB_RANGE = dsp.DB_RANGE  # 80 dB: ld_scaled = loudness_db / 80 + 1


class F0LoudnessPreprocessor(nn.Module):
    """f0 and loudness -> f0_scaled (MIDI / 127) and ld_scaled (dB / 80 + 1), the reference's
    scaling, at the input's frames: n_frames = f0_hz's frames, whatever the length.

    Args:
        time_steps: None (default): keep the input's frames (loudness_db must have as many as
            f0_hz). An int resamples every curve linearly (with end point) to that many frames,
            the reference's fixed-length behaviour.
        frame_rate, sample_rate, loudness_n_fft: used when compute_loudness=True (loudness from
            'audio' as prepared data computes it, ddsp_lab.features.compute_loudness_frames: n_fft
            2048 by default, frame i centred on sample i * hop, n_samples / hop frames; with
            time_steps, the reference's dsp.compute_loudness defaults, n_fft 512).
    Reads f0_hz [b, t(, 1)], loudness_db [b, t(, 1)] (or audio [b, n]); adds f0_hz, loudness_db,
    f0_scaled, ld_scaled, each [b, t, 1] (t = time_steps if given). Computed loudness is float32
    even under autocast.
    """

    def __init__(self, time_steps: int | None = None, frame_rate: int = 250, sample_rate: int = 16000,
                 compute_loudness: bool = False, loudness_n_fft: int = LOUDNESS_N_FFT):
        super().__init__()
        self.time_steps, self.frame_rate, self.sample_rate = time_steps, frame_rate, sample_rate
        self.loudness_n_fft = loudness_n_fft
        self.compute_loudness = compute_loudness

    def _resample(self, x: Tensor) -> Tensor:
        x = x[..., None] if x.dim() == 2 else x
        return dsp.resample(x, self.time_steps) if x.shape[1] != self.time_steps else x

    def _loudness(self, features: dict[str, Tensor], n_frames: int) -> Tensor:
        if not self.compute_loudness:
            if "loudness_db" not in features:
                raise ValueError(f"F0LoudnessPreprocessor needs 'loudness_db' (or compute_loudness=True), "
                                 f"got {sorted(features)}")
            return features["loudness_db"]
        if "audio" not in features:
            raise ValueError("F0LoudnessPreprocessor(compute_loudness=True) needs 'audio'")
        # float32 outside autocast: A-weighted power in dB is a spectral front-end
        loudness = dsp.full_precision(compute_loudness_frames, features["audio"], self.sample_rate,
                                      self.frame_rate, self.loudness_n_fft)
        if self.time_steps is not None:  # the reference's fixed-length behaviour keeps its extra frame
            return dsp.full_precision(dsp.compute_loudness, features["audio"], self.sample_rate, self.frame_rate)
        return loudness[:, :n_frames]

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        if "f0_hz" not in features:
            raise ValueError(f"F0LoudnessPreprocessor needs 'f0_hz' among the features {sorted(features)}")
        f0_hz = features["f0_hz"]
        loudness = self._loudness(features, f0_hz.shape[1])
        if self.time_steps is not None:
            f0_hz, loudness_db = self._resample(f0_hz), self._resample(loudness)
        else:
            f0_hz = f0_hz[..., None] if f0_hz.dim() == 2 else f0_hz
            loudness_db = loudness[..., None] if loudness.dim() == 2 else loudness
            if loudness_db.shape[1] != f0_hz.shape[1]:
                raise ValueError(f"loudness_db must have as many frames as f0_hz {tuple(f0_hz.shape)} "
                                 f"(or set time_steps to resample both), got {tuple(loudness_db.shape)}")
        return {**features, "f0_hz": f0_hz, "loudness_db": loudness_db,
                "f0_scaled": dsp.hz_to_midi(f0_hz) / F0_RANGE, "ld_scaled": loudness_db / DB_RANGE + 1.0}
