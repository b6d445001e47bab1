"""Training callbacks of our own (media logging: ddsp_lab.media.logger)."""
from __future__ import annotations

import time
from datetime import timedelta

import pytorch_lightning as pl


def _time_left(trainer: pl.Trainer) -> float | None:
    """Seconds of training left under trainer.max_time (Lightning's Timer), None without one."""
    from pytorch_lightning.callbacks import Timer

    timer = next((c for c in getattr(trainer, "callbacks", ()) if isinstance(c, Timer)), None)
    return None if timer is None else timer.time_remaining("train")


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
        eta = (trainer.max_steps - step) / max(mean_rate, 1e-9) if trainer.max_steps > 0 else None
        left = _time_left(trainer)  # trainer.max_time ends the run first: the ETA is the time left
        if left is not None and (eta is None or left < eta):
            line += f"  ETA {timedelta(seconds=round(left))} (max_time)"
        elif eta is not None:
            line += f"  ETA {timedelta(seconds=round(eta))}"
        print(line, flush=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_started is not None:
            self._paused += self._clock() - self._val_started
            self._val_started = None
        if trainer.is_global_zero and not trainer.sanity_checking:
            print(f"validation at step {trainer.global_step}" + "".join(
                f"  {k} {float(v):.4f}" for k, v in trainer.callback_metrics.items() if k.startswith("val/")), flush=True)
