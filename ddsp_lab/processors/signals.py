"""Signal combinators: Add, Mix, Crop."""
from __future__ import annotations

import torch
from torch import Tensor

from .. import dsp
from .base import Processor


class Add(Processor):
    """signal_one + signal_two."""

    def get_controls(self, signal_one: Tensor, signal_two: Tensor) -> dict[str, Tensor]:
        if signal_one.shape != signal_two.shape:
            raise ValueError(f"Add needs equal shapes, got {tuple(signal_one.shape)} and {tuple(signal_two.shape)}")
        return {"signal_one": signal_one, "signal_two": signal_two}

    def get_signal(self, signal_one: Tensor, signal_two: Tensor) -> Tensor:
        return signal_one + signal_two

    def block(self, inputs, plan, constants, state):
        return self(*inputs), state


class Mix(Processor):
    """The reference's Mix: m = sigmoid(mix_level) upsampled linearly to the signals' length,
    out = sqrt(m) s1 + (1 - sqrt(|m - 1|)) s2 (not a crossfade: m -> 1 gives s1 + s2)."""

    def control_sizes(self) -> dict[str, int | None]:
        return {"signal_one": None, "signal_two": None, "nn_out_mix_level": 1}

    def get_controls(self, signal_one: Tensor, signal_two: Tensor, nn_out_mix_level: Tensor) -> dict[str, Tensor]:
        if signal_one.shape != signal_two.shape:
            raise ValueError(f"Mix needs signal_one and signal_two of equal shape, got "
                             f"{tuple(signal_one.shape)} and {tuple(signal_two.shape)}")
        mix = dsp.resample(torch.sigmoid(nn_out_mix_level), signal_one.shape[1])
        if signal_one.dim() == 2 and mix.dim() == 3:  # [b, n] audio with [b, t, 1] frame controls
            if mix.shape[-1] != 1:
                raise ValueError(f"nn_out_mix_level must be [batch, n_frames, 1] for [batch, n_samples] "
                                 f"signals, got {tuple(nn_out_mix_level.shape)}")
            mix = mix[..., 0]
        return {"signal_one": signal_one, "signal_two": signal_two, "mix_level": mix}

    def get_signal(self, signal_one: Tensor, signal_two: Tensor, mix_level: Tensor) -> Tensor:
        return torch.sqrt(mix_level) * signal_one + (1.0 - torch.sqrt(torch.abs(mix_level - 1.0))) * signal_two

    def stream_lookahead(self, hop: int) -> int:
        return 1  # the mix level interpolates towards the next frame

    def block(self, inputs, plan, constants, state):
        """The block's mix levels, upsampled one frame past the block (as one shot upsamples the
        whole curve), then cut to it."""
        one, two, level = inputs
        m, n = plan.n_frames, plan.n_frames * plan.hop
        level = level if level.shape[1] > m else torch.cat([level[:, :m], level[:, m - 1:m]], dim=1)
        mix = dsp.resample(torch.sigmoid(level[:, :m + 1]), (m + 1) * plan.hop)[:, :n]
        return self.get_signal(one, two, mix[..., 0] if one.dim() == 2 and mix.dim() == 3 else mix), state


class Crop(Processor):
    """Drop frame_size samples from the 'front' or the 'back', or frame_size // 2 from each end
    ('center': an odd frame_size removes frame_size - 1 samples, as the reference)."""

    def __init__(self, frame_size: int = 3000, crop_location: str = "front"):
        super().__init__()
        if crop_location not in ("front", "back", "center"):
            raise ValueError(f"crop_location must be 'front', 'back' or 'center', got {crop_location!r}")
        self.frame_size, self.crop_location = frame_size, crop_location

    def get_controls(self, audio: Tensor) -> dict[str, Tensor]:
        return {"audio": audio}

    def get_signal(self, audio: Tensor) -> Tensor:
        n = audio.shape[1]
        if self.crop_location == "front":
            return audio[:, self.frame_size:]
        if self.crop_location == "back":
            return audio[:, : n - self.frame_size]
        half = self.frame_size // 2
        return audio[:, half: n - half]
