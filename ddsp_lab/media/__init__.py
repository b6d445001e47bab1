"""Media: audio, spectrograms and control plots, written as files (files.py: WAV, PNG) and logged
during training (logger.MediaLogger: W&B, TensorBoard and the run directory)."""
from .files import save_figure, save_spectrogram, save_wav, show_spectrogram, spectrogram_db

__all__ = ["save_figure", "save_spectrogram", "save_wav", "show_spectrogram", "spectrogram_db"]
