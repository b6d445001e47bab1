"""Prepare training examples once: audio -> examples with CREPE f0, confidence and loudness, stored
as a `datasets` dataset (Arrow) on disk.

Layout of `out`:
    prepare_config.json              the settings (their feature settings: sample_rate, frame_rate,
                                     crepe_model, viterbi, loudness_n_fft, read back by
                                     FeatureSettings.from_dict), the item list's digest and split
                                     rule (a rerun or sibling shard with other settings is refused)
    shard-000-of-002/part-00000/     one part per chunk of source items: rows-00000/, rows-00001/ ...
                                     (datasets.save_to_disk, each a bounded group of examples) and
                                     part_info.json (its counts and skipped items)
    shard-000-of-002/COMPLETE.json   written when the shard is done
    dataset_info.json                version, config, split rule, statistics, warnings: written when
                                     every shard is done

Resumable and idempotent: a part becomes visible only by an atomic rename of a finished temporary
directory, so an interrupted run leaves no half-written part; a rerun skips the parts that exist
and a finished shard does nothing. A bad item (unreadable, too short, silent) is skipped, counted
and listed with its reason; it never stops the run.

Shards may start and finish at the same moment (a SLURM array): every temporary name is unique to
its process, the first writer of prepare_config.json wins atomically (the others compare against
it), and shards finishing together both write the same dataset_info.json by an atomic rename.

Long recordings (FolderSource, HubSource give a `Recording`) are analysed once per segment: loudness
first (silent windows dropped), then CREPE over the frames the kept windows cover, in bounded blocks
(ddsp_lab.features.CrepeF0.track); each example's frames are cut from the segment's arrays. A frame
near an example's edge thus sees the real audio around it where a per-window analysis saw zero
padding; at a segment's own ends both see zeros. The other sources give examples (`load`) analysed
one by one. Either way the columns are `ddsp_lab.features.compute` of the same audio (a whole
segment, or one example) with the config's `feature_settings`: loudness exactly, f0 and confidence
exactly with argmax decoding, and with Viterbi where the kept windows cover the segment (else they
may differ near the end of a decoded run of frames, where Viterbi paths need not have merged).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch

from ..atomic import create_once, write_text
from ..features import CrepeF0, FeatureSettings, compute, frame_hop
from .sources import MIN_ITEMS_BY_ITEM, SPLITS, Example, Recording, SkipItem, plan_windows
from .statistics import compute_statistics  # noqa: F401 - also importable from here, as before

FORMAT_VERSION = 2  # 2: features per recording, time-block splits, parts in groups of rows
GROUP_BYTES = 64 << 20  # audio rows held before a group is written out (its Arrow copy takes ~2.5x)


def _json_default(value):
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:
        pass
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not a plain value")


def canonical(value, name: str = "value"):
    """The JSON form of a settings value: tuples and lists alike, OmegaConf containers resolved to
    plain ones, so settings compare equal however they were spelled."""
    try:
        return json.loads(json.dumps(value, default=_json_default, sort_keys=True))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must hold plain values (numbers, strings, lists, dicts): {e}") from e


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
    loudness_n_fft: int = 2048

    def __post_init__(self):
        self.source_args = canonical(self.source_args, "source_args")  # one form: tuple == list

    @property
    def n_samples(self) -> int:
        return int(round(self.example_seconds * self.sample_rate))

    @property
    def feature_settings(self) -> FeatureSettings:
        """How the examples' features are computed (validated; ddsp_lab.features.compute takes it)."""
        return FeatureSettings(self.sample_rate, self.frame_rate, self.crepe_model, self.viterbi, self.loudness_n_fft)

    def validate(self) -> None:
        hop = self.feature_settings.hop
        if self.n_samples % hop:
            raise ValueError(f"example_seconds ({self.example_seconds}) gives {self.n_samples} samples, "
                             f"not a multiple of the hop sample_rate / frame_rate = {hop}")
        if self.num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {self.num_shards}")
        if self.items_per_part < 1:
            raise ValueError(f"items_per_part must be >= 1, got {self.items_per_part}")


def _shard_dir(out: Path, shard: int, num_shards: int) -> Path:
    return out / f"shard-{shard:03d}-of-{num_shards:03d}"


def _read_json(path: Path, attempts: int = 50) -> dict:
    for _ in range(attempts - 1):  # tolerates a racing exclusive create's brief empty file
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            time.sleep(0.1)
    return json.loads(path.read_text())


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def _settings(config: PrepareConfig, source, items: list[str]) -> dict:
    """What prepare_config.json holds: the config, the format, and what every shard must agree on
    about the source (its items and split rule)."""
    rule = source.split_rule() if hasattr(source, "split_rule") else "source"
    digest = hashlib.sha1("\n".join(items).encode()).hexdigest()
    return canonical({**asdict(config), "format_version": FORMAT_VERSION, "split_rule": rule,
                      "n_items": len(items), "items_sha1": digest}, "config")


# settings added to prepare_config.json later, with the value every dataset prepared before used
_RECORDED_SINCE = {"loudness_n_fft": 2048}


def _check_config(out: Path, settings: dict) -> None:
    """Writes prepare_config.json if absent (first writer wins), else refuses other settings."""
    path = out / "prepare_config.json"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        create_once(path, json.dumps(settings, indent=1))
    theirs, mine = _flat({**_RECORDED_SINCE, **_read_json(path)}), _flat(settings)
    diff = {k: (theirs.get(k), mine.get(k)) for k in sorted(set(theirs) | set(mine)) if theirs.get(k) != mine.get(k)}
    if diff:
        raise ValueError(f"{out} was prepared with other settings (theirs, yours): {diff}; "
                         f"use another out directory")


def _example_rows(examples: list[Example], config: PrepareConfig, crepe: CrepeF0) -> dict[str, list]:
    """Rows of examples analysed one by one (sources without recordings), each as a recording of
    its own by ddsp_lab.features.compute."""
    audio = torch.from_numpy(np.stack([e.audio for e in examples]))
    feats = compute(audio, config.sample_rate, config.feature_settings, crepe=crepe)
    rows: dict[str, list] = {"audio": list(audio.numpy()), **{k: list(v.numpy()) for k, v in feats.items()},
                             "example_id": [e.example_id for e in examples], "split": [e.split for e in examples]}
    for key in examples[0].meta:
        rows[key] = [e.meta.get(key) for e in examples]
    return rows


def _frame_runs(starts: list[int], hop: int, n_frames: int) -> list[tuple[int, int]]:
    """The frame ranges [a, b) covered by windows of n_frames starting at samples `starts`."""
    runs: list[list[int]] = []
    for s in starts:
        a = s // hop
        if runs and a <= runs[-1][1]:
            runs[-1][1] = a + n_frames
        else:
            runs.append([a, a + n_frames])
    return [(a, b) for a, b in runs]


def _recording_rows(rec: Recording, config: PrepareConfig, crepe, progress):
    """Rows of a recording's examples in groups of bounded size, each segment analysed once:
    loudness, then CREPE over the frames its kept windows cover (progress(seconds) per block)."""
    sr, fr, n = config.sample_rate, config.frame_rate, config.n_samples
    hop = frame_hop(sr, fr, n)
    n_frames, group = n // hop, max(1, GROUP_BYTES // (4 * n))
    for seg, loudness, starts in plan_windows(rec, sr, fr, n, config.loudness_n_fft):  # SkipItem before any row
        audio = rec.audio[seg.start:seg.stop]
        f0_hz, confidence = torch.zeros_like(loudness), torch.zeros_like(loudness)
        for run in _frame_runs(starts, hop, n_frames):
            for j0, f0_block, conf_block in crepe().track(torch.from_numpy(audio), sr, fr, run):
                f0_hz[j0:j0 + len(f0_block)], confidence[j0:j0 + len(f0_block)] = f0_block, conf_block
                progress(len(f0_block) / fr)
        for i in range(0, len(starts), group):
            frames = [slice(s // hop, s // hop + n_frames) for s in starts[i:i + group]]
            offsets = [seg.start + s for s in starts[i:i + group]]
            rows = {"audio": [rec.audio[o:o + n] for o in offsets], "f0_hz": [f0_hz[f].numpy() for f in frames],
                    "f0_confidence": [confidence[f].numpy() for f in frames],
                    "loudness_db": [loudness[f].numpy() for f in frames],
                    "example_id": [f"{rec.item}@{o}" for o in offsets], "split": [seg.split] * len(offsets)}
            rows.update({k: [v] * len(offsets) for k, v in rec.meta.items()})
            rows["offset_s"] = [o / sr for o in offsets]
            yield rows


class _PartWriter:
    """One part, written in bounded groups of rows: each group is saved as its own dataset
    (rows-00000, ...) in a temporary directory unique to this process, which becomes the part by
    one atomic rename (the commit point: a part exists only once fully written)."""

    def __init__(self, part_dir: Path, max_rows: int):
        import datasets

        datasets.disable_progress_bars()
        self.part_dir, self.max_rows = part_dir, max_rows
        self.tmp = part_dir.parent / f".tmp-{part_dir.name}-{os.getpid()}-{secrets.token_hex(4)}"
        self.tmp.mkdir(parents=True)
        self.rows: dict[str, list] = {}
        self.n_groups, self.splits = 0, dict.fromkeys(SPLITS, 0)

    def add(self, rows: dict[str, list]) -> None:
        for key, values in rows.items():
            self.rows.setdefault(key, []).extend(values)
        for split in rows["split"]:
            self.splits[split] = self.splits.get(split, 0) + 1
        if len(self.rows["example_id"]) >= self.max_rows:
            self.flush()

    def flush(self) -> None:
        import datasets

        if self.rows:
            datasets.Dataset.from_dict(self.rows).save_to_disk(str(self.tmp / f"rows-{self.n_groups:05d}"))
            self.n_groups, self.rows = self.n_groups + 1, {}

    def commit(self, info: dict) -> None:
        self.flush()
        (self.tmp / "part_info.json").write_text(json.dumps({**info, "splits": self.splits}, indent=1))
        os.replace(self.tmp, self.part_dir)


class _Lazy:
    """Builds its value on the first call, then returns it."""

    def __init__(self, build):
        self.build, self.value = build, None

    def __call__(self):
        if self.value is None:
            self.value = self.build()
        return self.value


def _item_seconds(source, item: str, config: PrepareConfig) -> float | None:
    """Seconds of audio an item holds (for progress): from the source, else one example's."""
    if hasattr(source, "seconds"):
        return source.seconds(item)
    return None if hasattr(source, "recording") else config.example_seconds


def _prepare_part(source, chunk: list[str], part_dir: Path, config: PrepareConfig, crepe, bar) -> None:
    """Loads, analyses and writes the items of one part; bad items are skipped with their reason."""
    writer = _PartWriter(part_dir, max(1, GROUP_BYTES // (4 * config.n_samples)))
    skipped, n_examples, examples = [], 0, []
    args = (config.sample_rate, config.frame_rate, config.n_samples)
    for item in chunk:
        try:
            if hasattr(source, "recording"):
                for rows in _recording_rows(source.recording(item, *args), config, crepe, bar.update):
                    writer.add(rows)
                    n_examples += len(rows["example_id"])
            else:
                examples.extend(list(source.load(item, *args)))  # whole items only
        except SkipItem as e:
            skipped.append({"item": item, "reason": str(e)})
            bar.write(f"skipped {item}: {e}")
    for i in range(0, len(examples), 8):  # bounded memory per network call
        writer.add(_example_rows(examples[i:i + 8], config, crepe()))
        bar.update(len(examples[i:i + 8]) * config.example_seconds)
    writer.commit({"items": len(chunk), "examples": n_examples + len(examples), "skipped": skipped})


def prepare(source, out: str | Path, config: PrepareConfig, shard: int = 0, device: str | None = None,
            progress: bool = True) -> dict:
    """Prepare shard `shard` of `config.num_shards` of `source` into `out`; returns a summary: items,
    examples, skipped, splits (this shard's examples per split), split_rule, seconds, and warnings
    (an empty split of the whole dataset, when this call completed it)."""
    config.validate()
    if not 0 <= shard < config.num_shards:
        raise ValueError(f"shard must be in [0, num_shards={config.num_shards}), got {shard}")
    out = Path(out)
    all_items = source.items()
    settings = _settings(config, source, all_items)
    _check_config(out, settings)
    shard_dir = _shard_dir(out, shard, config.num_shards)
    shard_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if (shard_dir / "COMPLETE.json").exists():
        info = (_read_json(out / "dataset_info.json") if (out / "dataset_info.json").exists()
                else _finalise(out, settings) or {})
        return {**_read_json(shard_dir / "COMPLETE.json"), "already_complete": True,
                "warnings": info.get("warnings", [])}
    for stale in shard_dir.glob(".tmp-part-*"):  # left by a killed run: never read, now removed
        shutil.rmtree(stale, ignore_errors=True)
    items = all_items[shard::config.num_shards]
    chunks = [items[i:i + config.items_per_part] for i in range(0, len(items), config.items_per_part)]
    seconds = [_item_seconds(source, item, config) for item in items]
    # progress in seconds of audio analysed, so rate and ETA follow the work (CREPE), not files read
    bar = _progress(None if None in seconds else round(sum(seconds), 1), f"prepare shard {shard}/{config.num_shards}",
                    progress)
    crepe = _Lazy(lambda: CrepeF0(config.crepe_model, config.viterbi, device))  # loaded only if needed
    for k, chunk in enumerate(chunks):
        part_dir = shard_dir / f"part-{k:05d}"
        if not part_dir.exists():
            _prepare_part(source, chunk, part_dir, config, crepe, bar)
        if bar.total is not None:  # catch up on audio that needed no analysis (silence, skips, done parts)
            bar.update(max(0.0, sum(seconds[:(k + 1) * config.items_per_part]) - bar.n))
    bar.close()
    summary = {**_summarise_shard(shard_dir), "split_rule": settings["split_rule"],
               "seconds": round(time.time() - t0, 2)}
    write_text(shard_dir / "COMPLETE.json", json.dumps(summary, indent=1))
    info = _finalise(out, settings)
    return {**summary, "warnings": info["warnings"] if info else []}


def _summarise_shard(shard_dir: Path) -> dict:
    infos = [_read_json(p / "part_info.json") for p in sorted(shard_dir.glob("part-*")) if p.is_dir()]
    splits = {s: sum(i["splits"].get(s, 0) for i in infos) for s in SPLITS}
    return {"items": sum(i["items"] for i in infos), "examples": sum(i["examples"] for i in infos),
            "skipped": [s for i in infos for s in i["skipped"]], "splits": splits}


def _part_dirs(out: Path, allow_incomplete: bool = False) -> list[Path]:
    """The saved datasets of every finished part, in shard and part order."""
    config = _read_json(out / "prepare_config.json")
    n = config["num_shards"]
    missing = [s for s in range(n) if not (_shard_dir(out, s, n) / "COMPLETE.json").exists()]
    if missing and not allow_incomplete:
        raise ValueError(f"{out} is not completely prepared: shards {missing} of {n} are unfinished "
                         f"(rerun prepare for them; pass allow_incomplete=True to read what exists)")
    parts = [p for s in range(n) for p in sorted(_shard_dir(out, s, n).glob("part-*")) if p.is_dir()]
    # format 1 saved a part as one dataset; format 2 as groups of rows inside it
    return [d for p in parts for d in ([p] if (p / "dataset_info.json").exists() else sorted(p.glob("rows-*")))]


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


class _LineProgress:
    """prepare's progress where stderr is not a terminal (CI, SLURM logs, `| tee`): a plain line every
    5 % of the audio (every minute when the total is unknown), not a redrawn bar's flood."""

    def __init__(self, total: float | None, desc: str):
        self.total, self.desc, self.n = total, desc, 0.0
        self._t0 = self._shown_t = time.time()
        self._shown_n = 0.0

    def update(self, n: float) -> None:
        self.n += n
        now = time.time()
        step = 0.05 * self.total if self.total else None
        if (step and self.n - self._shown_n >= step) or (not step and now - self._shown_t >= 60):
            self._line(now)

    def _line(self, now: float) -> None:
        rate = self.n / max(now - self._t0, 1e-9)
        line = f"{self.desc}: {self.n:.0f}"
        if self.total:
            eta = max(0.0, (self.total - self.n) / max(rate, 1e-9))
            line += f" of {self.total:.0f} s of audio ({100 * self.n / self.total:.0f} %), ETA {timedelta(seconds=round(eta))}"
        else:
            line += " s of audio"
        print(f"{line}, {rate:.1f} s of audio per second", file=sys.stderr, flush=True)
        self._shown_n, self._shown_t = self.n, now

    def write(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.n > self._shown_n:
            self._line(time.time())


def _progress(total: float | None, desc: str, enabled: bool):
    """A progress counter in seconds of audio: a tqdm bar on a terminal, plain lines otherwise."""
    from tqdm import tqdm

    if enabled and not sys.stderr.isatty():
        return _LineProgress(total, desc)
    return tqdm(total=total, unit=" s of audio", unit_scale=True, desc=desc, disable=not enabled)


def _split_warnings(splits: dict, rule: str) -> list[str]:
    hints = {"time_blocks": f"fewer than {MIN_ITEMS_BY_ITEM} items are split in time blocks, and no item gave "
                            f"that block an example (an item needs three examples' length for its blocks)",
             "published": "the source has no such split"}
    return [f"the {name} split is empty (split rule {rule!r}: {hints.get(rule, 'no item was assigned to it')})"
            for name in SPLITS if not splits.get(name)]


def _finalise(out: Path, settings: dict) -> dict | None:
    """When every shard is complete, write dataset_info.json (version, config, split rule,
    statistics, skipped items, warnings; a dataset whose every item was skipped gets statistics
    None) and return it; None while shards are unfinished. Shards finishing together may both
    write it: the content is the same and the rename atomic."""
    try:
        _part_dirs(out)
    except ValueError:
        return None  # other shards still running
    config = {k: settings[k] for k in PrepareConfig.__dataclass_fields__}
    try:
        stats = compute_statistics(load_prepared(out), config)
    except ValueError:  # every item skipped: no examples
        stats = None
    n = config["num_shards"]
    skipped = [s for i in range(n) for s in _read_json(_shard_dir(out, i, n) / "COMPLETE.json")["skipped"]]
    found = _split_warnings(stats["splits"] if stats else {}, settings["split_rule"])
    for message in found:
        warnings.warn(f"{out}: {message}", stacklevel=3)
    info = {"format_version": FORMAT_VERSION, "config": config, "split_rule": settings["split_rule"],
            "statistics": stats, "skipped": skipped, "warnings": found}
    write_text(out / "dataset_info.json", json.dumps(info, indent=1))
    return info
