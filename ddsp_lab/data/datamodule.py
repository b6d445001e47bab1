"""LightningDataModule over a prepared dataset.

Batches are dicts: index [batch] (row in the split), audio [batch, n_samples] float32, f0_hz / f0_confidence / loudness_db
[batch, n_frames, 1] float32 (n_samples = n_frames * hop). Training can take random frame-aligned
crops (crop_seconds); validation and test take the first crop_seconds (or whole examples).

Training batches form one stream fixed by the seed (`TrainBatchStream`): the j-th batch of a run is
a function of j alone: shuffle round r = a permutation seeded by (seed, r), split between DDP ranks
(each rank its own part, no example twice in a round), crops seeded by (seed, r, index). A resumed
run reads the stream from the number of batches already trained, so it sees exactly the batches an
uninterrupted run would have seen, whether it stopped mid-epoch or at an epoch's end.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..features import FeatureSettings
from .prepare import load_prepared

FRAME_KEYS = ("f0_hz", "f0_confidence", "loudness_db")


class PreparedExamples(Dataset):
    """Map-style view of one split: example dicts of tensors, optionally cropped."""

    def __init__(self, ds, hop: int, crop_frames: int | None, random_crop: bool, seed: int = 0):
        self.ds = ds.with_format("numpy", columns=["audio", *FRAME_KEYS])
        self.hop, self.crop_frames, self.random_crop, self.seed = hop, crop_frames, random_crop, seed

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item) -> dict[str, torch.Tensor]:
        """item: a row index, or (row index, shuffle round) from TrainBatchStream (the round seeds
        the random crop)."""
        index, round_ = (item, 0) if isinstance(item, (int, np.integer)) else item
        row = self.ds[int(index)]
        n_frames = len(row["f0_hz"])
        start, length = 0, n_frames
        if self.crop_frames is not None and self.crop_frames < n_frames:
            length = self.crop_frames
            if self.random_crop:  # reproducible per (seed, round, index), any worker layout
                rng = np.random.default_rng((self.seed, int(round_), int(index)))
                start = int(rng.integers(0, n_frames - length + 1))
        out = {"index": torch.tensor(int(index)), "audio": torch.as_tensor(row["audio"][start * self.hop:(start + length) * self.hop], dtype=torch.float32)}
        for key in FRAME_KEYS:
            out[key] = torch.as_tensor(row[key][start:start + length], dtype=torch.float32)[:, None]
        return out


class TrainBatchStream(Sampler):
    """Batch sampler: batch j of the run is stream items [j * batch_size, (j + 1) * batch_size) of
    this rank, where the stream concatenates shuffle rounds r = 0, 1, ...: a permutation of the
    examples seeded by (seed, r), of which rank k takes items k, k + world_size, ... (an equal
    share; at most world_size - 1 examples sit out a round). Yields lists of (index, round).

    Args:
        n_examples, batch_size, seed, rank, world_size.
        position: callable giving the number of batches already trained (read at each new
            iteration, i.e. each epoch); None: 0.
    An epoch is ceil(share / batch_size) batches; batches straddle rounds, so all are full.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 position=None):
        if n_examples < world_size:
            raise ValueError(f"the train split has {n_examples} examples, fewer than the {world_size} processes")
        self.n, self.batch_size, self.seed, self.rank, self.world = n_examples, batch_size, seed, rank, world_size
        self.share = n_examples // world_size
        self.position = position or (lambda: 0)
        self._rounds: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return -(-self.share // self.batch_size)

    def _round(self, r: int) -> np.ndarray:
        if r not in self._rounds:  # batches of one round reuse its permutation (keep two: batches straddle)
            order = np.random.default_rng((self.seed, r)).permutation(self.n)
            self._rounds = {k: v for k, v in self._rounds.items() if k == r - 1}
            self._rounds[r] = order[self.rank::self.world][: self.share]
        return self._rounds[r]

    def batch(self, j: int) -> list[tuple[int, int]]:
        """The j-th batch of the run on this rank."""
        items = range(j * self.batch_size, (j + 1) * self.batch_size)
        rounds = {r: self._round(r) for r in {i // self.share for i in items}}
        return [(int(rounds[i // self.share][i % self.share]), i // self.share) for i in items]

    def __iter__(self):
        start = int(self.position())
        for j in range(start, start + len(self)):
            yield self.batch(j)


class DDSPDataModule(pl.LightningDataModule):
    """Args:
        path: a prepared dataset (ddsp-lab prepare).
        batch_size, num_workers, pin_memory: DataLoader settings.
        crop_seconds: train on random crops of this length (None: whole examples).
        sample_rate, frame_rate: what the model expects; a dataset prepared otherwise is refused.
        seed: shuffling and cropping seed.
    The prepared dataset's record (`dataset_card()`: name, feature settings, statistics, content
    hash) goes into the checkpoints of a model trained on it.
    """

    def __init__(self, path: str, batch_size: int = 32, num_workers: int = 0, pin_memory: bool = False,
                 crop_seconds: float | None = None, sample_rate: int | None = None,
                 frame_rate: int | None = None, seed: int = 0):
        super().__init__()
        self.path = Path(path)
        if not (self.path / "prepare_config.json").exists():
            raise FileNotFoundError(f"data.path {self.path} is not a prepared dataset (no prepare_config.json); "
                                    f"run `ddsp-lab prepare source=<demo|folder|nsynth|hub> ... out={self.path}` first")
        self.config = json.loads((self.path / "prepare_config.json").read_text())
        for name, want in (("sample_rate", sample_rate), ("frame_rate", frame_rate)):
            if want is not None and int(self.config[name]) != int(want):
                raise ValueError(f"data.path {self.path} was prepared at {name}={self.config[name]}, "
                                 f"but the model expects {name}={want}")
        self.hop = self.config["sample_rate"] // self.config["frame_rate"]
        self.crop_frames = None if crop_seconds is None else int(round(crop_seconds * self.config["frame_rate"]))
        self.batch_size, self.num_workers, self.pin_memory, self.seed = batch_size, num_workers, pin_memory, seed
        self.splits: dict[str, PreparedExamples] = {}

    @property
    def name(self) -> str:
        """The prepared dataset's folder name."""
        return self.path.resolve().name

    @property
    def feature_settings(self) -> FeatureSettings:
        """How its features were computed (datasets prepared before loudness_n_fft was recorded: 2048)."""
        return FeatureSettings.from_dict(self.config)

    @property
    def statistics(self) -> dict | None:
        """prepare's statistics (dataset_info.json); None where absent (unfinished or no examples).
        Datasets prepared before the quantiles were added lack those keys."""
        info = self.path / "dataset_info.json"
        return json.loads(info.read_text()).get("statistics") if info.exists() else None

    @property
    def content_hash(self) -> str:
        """sha1 of prepare_config.json (settings, the items' digest) and every shard's COMPLETE.json
        (its counts, skipped items and splits; not its run time): cheap, the same for the same
        preparation, and different when the dataset is prepared with other items or settings."""
        digest = hashlib.sha1(json.dumps(self.config, sort_keys=True).encode())
        for complete in sorted(self.path.glob("shard-*/COMPLETE.json")):
            summary = {k: v for k, v in json.loads(complete.read_text()).items() if k != "seconds"}
            digest.update(f"\0{complete.parent.name}\0{json.dumps(summary, sort_keys=True)}".encode())
        return digest.hexdigest()

    def dataset_card(self) -> dict:
        """The record a checkpoint keeps of its training data (plain values)."""
        return {"name": self.name, "source": self.config.get("source"), "path": str(self.path.resolve()),
                "content_hash": self.content_hash, "feature_settings": self.feature_settings.to_dict(),
                "statistics": self.statistics}

    def setup(self, stage: str | None = None) -> None:
        for split, random_crop in (("train", True), ("validation", False), ("test", False)):
            if split not in self.splits:
                ds = load_prepared(self.path, split)
                self.splits[split] = PreparedExamples(ds, self.hop, self.crop_frames, random_crop, self.seed)

    def _loader(self, split: str, shuffle: bool) -> DataLoader | list:
        data = self.splits[split]
        if len(data) == 0:
            if split == "train":
                raise ValueError(f"the train split of {self.path} is empty")
            import warnings

            warnings.warn(f"the {split} split of {self.path} is empty: no {split} batches", stacklevel=2)
            return []
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        if not shuffle:  # each rank validates its share (the trainer runs with use_distributed_sampler=False)
            sampler = DistributedSampler(data, world, rank, shuffle=False) if world > 1 else None
            return DataLoader(data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                              pin_memory=self.pin_memory)
        stream = TrainBatchStream(len(data), self.batch_size, self.seed, rank, world, self._batches_trained)
        return DataLoader(data, batch_sampler=stream, num_workers=self.num_workers, pin_memory=self.pin_memory)

    def _batches_trained(self) -> int:
        """Batches the trainer has completed in the whole run (restored on resume), else 0."""
        trainer = getattr(self, "trainer", None)
        return trainer.fit_loop.epoch_loop.batch_progress.total.completed if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def split_sizes(path: str | Path) -> dict[str, int] | None:
    """Examples per split of a prepared dataset, from its dataset_info.json (None where the file or
    its statistics are missing: unfinished, or no examples)."""
    info = Path(path) / "dataset_info.json"
    stats = json.loads(info.read_text()).get("statistics") if info.exists() else None
    return dict(stats["splits"]) if stats and "splits" in stats else None


def require_split(path: str | Path, split: str, setting: str) -> None:
    """Refuse, before any work, to evaluate a split that holds no examples, naming the fixes: another
    split (those that have examples), `evaluate.after_training=false` for a training run, or
    longer recordings."""
    sizes = split_sizes(path)
    if sizes is None or sizes.get(split, 0) > 0:
        return
    counts = ", ".join(f"{name} {sizes.get(name, 0)}" for name in ("train", "validation", "test"))
    others = [name for name in ("validation", "test", "train") if name != split and sizes.get(name, 0) > 0]
    fixes = [f"{setting}={others[0]}"] if others else []
    if setting.startswith("evaluate."):
        fixes.append("evaluate.after_training=false")
    fixes.append("longer recordings (a recording cut in time gives validation and test an example each from three "
                 "examples' length on)")
    raise ValueError(f"{setting}={split}: the {split} split of {path} is empty ({counts} examples), so there is "
                     f"nothing to evaluate; use " + ", or ".join(fixes))
