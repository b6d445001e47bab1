"""Using a trained model without a Trainer: load a checkpoint, synthesize, export."""
from __future__ import annotations

from pathlib import Path

import hydra
import torch
from torch import Tensor, nn

from .autoencoder import DDSPAutoencoder


def load(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> DDSPAutoencoder:
    """A trained DDSPAutoencoder in eval mode from a checkpoint written by `ddsp-lab train`
    (self-contained: the checkpoint carries the resolved config of the model's parts)."""
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint does not exist: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    cfg = ckpt.get("ddsp_lab_config")
    if cfg is None:
        raise ValueError(f"{path} holds no ddsp_lab config (was it written by `ddsp-lab train`?)")
    parts = {k: hydra.utils.instantiate(v) if v is not None else None for k, v in cfg.items()}
    model = DDSPAutoencoder(parts["preprocessor"], parts["decoder"], parts["synth"], parts["loss"],
                            encoder=parts["encoder"])
    model.load_state_dict(ckpt["state_dict"])
    model.config = cfg
    return model.eval()


class Synthesizer(nn.Module):
    """f0 [batch, n_frames, 1] (Hz) and loudness [batch, n_frames, 1] (dB) -> audio: preprocessor,
    decoder and synth stack of a trained model, as one module for export (no encoder, no noise
    randomness beyond the processors' own)."""

    def __init__(self, model: DDSPAutoencoder):
        super().__init__()
        self.preprocessor, self.decoder, self.synth = model.preprocessor, model.decoder, model.synth

    def forward(self, f0_hz: Tensor, loudness_db: Tensor) -> Tensor:
        features = self.preprocessor({"f0_hz": f0_hz, "loudness_db": loudness_db})
        return self.synth.run(self.decoder(features))[self.synth.output]


def export(model: DDSPAutoencoder, f0_hz: Tensor, loudness_db: Tensor):
    """torch.export of the Synthesizer for the example input shapes; returns the ExportedProgram
    (save with torch.export.save). Check it against the eager model with the same inputs."""
    return torch.export.export(Synthesizer(model).eval(), (f0_hz, loudness_db))
