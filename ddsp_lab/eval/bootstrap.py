"""Bootstrap confidence intervals over examples (seeded, deterministic)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], level: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> dict[str, float]:
    """Mean of the finite values and its percentile-bootstrap interval.

    Returns {"mean", "ci_low", "ci_high", "n"}: n finite values (NaN ones are left out: an example
    a metric does not apply to); with none, mean and bounds are NaN; with one, the bounds are the
    value. Resampling is seeded: the same values give the same interval.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
    mean = float(x.mean())
    if x.size == 1:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "n": 1}
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 256):  # bounded memory for large sets
        stop = min(start + 256, n_resamples)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean": mean, "ci_low": float(min(lo, mean)), "ci_high": float(max(hi, mean)), "n": int(x.size)}
