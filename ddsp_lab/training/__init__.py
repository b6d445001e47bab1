"""Training: the LightningModule that wraps a DDSP model (losses, optimiser, guard, logging), its
callbacks, and `train(cfg)`, what `ddsp-lab train` runs."""
from .callbacks import PlainProgress
from .runner import build_model, fit, model_config, plain, resolve_resume, train
from .module import DDSPAutoencoder, upgrade_state_dict
