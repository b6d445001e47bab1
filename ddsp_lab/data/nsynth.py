"""NSynth in its published layout: <root>/nsynth-{train,valid,test}/examples.json + audio/<note_str>.wav
(or <root>/examples.json + audio/ for one split). The paper's subset: acoustic instruments, MIDI 24-84.
And any dataset through `datasets.load_dataset` (HubSource)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..features import frame_hop
from .sources import (MIN_ITEMS_BY_ITEM, Example, Recording, Segment, SkipItem, SplitPlan, check_split_fractions,
                      plan_splits, read_audio, recording_examples, time_blocks, to_mono_rate)

PUBLISHED_SPLITS = {"validation": "validation", "valid": "validation", "test": "test"}

SPLIT_DIRS = {"nsynth-train": "train", "nsynth-valid": "validation", "nsynth-test": "test"}
META_KEYS = ("pitch", "velocity", "instrument_str", "instrument_family_str", "instrument_source_str", "note_str")


class NSynthSource:
    """NSynth examples filtered by instrument source, family, pitch range and velocity.

    Args:
        root: the folder holding nsynth-train/ nsynth-valid/ nsynth-test/ (any subset), or one
            split folder with examples.json directly.
        instrument_sources: e.g. ('acoustic',) (the paper), any of acoustic, electronic, synthetic.
        families: instrument_family_str values to keep (None: all).
        pitch_range: inclusive MIDI range (the paper: 24-84).
        velocities: velocities to keep (None: all).
        split: split name for a root without nsynth-* folders.
    """

    name = "nsynth"

    def __init__(self, root: str, instrument_sources: Sequence[str] | None = ("acoustic",),
                 families: Sequence[str] | None = None, pitch_range: Sequence[int] = (24, 84),
                 velocities: Sequence[int] | None = None, split: str = "train"):
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise FileNotFoundError(f"source.root does not exist: {self.root}")
        dirs = [self.root / d for d in SPLIT_DIRS if (self.root / d / "examples.json").exists()]
        if (self.root / "examples.json").exists():
            dirs = [self.root]
        if not dirs:
            raise FileNotFoundError(f"no examples.json in source.root {self.root} nor in its "
                                    f"{'/, '.join(SPLIT_DIRS)}/ folders: is this the NSynth layout?")
        self.filters = {"instrument_sources": instrument_sources, "families": families,
                        "pitch_range": tuple(pitch_range), "velocities": velocities}
        self._meta: dict[str, dict] = {}
        for d in dirs:
            split_name = SPLIT_DIRS.get(d.name, split)
            for note, meta in json.loads((d / "examples.json").read_text()).items():
                if self._keep(meta):
                    rel = str((d / "audio" / f"{note}.wav").relative_to(self.root))
                    self._meta[rel] = {**{k: meta.get(k) for k in META_KEYS}, "split": split_name}
        if not self._meta:
            raise ValueError(f"the NSynth filters select no example in {self.root}: {self.filters}")

    def _keep(self, meta: dict) -> bool:
        f = self.filters
        lo, hi = f["pitch_range"]
        return ((not f["instrument_sources"] or meta.get("instrument_source_str") in f["instrument_sources"])
                and (not f["families"] or meta.get("instrument_family_str") in f["families"])
                and lo <= int(meta.get("pitch", -1)) <= hi
                and (not f["velocities"] or int(meta.get("velocity", -1)) in f["velocities"]))

    def items(self) -> list[str]:
        return sorted(self._meta)

    def split_rule(self) -> str:
        return "published"  # nsynth-train / -valid / -test

    def load(self, item: str, sample_rate: int, frame_rate: int, n_samples: int) -> Iterator[Example]:
        path = self.root / item
        if not path.exists():
            raise SkipItem("missing audio file")
        audio = read_audio(path, sample_rate)
        if len(audio) < n_samples:
            raise SkipItem(f"too short ({len(audio) / sample_rate:.2f} s)")
        if float(abs(audio).max()) == 0.0:
            raise SkipItem("silent")
        meta = dict(self._meta[item])
        split = meta.pop("split")
        yield Example(audio[:n_samples], meta["note_str"] or item, split, {**meta, "source_file": item})


class HubSource:
    """A dataset by name through `datasets.load_dataset` (a hub id when online, or a local dataset
    folder / files), with an audio column; audio is decoded here with soundfile (no torchcodec).
    Each row is an item, cut into consecutive examples.

    Splits: reading a published 'validation' / 'valid' / 'test' split keeps it; any other split is
    divided by the rule of `sources` (by item when it has at least by_item_min_items rows, else in
    time blocks within each row).

    Args:
        name: dataset id or local path; config_name: its configuration.
        split: the split to read; audio_column: the column holding audio.
        streaming: iterate without downloading everything (then max_examples bounds the items).
        split_fractions: (train, validation); test takes the rest.
    """

    name = "hub"

    def __init__(self, name: str, split: str = "train", audio_column: str = "audio",
                 config_name: str | None = None, streaming: bool = False, max_examples: int | None = None,
                 split_fractions: tuple[float, float] = (0.8, 0.1), by_item_min_items: int = MIN_ITEMS_BY_ITEM):
        import datasets

        self.dataset_name, self.audio_column, self.streaming = name, audio_column, streaming
        _refuse_audio_folder(name)
        ds = datasets.load_dataset(name, config_name, split=split, streaming=streaming)
        if audio_column not in (ds.column_names or []):
            raise ValueError(f"source.audio_column {audio_column!r} is not a column of {name}: {ds.column_names}")
        if isinstance(ds.features[audio_column], datasets.Audio):
            ds = ds.cast_column(audio_column, datasets.Audio(decode=False))
        if streaming and max_examples is None:
            raise ValueError("a streaming hub source needs source.max_examples (the items to take)")
        self.ds, self.split = ds, split
        self.n = max_examples if streaming else min(len(ds), max_examples or len(ds))
        self._iter, self._pos = None, -1
        self.published = PUBLISHED_SPLITS.get(split.split("[")[0].strip().lower())
        self.split_fractions = check_split_fractions(split_fractions)
        self.by_item_min_items = by_item_min_items
        self._plan: SplitPlan | None = None

    def items(self) -> list[str]:
        return [f"{i:08d}" for i in range(self.n)]

    def split_plan(self) -> SplitPlan:
        if self._plan is None:
            self._plan = plan_splits(self.items(), self.split_fractions, self.by_item_min_items, "by_item")
        return self._plan

    def split_rule(self) -> str:
        return "published" if self.published else self.split_plan().rule

    def _row(self, index: int) -> dict:
        if not self.streaming:
            return self.ds[index]
        if self._iter is None or index <= self._pos:
            self._iter, self._pos = iter(self.ds), -1
        row = None
        while self._pos < index:
            row = next(self._iter)
            self._pos += 1
        return row

    def _audio(self, item: str, sample_rate: int) -> np.ndarray:
        """The item's audio, mono float32 at sample_rate."""
        import io

        import soundfile as sf

        value = self._row(int(item))[self.audio_column]
        try:
            if isinstance(value, dict) and value.get("array") is not None:
                audio, sr = np.asarray(value["array"], np.float32), int(value["sampling_rate"])
                audio = audio.mean(axis=0) if audio.ndim == 2 else audio
            else:
                src = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
                audio, sr = sf.read(src, dtype="float32", always_2d=True)
                audio = audio.mean(axis=1)
        except Exception as e:  # noqa: BLE001
            raise SkipItem(f"unreadable ({type(e).__name__})") from e
        return to_mono_rate(audio, sr, sample_rate)

    def recording(self, item: str, sample_rate: int, frame_rate: int, n_samples: int) -> Recording:
        audio = self._audio(item, sample_rate)
        if len(audio) < n_samples:
            raise SkipItem(f"too short ({len(audio) / sample_rate:.2f} s)")
        if float(np.abs(audio).max()) == 0.0:
            raise SkipItem("silent")
        plan = self.split_plan()
        if self.published or plan.splits is not None:
            segments = [Segment(0, len(audio), self.published or plan.splits[item])]
        else:
            segments = time_blocks(len(audio), plan.fractions, n_samples, frame_hop(sample_rate, frame_rate))
        return Recording(item, audio, segments, n_samples, None, {"source_file": f"{self.dataset_name}:{item}"})

    def load(self, item: str, sample_rate: int, frame_rate: int, n_samples: int) -> Iterator[Example]:
        yield from recording_examples(self.recording(item, sample_rate, frame_rate, n_samples),
                                      sample_rate, frame_rate, n_samples)


def _refuse_audio_folder(name: str) -> None:
    """A local folder of audio files is what source=folder reads; datasets' audiofolder builder would
    need torchcodec to encode it (not part of this stack)."""
    from .sources import AUDIO_EXTENSIONS

    root = Path(name).expanduser()
    if not root.is_dir():
        return
    suffixes = {p.suffix.lower() for p in root.rglob("*") if p.is_file()}
    if suffixes & set(AUDIO_EXTENSIONS) and not suffixes & {".parquet", ".arrow"}:
        raise ValueError(f"source.name {root} is a folder of audio files: prepare it with "
                         f"`source=folder source.root={root}` (source=hub reads a hub id or a local "
                         f"dataset of parquet / arrow / json files)")
