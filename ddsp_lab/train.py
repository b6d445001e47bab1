"""Training glue: a Trainer from config with checkpoints in the run directory, and resume."""
from __future__ import annotations

from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar


def build_model(cfg, **overrides) -> pl.LightningModule:
    """The model of a composed train config: cfg.model with its parts (preprocessor, encoder,
    decoder, synth, losses) instantiated from their groups."""
    return hydra.utils.instantiate(cfg.model, preprocessor=cfg.preprocessor, encoder=cfg.encoder,
                                   decoder=cfg.decoder, synth=cfg.synth, losses=cfg.loss, **overrides)


def resolve_resume(resume, run_dir: Path) -> str | None:
    """resume: False/None (fresh), True (the run directory's last checkpoint, which must exist),
    'auto' (for jobs a cluster may requeue: the newer of that checkpoint and Lightning's SLURM
    `hpc_ckpt_*.ckpt` in the run directory, else a fresh start), or a checkpoint path."""
    if resume in (None, False, "false", "False"):
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume == "auto":
        found = [p for p in (last, *run_dir.glob("hpc_ckpt_*.ckpt")) if p.exists()]
        return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None
    path = last if resume in (True, "true", "True") else Path(str(resume))
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint at {path}")
    return str(path)


def fit(model: pl.LightningModule, datamodule: pl.LightningDataModule, trainer_cfg, logger, run_dir: Path,
        resume=False, callbacks: list | None = None, validate_first: bool = False):
    """Fits; returns (final logged metrics, validation metrics before training or None)."""
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, every_n_train_steps=None)
    trainer_cfg = OmegaConf.to_container(trainer_cfg, resolve=True) if OmegaConf.is_config(trainer_cfg) else dict(trainer_cfg)
    # The bar reads its metrics from the device (a host sync) at each refresh: on GPUs, refresh
    # only every few steps (trainer.progress_bar_refresh_steps) to keep the step free of syncs.
    refresh = int(trainer_cfg.pop("progress_bar_refresh_steps", 1))
    extra = [TQDMProgressBar(refresh_rate=refresh)] if trainer_cfg.get("enable_progress_bar", True) else []
    trainer: pl.Trainer = hydra.utils.instantiate(trainer_cfg, logger=logger, default_root_dir=str(run_dir),
                                                  callbacks=[checkpoint, *extra, *(callbacks or [])])
    initial = None
    if validate_first:
        initial = {k: float(v) for k, v in trainer.validate(model, datamodule=datamodule, verbose=False)[0].items()}
    trainer.fit(model, datamodule=datamodule, ckpt_path=resolve_resume(resume, run_dir))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}, initial
