"""The DDSP model (a plain nn.Module) and its use after training: load, export; what a checkpoint
may build (trust), what kind of model it is (traits), its training data's ranges (record)."""
from .ddsp import DDSP
from .loading import export, load
