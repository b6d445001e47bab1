"""The paper's experiments as a user runs them: a sweep from experiments/ through the CLI, each run
evaluated on its test split, `ddsp-lab table` over the finished folder, `ddsp-lab eval` on a
checkpoint (and its refusals), `ddsp-lab sizes`; every shipped sweep composes job by job."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from test_cli import ddsp_lab

QUICK = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
         "trainer.num_sanity_val_steps=0", "callbacks.media.every_n_steps=1000", "logger=csv",
         "evaluate.crepe_model=tiny", "evaluate.limit=2", "trainer.enable_progress_bar=false"]


def _n_test(data: Path) -> int:
    from ddsp_lab.data import load_prepared

    return len(load_prepared(data, "test"))


@pytest.fixture(scope="module")
def toy_sweep(tmp_path_factory) -> Path:
    """README: a 2 x 2 toy sweep (two decoders, two seeds) of experiments/ablation_decoder on the demo corpus."""
    cwd = tmp_path_factory.mktemp("sweep")
    ddsp_lab("prepare", "source=demo", "out=demo", "crepe_model=tiny", "example_seconds=1.0", "source.n_examples=12",
             cwd=cwd)
    ddsp_lab("train", "-m", "+sweep=ablation_decoder", "data.path=demo", "experiment=tiny",
             "decoder=rnn_fc_tiny,mlp", "seed=0,1", "hydra.sweep.dir=sweep", *QUICK, cwd=cwd, timeout=900)
    return cwd


@pytest.mark.slow
def test_a_toy_sweep_runs_every_job_and_evaluates_it(toy_sweep):
    runs = sorted(p.name for p in (toy_sweep / "sweep").iterdir() if p.is_dir() and not p.name.startswith("."))
    # named by what they vary; the shared settings (data.path, trainer..., logger) left out
    assert runs == ["0_decoder=rnn_fc_tiny,experiment=tiny,seed=0", "1_decoder=rnn_fc_tiny,experiment=tiny,seed=1",
                    "2_decoder=mlp,experiment=tiny,seed=0", "3_decoder=mlp,experiment=tiny,seed=1"]
    for run in runs:
        run_dir = toy_sweep / "sweep" / run
        info = json.loads((run_dir / "run_info.json").read_text())
        assert info["status"] == "evaluated" and info["steps"] == 2 and info["n_parameters"] > 0
        assert (run_dir / "checkpoints" / "best.ckpt").exists() and (run_dir / "checkpoints" / "last.ckpt").exists()
        summary = json.loads((run_dir / "eval" / "test" / "summary.json").read_text())
        n_test = min(2, _n_test(toy_sweep / "demo"))  # evaluate.limit=2
        assert summary["counts"]["examples"] == n_test and summary["loudness_l1_db"]["n"] == n_test
        assert OmegaConf.load(run_dir / "config.yaml").sweep_name == "ablation_decoder"
        logged = (run_dir / "logs" / "version_0" / "metrics.csv").read_text()
        assert "eval/loudness_l1_db" in logged and "eval/spectral_distance_ci_high" in logged


@pytest.mark.slow
def test_table_gives_one_row_per_setting_with_seed_spread_and_lists_an_unfinished_run(toy_sweep, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(toy_sweep / "sweep", sweep)
    # what a run killed mid-sweep leaves: run_info.json still 'running', no evaluation
    killed = sweep / "3_decoder=mlp,experiment=tiny,seed=1"
    info = json.loads((killed / "run_info.json").read_text())
    (killed / "run_info.json").write_text(json.dumps({**info, "status": "running"}))
    shutil.rmtree(killed / "eval")
    # what a crash during a write of a run from before writes were atomic leaves: a summary cut short
    cut = sweep / "4_decoder=rnn_fc_tiny,experiment=tiny,seed=2"
    shutil.copytree(sweep / "0_decoder=rnn_fc_tiny,experiment=tiny,seed=0", cut)
    overrides = cut / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text().replace("seed=0", "seed=2"))
    summary = (cut / "eval" / "test" / "summary.json").read_text()
    (cut / "eval" / "test" / "summary.json").write_text(summary[: len(summary) // 2])
    out = ddsp_lab("table", str(sweep), cwd=tmp_path)
    assert "4_decoder=rnn_fc_tiny,experiment=tiny,seed=2: skipped, eval/test/summary.json is unreadable" in out.stdout
    table = (sweep / "table.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert lines[0].startswith("| decoder | runs | parameters | steps | loudness L1 (dB) | f0 L1 (semitones)")
    body = {line.split(" | ")[0][2:]: line.split(" | ") for line in lines[1:]}
    assert set(body) == {"rnn_fc_tiny", "mlp"}
    assert body["rnn_fc_tiny"][1] == "2" and body["mlp"][1] == "1"  # the killed run is not averaged in
    assert "3_decoder=mlp,experiment=tiny,seed=1: running" in out.stdout
    assert (sweep / "table.png").stat().st_size > 5000
    ddsp_lab("table", str(sweep), "format=csv", cwd=tmp_path)
    rows = list(csv.DictReader((sweep / "table.csv").open()))
    assert [r["decoder"] for r in rows] == ["rnn_fc_tiny", "mlp"]
    assert rows[0]["interval"] == "std over 2 seeds" and rows[1]["interval"] == "95% CI"
    assert float(rows[0]["loudness_l1_db_low"]) <= float(rows[0]["loudness_l1_db"]) <= float(rows[0]["loudness_l1_db_high"])
    ddsp_lab("table", str(sweep), "format=latex", cwd=tmp_path)
    assert (sweep / "table.tex").read_text().startswith("\\begin{tabular}")
    out = ddsp_lab("table", str(tmp_path / "nowhere"), cwd=tmp_path, ok=False)
    assert out.returncode != 0 and "sweep directory does not exist" in out.stderr


@pytest.mark.slow
def test_eval_scores_a_checkpoint_and_refuses_what_does_not_fit(toy_sweep, tmp_path):
    ckpt = toy_sweep / "sweep" / "0_decoder=rnn_fc_tiny,experiment=tiny,seed=0" / "checkpoints" / "best.ckpt"
    out = ddsp_lab("eval", f"checkpoint={ckpt}", "crepe_model=tiny", "limit=3", f"out={tmp_path / 'ev'}",
                   cwd=toy_sweep)
    assert "loudness_l1_db" in out.stdout and "f0_outlier" in out.stdout and "CREPE" in out.stdout
    rows = list(csv.DictReader((tmp_path / "ev" / "examples.csv").open()))
    assert len(rows) == min(3, _n_test(toy_sweep / "demo")) and {"loudness_l1_db", "f0_l1_semitones", "f0_outlier", "spectral_distance"} <= set(rows[0])
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["settings"]["target_f0"] == "dataset columns"  # prepared with the same CREPE (tiny, Viterbi)
    assert summary["loudness_l1_db"]["ci_low"] <= summary["loudness_l1_db"]["mean"] <= summary["loudness_l1_db"]["ci_high"]
    # data prepared at another rate
    other = tmp_path / "48k"
    shutil.copytree(toy_sweep / "demo", other)
    config = json.loads((other / "prepare_config.json").read_text())
    (other / "prepare_config.json").write_text(json.dumps({**config, "sample_rate": 48000}))
    out = ddsp_lab("eval", f"checkpoint={ckpt}", f"data.path={other}", f"out={tmp_path / 'x'}", cwd=tmp_path, ok=False)
    assert out.returncode != 0 and "prepared at sample_rate=48000" in out.stderr
    # not a ddsp_lab checkpoint
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    out = ddsp_lab("eval", f"checkpoint={junk}", cwd=tmp_path, ok=False)
    assert out.returncode != 0 and "not a torch checkpoint" in out.stderr


def test_sizes_prints_every_experiment_next_to_the_paper(tmp_path):
    out = ddsp_lab("sizes", cwd=tmp_path)  # README / experiments/README: `ddsp-lab sizes`
    solo = next(line for line in out.stdout.splitlines() if line.startswith("| solo_violin"))
    assert "| 4.849M |" in solo and "| 6.00M |" in solo
    assert not list(tmp_path.iterdir())  # no Hydra output folders left behind


def _jobs(sweep: str) -> list[list[str]]:
    """The job override lists `ddsp-lab train -m +sweep=<sweep> data.path=x` launches."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ddsp_lab.conf import CONF_DIR

    params = OmegaConf.load(CONF_DIR / "sweep" / f"{sweep}.yaml").hydra.sweeper.params
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return [[f"+sweep={sweep}", *job] for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


SWEEPS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "experiments" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_shipped_sweep_composes_and_builds_every_job(sweep, tmp_path):
    from hydra import compose, initialize_config_dir

    from ddsp_lab.conf import CONF_DIR
    from ddsp_lab.training import build_model

    jobs = _jobs(sweep)
    assert len(jobs) >= 2
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        for job in jobs:
            cfg = compose("train", overrides=[*job, "data.path=x", f"run_dir={tmp_path}"])
            assert cfg.evaluate.after_training and cfg.sweep_name == sweep
            assert "???" not in OmegaConf.to_yaml(cfg)
            assert sum(p.numel() for p in build_model(cfg).parameters()) > 0


@pytest.mark.slow
def test_the_interpolation_experiment_takes_a_feature_from_another_example(toy_sweep, tmp_path):
    """`ddsp-lab eval ... swap=loudness`: each example rendered with the next one's loudness, scored
    against that loudness; a feature the model does not take is refused."""
    ckpt = toy_sweep / "sweep" / "2_decoder=mlp,experiment=tiny,seed=0" / "checkpoints" / "best.ckpt"
    ddsp_lab("eval", f"checkpoint={ckpt}", "split=train", "limit=4", "batch_size=4", "swap=loudness",
             "crepe_model=tiny", cwd=tmp_path)
    out_dir = ckpt.parent.parent / "eval" / "train-swap_loudness"
    rows = list(csv.DictReader((out_dir / "examples.csv").open()))
    assert len(rows) == 4 and all(r["loudness_from"] != r["example_id"] for r in rows)
    assert json.loads((out_dir / "summary.json").read_text())["settings"]["swap"] == "loudness"
    from ddsp_lab.eval import evaluate
    from ddsp_lab.models import load

    with pytest.raises(ValueError, match="swap=z: this model's decoder takes no z"):
        evaluate(load(ckpt), toy_sweep / "demo", swap="z")
