"""Preprocessors: batch features -> network-range inputs at the model's time resolution."""
from __future__ import annotations

from torch import Tensor, nn

from .. import dsp

F0_RANGE = 127.0  # MIDI: f0_scaled = hz_to_midi(f0) / 127
DB_RANGE = dsp.DB_RANGE  # 80 dB: ld_scaled = loudness_db / 80 + 1


class F0LoudnessPreprocessor(nn.Module):
    """f0 and loudness -> f0_scaled (MIDI / 127) and ld_scaled (dB / 80 + 1), the reference's
    scaling, all resampled linearly (with end point) to `time_steps`.

    Args:
        time_steps: the model's number of frames.
        frame_rate, sample_rate: used when compute_loudness=True (loudness from 'audio', the
            reference's dsp.compute_loudness defaults: n_fft 512, centred frames).
    Reads f0_hz [b, t(, 1)], loudness_db [b, t(, 1)] (or audio [b, n]); adds f0_hz, loudness_db,
    f0_scaled, ld_scaled, each [b, time_steps, 1]. Computed loudness is float32 even under autocast.
    """

    def __init__(self, time_steps: int = 1000, frame_rate: int = 250, sample_rate: int = 16000,
                 compute_loudness: bool = False):
        super().__init__()
        self.time_steps, self.frame_rate, self.sample_rate = time_steps, frame_rate, sample_rate
        self.compute_loudness = compute_loudness

    def _resample(self, x: Tensor) -> Tensor:
        x = x[..., None] if x.dim() == 2 else x
        return dsp.resample(x, self.time_steps) if x.shape[1] != self.time_steps else x

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        if "f0_hz" not in features:
            raise ValueError(f"F0LoudnessPreprocessor needs 'f0_hz' among the features {sorted(features)}")
        if self.compute_loudness:
            if "audio" not in features:
                raise ValueError("F0LoudnessPreprocessor(compute_loudness=True) needs 'audio'")
            # float32 outside autocast: A-weighted power in dB is a spectral front-end
            loudness = dsp.full_precision(dsp.compute_loudness, features["audio"], self.sample_rate,
                                          self.frame_rate)
        elif "loudness_db" in features:
            loudness = features["loudness_db"]
        else:
            raise ValueError(f"F0LoudnessPreprocessor needs 'loudness_db' (or compute_loudness=True), "
                             f"got {sorted(features)}")
        f0_hz, loudness_db = self._resample(features["f0_hz"]), self._resample(loudness)
        return {**features, "f0_hz": f0_hz, "loudness_db": loudness_db,
                "f0_scaled": dsp.hz_to_midi(f0_hz) / F0_RANGE, "ld_scaled": loudness_db / DB_RANGE + 1.0}
