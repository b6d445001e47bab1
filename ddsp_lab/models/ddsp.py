"""DDSP: the model itself, a plain nn.Module (no Lightning): features -> preprocessor -> encoder
-> decoder -> synth stack -> audio, of any length. Training wraps it (ddsp_lab.training);
`ddsp_lab.load` gives one back from a checkpoint."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from .. import dsp
from ..features import FeatureSettings
from ..processors import PositionalNoise, ProcessorGroup

# Keys a preprocessor or an encoder provides (never a decoder head). An encoder may declare more
# with an `output_keys` attribute.
FEATURE_KEYS = frozenset({"audio", "f0_hz", "f0_confidence", "loudness_db", "f0_scaled", "ld_scaled", "z"})


class DDSP(nn.Module):
    """The DDSP model: features -> audio.

    Args:
        preprocessor: features -> network-range inputs (F0LoudnessPreprocessor).
        decoder: features -> named synth controls (RnnFcDecoder, MlpDecoder). Made with
            output_splits=None, its heads are derived here from the synth stack's inputs that
            are not features (their sizes from the processors); given, they are checked.
        synth: the ProcessorGroup that renders the controls.
        encoder: optional (ZEncoder, F0ResNetEncoder, EncoderChain) between the two.
        sample_rate, frame_rate: the model's rates (hop = sample_rate // frame_rate).

    Length comes from the input: n_frames of f0 (and loudness) -> n_frames * hop samples; a
    training batch renders as long as its audio.

    Use:
        model(batch) -> every signal and control (what training calls);
        model.synthesize(f0_hz, loudness_db[, z=..., audio=...]) -> audio [batch, n_frames * hop];
        model.render(features, chunk_seconds=10, seed=0) -> the same, in chunks of bounded memory
            (state carried between chunks; equal to one shot within float rounding);
        model.from_audio(audio, sample_rate) -> resynthesis of a recording: features computed as
            the training data's were (feature_settings), then rendered;
        model.stream_state() / model.stream(frames, state) -> real-time blocks.
    """

    def __init__(self, preprocessor: nn.Module, decoder: nn.Module, synth: ProcessorGroup,
                 encoder: nn.Module | None = None, sample_rate: int = 16000, frame_rate: int = 250):
        super().__init__()
        if sample_rate % frame_rate:
            raise ValueError(f"frame_rate must divide sample_rate ({sample_rate}), got {frame_rate}")
        if synth.sample_rate is not None and synth.sample_rate != sample_rate:
            raise ValueError(f"the synth stack runs at {synth.sample_rate} Hz but the model's sample_rate is "
                             f"{sample_rate}: set both from one sample_rate")
        self.preprocessor, self.encoder, self.decoder, self.synth = preprocessor, encoder, decoder, synth
        self.sample_rate, self.frame_rate = int(sample_rate), int(frame_rate)
        self._derive_heads()
        self.config: dict | None = None  # the resolved config of its parts (set by training / load)
        # the training data's record (ddsp_lab.load sets it from the checkpoint; None otherwise)
        self.dataset_info: dict | None = None  # name, source, path, content_hash, statistics, feature_settings
        self.dataset_statistics: dict | None = None  # quantiles of loudness and f0, ...
        self.feature_settings: FeatureSettings | None = None  # how its training features were computed

    # -- construction ---------------------------------------------------------------------------
    def _feature_keys(self) -> set[str]:
        return set(FEATURE_KEYS) | set(getattr(self.encoder, "output_keys", ()))

    def _derive_heads(self) -> None:
        needed = self.synth.external_inputs()
        heads = {k: n for k, n in needed.items() if k not in self._feature_keys()}
        if getattr(self.decoder, "output_splits", ()) is None:
            unknown = [k for k, n in heads.items() if n is None]
            if unknown:
                raise ValueError(f"the decoder's heads cannot be derived from the synth stack: the sizes of "
                                 f"{unknown} are not declared by their processors; give the decoder "
                                 f"output_splits (or the processors their sizes, e.g. n_harmonics, n_bands)")
            self.decoder.set_output_splits(list(heads.items()))
        produced = dict(getattr(self.decoder, "output_splits", ()) or ())
        missing = [k for k in heads if k not in produced]
        wrong = {k: (produced[k], n) for k, n in heads.items() if k in produced and n is not None and produced[k] != n}
        if missing or wrong:
            raise ValueError(f"the decoder's outputs {produced} do not fit the synth stack's inputs {needed}: "
                             f"missing {missing}, size mismatches (decoder, synth) {wrong}; leave the decoder's "
                             f"output_splits unset to derive them from the synth")

    @property
    def hop_size(self) -> int:
        """Audio samples per control frame (sample_rate / frame_rate)."""
        return dsp.hop_size(self.sample_rate, self.frame_rate)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def set_dataset(self, info: dict | None) -> None:
        """Attach the record of the training data (a DDSPDataModule.dataset_card(), or None)."""
        self.dataset_info = info
        self.dataset_statistics = (info or {}).get("statistics")
        settings = (info or {}).get("feature_settings")
        self.feature_settings = FeatureSettings.from_dict(settings) if settings is not None else None

    # -- the pipeline, written once -------------------------------------------------------------
    def encode(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """features -> preprocessor -> encoder: the decoder's inputs (every frame)."""
        features = self.preprocessor(dict(features))
        return self.encoder(features) if self.encoder is not None else features

    def decode(self, features: Mapping[str, Tensor], state: dict | None = None) -> dict[str, Tensor]:
        """The decoder's controls, in float32 (networks may run in bf16/fp16 under autocast; the
        synth stack, with its phases, cumulative sums and FFTs, never does). state: carried
        between the chunks of one signal (see the decoder)."""
        controls = self.decoder(features, state) if state is not None else self.decoder(features)
        return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in controls.items()}

    def forward(self, features: Mapping[str, Tensor], generator: torch.Generator | PositionalNoise | None = None,
                n_samples: int | None = None) -> dict[str, Tensor]:
        """Every signal and control of one pass (one shot). generator: where the synth's random
        processors draw noise (None: their own / the global RNG). n_samples: default
        n_samples_for(features)."""
        return self._pass(features, generator, lambda encoded: n_samples or self.n_samples_for(encoded))

    def _pass(self, features: Mapping[str, Tensor], generator, length, encoded: bool = False) -> dict[str, Tensor]:
        """encode (unless `encoded`) -> decode -> synth in one shot; length(encoded features) -> n_samples."""
        encoded = dict(features) if encoded else self.encode(features)
        controls = self.decode(encoded)
        device_type = next(v.device.type for v in controls.values() if torch.is_tensor(v))
        with torch.autocast(device_type=device_type, enabled=False):
            return self.synth.run(controls, generator=generator, n_samples=length(encoded))

    def render_once(self, features: Mapping[str, Tensor],
                    generator: torch.Generator | PositionalNoise | None = None, encoded: bool = False) -> Tensor:
        """The audio of features in one shot, n_frames * hop samples (what render does without
        chunks; with gradients, and what export traces). encoded: features already through encode."""
        frames = lambda encoded: int(encoded["f0_hz"].shape[1]) * self.hop_size  # noqa: E731
        return self._pass(features, generator, frames, encoded)[self.synth.output]

    def n_samples_for(self, features: Mapping[str, Tensor]) -> int:
        """The length to render: the target audio's where there is one (a training batch), else
        n_frames x hop from the f0 curve (any length)."""
        if "audio" in features and torch.is_tensor(features["audio"]):
            return int(features["audio"].shape[-1])
        if "f0_hz" not in features:
            raise ValueError(f"the model needs 'f0_hz' (or 'audio') to know the length, got {sorted(features)}")
        return int(features["f0_hz"].shape[1]) * self.hop_size

    # -- inference ------------------------------------------------------------------------------
    @staticmethod
    def _frames(f0_hz: Tensor, loudness_db: Tensor, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {"f0_hz": f0_hz if f0_hz.dim() == 3 else f0_hz[..., None],
                "loudness_db": loudness_db if loudness_db.dim() == 3 else loudness_db[..., None], **features}

    @torch.no_grad()
    def synthesize(self, f0_hz: Tensor, loudness_db: Tensor, chunk_seconds: float | None = None,
                   seed: int | None = None, **features: Tensor) -> Tensor:
        """Audio [batch, n_frames * hop] from f0 [batch, n_frames(, 1)] (Hz) and loudness (dB)
        curves of any length, e.g. for pitch / loudness control. Extra features pass through to
        the encoder and the decoder (`audio` for a z encoder, or `z` itself). See render."""
        return self.render(self._frames(f0_hz, loudness_db, features), chunk_seconds=chunk_seconds, seed=seed)

    @torch.no_grad()
    def render(self, features: Mapping[str, Tensor], chunk_seconds: float | None = None,
               seed: int | None = None, encoded: bool = False) -> Tensor:
        """Audio [batch, n_frames * hop] from features (f0_hz, loudness_db, ... [batch, n_frames, 1]).

        chunk_seconds: None renders in one shot; a duration renders the decoder and the synth
            stack chunk by chunk with their state carried (GRU state, oscillator phase, filter
            and reverb tails), so memory is bounded by the chunk (a 3 min take); the encoder,
            if any, runs once over the whole input. Chunked equals one shot within float
            rounding when the decoder is causal (RnnFcDecoder, MlpDecoder) and the noise seeded.
        seed: the synth's noise, keyed by sample position (PositionalNoise): the same render
            whatever the chunking. None: the processors' generators / the global RNG.
        encoded: the features are already through `encode` (e.g. with an edited f0 or z).
        """
        generator = PositionalNoise(seed) if seed is not None else None
        if chunk_seconds is None:
            return self.render_once(features, generator, encoded)
        chunk = max(1, int(round(float(chunk_seconds) * self.frame_rate)))
        encoded = dict(features) if encoded else self.encode(features)
        n_frames = int(encoded["f0_hz"].shape[1])
        state = self.stream_state()
        pieces = [self.stream({k: v[:, a:a + chunk] if _framewise(v, n_frames) else v for k, v in encoded.items()},
                              state, final=a + chunk >= n_frames, generator=generator, encoded=True)
                  for a in range(0, n_frames, chunk)]
        return torch.cat(pieces, dim=-1)

    @torch.no_grad()
    def from_audio(self, audio: Tensor, sample_rate: int, chunk_seconds: float | None = None,
                   seed: int | None = None, settings: FeatureSettings | None = None) -> Tensor:
        """Resynthesis of audio [batch, n_samples] (or [n_samples]) at any sample rate: the
        features of `features_from_audio`, rendered. Returns [batch, n_frames * hop] at
        self.sample_rate."""
        return self.render(self.features_from_audio(audio, sample_rate, settings), chunk_seconds=chunk_seconds,
                           seed=seed)

    @torch.no_grad()
    def features_from_audio(self, audio: Tensor, sample_rate: int, settings: FeatureSettings | None = None,
                            crepe=None, f0_hz: Tensor | None = None) -> dict[str, Tensor]:
        """What the model takes for a recording [batch, n_samples] (or [n_samples]) at any sample
        rate: f0_hz, f0_confidence, loudness_db [batch, n_frames, 1] computed as the training
        data's were (feature_settings, or `settings`; default FeatureSettings at the model's
        rates), plus `audio` resampled to the model's rate (n_frames * hop samples) for a model
        with an encoder; on the model's device. crepe: a CrepeF0 to reuse. f0_hz: a known pitch
        curve [batch, n_frames(, 1)] in Hz (confidence 1): CREPE is not run."""
        from .. import dsp, features as feats

        settings = settings or self.feature_settings or FeatureSettings(self.sample_rate, self.frame_rate)
        if settings.frame_rate != self.frame_rate:
            raise ValueError(f"settings.frame_rate ({settings.frame_rate}) must be the model's ({self.frame_rate})")
        audio = audio[None] if audio.dim() == 1 else audio
        if f0_hz is None:
            computed = feats.compute(audio, sample_rate, settings, crepe=crepe)
        else:
            rows = [feats.resample_recording(row.detach().cpu().float(), int(sample_rate), settings.sample_rate)
                    for row in audio.reshape(-1, audio.shape[-1])]
            loudness = torch.stack([feats.recording_loudness(r, settings.sample_rate, settings.frame_rate,
                                                             settings.loudness_n_fft) for r in rows])
            f0_hz = (f0_hz[..., 0] if f0_hz.dim() == 3 else f0_hz.reshape(1, -1) if f0_hz.dim() == 1 else f0_hz)
            if f0_hz.shape != loudness.shape:
                raise ValueError(f"f0_hz must have the recording's frames [batch, n_frames] = {tuple(loudness.shape)} "
                                 f"({settings.frame_rate} frames/s), got {tuple(f0_hz.shape)}")
            computed = {"f0_hz": f0_hz.float().cpu(), "f0_confidence": torch.ones_like(loudness), "loudness_db": loudness}
        batch = {k: v[..., None].to(self.device) for k, v in computed.items()
                 if k in ("f0_hz", "f0_confidence", "loudness_db")}
        if self.encoder is not None:
            at_rate = dsp.resample_audio(audio.float(), int(sample_rate), self.sample_rate)
            n = batch["f0_hz"].shape[1] * self.hop_size
            batch["audio"] = torch.nn.functional.pad(at_rate, (0, max(0, n - at_rate.shape[-1])))[:, :n].to(self.device)
        return batch

    # -- chunks and real time -------------------------------------------------------------------
    def stream_state(self) -> dict:
        """A fresh state for `stream` (one per signal)."""
        return {"decoder": {}, "synth": {}, "pending": None}

    def stream_lookahead(self) -> int:
        """Frames the synth stack needs past the frames it renders: stream's latency, in frames."""
        return self.synth.stream_lookahead()

    @torch.no_grad()
    def stream(self, features: Mapping[str, Tensor], state: dict, final: bool = False,
               generator: torch.Generator | PositionalNoise | None = None, encoded: bool = False) -> Tensor:
        """The audio of the next frames of one signal, continuing the previous calls.

        features: the next frames (f0_hz, loudness_db, ... [batch, n, 1]; `encoded`: already
            through encode). state: from stream_state(), kept between calls. final: the signal
            ends with these frames (the held-back frames are rendered).
        Returns [batch, k * hop] samples: the synth needs stream_lookahead() frames past the
        ones it renders, so each call renders the frames received so far except the last
        stream_lookahead() ones, which the next call (or final=True) renders. All calls together
        give n_frames * hop samples equal to one `render` of the whole signal (float rounding)
        when the decoder is causal, and with the same seeded noise (PositionalNoise).
        """
        if not encoded:
            if self.encoder is not None:
                raise ValueError("stream: a model with an encoder renders from whole inputs (render / "
                                 "from_audio with chunk_seconds); block-by-block encoders are not implemented yet")
            features = self.encode(features)
        needed = self.synth.external_inputs()
        n_new = int(features["f0_hz"].shape[1])
        controls = self.decode(features, state["decoder"])
        controls = {k: controls[k] for k in needed if k in controls}
        pending = state["pending"]
        if pending is not None:
            controls = {k: torch.cat([pending[k], v], dim=1) if v.dim() == 3 else v for k, v in controls.items()}
        n_have = n_new + (0 if pending is None else int(next(v for v in pending.values() if v.dim() == 3).shape[1]))
        n_render = n_have if final else max(0, n_have - self.stream_lookahead())
        state["pending"] = {k: v[:, n_render:] if v.dim() == 3 else v for k, v in controls.items()}
        if n_render == 0:
            ref = next(v for v in controls.values() if torch.is_tensor(v))
            return ref.new_zeros(ref.shape[0], 0)
        return self.synth.stream(controls, n_render * self.hop_size, state["synth"], generator=generator)


def _framewise(value, n_frames: int) -> bool:
    """A [batch, n_frames, ...] feature (sliced per chunk), not audio or a constant."""
    return torch.is_tensor(value) and value.dim() == 3 and value.shape[1] == n_frames
