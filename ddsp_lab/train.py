"""Training glue: a Trainer from config with checkpoints in the run directory, and resume."""
from __future__ import annotations

import sys
import time
from datetime import timedelta
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


class PlainProgress(pl.Callback):
    """Progress as one plain line per log interval, for output that is not a terminal (CI, SLURM
    logs, `| tee`), where a redrawn bar grows into megabytes:
    `step 100/30000  train/total 4.2113  train/spectral 4.2113  12.3 steps/s  ETA 0:40:28`,
    and one line per validation. Rank 0 prints; metrics are read only then (a host sync)."""

    def __init__(self, every_n_steps: int = 50):
        self.every_n_steps = max(1, int(every_n_steps))
        self._last: tuple[int, float] | None = None   # (step, training seconds) at the last line
        self._start: tuple[int, float] | None = None  # the same at train start
        self._clock, self._paused, self._val_started = time.monotonic, 0.0, None

    def _train_seconds(self) -> float:
        """Seconds spent training since the epoch of the clock, validation excluded."""
        return self._clock() - self._paused

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last = (trainer.global_step, self._train_seconds())

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_started = self._clock()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        step, now = trainer.global_step, self._train_seconds()
        last_step, last_time = self._last or (step, now)
        if not trainer.is_global_zero or step == last_step or (step % self.every_n_steps and step != trainer.max_steps):
            return
        # rates over training time only (validation paused the clock): this interval's for the line,
        # the run's so far for the ETA, so a validation neither dips the rate nor inflates the ETA
        rate = (step - last_step) / max(now - last_time, 1e-9)
        first_step, first_time = self._start or (last_step, last_time)
        mean_rate = (step - first_step) / max(now - first_time, 1e-9)
        self._last = (step, now)
        line = f"step {step}/{trainer.max_steps}" if trainer.max_steps > 0 else f"step {step}"
        line += "".join(f"  {k} {float(v):.4f}" for k, v in trainer.callback_metrics.items() if k.startswith("train/"))
        line += f"  {rate:.2f} steps/s"
        if trainer.max_steps > 0:
            line += f"  ETA {timedelta(seconds=round((trainer.max_steps - step) / max(mean_rate, 1e-9)))}"
        print(line, flush=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_started is not None:
            self._paused += self._clock() - self._val_started
            self._val_started = None
        if trainer.is_global_zero and not trainer.sanity_checking:
            print(f"validation at step {trainer.global_step}" + "".join(
                f"  {k} {float(v):.4f}" for k, v in trainer.callback_metrics.items() if k.startswith("val/")), flush=True)


def _interactive() -> bool:
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def fit(model: pl.LightningModule, datamodule: pl.LightningDataModule, trainer_cfg, logger, run_dir: Path,
        resume=False, callbacks: list | None = None, validate_first: bool = False):
    """Fits; returns (final logged metrics, validation metrics before training or None). The
    progress bar shows when stdout is a terminal; otherwise PlainProgress prints plain lines."""
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, every_n_train_steps=None)
    trainer_cfg = OmegaConf.to_container(trainer_cfg, resolve=True) if OmegaConf.is_config(trainer_cfg) else dict(trainer_cfg)
    # The bar reads its metrics from the device (a host sync) at each refresh: on GPUs, refresh
    # only every few steps (trainer.progress_bar_refresh_steps) to keep the step free of syncs.
    refresh = int(trainer_cfg.pop("progress_bar_refresh_steps", 1))
    extra = []
    if trainer_cfg.get("enable_progress_bar", True) and _interactive():
        extra = [TQDMProgressBar(refresh_rate=refresh)]
    elif trainer_cfg.get("enable_progress_bar", True):  # not a terminal: plain lines, not a redrawn bar
        trainer_cfg["enable_progress_bar"] = False
        extra = [PlainProgress(trainer_cfg.get("log_every_n_steps", 50))]
    trainer: pl.Trainer = hydra.utils.instantiate(trainer_cfg, logger=logger, default_root_dir=str(run_dir),
                                                  callbacks=[checkpoint, *extra, *(callbacks or [])])
    initial = None
    if validate_first:
        initial = {k: float(v) for k, v in trainer.validate(model, datamodule=datamodule, verbose=False)[0].items()}
    trainer.fit(model, datamodule=datamodule, ckpt_path=resolve_resume(resume, run_dir))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}, initial
