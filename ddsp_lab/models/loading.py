"""Using a trained model without a Trainer: load a checkpoint, synthesize, export."""
from __future__ import annotations

import warnings
from pathlib import Path

import hydra
import torch
from torch import Tensor, nn

from .autoencoder import DDSPAutoencoder


def load(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> DDSPAutoencoder:
    """A trained DDSPAutoencoder in eval mode from a checkpoint written by `ddsp-lab train`.

    Self-contained: the checkpoint carries the resolved config of the model (its `model` section:
    sample and frame rate, loss weights, ...) and of its parts, so nothing else is needed.
    Checkpoints written before the model section was saved load with the parts and the default
    model settings (16 kHz, 250 frames/s), with a warning.

    The model comes back with its training data's record: `model.feature_settings` (the
    FeatureSettings to pass to `ddsp_lab.features.compute` for a new recording),
    `model.dataset_statistics` (f0 and loudness quantiles, ...) and `model.dataset_info` (name,
    content hash, ...); all None for checkpoints written before they were saved."""
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint does not exist: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises several types for a file that is not a checkpoint
        raise ValueError(f"{path} is not a torch checkpoint ({type(e).__name__}: {str(e)[:120]})") from e
    cfg = ckpt.get("ddsp_lab_config") if isinstance(ckpt, dict) else None
    if cfg is None or "state_dict" not in ckpt:
        raise ValueError(f"{path} holds no ddsp_lab model (no ddsp_lab_config / state_dict): was it written "
                         f"by `ddsp-lab train`?")
    parts = {k: hydra.utils.instantiate(_any_length(cfg.get(k))) if cfg.get(k) is not None else None
             for k in ("preprocessor", "encoder", "decoder", "synth", "loss")}
    if cfg.get("model"):
        model = hydra.utils.instantiate(cfg["model"], preprocessor=parts["preprocessor"], encoder=parts["encoder"],
                                        decoder=parts["decoder"], synth=parts["synth"], losses=parts["loss"])
    else:
        warnings.warn(f"{path} predates checkpoints that carry the model section: loaded with the default "
                      f"model settings (sample_rate 16000, frame_rate 250)")
        model = DDSPAutoencoder(parts["preprocessor"], parts["decoder"], parts["synth"], parts["loss"],
                                encoder=parts["encoder"])
    model.load_state_dict(ckpt["state_dict"])
    model.config = cfg
    model.set_dataset(ckpt.get("ddsp_lab_dataset"))  # older checkpoints: None
    return model.eval()


def _any_length(node):
    """A part's config without the fixed lengths that checkpoints written before any-length
    rendering carry (processors' n_samples, the preprocessor's and encoders' time_steps)."""
    if isinstance(node, dict):
        return {k: _any_length(v) for k, v in node.items() if k not in ("n_samples", "time_steps")}
    if isinstance(node, list):
        return [_any_length(v) for v in node]
    return node


class Synthesizer(nn.Module):
    """f0 [batch, n_frames, 1] (Hz) and loudness [batch, n_frames, 1] (dB) -> audio: preprocessor,
    decoder and synth stack of a trained model, as one module for export (no encoder, no noise
    randomness beyond the processors' own)."""

    def __init__(self, model: DDSPAutoencoder):
        super().__init__()
        self.preprocessor, self.decoder, self.synth = model.preprocessor, model.decoder, model.synth
        self.hop_size = model.hop_size

    def forward(self, f0_hz: Tensor, loudness_db: Tensor) -> Tensor:
        features = self.preprocessor({"f0_hz": f0_hz, "loudness_db": loudness_db})
        return self.synth.run(self.decoder(features), n_samples=f0_hz.shape[1] * self.hop_size)[self.synth.output]


def export(model: DDSPAutoencoder, f0_hz: Tensor, loudness_db: Tensor):
    """torch.export of the Synthesizer for the example input shapes; returns the ExportedProgram
    (save with torch.export.save). Check it against the eager model with the same inputs."""
    return torch.export.export(Synthesizer(model).eval(), (f0_hz, loudness_db))
