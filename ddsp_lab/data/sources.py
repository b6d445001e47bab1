"""Sources of raw audio for `prepare`: each lists its items (deterministically ordered) and loads
one item into mono examples at the target rate, or raises SkipItem with the reason.

Sources of long recordings (FolderSource, HubSource) also give a whole item as a `Recording`: its
audio cut into contiguous segments of one split each; examples are windows inside a segment, and
`prepare` analyses each segment once instead of every overlapping window.

Splits (`plan_splits`, decided from the full item list, so the same in every shard):
- "by_file" / "by_item": with at least `min_items` items (20), each item goes whole to the split of
  a stable hash of its name (80/10/10); a split the hash leaves empty takes the one item whose hash
  lies nearest its range, so with enough items every split has at least one.
- "time_blocks": with fewer items, each item is cut in time: its first 80 % train, the next 10 %
  validation, the last 10 % test, and examples lie wholly inside one block (no sample of an example
  belongs to two splits, whatever the hop). Where 10 % is shorter than one example, the block takes
  one example's length from train, so every item at least three examples long gives validation and
  test an example each; a shorter item goes whole to train.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..features import LOUDNESS_N_FFT, frame_hop, recording_loudness, resample_recording

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class SkipItem(Exception):
    """An item that cannot become training examples (unreadable, too short, silent, ...)."""


@dataclass
class Example:
    audio: np.ndarray  # [n_samples] float32 at the target sample rate
    example_id: str
    split: str
    meta: dict = field(default_factory=dict)


SPLITS = ("train", "validation", "test")
MIN_ITEMS_BY_ITEM = 20  # fewer items than this: split in time blocks (see the module docstring)


def _unit_hash(key: str) -> float:
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _split_ranges(fractions: tuple[float, float]) -> dict[str, tuple[float, float]]:
    a, b = fractions[0], fractions[0] + fractions[1]
    return {"train": (0.0, a), "validation": (a, b), "test": (b, 1.0)}


def check_split_fractions(fractions: Sequence[float]) -> tuple[float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 2 or min(fractions) < 0 or sum(fractions) > 1:
        raise ValueError(f"split_fractions must be (train, validation), both >= 0 and summing to <= 1 "
                         f"(test takes the rest), got {fractions}")
    return fractions


def split_of(key: str, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """Deterministic train / validation / test split from a stable hash of `key` (e.g. the source
    file), so that no recording leaks across splits."""
    u = _unit_hash(key)
    return "train" if u < fractions[0] else "validation" if u < fractions[0] + fractions[1] else "test"


@dataclass(frozen=True)
class SplitPlan:
    """How a source's items are split: rule "by_file" / "by_item" (splits[key] for each item) or
    "time_blocks" (splits None: each item is cut in time, see `time_blocks`)."""
    rule: str
    fractions: tuple[float, float]
    splits: dict[str, str] | None = None


def plan_splits(keys: Sequence[str], fractions: tuple[float, float] = (0.8, 0.1),
                min_items: int = MIN_ITEMS_BY_ITEM, by_name: str = "by_file") -> SplitPlan:
    """The split rule for the full, ordered list of item keys (see the module docstring)."""
    fractions = check_split_fractions(fractions)
    if len(keys) < min_items:
        return SplitPlan("time_blocks", fractions)
    u = {k: _unit_hash(k) for k in keys}
    splits = {k: split_of(k, fractions) for k in keys}
    for name, (lo, hi) in _split_ranges(fractions).items():
        if hi <= lo or name in splits.values():
            continue
        counts = {s: list(splits.values()).count(s) for s in SPLITS}
        donors = [k for k in keys if counts[splits[k]] > 1]
        nearest = min(donors, key=lambda k: (max(lo - u[k], u[k] - hi), k))  # distance to [lo, hi)
        splits[nearest] = name
    return SplitPlan(by_name, fractions, splits)


@dataclass(frozen=True)
class Segment:
    """Samples [start, stop) of an item, all of one split."""
    start: int
    stop: int
    split: str


def time_blocks(n_samples: int, fractions: tuple[float, float], min_samples: int, align: int = 1) -> list[Segment]:
    """An item of n_samples cut into train / validation / test blocks by `fractions` (boundaries
    multiples of `align`). A block with a non-zero fraction gets at least min_samples (one
    example): where its share is shorter, it takes one example's length and train gives it up (a
    20 s file with 4 s examples: 12 s train, 4 s validation, 4 s test). An item too short to hold
    train and each such block (three examples' length at 80/10/10) goes whole to train."""
    b1 = int(n_samples * fractions[0]) // align * align
    b2 = int(n_samples * (fractions[0] + fractions[1])) // align * align
    blocks = [Segment(0, b1, "train"), Segment(b1, b2, "validation"), Segment(b2, n_samples, "test")]
    wanted = [seg for seg, f in zip(blocks[1:], (fractions[1], 1 - sum(fractions))) if f > 0]
    if all(seg.stop - seg.start >= min_samples for seg in wanted) and b1 >= min_samples:
        return [seg for seg in blocks if seg.stop > seg.start]
    one = -(-min_samples // align) * align  # one example, in whole aligned steps
    n_val, n_test = (one if f > 0 else 0 for f in (fractions[1], 1 - sum(fractions)))
    b2 = (n_samples - n_test) // align * align
    b1 = (b2 - n_val) // align * align
    if b1 < min_samples:
        return [Segment(0, n_samples, "train")]
    blocks = [Segment(0, b1, "train"), Segment(b1, b2, "validation"), Segment(b2, n_samples, "test")]
    return [seg for seg in blocks if seg.stop > seg.start]


@dataclass
class Recording:
    """One whole item at the target rate, in contiguous segments of one split each. Its examples
    are windows of n_samples every hop_samples from each segment's start, wholly inside the segment;
    windows whose mean loudness_db is below silence_db (if set) are dropped."""
    item: str
    audio: np.ndarray  # [n_samples] float32
    segments: list[Segment]
    hop_samples: int  # a multiple of the frame hop, so windows start on frames of their segment
    silence_db: float | None = None
    meta: dict = field(default_factory=dict)


def window_starts(n_segment: int, n_samples: int, hop_samples: int, loudness_db: np.ndarray | None = None,
                  frame_hop: int = 1, silence_db: float | None = None) -> list[int]:
    """Start samples (within a segment of n_segment samples) of its example windows; with
    loudness_db (the segment's frames) and silence_db, the windows quieter on average are dropped."""
    starts = range(0, n_segment - n_samples + 1, hop_samples)
    if silence_db is None or loudness_db is None:
        return list(starts)
    n_frames = n_samples // frame_hop
    return [s for s in starts if float(loudness_db[s // frame_hop:s // frame_hop + n_frames].mean()) >= silence_db]


class DemoSource:
    """The built-in synthetic corpus (see demo_corpus): n_examples phrases with true f0."""

    name = "demo"

    def __init__(self, n_examples: int = 24, seed: int = 0):
        self.n_examples, self.seed = n_examples, seed

    def items(self) -> list[str]:
        return [f"demo-{i:05d}" for i in range(self.n_examples)]

    def split_rule(self) -> str:
        return "by_item"  # by index: 6/8 train, 1/8 validation, 1/8 test

    def load(self, item: str, sample_rate: int, frame_rate: int, n_samples: int) -> Iterator[Example]:
        from .demo_corpus import demo_example

        index = int(item.split("-")[1]) + 100000 * self.seed
        ex = demo_example(index, sample_rate, frame_rate, n_samples / sample_rate)
        split = {1: "validation", 2: "test"}.get(index % 8, "train")  # 6/8 train, even for tiny corpora
        yield Example(ex["audio"].numpy(), item, split,
                      {"f0_true_hz": ex["f0_true_hz"].numpy(), "amplitude_true": ex["amplitude_true"].numpy(),
                       "source_file": item})


def to_mono_rate(mono: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    """Mono float32 audio at sr -> float32 at sample_rate (resampled in blocks)."""
    if sr == sample_rate:
        return mono.astype(np.float32, copy=False)
    return resample_recording(torch.from_numpy(mono), int(sr), sample_rate).float().numpy()


def read_audio(path: Path, sample_rate: int, block_seconds: float = 30.0) -> np.ndarray:
    """Any readable audio file -> mono float32 at sample_rate. Raises SkipItem if unreadable.
    Read and mixed down block by block, so a long multichannel file is never held at full width."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            blocksize = max(1, int(block_seconds * sr))
            mono = [b.mean(axis=1) for b in f.blocks(blocksize, dtype="float32", always_2d=True)]
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types
        raise SkipItem(f"unreadable ({type(e).__name__}: {str(e)[:80]})") from e
    mono = np.concatenate(mono) if mono else np.zeros(0, np.float32)
    if mono.size == 0:
        raise SkipItem("empty file")
    if not np.isfinite(mono).all():
        raise SkipItem("non-finite samples")
    return to_mono_rate(mono, int(sr), sample_rate)


def is_silent(audio: np.ndarray, rms_floor: float = 1e-5) -> bool:
    """RMS below rms_floor, summed in float64 blocks (no float64 copy of a long recording)."""
    energy = sum(float(np.dot(b, b)) for b in (audio[i:i + (1 << 20)].astype(np.float64)
                                                for i in range(0, len(audio), 1 << 20)))
    return (energy / max(1, len(audio))) ** 0.5 < rms_floor


def plan_windows(rec: Recording, sample_rate: int, frame_rate: int, n_samples: int,
                 loudness_n_fft: int = LOUDNESS_N_FFT) -> list[tuple[Segment, torch.Tensor, list[int]]]:
    """Each segment of a recording with its loudness frames [segment samples // hop] (zeros only
    beyond the segment; features.recording_loudness) and the start samples (within it) of its kept
    example windows. Raises SkipItem when no window is kept."""
    hop = frame_hop(sample_rate, frame_rate, n_samples)
    plans = []
    for seg in rec.segments:
        loudness = recording_loudness(torch.from_numpy(rec.audio[seg.start:seg.stop]), sample_rate, frame_rate,
                                      loudness_n_fft)
        starts = window_starts(seg.stop - seg.start, n_samples, rec.hop_samples, loudness.numpy(), hop,
                               rec.silence_db)
        plans.append((seg, loudness, starts))
    if not any(starts for _, _, starts in plans):
        raise SkipItem(f"silent (every window below {rec.silence_db} dB)")
    return plans


def recording_examples(rec: Recording, sample_rate: int, frame_rate: int, n_samples: int) -> Iterator[Example]:
    """The examples `prepare` cuts from a recording, without features."""
    for seg, _, starts in plan_windows(rec, sample_rate, frame_rate, n_samples):
        for s in starts:
            offset = seg.start + s
            yield Example(rec.audio[offset:offset + n_samples], f"{rec.item}@{offset}", seg.split,
                          {**rec.meta, "offset_s": offset / sample_rate})


class FolderSource:
    """A folder of recordings (recursive): cut into examples of the configured length every
    hop_seconds (rounded to whole frames), silent stretches dropped by a loudness threshold, split
    by file (at least by_file_min_files files) or else in time blocks (see the module docstring).

    Args:
        root: the folder.
        hop_seconds: between example starts.
        silence_db: examples with a lower mean loudness_db are dropped.
        extensions: audio file extensions (case-insensitive).
        split_fractions: (train, validation); test takes the rest.
        by_file_min_files: fewest files for the by-file split.
    """

    name = "folder"

    def __init__(self, root: str, hop_seconds: float = 1.0, silence_db: float = -60.0,
                 extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
                 split_fractions: tuple[float, float] = (0.8, 0.1), by_file_min_files: int = MIN_ITEMS_BY_ITEM):
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"source.root does not exist: {self.root}")
        if not self.root.is_dir():
            raise ValueError(f"source.root must be a folder of audio files, got the file {self.root}")
        if hop_seconds <= 0:
            raise ValueError(f"hop_seconds must be > 0, got {hop_seconds}")
        self.hop_seconds, self.silence_db = hop_seconds, silence_db
        self.extensions = tuple(e.lower() for e in extensions)
        self.split_fractions = check_split_fractions(split_fractions)
        self.by_file_min_files = by_file_min_files
        self._plan: SplitPlan | None = None

    def items(self) -> list[str]:
        files = sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                       if p.is_file() and p.suffix.lower() in self.extensions)
        if not files:
            raise ValueError(f"source.root {self.root} holds no audio files with extensions {self.extensions}")
        return files

    def split_plan(self) -> SplitPlan:
        if self._plan is None:
            self._plan = plan_splits(self.items(), self.split_fractions, self.by_file_min_files, "by_file")
        return self._plan

    def split_rule(self) -> str:
        return self.split_plan().rule

    def seconds(self, item: str) -> float:
        """The item's duration from its header (0 if unreadable): for progress."""
        import soundfile as sf

        try:
            return float(sf.info(str(self.root / item)).duration)
        except Exception:  # noqa: BLE001 - an unreadable file is skipped at load
            return 0.0

    def recording(self, item: str, sample_rate: int, frame_rate: int, n_samples: int) -> Recording:
        audio = read_audio(self.root / item, sample_rate)
        if len(audio) < n_samples:
            raise SkipItem(f"too short ({len(audio) / sample_rate:.2f} s < {n_samples / sample_rate:.2f} s)")
        if is_silent(audio):
            raise SkipItem("silent")
        hop = frame_hop(sample_rate, frame_rate)
        plan = self.split_plan()
        segments = ([Segment(0, len(audio), plan.splits[item])] if plan.splits is not None
                    else time_blocks(len(audio), plan.fractions, n_samples, hop))
        hop_samples = max(1, int(round(self.hop_seconds * sample_rate / hop))) * hop
        return Recording(item, audio, segments, hop_samples, self.silence_db, {"source_file": item})

    def load(self, item: str, sample_rate: int, frame_rate: int, n_samples: int) -> Iterator[Example]:
        yield from recording_examples(self.recording(item, sample_rate, frame_rate, n_samples),
                                      sample_rate, frame_rate, n_samples)
