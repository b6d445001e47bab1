"""The training data's record that a checkpoint carries (its dataset statistics), read as the
ranges that applications, streaming and export need: the pitch range, the loudness quantiles of
its notes, the loudness of velocities 0 and 127 and of silence."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from ..features.confidence import CONFIDENT  # noqa: F401 - the threshold the statistics were counted with
PITCH_RANGE_PERCENT = (5, 95)  # the training pitch range: these quantiles of its confident f0


def _quantile_curve(statistics: Mapping | None, key: str) -> Tensor | None:
    values = (statistics or {}).get(key)
    return None if not values else torch.tensor(values, dtype=torch.float64)


def training_pitch_range(statistics: Mapping | None) -> tuple[float, float, float] | None:
    """(low, median, high) MIDI of the training data's confident f0 (5th, 50th, 95th percentile);
    None for a checkpoint without statistics."""
    q = _quantile_curve(statistics, "f0_midi_quantiles")
    if q is None:
        return None
    lo, hi = PITCH_RANGE_PERCENT
    return float(q[lo]), float(q[50]), float(q[hi])


def training_loudness_quantiles(statistics: Mapping | None) -> Tensor | None:
    """The training data's loudness quantiles (0..100 %) over its confident frames (the notes), or
    over all frames for datasets prepared before those were recorded."""
    return _quantile_curve(statistics, "loudness_db_confident_quantiles") \
        if (statistics or {}).get("loudness_db_confident_quantiles") else _quantile_curve(statistics, "loudness_db_quantiles")


def velocity_range(statistics: Mapping | None) -> tuple[tuple[float, float], float]:
    """((loudness at velocity 0, at 127), silence) in dB from the training data's note loudness:
    its 10th and 95th percentiles, and the minimum of all its frames (defaults for checkpoints
    without statistics: the demo corpus's)."""
    notes = training_loudness_quantiles(statistics)
    every = _quantile_curve(statistics, "loudness_db_quantiles")
    if notes is None or every is None:
        return (-10.0, 20.0), -40.0
    return (float(notes[10]), float(notes[95])), float(min(every[0], notes[0] - 20.0))
