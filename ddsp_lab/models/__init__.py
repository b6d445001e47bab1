"""The DDSP model (a plain nn.Module) and its use after training: load, export."""
from .ddsp import DDSP
from .loading import export, load


def __getattr__(name):
    # ddsp_lab.models.DDSPAutoencoder: the training module's old home (configs and checkpoints name it)
    if name == "DDSPAutoencoder":
        from ..training import DDSPAutoencoder

        return DDSPAutoencoder
    raise AttributeError(f"module 'ddsp_lab.models' has no attribute {name!r}")
