"""Prepare training examples once: audio -> examples with CREPE f0, confidence and loudness, stored
as a `datasets` dataset (Arrow) on disk.

Layout of `out`:
    prepare_config.json              the settings (a rerun with other settings is refused)
    shard-000-of-002/part-00000/     one datasets.save_to_disk per chunk of source items, with
                                     part_info.json (its counts and skipped items)
    shard-000-of-002/COMPLETE.json   written when the shard is done
    dataset_info.json                version, config, statistics: written when every shard is done

Resumable and idempotent: a part becomes visible only by an atomic rename of a finished temporary
directory, so an interrupted run leaves no half-written part; a rerun skips the parts that exist
and a finished shard does nothing. A bad item (unreadable, too short, silent) is skipped, counted
and listed with its reason; it never stops the run.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .features import CREPE_SAMPLE_RATE, CrepeF0, compute_loudness_frames, frame_hop
from .sources import Example, SkipItem

FORMAT_VERSION = 1


@dataclass
class PrepareConfig:
    source: str
    sample_rate: int = 16000
    frame_rate: int = 250
    example_seconds: float = 4.0
    crepe_model: str = "full"
    viterbi: bool = True
    num_shards: int = 1
    items_per_part: int = 16
    source_args: dict | None = None

    @property
    def n_samples(self) -> int:
        return int(round(self.example_seconds * self.sample_rate))

    def validate(self) -> None:
        hop = frame_hop(self.sample_rate, self.frame_rate)
        if self.n_samples % hop:
            raise ValueError(f"example_seconds ({self.example_seconds}) gives {self.n_samples} samples, "
                             f"not a multiple of the hop sample_rate / frame_rate = {hop}")
        if CREPE_SAMPLE_RATE % self.frame_rate:
            raise ValueError(f"frame_rate ({self.frame_rate}) must divide 16000 for CREPE "
                             f"(e.g. 50, 100, 125, 200, 250, 320, 400, 500)")
        if self.crepe_model not in ("full", "tiny"):
            raise ValueError(f"crepe_model must be 'full' or 'tiny', got {self.crepe_model!r}")
        if self.num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {self.num_shards}")


def _shard_dir(out: Path, shard: int, num_shards: int) -> Path:
    return out / f"shard-{shard:03d}-of-{num_shards:03d}"


def _check_config(out: Path, config: PrepareConfig) -> None:
    path = out / "prepare_config.json"
    mine = asdict(config)
    if path.exists():
        theirs = json.loads(path.read_text())
        if theirs != mine:
            diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
            raise ValueError(f"{out} was prepared with other settings (theirs, yours): {diff}; "
                             f"use another out directory")
        return
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(mine, indent=1))
    os.replace(tmp, path)


def _featurize(examples: list[Example], config: PrepareConfig, crepe: CrepeF0) -> dict[str, list]:
    audio = torch.from_numpy(np.stack([e.audio for e in examples]))
    f0, confidence = crepe(audio, config.sample_rate, config.frame_rate)
    loudness = compute_loudness_frames(audio, config.sample_rate, config.frame_rate)
    rows: dict[str, list] = {"audio": list(audio.numpy()), "f0_hz": list(f0.numpy()),
                             "f0_confidence": list(confidence.numpy()), "loudness_db": list(loudness.numpy()),
                             "example_id": [e.example_id for e in examples], "split": [e.split for e in examples]}
    for key in examples[0].meta:
        rows[key] = [e.meta.get(key) for e in examples]
    return rows


def _write_part(part_dir: Path, rows: dict[str, list], info: dict) -> None:
    import datasets

    datasets.disable_progress_bars()
    tmp = part_dir.parent / f".tmp-{part_dir.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    if rows:
        datasets.Dataset.from_dict(rows).save_to_disk(str(tmp))
    else:
        tmp.mkdir(parents=True)
    (tmp / "part_info.json").write_text(json.dumps(info, indent=1))
    os.replace(tmp, part_dir)  # the commit point: a part exists only once fully written


def prepare(source, out: str | Path, config: PrepareConfig, shard: int = 0, device: str | None = None,
            progress: bool = True) -> dict:
    """Prepare shard `shard` of `config.num_shards` of `source` into `out`; returns a summary."""
    config.validate()
    if not 0 <= shard < config.num_shards:
        raise ValueError(f"shard must be in [0, num_shards={config.num_shards}), got {shard}")
    out = Path(out)
    _check_config(out, config)
    shard_dir = _shard_dir(out, shard, config.num_shards)
    shard_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if (shard_dir / "COMPLETE.json").exists():
        summary = json.loads((shard_dir / "COMPLETE.json").read_text())
        summary["already_complete"] = True
        return summary
    for stale in shard_dir.glob(".tmp-part-*"):  # left by a killed run: never read, now removed
        shutil.rmtree(stale, ignore_errors=True)
    items = source.items()[shard::config.num_shards]
    chunks = [items[i:i + config.items_per_part] for i in range(0, len(items), config.items_per_part)]
    crepe = None
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc=f"prepare shard {shard}/{config.num_shards}", unit="file",
               disable=not progress)
    for k, chunk in enumerate(chunks):
        part_dir = shard_dir / f"part-{k:05d}"
        if part_dir.exists():
            bar.update(len(chunk))
            continue
        examples, skipped = [], []
        for item in chunk:
            try:
                examples.extend(source.load(item, config.sample_rate, config.frame_rate, config.n_samples))
            except SkipItem as e:
                skipped.append({"item": item, "reason": str(e)})
                bar.write(f"skipped {item}: {e}")
            bar.update(1)
        crepe = crepe or CrepeF0(config.crepe_model, config.viterbi, device)
        rows = {}
        for i in range(0, len(examples), 8):  # bounded memory per network call
            batch = _featurize(examples[i:i + 8], config, crepe)
            for key, values in batch.items():
                rows.setdefault(key, []).extend(values)
        _write_part(part_dir, rows, {"items": len(chunk), "examples": len(examples), "skipped": skipped})
    bar.close()
    summary = _summarise_shard(shard_dir)
    summary["seconds"] = round(time.time() - t0, 2)
    (shard_dir / "COMPLETE.json").write_text(json.dumps(summary, indent=1))
    _finalise(out, config)
    return summary


def _summarise_shard(shard_dir: Path) -> dict:
    infos = [json.loads((p / "part_info.json").read_text()) for p in sorted(shard_dir.glob("part-*")) if p.is_dir()]
    skipped = [s for i in infos for s in i["skipped"]]
    return {"items": sum(i["items"] for i in infos), "examples": sum(i["examples"] for i in infos),
            "skipped": skipped}


def _part_dirs(out: Path, allow_incomplete: bool = False) -> list[Path]:
    config = json.loads((out / "prepare_config.json").read_text())
    n = config["num_shards"]
    missing = [s for s in range(n) if not (_shard_dir(out, s, n) / "COMPLETE.json").exists()]
    if missing and not allow_incomplete:
        raise ValueError(f"{out} is not completely prepared: shards {missing} of {n} are unfinished "
                         f"(rerun prepare for them; pass allow_incomplete=True to read what exists)")
    return [p for s in range(n) for p in sorted(_shard_dir(out, s, n).glob("part-*"))
            if p.is_dir() and (p / "dataset_info.json").exists()]


def load_prepared(path: str | Path, split: str | None = None, allow_incomplete: bool = False):
    """The whole prepared dataset (all shards) as one `datasets.Dataset` (memory-mapped), optionally
    one split ('train', 'validation', 'test'). Columns: audio, f0_hz, f0_confidence, loudness_db,
    example_id, split and the source's metadata columns."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(path)
    if not (path / "prepare_config.json").exists():
        raise FileNotFoundError(f"no prepared dataset at {path} (missing prepare_config.json)")
    parts = [datasets.load_from_disk(str(p)) for p in _part_dirs(path, allow_incomplete)]
    if not parts:
        raise ValueError(f"{path} holds no examples")
    ds = datasets.concatenate_datasets(parts)
    if split is not None:
        if split not in ("train", "validation", "test"):
            raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
        keep = [i for i, s in enumerate(ds["split"]) if s == split]
        ds = ds.select(keep)  # an in-memory index: nothing is written into the prepared dataset
    return ds


def compute_statistics(ds, config: dict) -> dict:
    """Normalisation and reporting statistics of a prepared dataset."""
    ld = np.concatenate([np.asarray(x, np.float32) for x in ds["loudness_db"]])
    f0 = np.concatenate([np.asarray(x, np.float32) for x in ds["f0_hz"]])
    conf = np.concatenate([np.asarray(x, np.float32) for x in ds["f0_confidence"]])
    confident = f0[conf > 0.5]
    hist, edges = np.histogram(np.log2(np.clip(f0, 20, 4000)), bins=48, range=(np.log2(20), np.log2(4000)))
    splits = {s: int(sum(1 for x in ds["split"] if x == s)) for s in ("train", "validation", "test")}
    return {
        "examples": len(ds), "splits": splits,
        "hours": round(len(ds) * config["example_seconds"] / 3600, 4),
        "loudness_db_mean": float(ld.mean()), "loudness_db_std": float(ld.std()),
        "f0_hz_min": float(confident.min()) if confident.size else None,
        "f0_hz_max": float(confident.max()) if confident.size else None,
        "f0_confidence_mean": float(conf.mean()),
        "f0_hist_log2_edges": edges.tolist(), "f0_hist_counts": hist.tolist(),
    }


def _finalise(out: Path, config: PrepareConfig) -> None:
    """When every shard is complete, write dataset_info.json (version, config, statistics; a
    dataset whose every item was skipped gets statistics None and its skip list)."""
    try:
        _part_dirs(out)
    except ValueError:
        return  # other shards still running
    try:
        stats = compute_statistics(load_prepared(out), asdict(config))
    except ValueError:  # every item skipped: no examples
        stats = None
    skipped = []
    for s in range(config.num_shards):
        skipped += json.loads((_shard_dir(out, s, config.num_shards) / "COMPLETE.json").read_text())["skipped"]
    info = {"format_version": FORMAT_VERSION, "config": asdict(config),
            "statistics": stats, "skipped": skipped}
    tmp = out / "dataset_info.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, out / "dataset_info.json")
