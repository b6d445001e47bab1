"""The DDSP autoencoder as a LightningModule: preprocess -> encode -> decode -> synth -> losses,
every part a module built from config."""
from __future__ import annotations

from typing import Callable, Mapping

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from ..processors import ProcessorGroup


class DDSPAutoencoder(pl.LightningModule):
    """Args:
        preprocessor: features -> f0_scaled, ld_scaled, ... (e.g. F0LoudnessPreprocessor).
        decoder: features -> named synth controls (e.g. RnnFcDecoder).
        synth: a ProcessorGroup whose output is the synthesized audio.
        losses: {name: loss module called loss(target_audio, audio)}.
        loss_weights: {name: weight} (default 1 each); the training loss is the weighted sum.
        encoder: optional (e.g. ZEncoder), between preprocessor and decoder.
        optimizer: a partial optimizer (Hydra `_partial_: true`), given the parameters.
        scheduler: optional partial LR scheduler, stepped every optimisation step.
    The decoder's outputs are checked against the synth's inputs at construction.
    """

    def __init__(self, preprocessor: nn.Module, decoder: nn.Module, synth: ProcessorGroup,
                 losses: Mapping[str, nn.Module], loss_weights: Mapping[str, float] | None = None,
                 encoder: nn.Module | None = None, optimizer: Callable | None = None,
                 scheduler: Callable | None = None):
        super().__init__()
        self.preprocessor, self.encoder, self.decoder, self.synth = preprocessor, encoder, decoder, synth
        self.losses = nn.ModuleDict(dict(losses))
        if not self.losses:
            raise ValueError("DDSPAutoencoder needs at least one loss")
        self.loss_weights = {k: float((loss_weights or {}).get(k, 1.0)) for k in self.losses}
        self.optimizer_fn, self.scheduler_fn = optimizer, scheduler
        self._check_controls()

    def _check_controls(self) -> None:
        produced = dict(getattr(self.decoder, "output_splits", ()))
        needed = self.synth.external_inputs()
        features = {"f0_hz", "loudness_db", "audio", "f0_scaled", "ld_scaled", "z", "f0_confidence"}
        missing = [k for k in needed if k not in produced and k not in features]
        wrong = {k: (produced[k], n) for k, n in needed.items() if k in produced and n is not None and produced[k] != n}
        if missing or wrong:
            raise ValueError(f"the decoder's outputs {produced} do not fit the synth stack's inputs {needed}: "
                             f"missing {missing}, size mismatches (decoder, synth) {wrong}")

    def forward(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        features = self.preprocessor(dict(batch))
        if self.encoder is not None:
            features = self.encoder(features)
        return self.synth.run(self.decoder(features))

    def compute_losses(self, batch: Mapping[str, Tensor], outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        audio = outputs[self.synth.output]
        target = batch["audio"][..., : audio.shape[-1]]
        terms = {name: loss(target, audio) for name, loss in self.losses.items()}
        terms["total"] = sum(self.loss_weights[k] * v for k, v in terms.items())
        return terms

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        terms = self.compute_losses(batch, self(batch))
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=batch["audio"].shape[0])
        return terms["total"]

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        terms = self.compute_losses(batch, self(batch))
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, prog_bar=True, batch_size=batch["audio"].shape[0],
                      sync_dist=True)

    def configure_optimizers(self):
        opt = (self.optimizer_fn or (lambda p: torch.optim.Adam(p, lr=3e-4)))(self.parameters())
        if self.scheduler_fn is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler_fn(opt), "interval": "step"}}
