"""Callbacks that log audio, spectrograms and control plots (W&B, TensorBoard, run directory)."""
from .media import MediaLogger
