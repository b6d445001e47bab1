"""Lightning's WandbLogger without a setting W&B has dropped: Lightning passes `anonymous` to
wandb.init on every run, and wandb 0.31 answers each with "The anonymous setting has no effect and
will be removed" (a warning nobody can act on). Everything else is Lightning's logger."""
from __future__ import annotations

from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger


class WandbLogger(_LightningWandbLogger):
    """pytorch_lightning.loggers.WandbLogger, minus the `anonymous` init setting (unless given)."""

    def __init__(self, *args, anonymous: bool | None = None, **kwargs):
        super().__init__(*args, anonymous=anonymous, **kwargs)
        if anonymous is None:
            self._wandb_init.pop("anonymous", None)
