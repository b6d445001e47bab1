"""Evaluate a trained model on a prepared split: resynthesise every example, score it with the
paper's metrics, and summarise each metric with a bootstrap interval."""
from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from .. import atomic
from ..features import CrepeF0, compute_loudness_frames
from ..losses import MultiScaleSpectralLoss
from ..models import DDSP
from ..processors import PositionalNoise
from .bootstrap import bootstrap_ci
from .metrics import CONFIDENCE_THRESHOLD, f0_metrics, loudness_l1, paper_loudness

# summary metrics: per-example key -> what it is
METRICS = {
    "loudness_l1_db": "loudness L1 (dB per frame)",
    "f0_l1_semitones": "f0 L1 (semitones, target-confident frames, outliers excluded)",
    "f0_outlier": "f0 outlier ratio (no confident resynthesis frame, or f0 L1 > 12 semitones)",
    "spectral_distance": "multi-scale spectral distance (the paper's loss: FFT 2048..64, mag + log mag)",
    "loudness_l1_paper_std": "loudness L1 in the paper's Table 2 unit (std of the reference's 2020 eval loudness)",
    "encoder_f0_l1_semitones": "f0 encoder L1 against the dataset's CREPE f0 (semitones; unsupervised models)",
}


def _batches(n: int, lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by example length (any lengths), in order within each length."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[lengths[i]].append(i)
    return [idx[j:j + batch_size] for _, idx in sorted(groups.items()) for j in range(0, len(idx), batch_size)]


def evaluate(model: DDSP, data_path: str | Path, split: str = "test", limit: int | None = None,
             batch_size: int = 8, crepe_model: str = "full", viterbi: bool = True, device: str | None = None,
             seed: int = 0, n_resamples: int = 2000, progress: bool = True, swap: str | None = None) -> dict:
    """Scores of `model` on the `split` of a prepared dataset.

    swap: the interpolation experiment: each example is resynthesised with its f0 ('f0'), its
    loudness ('loudness') or its z ('z') taken from another example of the same length (the next in
    its batch), and scored against the example each feature came from: f0 metrics against the f0's
    source, loudness L1 against the loudness's, the spectral distance against the example itself.
    A model that does not take that feature as input is refused.

    Every example is resynthesised whole from its own features (a z encoder reads its audio),
    with noise seeded by `seed` (PositionalNoise: the same scores whatever the batching). The
    resynthesis's f0 comes from CREPE (crepe_model, viterbi: the prepare settings, 'full' with
    Viterbi as the paper's); the target's is the dataset's column when the dataset was prepared
    with the same CREPE settings, else computed the same way. Loudness: the training data's
    A-weighted loudness (its loudness_n_fft) on both.

    Returns {"examples": [per-example dicts], "summary": {metric: {mean, ci_low, ci_high, n}, ...,
    "counts": {...}, "timing": {...}}}.
    """
    from ..data import DDSPDataModule, load_prepared
    from ..data.datamodule import PreparedExamples, require_split

    _check_swap(model, swap)

    data = DDSPDataModule(str(data_path), sample_rate=model.sample_rate, frame_rate=model.frame_rate)
    require_split(data.path, split, "split")
    ds = load_prepared(data.path, split)
    if len(ds) == 0:
        raise ValueError(f"the {split} split of {data.path} is empty: nothing to evaluate (split=train|validation|test)")
    n = len(ds) if limit is None else min(len(ds), int(limit))
    if n < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device).eval()
    examples = PreparedExamples(ds, data.hop, None, False)
    ids = ds["example_id"][:n] if "example_id" in ds.column_names else [str(i) for i in range(n)]
    lengths = [len(a) for a in ds.with_format("numpy", columns=["f0_hz"])[:n]["f0_hz"]]
    settings = data.feature_settings
    columns_match = (settings.crepe_model, settings.viterbi) == (crepe_model, viterbi)
    crepe = CrepeF0(crepe_model, viterbi, str(device))
    spectral = MultiScaleSpectralLoss().to(device)
    sr, fr = model.sample_rate, model.frame_rate
    predicts_f0 = bool(getattr(model.encoder, "predicts_f0", False))
    rows: list[dict] = []
    t_start, t_crepe, seconds, skipped = time.perf_counter(), 0.0, 0.0, 0
    batches = _batches(n, lengths, batch_size)
    for b, idx in enumerate(batches):
        items = [examples[i] for i in idx]
        batch = {k: torch.stack([it[k] for it in items]).to(device) for k in ("audio", "f0_hz", "f0_confidence",
                                                                            "loudness_db")}
        if swap is not None and len(idx) < 2:
            skipped += len(idx)  # no other example of this length in the batch to take the feature from
            continue
        partner = [(j + 1) % len(idx) for j in range(len(idx))]
        other = {k: v[partner] for k, v in batch.items()}
        with torch.no_grad():
            outputs = _resynthesise(model, batch, other, swap, PositionalNoise(seed))
        audio, target = outputs[model.synth.output].float(), batch["audio"].float()
        f0_source = other if swap == "f0" else batch  # what each metric is scored against
        loudness_target = other["audio"].float() if swap == "loudness" else target
        seconds += target.numel() / sr
        t0 = time.perf_counter()
        f0, conf = crepe(audio, sr, fr)
        if columns_match:
            f0_t, conf_t = f0_source["f0_hz"][..., 0].cpu(), f0_source["f0_confidence"][..., 0].cpu()
        else:
            f0_t, conf_t = crepe(f0_source["audio"].float(), sr, fr)
        t_crepe += time.perf_counter() - t0
        scores = f0_metrics(f0, conf, f0_t, conf_t)
        with torch.no_grad():
            ld = loudness_l1(compute_loudness_frames(audio, sr, fr, settings.loudness_n_fft),
                             compute_loudness_frames(loudness_target, sr, fr, settings.loudness_n_fft)).cpu()
            ld_paper = loudness_l1(paper_loudness(audio, sr), paper_loudness(loudness_target, sr)).cpu()
            dist = [float(spectral(target[i:i + 1], audio[i:i + 1])) for i in range(len(idx))]
            enc = None
            if predicts_f0:
                enc = f0_metrics(outputs["f0_hz"].float().cpu(), torch.ones_like(f0_t), batch["f0_hz"].cpu(),
                                 batch["f0_confidence"].cpu())["f0_l1_semitones"]
        for j, i in enumerate(idx):
            row = {"index": i, "example_id": ids[i], "n_frames": lengths[i], "loudness_l1_db": float(ld[j]),
                   "f0_l1_semitones": float(scores["f0_l1_semitones"][j]),
                   "f0_outlier": float(scores["f0_outlier"][j]),
                   "target_confident": bool(scores["target_confident"][j]),
                   "spectral_distance": dist[j], "loudness_l1_paper_std": float(ld_paper[j])}
            if enc is not None:
                row["encoder_f0_l1_semitones"] = float(enc[j])
            if swap is not None:
                row[f"{swap}_from"] = ids[idx[partner[j]]]
            rows.append(row)
        if progress:
            _progress(b + 1, len(batches), len(rows), n, time.perf_counter() - t_start)
    rows.sort(key=lambda r: r["index"])
    wall = time.perf_counter() - t_start
    return {"examples": rows, "summary": summarise(rows, n_resamples, seed, {
        "wall_s": wall, "crepe_s": t_crepe, "audio_s": seconds,
        "audio_s_per_s": seconds / max(wall, 1e-9), "crepe_share": t_crepe / max(wall, 1e-9)},
        {"split": split, "data_path": str(data.path), "crepe_model": crepe_model, "viterbi": viterbi,
         "target_f0": "dataset columns" if columns_match else "CREPE on the target", "seed": seed,
         "confidence_threshold": CONFIDENCE_THRESHOLD, "swap": swap, "unpaired_examples_skipped": skipped})}


SWAPS = ("f0", "loudness", "z")


def _check_swap(model: DDSP, swap: str | None) -> None:
    if swap is None:
        return
    if swap not in SWAPS:
        raise ValueError(f"swap must be null or one of {SWAPS}, got {swap!r}")
    if swap == "z" and "z" not in getattr(model.decoder, "input_keys", ()):
        raise ValueError("swap=z: this model's decoder takes no z (a model with a z encoder, e.g. experiment=nsynth_z)")
    if swap == "f0" and getattr(model.encoder, "predicts_f0", False):
        raise ValueError("swap=f0: this model predicts its own f0 from the audio (unsupervised); it takes no f0 input")


def _resynthesise(model: DDSP, batch: dict, other: dict, swap: str | None, generator) -> dict:
    """The model's outputs for batch, with one feature taken from `other` (the interpolation experiment)."""
    if swap is None:
        return model(batch, generator=generator)
    if swap in ("f0", "loudness"):
        keys = ("f0_hz", "f0_confidence") if swap == "f0" else ("loudness_db",)
        return model({**batch, **{k: other[k] for k in keys}}, generator=generator)
    encoded = model.encode(batch)
    encoded["z"] = model.encode(other)["z"]
    return model.synth.run(model.decode(encoded), generator=generator, n_samples=batch["audio"].shape[-1])


def summarise(rows: list[dict], n_resamples: int = 2000, seed: int = 0, timing: dict | None = None,
              settings: dict | None = None) -> dict:
    """Each metric's mean with its 95 % bootstrap interval over the examples it applies to: the
    f0 L1 over target-confident examples that are not outliers, the outlier ratio over
    target-confident examples; counts of examples, left out and outliers."""
    confident = [r for r in rows if r["target_confident"]]
    values = {
        "loudness_l1_db": [r["loudness_l1_db"] for r in rows],
        "f0_l1_semitones": [r["f0_l1_semitones"] for r in confident if r["f0_outlier"] == 0.0],
        "f0_outlier": [r["f0_outlier"] for r in confident],
        "spectral_distance": [r["spectral_distance"] for r in rows],
        "loudness_l1_paper_std": [r["loudness_l1_paper_std"] for r in rows],
    }
    if rows and "encoder_f0_l1_semitones" in rows[0]:
        values["encoder_f0_l1_semitones"] = [r["encoder_f0_l1_semitones"] for r in rows]
    summary = {k: bootstrap_ci(v, n_resamples=n_resamples, seed=seed) for k, v in values.items()}
    summary["counts"] = {"examples": len(rows), "left_out_no_confident_target": len(rows) - len(confident),
                         "outliers": int(sum(r["f0_outlier"] == 1.0 for r in confident))}
    summary["timing"] = timing or {}
    summary["settings"] = settings or {}
    return summary


def write_results(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """examples.csv (one row per example) and summary.json in out_dir; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = result["examples"]
    csv_path, json_path = out / "examples.csv", out / "summary.json"
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["example_id"])
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(csv_path, buf.getvalue())  # summary.json last: a table reads a run as evaluated by it
    atomic.write_text(json_path, json.dumps(_finite_or_null(result["summary"]), indent=2))
    return csv_path, json_path


def _finite_or_null(x):
    """NaN (a metric with no example it applies to) as JSON null."""
    if isinstance(x, dict):
        return {k: _finite_or_null(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def flat_metrics(summary: dict, prefix: str = "eval/") -> dict[str, float]:
    """{eval/<metric>: mean, eval/<metric>_ci_low: ..., eval/<metric>_ci_high: ...} for loggers."""
    out = {}
    for k in METRICS:
        if k in summary:
            for field, suffix in (("mean", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
                out[f"{prefix}{k}{suffix}"] = float(summary[k][field])
    return out


def _progress(done: int, total: int, n_done: int, n: int, elapsed: float) -> None:
    if done == total or done % max(1, total // 10) == 0:
        eta = elapsed / done * (total - done)
        print(f"eval: {n_done}/{n} examples  {elapsed:.0f} s  ETA {eta:.0f} s", file=sys.stderr, flush=True)
