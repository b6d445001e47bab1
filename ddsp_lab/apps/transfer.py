"""Timbre transfer, pitch and loudness control (extrapolation included) and z interpolation."""
from __future__ import annotations

import dataclasses
import torch
from torch import Tensor

from ..models.traits import check_model, predicts_f0, reads_z  # noqa: F401 - the apps' names too
from . import curves as C
from .io import AppResult, check_recording

DEFAULT_CHUNK_SECONDS = 10.0  # renders in chunks of this: memory bounded whatever the length


def _settings(model, crepe_model: str | None):
    from ..features import FeatureSettings

    settings = model.feature_settings or FeatureSettings(model.sample_rate, model.frame_rate)
    return dataclasses.replace(settings, crepe_model=crepe_model) if crepe_model else settings


def recording_features(model, audio: Tensor, sample_rate: int, crepe_model: str | None = None,
                       f0_hz: Tensor | None = None, crepe=None, name: str = "audio") -> tuple[dict, list[str]]:
    """A recording [n_samples] at any rate -> the model's features [1, n_frames, 1] (CREPE and
    loudness as its training data's, or f0 given) and notes on resampling."""
    audio = check_recording(audio, name)
    notes = []
    if int(sample_rate) != model.sample_rate:
        notes.append(f"{name}: resampled from {int(sample_rate)} Hz to the model's {model.sample_rate} Hz")
    features = model.features_from_audio(audio[None], int(sample_rate), _settings(model, crepe_model), crepe=crepe,
                                         f0_hz=None if f0_hz is None else torch.as_tensor(f0_hz).reshape(1, -1))
    return features, notes


def _render(model, features: dict, chunk_seconds: float | None, seed: int | None, encoded: bool = False) -> Tensor:
    return model.render(features, chunk_seconds=chunk_seconds, seed=seed, encoded=encoded)[0].cpu()


@torch.no_grad()
def timbre_transfer(model, audio: Tensor, sample_rate: int, auto_adjust: bool = True, pitch_shift: float = 0.0,
                    loudness_shift: float = 0.0, confidence_threshold: float = C.CONFIDENT, quiet_db: float = 40.0,
                    attenuate_db: float = 20.0, f0_hz: Tensor | None = None, crepe_model: str | None = None,
                    chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS, seed: int | None = 0, crepe=None) -> AppResult:
    """Any recording [n_samples] (mono, any rate, any length) played by the model's instrument.

    f0 and loudness are computed as the model's training data's were (CREPE model and decoder,
    loudness FFT: model.feature_settings; crepe_model overrides the CREPE model, f0_hz gives the
    pitch curve instead), adjusted to the training data (curves.adjust: auto_adjust moves f0 by
    whole octaves into the training pitch range and maps loudness by quantiles; pitch_shift
    semitones and loudness_shift dB by hand; unconfident or quiet frames attenuated by
    attenuate_db), then rendered at the model's rate in chunks of chunk_seconds (memory bounded;
    None: one shot) with the noise seeded by `seed`. A z model takes z from the recording itself.
    """
    check_model(model)
    features, notes = recording_features(model, audio, sample_rate, crepe_model, f0_hz, crepe)
    f0, conf, ld = (features[k][0, :, 0].cpu() for k in ("f0_hz", "f0_confidence", "loudness_db"))
    if predicts_f0(model) and pitch_shift:
        raise ValueError("pitch_shift: this model predicts f0 from the audio (its F0ResNetEncoder): its pitch is "
                         "not a control; shift the recording's pitch before transfer, or use a supervised model")
    adjusted = C.adjust(f0, conf, ld, model.dataset_statistics, auto_adjust=auto_adjust, pitch_shift=pitch_shift,
                        loudness_shift=loudness_shift, confidence_threshold=confidence_threshold, quiet_db=quiet_db,
                        attenuate_db=attenuate_db, min_note_frames=int(0.1 * model.frame_rate))
    if predicts_f0(model) and adjusted.octaves:
        notes.append(f"auto_adjust: this model predicts f0 from the audio; the {adjusted.octaves:+d} octave(s) "
                     f"were not applied")
        adjusted.f0_hz = f0
    notes += adjusted.notes
    device = features["f0_hz"].device
    features = {**features, "f0_hz": adjusted.f0_hz[None, :, None].to(device),
                "loudness_db": adjusted.loudness_db[None, :, None].to(device)}
    out = _render(model, features, chunk_seconds, seed)
    curves = {"f0_hz/input": f0, "f0_hz/to the model": adjusted.f0_hz,
              "loudness_db/input": ld, "loudness_db/to the model": adjusted.loudness_db}
    _pitch_note(model, adjusted.f0_hz[adjusted.on], notes)
    return AppResult(out, model.sample_rate, model.frame_rate, curves, check_recording(audio), int(sample_rate), notes,
                     {"octaves": adjusted.octaves, "loudness_offset_db": adjusted.loudness_offset_db,
                      "frames": int(f0.numel()), "note_frames": int(adjusted.on.sum())}, "timbre transfer")


def _pitch_note(model, f0_hz: Tensor, notes: list[str]) -> None:
    """Say where a pitch curve leaves the training pitch range (the model extrapolates there)."""
    pitch = C.training_pitch_range(model.dataset_statistics)
    if pitch is None or f0_hz.numel() == 0:
        return
    midi = C.hz_to_midi(f0_hz.double())
    lo, hi = float(midi.min()), float(midi.max())
    if lo < pitch[0] - 0.5 or hi > pitch[2] + 0.5:
        notes.append(f"pitch MIDI {lo:.1f}-{hi:.1f} reaches outside the training range (MIDI {pitch[0]:.1f}-"
                     f"{pitch[2]:.1f}, its 5th-95th percentile): the model extrapolates there")


@torch.no_grad()
def control(model, notes=None, audio: Tensor | None = None, sample_rate: int | None = None,
            f0_hz: Tensor | None = None, loudness_db: Tensor | None = None, pitch_shift: float = 0.0,
            pitch_scale: float = 1.0, loudness_shift: float = 0.0, loudness_scale: float = 1.0,
            vibrato_hz: float = 0.0, vibrato_cents: float = 0.0, confidence_threshold: float = C.CONFIDENT,
            crepe_model: str | None = None, chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS,
            seed: int | None = 0) -> AppResult:
    """Synthesis from edited pitch and loudness curves (independent control, and extrapolation to
    pitches the model never heard: the same call with notes outside its training range).

    The curves come from one of: `notes` (curves.parse_notes: a melody as (pitch, start, duration,
    velocity) with vibrato_hz / vibrato_cents; velocity spans the training data's note loudness),
    a recording `audio` at `sample_rate` (its CREPE f0, held through unconfident frames, and
    loudness), or `f0_hz` and `loudness_db` [n_frames] at the model's frame rate. They are then
    edited (curves.edit: pitch_shift semitones, pitch_scale of the intervals, loudness_shift dB,
    loudness_scale of the dynamics) and rendered.
    """
    check_model(model)
    given = [k for k, v in (("notes", notes), ("audio", audio), ("f0_hz", f0_hz)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"control takes one source of curves: notes, audio (with sample_rate) or f0_hz with "
                         f"loudness_db; got {given or 'none'}")
    if predicts_f0(model):
        raise ValueError("control: this model predicts f0 from the audio (its F0ResNetEncoder), so its pitch is "
                         "not a control; use a supervised model (f0 from CREPE)")
    messages: list[str] = []
    features: dict = {}
    recording = None
    if notes is not None:
        if reads_z(model):
            raise ValueError("control from notes: this model takes z from a recording (its ZEncoder); give audio=...")
        parsed = C.parse_notes(notes)
        (low, high), silence = C.velocity_range(model.dataset_statistics)
        f0, ld = C.notes_to_curves(parsed, model.frame_rate, (low, high), silence, vibrato_hz, vibrato_cents)
        messages.append(f"{len(parsed)} notes, {f0.numel() / model.frame_rate:.2f} s; velocity 0-127 -> "
                        f"{low:.1f}-{high:.1f} dB")
        on = ld > silence + 1.0
    elif audio is not None:
        if sample_rate is None:
            raise ValueError("control(audio=...) needs the recording's sample_rate")
        features, messages = recording_features(model, audio, sample_rate, crepe_model)
        recording = check_recording(audio)
        f0r, conf, ld = (features[k][0, :, 0].cpu() for k in ("f0_hz", "f0_confidence", "loudness_db"))
        on = C.is_confident(conf, confidence_threshold)
        if not bool(on.any()):
            raise ValueError(f"audio: no frame has a confident pitch (CREPE confidence >= {confidence_threshold})")
        f0 = C.hold_f0(f0r, on)
    else:
        if loudness_db is None:
            raise ValueError("control(f0_hz=...) needs loudness_db too, [n_frames] at the model's frame rate")
        f0, ld = torch.as_tensor(f0_hz).reshape(-1).float(), torch.as_tensor(loudness_db).reshape(-1).float()
        if f0.shape != ld.shape or not bool(torch.isfinite(f0).all() & torch.isfinite(ld).all()) or bool((f0 <= 0).any()):
            raise ValueError(f"f0_hz and loudness_db must be finite [n_frames] curves of one length, f0 > 0 Hz; got "
                             f"{tuple(f0.shape)} and {tuple(ld.shape)}")
        on = torch.ones_like(f0, dtype=torch.bool)
    new_f0, new_ld = C.edit(f0, ld, pitch_shift, pitch_scale, loudness_shift, loudness_scale)
    device = model.device
    features = {**features, "f0_hz": new_f0[None, :, None].to(device), "loudness_db": new_ld[None, :, None].to(device)}
    _pitch_note(model, new_f0[on], messages)
    out = _render(model, features, chunk_seconds, seed)
    curves = {"f0_hz/given": f0, "f0_hz/edited": new_f0, "loudness_db/given": ld, "loudness_db/edited": new_ld}
    return AppResult(out, model.sample_rate, model.frame_rate, curves, recording,
                     int(sample_rate) if recording is not None else None, messages, {"frames": int(f0.numel())},
                     "pitch and loudness control")


@torch.no_grad()
def interpolate(model, audio_a: Tensor, sample_rate_a: int, audio_b: Tensor, sample_rate_b: int,
                alpha: float = 0.5, crepe_model: str | None = None,
                chunk_seconds: float | None = DEFAULT_CHUNK_SECONDS, seed: int | None = 0) -> AppResult:
    """Recording a's f0 and loudness decoded with z blended toward recording b's timbre:
    z = (1 - alpha) z_a (frame by frame) + alpha * mean over frames of z_b. alpha 0 is a's
    resynthesis, 1 a's notes with b's (average) timbre; outside [0, 1] extrapolates."""
    check_model(model)
    if not reads_z(model):
        raise ValueError(f"interpolate needs a model with a z encoder (ZEncoder, e.g. experiment=nsynth_z); this "
                         f"model's encoder is {type(model.encoder).__name__ if model.encoder is not None else None}")
    alpha = float(alpha)
    features_a, notes = recording_features(model, audio_a, sample_rate_a, crepe_model, name="audio_a")
    features_b, notes_b = recording_features(model, audio_b, sample_rate_b, crepe_model, name="audio_b")
    encoded_a, encoded_b = model.encode(features_a), model.encode(features_b)
    z_b = encoded_b["z"].mean(dim=1, keepdim=True)
    encoded = {**encoded_a, "z": (1.0 - alpha) * encoded_a["z"] + alpha * z_b}
    out = _render(model, encoded, chunk_seconds, seed, encoded=True)
    curves = {"f0_hz/a": features_a["f0_hz"][0, :, 0].cpu(), "loudness_db/a": features_a["loudness_db"][0, :, 0].cpu()}
    return AppResult(out, model.sample_rate, model.frame_rate, curves, check_recording(audio_a, "audio_a"),
                     int(sample_rate_a), notes + notes_b + [f"z = {1 - alpha:g} z_a + {alpha:g} mean(z_b)"],
                     {"alpha": alpha, "z_distance": float((encoded_a["z"].mean(1) - z_b[:, 0]).norm())},
                     f"z interpolation (alpha {alpha:g})")

