"""LightningModules and their use after training."""
from .autoencoder import DDSPAutoencoder
from .loading import Synthesizer, export, load
