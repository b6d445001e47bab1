"""`ddsp-lab inspect`: a prepared dataset's statistics and a PNG of its f0 / loudness distributions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..features.confidence import CONFIDENT, is_confident
from .prepare import compute_statistics, load_prepared


def inspect_prepared(path: str | Path, png: str | Path | None = None) -> str:
    """Returns a printable report; writes the distributions PNG (default <path>/statistics.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    ds = load_prepared(path)
    info_path = path / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    config = json.loads((path / "prepare_config.json").read_text())
    stats = info.get("statistics") or compute_statistics(ds, config)  # load_prepared raised if empty
    f0 = np.concatenate([np.asarray(x) for x in ds["f0_hz"]])
    conf = np.concatenate([np.asarray(x) for x in ds["f0_confidence"]])
    ld = np.concatenate([np.asarray(x) for x in ds["loudness_db"]])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    axes[0].hist(f0[is_confident(conf)], bins=np.geomspace(30, 2000, 60))
    axes[0].set_xscale("log")
    axes[0].set_title(f"f0 (Hz), confidence >= {CONFIDENT}")
    axes[1].hist(ld, bins=60)
    axes[1].set_title("loudness (dB)")
    axes[2].hist(conf, bins=50)
    axes[2].set_title("CREPE confidence")
    fig.tight_layout()
    png = Path(png) if png else path / "statistics.png"
    fig.savefig(png)
    plt.close(fig)
    skipped = info.get("skipped", [])
    lines = [f"{path}: {stats['examples']} examples, {stats['hours']} h, splits {stats['splits']}",
             f"  loudness {stats['loudness_db_mean']:.1f} +- {stats['loudness_db_std']:.1f} dB; "
             f"f0 {stats['f0_hz_min']} .. {stats['f0_hz_max']} Hz; mean confidence {stats['f0_confidence_mean']:.3f}",
             f"  config: {config}", f"  skipped items: {len(skipped)}", f"  distributions: {png}"]
    if stats.get("loudness_db_quantiles") and stats.get("f0_hz_quantiles"):  # datasets prepared since they exist
        ld_q, f0_q = stats["loudness_db_quantiles"], stats["f0_hz_quantiles"]
        lines.insert(2, f"  5 / 50 / 95 %: loudness {ld_q[5]:.1f} / {ld_q[50]:.1f} / {ld_q[95]:.1f} dB; "
                        f"confident f0 {f0_q[5]:.1f} / {f0_q[50]:.1f} / {f0_q[95]:.1f} Hz")
    return "\n".join(lines)
