"""The end of a hyperparameter search (hparams_search=optuna): which run won.

Hydra's Optuna sweeper writes the best parameters and value to <sweep dir>/optimization_results.yaml;
this callback finds the trial's run folder (the job whose overrides hold those parameters) and
says where it is, so that the next command (`ddsp-lab eval checkpoint=<run>/checkpoints/best.ckpt`,
`ddsp-lab table <sweep dir>`) can be typed.
"""
from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf


def best_run(sweep_dir: Path) -> tuple[dict, Path | None]:
    """(optimization_results.yaml as a dict, the run folder of its best trial or None)."""
    results = OmegaConf.to_container(OmegaConf.load(sweep_dir / "optimization_results.yaml"))
    wanted = {str(k): v for k, v in (results.get("best_params") or {}).items()}
    for overrides_file in sorted(sweep_dir.glob("*/.hydra/overrides.yaml")):
        given = dict(o.split("=", 1) for o in OmegaConf.load(overrides_file) if "=" in o)
        if wanted and all(k in given and _same(given[k], v) for k, v in wanted.items()):
            return results, overrides_file.parent.parent
    return results, None


def _same(text: str, value) -> bool:
    try:
        return type(value)(text) == value if not isinstance(value, bool) else text.lower() == str(value).lower()
    except (TypeError, ValueError):
        return text == str(value)


class BestTrial(Callback):
    """Prints the best trial's value and run folder when a search ends."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        if not (sweep_dir / "optimization_results.yaml").exists():
            return
        results, run = best_run(sweep_dir)
        metric = config.get("optimized_metric") or f"best {(config.get('checkpoint') or {}).get('monitor')}"
        where = f"run {run}" if run is not None else "run folder not found"
        print(f"ddsp-lab train: best trial {metric} {results.get('best_value')} ({where})\n"
              f"  parameters: {results.get('best_params')}\n"
              f"  all trials: {sweep_dir / 'optimization_results.yaml'}; compare them with "
              f"`ddsp-lab table {sweep_dir}`", flush=True)
