"""Prepare's statistics: loudness and confident-f0 quantiles in bounded memory (fine histograms read
in batches) agree with np.quantile over all frames; prepare writes them to dataset_info.json."""
from __future__ import annotations

import json

import datasets
import numpy as np
import pytest

from ddsp_lab.data import compute_statistics
from ddsp_lab.data.statistics import QUANTILE_LEVELS, HistogramQuantiles


def _dataset(n_examples: int, n_frames: int, seed: int = 0) -> tuple[datasets.Dataset, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    cols = {"loudness_db": rng.normal(-35.0, 12.0, (n_examples, n_frames)).clip(-80.0, None),
            "f0_hz": 440.0 * 2 ** rng.normal(0.0, 0.8, (n_examples, n_frames)),
            "f0_confidence": rng.uniform(0.0, 1.0, (n_examples, n_frames))}
    ds = datasets.Dataset.from_dict({**{k: list(v.astype(np.float32)) for k, v in cols.items()},
                                     "split": ["train"] * n_examples})
    return ds, {k: v.astype(np.float32).astype(np.float64).ravel() for k, v in cols.items()}


def test_quantiles_match_numpy_over_all_frames_read_in_batches():
    ds, cols = _dataset(600, 50)  # 600 rows: three batches of 256
    stats = compute_statistics(ds, {"example_seconds": 0.2})
    assert stats["quantile_levels_percent"] == list(range(101))
    levels = np.array(QUANTILE_LEVELS) / 100
    np.testing.assert_allclose(stats["loudness_db_quantiles"], np.quantile(cols["loudness_db"], levels), atol=0.02)
    confident = cols["f0_hz"][cols["f0_confidence"] > 0.5]
    midi = 69 + 12 * np.log2(confident / 440)
    assert stats["f0_confident_frames"] == confident.size
    np.testing.assert_allclose(stats["f0_midi_quantiles"], np.quantile(midi, levels), atol=0.02)  # 2 cents
    np.testing.assert_allclose(stats["f0_hz_quantiles"], 440 * 2 ** ((np.array(stats["f0_midi_quantiles"]) - 69) / 12),
                               rtol=1e-9)
    assert stats["f0_hz_quantiles"][0] == pytest.approx(confident.min()) and stats["f0_hz_min"] == confident.min()
    assert stats["loudness_db_quantiles"][100] == pytest.approx(cols["loudness_db"].max())


def test_no_confident_frame_gives_no_f0_quantiles():
    ds = datasets.Dataset.from_dict({"loudness_db": [np.full(10, -80.0, np.float32)], "f0_hz": [np.full(10, 100.0)],
                                     "f0_confidence": [np.zeros(10)], "split": ["train"]})
    stats = compute_statistics(ds, {"example_seconds": 0.04})
    assert stats["f0_midi_quantiles"] is None and stats["f0_hz_quantiles"] is None
    assert stats["loudness_db_quantiles"] == [-80.0] * 101


def test_histogram_quantiles_are_exact_at_the_ends_and_clip_out_of_range_values():
    q = HistogramQuantiles(0.0, 10.0, 0.01)
    q.add(np.array([-5.0, 1.0, 2.0, 3.0, 25.0, np.nan]))  # beyond the range: edge bins; NaN ignored
    out = q.quantiles((0, 50, 100))
    assert q.n == 5 and out[0] == -5.0 and out[2] == 25.0 and abs(out[1] - 2.0) <= 0.01


def test_prepare_writes_the_quantiles_to_dataset_info(demo_data):
    stats = json.loads((demo_data / "dataset_info.json").read_text())["statistics"]
    for key in ("loudness_db_quantiles", "f0_midi_quantiles", "f0_hz_quantiles"):
        values = np.array(stats[key])
        assert values.shape == (101,) and np.all(np.diff(values) >= 0), key
    assert stats["f0_confident_frames"] > 0 and stats["f0_hz_quantiles"][0] == pytest.approx(stats["f0_hz_min"])
