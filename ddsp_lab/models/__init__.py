"""LightningModules."""
from .autoencoder import DDSPAutoencoder
