"""Features: the one place that turns audio into what a model takes (CREPE f0 and confidence,
A-weighted loudness), for prepared data, validation metrics, the perceptual loss and users.

    from ddsp_lab import features
    feats = features.compute(audio, 44100, model.feature_settings)   # {"f0_hz", "f0_confidence", "loudness_db"}
    audio = model.synthesize(feats["f0_hz"], feats["loudness_db"])

`compute` gives exactly the columns `ddsp-lab prepare` writes for the same audio (the settings it
records in prepare_config.json, `FeatureSettings`). Only this package imports torchcrepe
(`crepe.import_torchcrepe`, `crepe.load_crepe`).
"""
from .confidence import CONFIDENT, hold_f0, is_confident
from .crepe import (CREPE_BINS, CREPE_LAYERS, CREPE_SAMPLE_RATE, CREPE_WINDOW, CrepeF0, crepe_activations,
                    crepe_frames, import_torchcrepe, load_crepe)
from .extract import compute, recording_features
from .framing import context_frames, frame_hop, resample_recording
from .loudness import LOUDNESS_N_FFT, compute_loudness_frames, loudness_n_fft, recording_loudness
from .settings import FeatureSettings

__all__ = ["CONFIDENT", "hold_f0", "is_confident", "CREPE_BINS", "CREPE_LAYERS", "CREPE_SAMPLE_RATE", "CREPE_WINDOW", "CrepeF0", "FeatureSettings",
           "LOUDNESS_N_FFT", "compute", "compute_loudness_frames", "context_frames", "crepe_activations",
           "crepe_frames", "frame_hop", "import_torchcrepe", "load_crepe", "loudness_n_fft",
           "recording_features", "recording_loudness", "resample_recording"]
