"""`ddsp-lab eval`: load a checkpoint, evaluate a split, write the files, log the summary, print it."""
from __future__ import annotations

import math
from pathlib import Path

from .evaluate import METRICS, evaluate, flat_metrics, write_results


def data_path_for(model, data_path: str | None, checkpoint: str | Path) -> str:
    """The dataset to evaluate on: the one given, else the one the checkpoint was trained on."""
    if data_path:
        return str(data_path)
    recorded = (model.dataset_info or {}).get("path")
    if not recorded:
        raise ValueError(f"data.path: {checkpoint} records no training data (a checkpoint written before the "
                         f"record was saved); set data.path=<prepared dataset>")
    if not Path(recorded).exists():
        raise FileNotFoundError(f"data.path: {checkpoint} was trained on {recorded}, which does not exist here; "
                                f"set data.path=<prepared dataset>")
    return recorded


def run_eval(cfg) -> dict:
    """The eval command (cfg: conf/eval.yaml composed); returns the summary."""
    import hydra

    from ..models import load

    model = load(cfg.checkpoint, trusted_targets=cfg.get("trusted_targets") or ())
    path = data_path_for(model, cfg.data.path, cfg.checkpoint)
    result = evaluate(model, path, split=cfg.split, limit=cfg.limit, batch_size=int(cfg.batch_size),
                      crepe_model=cfg.crepe_model, viterbi=bool(cfg.viterbi), device=cfg.device,
                      seed=int(cfg.seed), n_resamples=int(cfg.n_resamples), progress=bool(cfg.progress),
                      swap=cfg.get("swap"))
    csv_path, json_path = write_results(result, cfg.out)
    logger = hydra.utils.instantiate(cfg.logger) if cfg.get("logger") else None
    if logger is not None:
        logger.log_metrics(flat_metrics(result["summary"]))
        logger.finalize("success")
    print(format_summary(result["summary"], f"ddsp-lab eval: {cfg.checkpoint} on the {cfg.split} split of {path}"))
    print(f"  per example: {csv_path}\n  summary: {json_path}")
    return result["summary"]


def format_summary(summary: dict, title: str) -> str:
    lines = [title]
    counts = summary.get("counts", {})
    lines.append(f"  {counts.get('examples', 0)} examples; {counts.get('left_out_no_confident_target', 0)} left out "
                 f"of the f0 metrics (no confident target frame); {counts.get('outliers', 0)} f0 outliers")
    for key, what in METRICS.items():
        if key in summary:
            s = summary[key]
            value = "n/a" if s["mean"] is None or (isinstance(s["mean"], float) and math.isnan(s["mean"])) else \
                f"{s['mean']:.4f}  [{s['ci_low']:.4f}, {s['ci_high']:.4f}]"
            lines.append(f"  {key:24s} {value}  (n={s['n']})  {what}")
    timing = summary.get("timing", {})
    if timing:
        lines.append(f"  {timing['audio_s']:.1f} s of audio in {timing['wall_s']:.1f} s "
                     f"({timing['audio_s_per_s']:.2f} s/s; CREPE {100 * timing['crepe_share']:.0f} % of the time)")
    return "\n".join(lines)
