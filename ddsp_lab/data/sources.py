"""Sources of raw audio for `prepare`: each lists its items (deterministically ordered) and loads
one item into mono examples at the target rate, or raises SkipItem with the reason."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .. import dsp

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class SkipItem(Exception):
    """An item that cannot become training examples (unreadable, too short, silent, ...)."""


@dataclass
class Example:
    audio: np.ndarray  # [n_samples] float32 at the target sample rate
    example_id: str
    split: str
    meta: dict = field(default_factory=dict)


def split_of(key: str, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """Deterministic train / validation / test split from a stable hash of `key` (e.g. the source
    file), so that no recording leaks across splits."""
    u = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if u < fractions[0] else "validation" if u < fractions[0] + fractions[1] else "test"


class DemoSource:
    """The built-in synthetic corpus (see demo_corpus): n_examples phrases with true f0."""

    name = "demo"

    def __init__(self, n_examples: int = 24, seed: int = 0):
        self.n_examples, self.seed = n_examples, seed

    def items(self) -> list[str]:
        return [f"demo-{i:05d}" for i in range(self.n_examples)]

    def load(self, item: str, sample_rate: int, frame_rate: int, n_samples: int) -> Iterator[Example]:
        from .demo_corpus import demo_example

        index = int(item.split("-")[1]) + 100000 * self.seed
        ex = demo_example(index, sample_rate, frame_rate, n_samples / sample_rate)
        split = {1: "validation", 2: "test"}.get(index % 8, "train")  # 6/8 train, even for tiny corpora
        yield Example(ex["audio"].numpy(), item, split,
                      {"f0_true_hz": ex["f0_true_hz"].numpy(), "amplitude_true": ex["amplitude_true"].numpy(),
                       "source_file": item})


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Any readable audio file -> mono float32 at sample_rate. Raises SkipItem if unreadable."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types
        raise SkipItem(f"unreadable ({type(e).__name__}: {str(e)[:80]})") from e
    if data.size == 0:
        raise SkipItem("empty file")
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise SkipItem("non-finite samples")
    if sr != sample_rate:
        mono = dsp.resample_audio(torch.from_numpy(mono).double(), int(sr), sample_rate).float().numpy()
    return mono.astype(np.float32)


class FolderSource:
    """A folder of recordings (recursive): cut into examples of the configured length with a hop,
    silent stretches dropped by a loudness threshold, split by source file."""

    name = "folder"

    def __init__(self, root: str, hop_seconds: float = 1.0, silence_db: float = -60.0,
                 extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
                 split_fractions: tuple[float, float] = (0.8, 0.1)):
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"data.root does not exist: {self.root}")
        if not self.root.is_dir():
            raise ValueError(f"data.root must be a folder of audio files, got the file {self.root}")
        self.hop_seconds, self.silence_db = hop_seconds, silence_db
        self.extensions = tuple(e.lower() for e in extensions)
        self.split_fractions = tuple(split_fractions)

    def items(self) -> list[str]:
        files = sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                       if p.is_file() and p.suffix.lower() in self.extensions)
        if not files:
            raise ValueError(f"data.root {self.root} holds no audio files with extensions {self.extensions}")
        return files

    def load(self, item: str, sample_rate: int, frame_rate: int, n_samples: int) -> Iterator[Example]:
        audio = read_audio(self.root / item, sample_rate)
        if len(audio) < n_samples:
            raise SkipItem(f"too short ({len(audio) / sample_rate:.2f} s < {n_samples / sample_rate:.2f} s)")
        if float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) < 1e-5:
            raise SkipItem("silent")
        hop = max(1, int(round(self.hop_seconds * sample_rate)))
        starts = range(0, len(audio) - n_samples + 1, hop)
        windows = torch.from_numpy(np.stack([audio[s:s + n_samples] for s in starts]))
        ld = dsp.compute_loudness(windows, sample_rate, frame_rate, n_fft=2048)
        split = split_of(item, self.split_fractions)
        kept = 0
        for s, window, loud in zip(starts, windows, ld):
            if float(loud.mean()) < self.silence_db:
                continue
            kept += 1
            yield Example(window.numpy(), f"{item}@{s}", split, {"source_file": item, "offset_s": s / sample_rate})
        if kept == 0:
            raise SkipItem(f"silent (every window below {self.silence_db} dB)")
