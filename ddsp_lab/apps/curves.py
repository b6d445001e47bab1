"""Control curves for the applications: adjustment of a recording's f0 and loudness to a model's
training data, edits (shift and scale), and curves drawn from a list of notes.

Curves are 1-D tensors at the model's frame rate: f0 in Hz, loudness in the features' dB
(`ddsp_lab.features`), confidence in [0, 1]. The training data's distribution comes from the
statistics a checkpoint carries (`model.dataset_statistics`: quantiles of confident f0 in MIDI and
of loudness).
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import Tensor

from .. import dsp
from ..dsp import hz_to_midi, midi_to_hz
from ..features.confidence import hold_f0, is_confident  # noqa: F401 - hold_f0: an apps name too
from ..models.record import (CONFIDENT, PITCH_RANGE_PERCENT, training_loudness_quantiles,  # noqa: F401
                             training_pitch_range, velocity_range)

@dataclass
class Adjusted:
    """A recording's curves after adjustment, and what was done."""

    f0_hz: Tensor
    loudness_db: Tensor
    on: Tensor  # frames taken as notes (confident and not quiet)
    octaves: int  # whole octaves f0 was moved by auto_adjust
    loudness_offset_db: float  # median shift of the notes' loudness by auto_adjust
    notes: list[str]


def adjust(f0_hz: Tensor, confidence: Tensor, loudness_db: Tensor, statistics: Mapping | None = None,
           auto_adjust: bool = True, pitch_shift: float = 0.0, loudness_shift: float = 0.0,
           confidence_threshold: float = CONFIDENT, quiet_db: float = 40.0, attenuate_db: float = 20.0,
           min_note_frames: int = 25) -> Adjusted:
    """Adjust a recording's curves [n_frames] to a model's training data (the reference notebook's
    idea, as users know it).

    auto_adjust (needs statistics): f0 moves by the whole octaves that bring the median pitch of
        the notes into the training pitch range (its 5th-95th percentile; nearest its median when
        several octaves fit), and the notes' loudness is mapped by quantiles onto the training
        data's (a frame at the p-th percentile of the input's notes gets the training data's p-th
        percentile); the other frames move by the notes' median shift.
    pitch_shift (semitones) and loudness_shift (dB): then added by hand.
    Notes are frames with confidence >= confidence_threshold and loudness within quiet_db of the
    input's 95th percentile; the other frames are attenuated by attenuate_db and keep the pitch of
    the nearest earlier note (CREPE's f0 in unvoiced or silent frames is noise). Fewer than
    min_note_frames notes (0.1 s at 250 frames/s: noise gets a few confident frames by chance)
    is an error: the input has no pitch to transfer.
    """
    for name, curve in (("f0_hz", f0_hz), ("confidence", confidence), ("loudness_db", loudness_db)):
        if curve.dim() != 1 or curve.numel() != f0_hz.numel():
            raise ValueError(f"{name} must be [n_frames] like f0_hz {tuple(f0_hz.shape)}, got {tuple(curve.shape)}")
        if not bool(torch.isfinite(curve).all()):
            raise ValueError(f"{name} holds NaN or inf")
    loud_ref = torch.quantile(loudness_db.double(), 0.95)
    on = is_confident(confidence, confidence_threshold) & (loudness_db.double() >= loud_ref - quiet_db)
    notes: list[str] = []
    if int(on.sum()) < min(min_note_frames, on.numel()) or not bool(on.any()):
        raise ValueError(f"no frame of the input has a confident pitch: {int(on.sum())} of {on.numel()} frames have "
                         f"CREPE confidence >= {confidence_threshold} (at least {min_note_frames} needed; the "
                         f"highest is {float(confidence.max()):.2f}): is it a monophonic, pitched recording?")
    f0 = hold_f0(f0_hz.double(), on)
    ld = loudness_db.double()
    octaves, offset = 0, 0.0
    if auto_adjust:
        pitch = training_pitch_range(statistics)
        ld_q = training_loudness_quantiles(statistics)
        if pitch is None or ld_q is None:
            notes.append("auto_adjust: the checkpoint carries no training statistics; curves left as they are")
        else:
            octaves = _octaves_into(float(hz_to_midi(f0[on]).median()), pitch)
            f0 = f0 * 2.0 ** octaves
            mapped = _map_quantiles(ld, ld[on], ld_q)
            offset = float(mapped[on].median() - ld[on].median())
            ld = torch.where(on, mapped, ld + offset)
            notes.append(f"auto_adjust: f0 moved by {octaves:+d} octave(s) toward the training pitch range "
                         f"(MIDI {pitch[0]:.1f}-{pitch[2]:.1f}); note loudness mapped to the training "
                         f"distribution (median {offset:+.1f} dB)")
    f0 = f0 * dsp.semitones_to_ratio(pitch_shift)
    ld = ld + loudness_shift - torch.where(on, 0.0, float(attenuate_db))
    n_off = int((~on).sum())
    if n_off:
        notes.append(f"{n_off} of {on.numel()} frames are unconfident or quiet: attenuated by {attenuate_db:g} dB, "
                     f"pitch held from the note before")
    return Adjusted(f0.to(f0_hz.dtype), ld.to(loudness_db.dtype), on, octaves, offset, notes)


def _octaves_into(midi: float, pitch: tuple[float, float, float]) -> int:
    """The whole octaves that move `midi` into [low, high] (nearest the median among those that
    do; nearest the range when none does)."""
    low, median, high = pitch
    outside = lambda m: max(low - m, m - high, 0.0)  # noqa: E731
    return min(range(-10, 11), key=lambda k: (outside(midi + 12 * k), abs(midi + 12 * k - median)))


def _map_quantiles(values: Tensor, reference: Tensor, target_quantiles: Tensor, bandwidth_db: float = 3.0) -> Tensor:
    """values mapped through the CDF of `reference` (percent) onto target_quantiles (101 values at
    0..100 %). The reference's CDF is kernel-smoothed (Gaussian, bandwidth_db): a steady tone,
    whose loudness barely moves, maps to about the training median instead of having its
    hundredths of a dB stretched over the whole training range."""
    ref = reference.double()
    lo, hi = float(ref.min()), float(ref.max())
    width = 0.05
    n_bins = max(1, int((hi - lo) / width) + 1)
    counts = torch.bincount(((ref - lo) / width).long().clamp(0, n_bins - 1), minlength=n_bins).double()
    centres = lo + width * (torch.arange(n_bins, dtype=torch.float64) + 0.5)
    grid = torch.linspace(lo - 4 * bandwidth_db, hi + 4 * bandwidth_db, 1024, dtype=torch.float64)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    cdf = (normal.cdf((grid[:, None] - centres[None]) / bandwidth_db) * counts).sum(1) / counts.sum()
    levels = torch.linspace(0.0, 100.0, target_quantiles.numel(), dtype=torch.float64)
    return _interp(_interp(values.double(), grid, 100.0 * cdf), levels, target_quantiles.double())


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """np.interp for increasing xp (ties allowed): clamped at the ends."""
    xp = xp + torch.arange(xp.numel(), dtype=xp.dtype) * 1e-9  # strictly increasing
    i = torch.searchsorted(xp, x.clamp(xp[0], xp[-1])).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = ((x.clamp(xp[0], xp[-1]) - x0) / (x1 - x0)).clamp(0, 1)
    return f0 + w * (f1 - f0)


def edit(f0_hz: Tensor, loudness_db: Tensor, pitch_shift: float = 0.0, pitch_scale: float = 1.0,
         loudness_shift: float = 0.0, loudness_scale: float = 1.0) -> tuple[Tensor, Tensor]:
    """Independent edits of pitch and loudness curves: pitch_shift semitones; pitch_scale widens
    (> 1) or narrows (< 1) the intervals around the median pitch; loudness_shift dB;
    loudness_scale expands or compresses the dynamics around the median loudness."""
    midi = hz_to_midi(f0_hz.double())
    centre = midi.median()
    f0 = midi_to_hz(centre + pitch_scale * (midi - centre) + pitch_shift).to(f0_hz.dtype)
    ld = loudness_db.double()
    centre = ld.median()
    return f0, (centre + loudness_scale * (ld - centre) + loudness_shift).to(loudness_db.dtype)


# -- notes -------------------------------------------------------------------------------------
_NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


@dataclass(frozen=True)
class Note:
    """One note: pitch (MIDI number, or a name like 'A4', 'F#3', 'Bb2'), start and duration in
    seconds, velocity 1..127 (the loudness within the training data's range)."""

    pitch: float
    start: float
    duration: float
    velocity: float = 100.0

    def __post_init__(self):
        object.__setattr__(self, "pitch", parse_pitch(self.pitch))
        for name in ("start", "duration", "velocity"):
            value = float(getattr(self, name))
            if not math.isfinite(value):
                raise ValueError(f"Note {name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        if self.start < 0 or self.duration <= 0:
            raise ValueError(f"a note needs start >= 0 and duration > 0 (seconds), got start {self.start}, "
                             f"duration {self.duration}")
        if not 0 < self.velocity <= 127:
            raise ValueError(f"velocity must be in (0, 127], got {self.velocity}")


def parse_pitch(pitch) -> float:
    """A MIDI number or a note name (C4 = 60, A4 = 69; # and b accidentals)."""
    if isinstance(pitch, (int, float)) and not isinstance(pitch, bool):
        value = float(pitch)
    else:
        text = str(pitch).strip()
        match = re.fullmatch(r"([A-Ga-g])([#b]?)(-?\d+)", text)
        if match:
            letter, accidental, octave = match.groups()
            value = 12 * (int(octave) + 1) + _NAMES[letter.lower()] + {"#": 1, "b": -1, "": 0}[accidental]
        else:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"pitch must be a MIDI number or a note name like A4, F#3, Bb2; got {pitch!r}") from None
    if not 0 <= value <= 135:
        raise ValueError(f"pitch must be a MIDI number in [0, 135], got {value:g} (from {pitch!r})")
    return value


def parse_notes(notes) -> list[Note]:
    """Notes from a list of Notes / tuples / dicts, a CSV file (columns pitch, start, duration[,
    velocity]), or a string 'pitch:start:duration[:velocity] ...' (spaces or commas between
    notes), e.g. 'A4:0:0.5 C5:0.5:0.5:90 E5:1:1'."""
    if isinstance(notes, (str, Path)) and Path(str(notes)).suffix.lower() == ".csv":
        path = Path(str(notes))
        if not path.exists():
            raise FileNotFoundError(f"notes: no such file {path}")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        missing = {"pitch", "start", "duration"} - set(rows[0] if rows else {})
        if missing:
            raise ValueError(f"notes: {path} needs the columns pitch, start, duration[, velocity]; missing {sorted(missing)}")
        items = [{k: v for k, v in r.items() if k in ("pitch", "start", "duration", "velocity") and v not in ("", None)}
                 for r in rows]
    elif isinstance(notes, str):
        items = []
        for token in re.split(r"[\s,;]+", notes.strip()):
            if token:
                parts = token.split(":")
                if len(parts) not in (3, 4):
                    raise ValueError(f"notes: {token!r} must be pitch:start:duration[:velocity] (e.g. A4:0:0.5)")
                items.append(parts)
    else:
        items = list(notes)
    out = []
    for item in items:
        if isinstance(item, Note):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(Note(**{k: (v if k == "pitch" else float(v)) for k, v in item.items()}))
        else:
            out.append(Note(item[0], *(float(v) for v in item[1:])))
    if not out:
        raise ValueError("notes: no notes given")
    return out


def notes_to_curves(notes: Sequence[Note], frame_rate: int, loudness_range: tuple[float, float],
                    silence_db: float, vibrato_hz: float = 0.0, vibrato_cents: float = 0.0,
                    attack_s: float = 0.02, release_s: float = 0.1, tail_s: float = 0.5) -> tuple[Tensor, Tensor]:
    """f0 (Hz) and loudness (dB) curves [n_frames] at frame_rate that play the notes.

    Loudness: silence_db between notes; a note rises over attack_s to its level, velocity 127 at
    loudness_range[1] and 0 at loudness_range[0] (linear in dB), and falls back over release_s after
    it ends (overlapping notes: the louder). f0: the pitch of the latest note started (held through
    its release and the silence after it; the first note's before it), with vibrato of
    vibrato_cents at vibrato_hz from each note's start. The curves end tail_s after the last note.
    """
    if not notes:
        raise ValueError("notes_to_curves: no notes")
    end = max(n.start + n.duration for n in notes) + tail_s
    n_frames = max(1, int(math.ceil(end * frame_rate)))
    t = torch.arange(n_frames, dtype=torch.float64) / frame_rate
    low, high = loudness_range
    level = torch.zeros(n_frames, dtype=torch.float64)  # 0..1 of (silence -> the note's level), per note max
    loud = torch.full((n_frames,), float(silence_db), dtype=torch.float64)
    midi = torch.full((n_frames,), float(notes[0].pitch), dtype=torch.float64)
    for note in sorted(notes, key=lambda n: n.start):
        rise = ((t - note.start) / max(attack_s, 1e-6)).clamp(0, 1)
        fall = (1 - (t - note.start - note.duration) / max(release_s, 1e-6)).clamp(0, 1)
        envelope = torch.minimum(rise, fall) * (t >= note.start)
        note_db = low + (high - low) * note.velocity / 127.0
        candidate = silence_db + envelope * (note_db - silence_db)
        loud = torch.maximum(loud, candidate)
        level = torch.maximum(level, envelope)
        started = t >= note.start
        vibrato = vibrato_cents / 100.0 * torch.sin(2 * math.pi * vibrato_hz * (t - note.start))
        midi = torch.where(started, note.pitch + vibrato, midi)
    return midi_to_hz(midi).float(), loud.float()
