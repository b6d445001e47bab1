"""LightningDataModule over a prepared dataset.

Batches are dicts: index [batch] (row in the split), audio [batch, n_samples] float32, f0_hz / f0_confidence / loudness_db
[batch, n_frames, 1] float32 (n_samples = n_frames * hop). Training can take random frame-aligned
crops (crop_seconds); validation and test take the first crop_seconds (or whole examples).
Under DDP each rank reads its own part of a per-epoch shuffle (DistributedSampler, drop_last:
no example repeats within an epoch; at most world_size - 1 are left for the next epoch).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .prepare import load_prepared

FRAME_KEYS = ("f0_hz", "f0_confidence", "loudness_db")


class PreparedExamples(Dataset):
    """Map-style view of one split: example dicts of tensors, optionally cropped."""

    def __init__(self, ds, hop: int, crop_frames: int | None, random_crop: bool, seed: int = 0):
        self.ds = ds.with_format("numpy", columns=["audio", *FRAME_KEYS])
        self.hop, self.crop_frames, self.random_crop, self.seed = hop, crop_frames, random_crop, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.ds[int(index)]
        n_frames = len(row["f0_hz"])
        start, length = 0, n_frames
        if self.crop_frames is not None and self.crop_frames < n_frames:
            length = self.crop_frames
            if self.random_crop:  # reproducible per (seed, epoch, index), any worker layout
                rng = np.random.default_rng((self.seed, self.epoch, int(index)))
                start = int(rng.integers(0, n_frames - length + 1))
        out = {"index": torch.tensor(int(index)), "audio": torch.as_tensor(row["audio"][start * self.hop:(start + length) * self.hop], dtype=torch.float32)}
        for key in FRAME_KEYS:
            out[key] = torch.as_tensor(row[key][start:start + length], dtype=torch.float32)[:, None]
        return out


class DDSPDataModule(pl.LightningDataModule):
    """Args:
        path: a prepared dataset (ddsp-lab prepare).
        batch_size, num_workers, pin_memory: DataLoader settings.
        crop_seconds: train on random crops of this length (None: whole examples).
        sample_rate, frame_rate: what the model expects; a dataset prepared otherwise is refused.
        seed: shuffling and cropping seed.
    """

    def __init__(self, path: str, batch_size: int = 32, num_workers: int = 0, pin_memory: bool = False,
                 crop_seconds: float | None = None, sample_rate: int | None = None,
                 frame_rate: int | None = None, seed: int = 0):
        super().__init__()
        self.path = Path(path)
        if not (self.path / "prepare_config.json").exists():
            raise FileNotFoundError(f"data.path {self.path} is not a prepared dataset (no prepare_config.json); "
                                    f"run `ddsp-lab prepare ... out={self.path}` first")
        self.config = json.loads((self.path / "prepare_config.json").read_text())
        for name, want in (("sample_rate", sample_rate), ("frame_rate", frame_rate)):
            if want is not None and int(self.config[name]) != int(want):
                raise ValueError(f"data.path {self.path} was prepared at {name}={self.config[name]}, "
                                 f"but the model expects {name}={want}")
        self.hop = self.config["sample_rate"] // self.config["frame_rate"]
        self.crop_frames = None if crop_seconds is None else int(round(crop_seconds * self.config["frame_rate"]))
        self.batch_size, self.num_workers, self.pin_memory, self.seed = batch_size, num_workers, pin_memory, seed
        self.splits: dict[str, PreparedExamples] = {}

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
        sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = DistributedSampler(data, shuffle=shuffle, seed=self.seed, drop_last=shuffle)
        elif shuffle:
            sampler = torch.utils.data.RandomSampler(data, generator=torch.Generator().manual_seed(self.seed))
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, drop_last=False)  # workers re-created each epoch: they see set_epoch

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def set_epoch(self, epoch: int) -> None:
        """Called by DDSPAutoencoder.on_train_epoch_start: new crops each epoch."""
        for split in self.splits.values():
            split.epoch = epoch
