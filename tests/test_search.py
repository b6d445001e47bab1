"""The hyperparameter search (hparams_search=optuna, Hydra's Optuna sweeper, the `[optuna]` extra)
through the real CLI: a 3-trial toy search whose reported best trial is the one with the lowest
metric in the runs' own eval summaries, kept in a sqlite study; and the configs that cannot work,
refused before anything trains."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

CLI = str(Path(sys.executable).parent / "ddsp-lab")
ROOT = Path(__file__).resolve().parents[1]
HAVE_OPTUNA = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
needs_optuna = pytest.mark.skipif(not HAVE_OPTUNA, reason="the [optuna] extra is not installed "
                                                          "(bash scripts/install.sh --optuna)")

# toy-sized: the tiny model, 4 steps, the evaluation on 2 test examples with CREPE tiny
TOY = ["experiment=tiny", "trainer=cpu", "logger=csv", "model.f0_metric=false", "example_seconds=1.0",
       "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.log_every_n_steps=2",
       "data.datamodule.batch_size=2", "evaluate.crepe_model=tiny", "evaluate.limit=2"]


def _readme_search() -> list[str]:
    """The README's search command, as typed (after `.venv/bin/ddsp-lab`)."""
    lines = [line for line in (ROOT / "README.md").read_text().splitlines()
             if line.startswith(".venv/bin/ddsp-lab train -m hparams_search=optuna")]
    assert len(lines) == 1, "README.md lost its hparams_search command"
    return lines[0].split()[1:]


@needs_optuna
@pytest.mark.slow
def test_the_readme_search_reports_the_trial_with_the_lowest_eval_metric(demo_data, tmp_path):
    """The README's 3-trial search, as typed, in a folder whose data/prepared/demo is the demo
    corpus: the best trial printed and in optimization_results.yaml is the run with the lowest
    spectral distance in the runs' own eval summaries, and search.db holds the study."""
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "prepared" / "demo").symlink_to(demo_data)
    args = _readme_search()
    out = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    sweeps = [p.parent for p in tmp_path.glob("multirun/*/optimization_results.yaml")]
    assert len(sweeps) == 1, list(tmp_path.rglob("*"))[:50]
    sweep = sweeps[0]
    runs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert len(runs) == 3
    values = {}
    for run in runs:
        summary = json.loads((run / "eval" / "test" / "summary.json").read_text())
        values[run] = summary["spectral_distance"]["mean"]
        assert json.loads((run / "run_info.json").read_text())["status"] == "evaluated"
        assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 20
    lowest = min(values, key=values.get)
    results = OmegaConf.to_container(OmegaConf.load(sweep / "optimization_results.yaml"))
    assert results["best_value"] == pytest.approx(values[lowest], rel=1e-6)
    overrides = dict(o.split("=", 1) for o in OmegaConf.load(lowest / ".hydra" / "overrides.yaml"))
    assert set(results["best_params"]) == {"model.optimizer.lr", "n_harmonics", "decoder.ch", "decoder.rnn_channels"}
    for key, value in results["best_params"].items():
        assert type(value)(overrides[key]) == value, (key, value, overrides[key])
    printed = re.search(r"best trial eval/spectral_distance (\S+) \(run (.+)\)", out.stdout)
    assert printed, out.stdout[-3000:]
    assert float(printed.group(1)) == pytest.approx(values[lowest], rel=1e-6)
    assert Path(printed.group(2)).resolve() == lowest.resolve()
    # the study lives in its sqlite file: three finished trials with the summaries' values
    import optuna

    study = optuna.load_study(study_name="hparams_search", storage=f"sqlite:///{tmp_path / 'search.db'}")
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.value for t in finished) == pytest.approx(sorted(values.values()), rel=1e-6)
    assert study.best_value == pytest.approx(values[lowest], rel=1e-6)


@pytest.mark.parametrize("extra, message", [
    (["optimized_metric=eval/nonsense"], "optimized_metric: expected null (the best validation score) or one of"),
    (["optimized_metric=eval/spectral_distance", "evaluate.after_training=false"],
     "set evaluate.after_training=true"),
])
def test_an_objective_that_cannot_be_measured_is_refused_before_training(demo_data, tmp_path, extra, message):
    out = subprocess.run([CLI, "train", f"data.path={demo_data}", *TOY, f"run_dir={tmp_path / 'run'}",
                          "evaluate.after_training=true", *extra],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


@needs_optuna
def test_a_search_without_multirun_says_to_add_m(tmp_path):
    out = subprocess.run([CLI, "train", "hparams_search=optuna"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode != 0 and "add -m" in out.stderr, out.stderr[-2000:]
