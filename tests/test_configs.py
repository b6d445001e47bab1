"""Every option of every config group composes (and resolves) with every experiment, and the
model's parts build or fail with a message that says what does not fit."""
from __future__ import annotations

import importlib.util

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ddsp_lab.conf import CONF_DIR
from ddsp_lab.training import build_model

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
GROUPS = {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml"))
          for g in ("data", "preprocessor", "encoder", "decoder", "synth", "loss", "trainer", "logger",
                    "callbacks", "hydra/launcher")}
GROUPS["hydra/launcher"] += ["submitit_local", "submitit_slurm", "basic"]   # the plugins' own
MODEL_GROUPS = ("encoder", "decoder", "synth", "loss", "preprocessor")


def _compose(overrides: list[str], config: str = "train"):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config, overrides=overrides, return_hydra_config=True)


def test_the_group_lists_are_what_the_readme_documents():
    assert EXPERIMENTS == ["nsynth_supervised", "nsynth_unsupervised", "nsynth_z", "solo_48k", "solo_violin", "tiny"]
    assert GROUPS["trainer"] == ["cpu", "ddp", "ddp_multinode", "default", "gpu"]
    assert sorted(p.stem for p in (CONF_DIR / "source").glob("*.yaml")) == ["demo", "folder", "hub", "nsynth"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_group_option_composes_and_resolves_with_every_experiment(experiment, tmp_path):
    for group, options in GROUPS.items():
        for option in options:
            cfg = _compose([f"experiment={experiment}", f"{group}={option}", "data.path=x", f"run_dir={tmp_path}"])
            # hydra's own keys need a running job; everything the job reads must resolve
            job = {k: v for k, v in cfg.items() if k != "hydra"}
            plain = OmegaConf.to_container(OmegaConf.create(job), resolve=True)
            assert "???" not in str(plain), (group, option)
            if group == "hydra/launcher" and option != "basic":
                assert cfg.hydra.launcher._target_.startswith("hydra_plugins.")
                assert "launcher" in cfg.hydra.launcher._target_


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_model_group_option_builds_with_every_experiment(experiment, tmp_path):
    """The decoder's heads come from the synth stack, so every synth (sinusoidal, wavetable...)
    fits every decoder and experiment without a hand-kept output_splits."""
    for group in MODEL_GROUPS:
        for option in GROUPS[group]:
            cfg = _compose([f"experiment={experiment}", f"{group}={option}", "data.path=x", f"run_dir={tmp_path}"])
            model = build_model(cfg)
            assert sum(p.numel() for p in model.parameters()) > 0
            needed = model.synth.external_inputs()
            assert all(needed[k] == n for k, n in model.decoder.output_splits), (group, option)


@pytest.mark.parametrize("source", ["demo", "folder", "nsynth", "hub"])
def test_prepare_composes_every_source_without_training_keys(source, tmp_path):
    cfg = _compose([f"source={source}", f"out={tmp_path}", f"source.root={tmp_path}" if source in ("folder", "nsynth")
                    else "source.n_examples=2" if source == "demo" else f"source.name={tmp_path}"], "prepare")
    job = OmegaConf.to_container(OmegaConf.create({k: v for k, v in cfg.items() if k != "hydra"}), resolve=True)
    assert "data" not in job and job["source"]["_target_"].startswith("ddsp_lab.data.")


@pytest.mark.parametrize("launcher", ["slurm", "local"])
def test_prepare_shards_compose_on_the_cluster_launchers(launcher, tmp_path):
    cfg = _compose([f"hydra/launcher={launcher}", "source=nsynth", f"source.root={tmp_path}", f"out={tmp_path}",
                    "num_shards=16", "shard=3"], "prepare")
    assert "launcher" in cfg.hydra.launcher._target_ and cfg.shard == 3
    assert OmegaConf.to_container(cfg.hydra.launcher, resolve=True)["tasks_per_node"] == 1  # no trainer: one task


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
                    reason="the [optuna] extra is not installed (bash scripts/install.sh --optuna)")
@pytest.mark.parametrize("search", sorted(p.stem for p in (CONF_DIR / "hparams_search").glob("*.yaml")))
def test_every_search_sweeps_keys_that_every_experiment_has(search, tmp_path):
    """A searched key that an experiment lacks would fail each trial at its start."""
    for experiment in EXPERIMENTS:
        cfg = _compose([f"experiment={experiment}", f"hparams_search={search}", "data.path=x", f"run_dir={tmp_path}"])
        assert "optuna" in cfg.hydra.sweeper._target_.lower()
        assert cfg.optimized_metric.startswith("eval/") and cfg.evaluate.after_training
        for key in cfg.hydra.sweeper.params:
            assert OmegaConf.select(cfg, key) is not None, (experiment, key)
