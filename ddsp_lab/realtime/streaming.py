"""Real time: a trained model played block by block, rendering what the offline model renders.

    from ddsp_lab import load
    from ddsp_lab.realtime import StreamingModel
    live = StreamingModel(load("runs/violin/checkpoints/best.ckpt"), block_size=512)
    for f0_block, loudness_block in controls:          # [1, 512 / hop] each, at the control rate
        audio = live(f0_block, loudness_block)          # [1, 512]: the next block of audio
    live.reset()                                        # a new performance

State lives in the module (the decoder's GRU state, the oscillator phase in float64, the filtered
noise's overlap-add tail, the reverb's partitioned convolution, the ModDelay line), carried by
`DDSP.stream`. The synth stack needs `model.stream_lookahead()` frames past the ones it renders
(the filtered noise's centred filters: 1 frame for the shipped stacks), so the output is delayed by
exactly `latency` samples: block k's output holds the audio of samples
[k * block - latency, (k + 1) * block - latency) of the offline render (zeros before the start).
With the noise keyed by position (seed), the stream equals `model.render(..., seed=seed)` within
float rounding (tests/test_streaming.py).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import dsp
from ..processors import PositionalNoise

BLOCK_SIZES = (64, 4096)  # the block sizes supported, in samples (inclusive)


def check_block_size(block_size, hop: int, sample_rate: int, frame_rate: int) -> int:
    """block_size as an int, if it is a whole number of hops within BLOCK_SIZES; else a ValueError
    with the nearest valid sizes."""
    if isinstance(block_size, bool) or int(block_size) != block_size or not \
            BLOCK_SIZES[0] <= int(block_size) <= BLOCK_SIZES[1] or int(block_size) % hop:
        lo = -(-BLOCK_SIZES[0] // hop) * hop
        valid = [lo * 2 ** k for k in range(8) if lo * 2 ** k <= BLOCK_SIZES[1]]
        raise ValueError(f"block_size must be a whole number of hops ({hop} samples at {sample_rate} Hz, "
                         f"{frame_rate} frames/s) between {BLOCK_SIZES[0]} and {BLOCK_SIZES[1]}, got "
                         f"{block_size!r}; e.g. {valid}")
    return int(block_size)


class StreamingModel(nn.Module):
    """One block of controls in, one block of audio out, with the state carried inside.

    Args:
        model: a DDSP (ddsp_lab.load(checkpoint)); its decoder must be causal (RNN-FC, MLP). A
            model whose encoder computes z from audio takes z as a control instead
            (`forward(f0, loudness, z)`); one that predicts f0 from audio cannot stream yet.
        block_size: samples per call, 64..4096, a whole number of hops (hop = sample_rate /
            frame_rate: 64 at 16 kHz, 192 at 48 kHz); anything else is refused with the nearest
            valid sizes.
        sample_rate: the host's rate, if known: it must be the model's (no resampling inside).
        seed: the synth's noise, keyed by sample position (None: the processors' generators).
    """

    def __init__(self, model, block_size: int, sample_rate: int | None = None, seed: int | None = 0):
        super().__init__()
        from ..models.traits import check_model, predicts_f0, reads_z

        check_model(model)
        if predicts_f0(model):
            raise ValueError("StreamingModel: this model predicts f0 from audio (its F0ResNetEncoder); streaming "
                             "takes f0 as a control: use a supervised model")
        hop = model.hop_size
        check_block_size(block_size, hop, model.sample_rate, model.frame_rate)
        if sample_rate is not None and int(sample_rate) != model.sample_rate:
            raise ValueError(f"sample_rate: the model runs at {model.sample_rate} Hz, the host at {int(sample_rate)} Hz; "
                             f"run the host at {model.sample_rate} Hz or train a model at {int(sample_rate)} Hz")
        self.model = model.eval()
        self.block_size, self.hop = int(block_size), hop
        self.frames_per_block = self.block_size // hop
        self.takes_z = reads_z(model)
        self.seed = seed
        self.latency = model.stream_lookahead() * hop  # samples
        self.reset()

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    def reset(self) -> None:
        """Forget the performance: the next block starts a new signal (as a fresh StreamingModel)."""
        self._state = self.model.stream_state()
        self._generator = PositionalNoise(self.seed) if self.seed is not None else None
        self._fifo = torch.zeros(1, self.latency, device=self.model.device)
        self._n_blocks = 0

    def _curve(self, name: str, value: Tensor, channels: int = 1) -> Tensor:
        value = torch.as_tensor(value, device=self.model.device, dtype=torch.float32)
        value = value.reshape(1, -1, channels) if value.dim() < 3 else value
        if value.shape != (1, self.frames_per_block, channels):
            raise ValueError(f"{name} must be one block of {self.frames_per_block} frames "
                             f"([1, {self.frames_per_block}{', ' + str(channels) if channels > 1 else ''}] at "
                             f"{self.model.frame_rate} frames/s for a block of {self.block_size} samples), got "
                             f"{tuple(value.shape)}")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} holds NaN or inf")
        return value

    @torch.no_grad()
    def forward(self, f0_hz: Tensor, loudness_db: Tensor, z: Tensor | None = None) -> Tensor:
        """The next block: f0 (Hz) and loudness (dB) [1, frames_per_block] (or [..., 1]), and z
        [1, frames_per_block, z_dims] for a z model. Returns [1, block_size]."""
        features = {"f0_hz": self._curve("f0_hz", f0_hz), "loudness_db": self._curve("loudness_db", loudness_db)}
        if self.takes_z:
            if z is None:
                raise ValueError("z: this model decodes z (its ZEncoder reads it from audio offline); give z "
                                 f"[1, {self.frames_per_block}, z_dims] per block")
            encoded = self.model.preprocessor(features)
            encoded["z"] = self._curve("z", z, int(torch.as_tensor(z).shape[-1]))
        elif z is not None:
            raise ValueError("z: this model has no z encoder; call with f0_hz and loudness_db only")
        else:
            encoded = self.model.preprocessor(features)
        audio = self.model.stream(encoded, self._state, generator=self._generator, encoded=True)
        self._fifo = torch.cat([self._fifo, audio], dim=-1)
        out, self._fifo = self._fifo[:, :self.block_size], self._fifo[:, self.block_size:]
        self._n_blocks += 1
        return out

    def audio_rate(self, x: Tensor) -> Tensor:
        """The plugin hosts' convention (nn~, libtorch): controls as audio-rate signals
        x [1, channels, block_size] (f0 in Hz, loudness in dB[, z...]), read at each frame's first
        sample -> [1, 1, block_size]."""
        if x.dim() != 3 or x.shape[0] != 1 or x.shape[-1] != self.block_size or x.shape[1] < 2:
            raise ValueError(f"x must be [1, channels >= 2, {self.block_size}] (f0 Hz, loudness dB[, z ...]) at the "
                             f"model's {self.sample_rate} Hz, got {tuple(x.shape)}")
        frames = x[:, :, ::self.hop].transpose(1, 2)  # [1, frames, channels]
        z = frames[..., 2:] if x.shape[1] > 2 else None
        return self(frames[..., 0], frames[..., 1], z)[:, None]


class LiveTransfer:
    """Timbre transfer of a live signal: one block of audio in, one block of the model's audio out.

    The input's features come from `ddsp_lab.features.LiveFeatures` (loudness and CREPE pitch per
    frame, as offline, `features.latency` samples late); frames CREPE is unsure of (confidence
    below `threshold`) keep the pitch of the last confident frame and are attenuated by
    `attenuate_db`, as the offline transfer does; `pitch_shift` (semitones) and `loudness_shift`
    (dB) apply to every frame; the StreamingModel renders them. A model that reads z gets it from
    the same audio through `ddsp_lab.realtime.LiveZ` (its ZEncoder per block), delayed to the
    features' frames. `latency` = the features' plus the synth's (1088 samples, 68 ms, at 16 kHz).
    The input must be at the model's rate.

    Args:
        model: a supervised DDSP (f0 and loudness controls). block_size: as StreamingModel.
        crepe_model: 'tiny' (fast enough on CPU) or 'full'.
    """

    def __init__(self, model, block_size: int, crepe_model: str = "tiny", pitch_shift: float = 0.0,
                 loudness_shift: float = 0.0, threshold: float | None = None, attenuate_db: float = 20.0,
                 seed: int | None = 0):
        from ..features import FeatureSettings
        from .live import LiveFeatures

        self.stream = StreamingModel(model, block_size, seed=seed)
        settings = model.feature_settings or FeatureSettings(model.sample_rate, model.frame_rate)
        self.features = LiveFeatures(settings, block_size, crepe_model)
        self.z = None
        if self.stream.takes_z:  # z from the same live audio, delayed to the features' frames
            from .live import LiveZ
            from ..networks.encoders import ZEncoder

            encoders = [m for m in model.modules() if isinstance(m, ZEncoder)]
            if not encoders:
                raise ValueError("LiveTransfer: the model reads z but has no ZEncoder to compute it from audio")
            self.z = LiveZ(encoders[0], block_size)
            lag = self.features.delay_frames - self.z.delay_frames
            if lag < 0:
                raise ValueError(f"LiveTransfer: z lags the features ({self.z.delay_frames} > {self.features.delay_frames} "
                                 "frames); a loudness window at least as long as the MFCC window is needed")
            self._z_lag = lag
        self.pitch_shift, self.loudness_shift = float(pitch_shift), float(loudness_shift)
        from ..features.confidence import CONFIDENT

        self.threshold = float(CONFIDENT if threshold is None else threshold)  # the offline transfer's
        self.attenuate_db = float(attenuate_db)
        self.latency = self.features.latency + self.stream.latency
        self.block_size, self.sample_rate = self.stream.block_size, model.sample_rate
        self.reset()

    def reset(self) -> None:
        self.stream.reset()
        self.features.reset()
        self._held = torch.zeros(1, 1)
        if self.z is not None:
            self.z.reset()
            self._z_fifo = torch.zeros(1, self._z_lag, self.z.z_dims)

    def controls(self, f0_hz: Tensor, confidence: Tensor, loudness_db: Tensor) -> tuple[Tensor, Tensor]:
        """One block of tracked features -> the model's (f0, loudness): held pitch, attenuation, shifts."""
        from ..features.confidence import hold_f0, is_confident

        on = is_confident(confidence, self.threshold)
        held = hold_f0(torch.cat([self._held, f0_hz], -1)[0], torch.cat([torch.ones(1, dtype=torch.bool), on[0]]))
        f0 = held[1:][None]
        self._held = f0[:, -1:]
        ld = torch.where(on, loudness_db, loudness_db - self.attenuate_db)
        return f0 * dsp.semitones_to_ratio(self.pitch_shift), ld + self.loudness_shift

    def __call__(self, audio: Tensor) -> Tensor:
        """The next block of input [1, block_size] -> the next block of output [1, block_size]."""
        f0, ld = self.controls(*self.features(audio))
        if self.z is None:
            return self.stream(f0, ld)
        z = torch.cat([self._z_fifo, self.z(audio).cpu()], dim=1)  # the features' frames: D_features late
        self._z_fifo = z[:, z.shape[1] - self._z_lag:]
        return self.stream(f0, ld, z[:, :self.z.frames_per_block])
