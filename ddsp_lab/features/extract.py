"""`compute`: audio of any length at any sample rate -> the model's features, by the path of
prepared data (resampled in blocks as prepare reads a file, loudness and CREPE per recording in
bounded blocks)."""
from __future__ import annotations

import torch
from torch import Tensor

from .crepe import CrepeF0
from .framing import resample_recording
from .loudness import recording_loudness
from .settings import FeatureSettings


def recording_features(audio: Tensor, settings: FeatureSettings, crepe: CrepeF0) -> dict[str, Tensor]:
    """One recording [n_samples] at settings.sample_rate (float32, CPU) -> f0_hz, f0_confidence,
    loudness_db, each [n_samples // hop]: the loudness of the whole recording, then CREPE over all
    its frames, both in blocks (memory for one block whatever the length)."""
    sr, fr = settings.sample_rate, settings.frame_rate
    loudness = recording_loudness(audio, sr, fr, settings.loudness_n_fft)
    f0_hz, confidence = torch.zeros_like(loudness), torch.zeros_like(loudness)
    for j0, f0_block, conf_block in crepe.track(audio, sr, fr):
        f0_hz[j0:j0 + len(f0_block)], confidence[j0:j0 + len(f0_block)] = f0_block, conf_block
    return {"f0_hz": f0_hz, "f0_confidence": confidence, "loudness_db": loudness}


def _check_crepe(crepe: CrepeF0, settings: FeatureSettings) -> None:
    if (crepe.model_name, crepe.viterbi) != (settings.crepe_model, settings.viterbi):
        raise ValueError(f"crepe must be a CrepeF0({settings.crepe_model!r}, viterbi={settings.viterbi}) for "
                         f"these settings, got CrepeF0({crepe.model_name!r}, viterbi={crepe.viterbi})")


def compute(audio: Tensor, sample_rate: int, settings: FeatureSettings | None = None,
            device: str | None = None, crepe: CrepeF0 | None = None) -> dict[str, Tensor]:
    """The features a model takes, computed from audio exactly as `ddsp-lab prepare` computes its
    columns: this is what users call (`dsp.compute_loudness` keeps the reference's low-level
    defaults, n_fft 512, which give other values: about 6 dB apart on a tone).

    Args:
        audio: [batch, n_samples] or [n_samples] at sample_rate, any length; each row is one recording.
        sample_rate: of audio, Hz; resampled to settings.sample_rate (in blocks, as prepare reads files).
        settings: the features' settings (default FeatureSettings()): a trained model's
            `model.feature_settings`, or a prepared dataset's `DDSPDataModule(path).feature_settings`.
        device: CREPE's device (default: CUDA when available).
        crepe: a CrepeF0 of the settings' model and decoder, to reuse over many calls (else one is
            loaded per call).
    Returns:
        {"f0_hz", "f0_confidence", "loudness_db"}: each [batch, n_frames] float32 on audio's device,
        n_frames = (the length at settings.sample_rate) // hop; frame j is centred on sample j * hop.
        Memory per row: the recording, its 16 kHz copy and one block of analysis.
    """
    settings = settings if settings is not None else FeatureSettings()
    if not isinstance(settings, FeatureSettings):
        raise ValueError(f"settings must be a FeatureSettings, got {type(settings).__name__}")
    if audio.dim() not in (1, 2) or audio.shape[-1] == 0:
        raise ValueError(f"audio must be [batch, n_samples] or [n_samples] with n_samples >= 1, "
                         f"got {tuple(audio.shape)}")
    if crepe is None:
        crepe = CrepeF0(settings.crepe_model, settings.viterbi, device)
    _check_crepe(crepe, settings)
    rows = audio.detach().reshape(-1, audio.shape[-1]).cpu().float()  # [batch, n_samples]
    out = [recording_features(resample_recording(row, int(sample_rate), settings.sample_rate), settings, crepe)
           for row in rows]
    return {key: torch.stack([o[key] for o in out]).to(audio.device) for key in out[0]}
