"""FeatureSettings: how audio becomes a model's features, recorded by prepare and carried by checkpoints."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Mapping

from .. import dsp
from .crepe import CREPE_SAMPLE_RATE
from .framing import frame_hop
from .loudness import LOUDNESS_N_FFT

CREPE_MODELS = ("full", "tiny")


def _as_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class FeatureSettings:
    """The settings of the features a model is trained on (and of `ddsp_lab.features.compute`).

    Args:
        sample_rate: the model's audio rate, Hz (audio at other rates is resampled to it).
        frame_rate: feature frames per second; must divide sample_rate and CREPE's 16000 Hz.
        crepe_model: 'full' (the paper's) or 'tiny'.
        viterbi: decode CREPE's bins with its Viterbi prior (else argmax); without dither either way.
        loudness_n_fft: FFT size of the A-weighted loudness (2048, as the reference's data
            preparation, at every rate; raised to a power of two >= hop where the hop is longer).
    """

    sample_rate: int = 16000
    frame_rate: int = 250
    crepe_model: str = "full"
    viterbi: bool = True
    loudness_n_fft: int = LOUDNESS_N_FFT

    def __post_init__(self):
        for name in ("sample_rate", "frame_rate", "loudness_n_fft"):
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        object.__setattr__(self, "viterbi", bool(self.viterbi))
        if self.sample_rate < 1 or self.frame_rate < 1 or self.loudness_n_fft < 1:
            raise ValueError(f"sample_rate, frame_rate and loudness_n_fft must be >= 1, got "
                             f"{self.sample_rate}, {self.frame_rate}, {self.loudness_n_fft}")
        frame_hop(self.sample_rate, self.frame_rate)
        if CREPE_SAMPLE_RATE % self.frame_rate:
            raise ValueError(f"frame_rate ({self.frame_rate}) must divide 16000 for CREPE "
                             f"(e.g. 50, 100, 125, 200, 250, 320, 400, 500)")
        if self.crepe_model not in CREPE_MODELS:
            raise ValueError(f"crepe_model must be 'full' or 'tiny', got {self.crepe_model!r}")

    @property
    def hop(self) -> int:
        """Audio samples per frame at sample_rate."""
        return dsp.hop_size(self.sample_rate, self.frame_rate)

    def to_dict(self) -> dict:
        """Plain values (JSON, and checkpoints that load with weights_only)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> FeatureSettings:
        """From any mapping holding the fields: prepare_config.json, a checkpoint's record, to_dict.
        Other keys are ignored; a missing loudness_n_fft is 2048 (data prepared before it was
        recorded used 2048)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
