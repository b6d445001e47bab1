"""Statistics of a prepared dataset (dataset_info.json, and checkpoints through the DataModule):
counts, loudness mean and spread, f0 range and histogram, and the quantiles of loudness and of
confident f0 that let a new recording be adjusted to the training data after training.

Read in batches: memory stays bounded however large the dataset. Quantiles come from fine
histograms (0.01 dB, 1 cent) with linear interpolation inside a bin, so they are within one bin of
np.quantile over all frames; values beyond the histogram's range count in its edge bins (the
recorded min and max are exact).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import dsp
from ..dsp.units import DB_RANGE
from ..features.confidence import CONFIDENT, is_confident
from .sources import SPLITS

QUANTILE_LEVELS = tuple(range(101))  # percent: 0, 1, ..., 100
LOUDNESS_DB_BINS = (-2.0 * DB_RANGE, 80.0, 0.01)  # (low, high, width): loudness is floored at -DB_RANGE
F0_MIDI_BINS = (-10.0, 150.0, 0.01)  # 1 cent; CREPE spans MIDI 23.6 .. 131.2


class HistogramQuantiles:
    """Quantiles of a stream of values in bounded memory: a histogram of fixed bins (low, high,
    width), plus the exact min and max."""

    def __init__(self, low: float, high: float, width: float):
        self.low, self.width = low, width
        self.counts = np.zeros(int(round((high - low) / width)), np.int64)
        self.min, self.max = np.inf, -np.inf

    def add(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        self.min, self.max = min(self.min, float(values.min())), max(self.max, float(values.max()))
        index = np.clip(np.floor((values - self.low) / self.width), 0, self.counts.size - 1).astype(np.int64)
        self.counts += np.bincount(index, minlength=self.counts.size)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def quantiles(self, levels_percent: tuple[float, ...] = QUANTILE_LEVELS) -> list[float] | None:
        """The values below which levels_percent of the values lie (None when there are none):
        the cumulative count interpolated linearly inside the bin that reaches the level, clipped
        to [min, max]; 0 % and 100 % are the exact min and max."""
        if self.n == 0:
            return None
        cum = np.cumsum(self.counts)
        target = np.asarray(levels_percent, np.float64) / 100.0 * self.n
        i = np.minimum(np.searchsorted(cum, target, side="left"), self.counts.size - 1)  # first bin reaching it
        frac = (target - (cum[i] - self.counts[i])) / np.maximum(self.counts[i], 1)
        values = np.clip(self.low + self.width * (i + frac), self.min, self.max)
        values[target <= 0], values[target >= self.n] = self.min, self.max  # exact ends (also beyond the bins)
        return values.tolist()


def compute_statistics(ds, config: dict) -> dict:
    """Normalisation and reporting statistics of a prepared dataset, read in batches (memory stays
    bounded however large the dataset). Quantiles at QUANTILE_LEVELS percent: loudness over all
    frames, and over frames with confidence >= CONFIDENT (the notes: what timbre transfer maps a
    recording's loudness onto); f0 (MIDI and Hz) over those confident frames."""
    edges = np.linspace(np.log2(20), np.log2(4000), 49)
    hist = np.zeros(48, np.int64)
    n_frames, ld_sum, ld_sq, conf_sum, f0_min, f0_max = 0, 0.0, 0.0, 0.0, np.inf, -np.inf
    loudness_q, f0_midi_q = HistogramQuantiles(*LOUDNESS_DB_BINS), HistogramQuantiles(*F0_MIDI_BINS)
    loudness_conf_q = HistogramQuantiles(*LOUDNESS_DB_BINS)  # the notes' loudness (confident frames)
    cols = ["f0_hz", "f0_confidence", "loudness_db"]
    for batch in ds.with_format("numpy", columns=cols).iter(batch_size=256):
        f0, conf, ld = (np.asarray(batch[c], np.float64).reshape(-1) for c in cols)
        n_frames, conf_sum = n_frames + ld.size, conf_sum + conf.sum()
        ld_sum, ld_sq = ld_sum + ld.sum(), ld_sq + (ld ** 2).sum()
        hist += np.histogram(np.log2(np.clip(f0, 20, 4000)), bins=edges)[0]
        loudness_q.add(ld)
        on = is_confident(conf)
        confident = f0[on]
        loudness_conf_q.add(ld[on])
        if confident.size:
            f0_min, f0_max = min(f0_min, confident.min()), max(f0_max, confident.max())
        f0_midi_q.add(dsp.hz_to_midi(torch.from_numpy(confident)).numpy())  # confident: f0 > 0
    split_col = ds["split"]
    splits = {s: int(sum(1 for x in split_col if x == s)) for s in SPLITS}
    ld_mean = ld_sum / max(1, n_frames)
    ld_std = np.sqrt(max(0.0, ld_sq / max(1, n_frames) - ld_mean ** 2))
    midi = f0_midi_q.quantiles()
    return {
        "examples": len(ds), "splits": splits,
        "hours": round(len(ds) * config["example_seconds"] / 3600, 4),
        "loudness_db_mean": float(ld_mean), "loudness_db_std": float(ld_std),
        "f0_hz_min": float(f0_min) if np.isfinite(f0_min) else None,
        "f0_hz_max": float(f0_max) if np.isfinite(f0_max) else None,
        "f0_confidence_mean": float(conf_sum / max(1, n_frames)),
        "f0_hist_log2_edges": edges.tolist(), "f0_hist_counts": hist.tolist(),
        "quantile_levels_percent": list(QUANTILE_LEVELS),
        "loudness_db_quantiles": loudness_q.quantiles(),
        "loudness_db_confident_quantiles": loudness_conf_q.quantiles(),
        "f0_confidence_threshold": CONFIDENT, "f0_confident_frames": f0_midi_q.n,
        "f0_midi_quantiles": midi, "f0_hz_quantiles": None if midi is None else [_hz(m) for m in midi],
    }


def _hz(midi: float) -> float:
    return float(dsp.midi_to_hz(torch.tensor(midi, dtype=torch.float64)))
