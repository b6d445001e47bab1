"""Every documented command, as a user types it: through the installed `ddsp-lab` console script in
a subprocess, with the shipped defaults and the documented overrides, asserting on what it wrote and
printed. Commands come from README.md and data/README.md; the configs of every group compose with
every experiment; a wheel (not an editable install) carries its configs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "ddsp-lab"   # the console script pip installed
ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1",
       "HF_DATASETS_OFFLINE": "1", "HYDRA_FULL_ERROR": "1"}
QUICK_TRAIN = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
               "trainer.num_sanity_val_steps=0", "callbacks.media.every_n_steps=1000"]


def ddsp_lab(*args: str, cwd: Path, timeout: int = 600, ok: bool = True, env: dict | None = None
             ) -> subprocess.CompletedProcess:
    """Runs `ddsp-lab ARGS` in cwd; with ok, asserts it succeeded (showing its stderr if not)."""
    out = subprocess.run([str(CLI), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                         env=env or ENV)
    if ok:
        assert out.returncode == 0, f"ddsp-lab {' '.join(args)}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out


def tone(f0_hz: float, seconds: float, sample_rate: int = 16000, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 6))
    return (amplitude * audio / 2).astype(np.float32)


def test_console_script_is_installed():
    assert CLI.exists(), f"no console script at {CLI}: install with scripts/install.sh"


# ------------------------------------------------------------------------------------------ prepare
@pytest.fixture(scope="module")
def demo_1s(tmp_path_factory) -> Path:
    """README: `ddsp-lab prepare source=demo out=data/prepared/demo crepe_model=tiny example_seconds=1.0`."""
    cwd = tmp_path_factory.mktemp("demo_1s")
    out = ddsp_lab("prepare", "source=demo", "out=data/prepared/demo", "crepe_model=tiny", "example_seconds=1.0",
                   "source.n_examples=8", cwd=cwd)
    assert "8 items, 8 examples" in out.stdout, out.stdout
    return cwd / "data" / "prepared" / "demo"


@pytest.fixture(scope="module")
def demo_4s(tmp_path_factory) -> Path:
    """4 s examples at 16 kHz (the paper's), for the paper's experiments."""
    cwd = tmp_path_factory.mktemp("demo_4s")
    ddsp_lab("prepare", "source=demo", "out=prepared", "crepe_model=tiny", "source.n_examples=4", cwd=cwd)
    return cwd / "prepared"


@pytest.mark.slow
def test_prepare_demo_writes_a_dataset_and_inspect_reads_it(demo_1s):
    from ddsp_lab.data import load_prepared

    info = json.loads((demo_1s / "dataset_info.json").read_text())
    assert info["statistics"]["examples"] == 8
    assert len(load_prepared(demo_1s)) == 8
    out = ddsp_lab("inspect", str(demo_1s), cwd=demo_1s.parent)
    assert "8" in out.stdout and (demo_1s / "statistics.png").stat().st_size > 1000


def test_prepare_refuses_the_training_keys_and_names_the_right_ones(tmp_path):
    out = ddsp_lab("prepare", "data=folder", f"data.root={tmp_path}", f"out={tmp_path / 'o'}", cwd=tmp_path, ok=False)
    assert out.returncode != 0
    assert f"source=folder source.root={tmp_path}" in out.stderr


def test_prepare_folder_without_root_names_source_root(tmp_path):
    out = ddsp_lab("prepare", "source=folder", f"out={tmp_path / 'o'}", cwd=tmp_path, ok=False)
    assert out.returncode != 0 and "source.root" in out.stderr


@pytest.fixture(scope="module")
def nsynth_root(tmp_path_factory) -> Path:
    """An NSynth-layout folder: notes of three families at two velocities, train and test splits."""
    root = tmp_path_factory.mktemp("nsynth")
    notes = [("string", 60, 100), ("brass", 55, 127), ("keyboard", 64, 100), ("string", 90, 100),
             ("brass", 48, 50)]
    for split in ("nsynth-train", "nsynth-test"):
        (root / split / "audio").mkdir(parents=True)
        meta = {}
        for i, (family, pitch, velocity) in enumerate(notes):
            name = f"{family}_acoustic_{i:03d}-{pitch:03d}-{velocity:03d}-{split[7:]}"
            sf.write(root / split / "audio" / f"{name}.wav", tone(440 * 2 ** ((pitch - 69) / 12), 4.0), 16000)
            meta[name] = {"note_str": name, "pitch": pitch, "velocity": velocity,
                          "instrument_str": f"{family}_acoustic_{i:03d}", "instrument_family_str": family,
                          "instrument_source_str": "acoustic"}
        (root / split / "examples.json").write_text(json.dumps(meta))
    return root


@pytest.mark.slow
def test_prepare_nsynth_with_the_documented_list_filters_and_resume(nsynth_root, tmp_path):
    """data/README.md: `ddsp-lab prepare source=nsynth source.root=... out=...` with list overrides;
    the same command again finds the dataset complete (list settings compare equal)."""
    from ddsp_lab.data import load_prepared

    args = ["prepare", "source=nsynth", f"source.root={nsynth_root}", "out=prepared", "crepe_model=tiny",
            "source.families=[string,brass]", "source.pitch_range=[24,84]", "source.velocities=[100,127]",
            "source.instrument_sources=[acoustic]"]
    first = ddsp_lab(*args, cwd=tmp_path)
    ds = load_prepared(tmp_path / "prepared")
    # string 60/100 and brass 55/127 in both splits; string 90 is out of range, brass 48 at velocity 50
    assert len(ds) == 4 and set(ds["instrument_family_str"]) == {"string", "brass"}, first.stdout
    assert sorted(set(ds["split"])) == ["test", "train"]
    config = json.loads((tmp_path / "prepared" / "prepare_config.json").read_text())
    assert config["source_args"]["families"] == ["string", "brass"]
    again = ddsp_lab(*args, cwd=tmp_path)
    assert "already complete" in again.stdout


@pytest.mark.slow
def test_prepare_nsynth_as_a_sharded_sweep(nsynth_root, tmp_path):
    """data/README.md: `ddsp-lab prepare -m source=nsynth ... num_shards=N shard=range(0,N)`."""
    from ddsp_lab.data import load_prepared

    ddsp_lab("prepare", "-m", "source=nsynth", f"source.root={nsynth_root}", f"out={tmp_path / 'p'}",
             "crepe_model=tiny", "num_shards=2", "shard=range(0,2)", cwd=tmp_path)
    assert (tmp_path / "p" / "dataset_info.json").exists()
    assert len(load_prepared(tmp_path / "p")) == 8   # acoustic, MIDI 24-84: 4 notes x 2 splits
    assert not (tmp_path / "multirun").exists()    # Hydra's job files stay under out/


@pytest.mark.slow
def test_prepare_folder_of_recordings(tmp_path):
    """data/README.md: `ddsp-lab prepare source=folder source.root=<folder> out=...`."""
    from ddsp_lab.data import load_prepared

    root = tmp_path / "takes"
    (root / "day2").mkdir(parents=True)
    sf.write(root / "take1.wav", tone(330, 6.0, 44100), 44100)
    sf.write(root / "day2" / "take2.flac", np.stack([tone(440, 5.0), tone(440, 5.0)], 1), 16000)
    out = ddsp_lab("prepare", "source=folder", f"source.root={root}", "out=violin", "crepe_model=tiny",
                   "example_seconds=1.0", cwd=tmp_path)
    ds = load_prepared(tmp_path / "violin")
    assert len(ds) > 0 and "2 items" in out.stdout, out.stdout
    assert set(ds["source_file"]) == {"take1.wav", "day2/take2.flac"}


@pytest.mark.slow
def test_a_minute_of_audio_in_three_files_gets_validation_and_test_examples(tmp_path):
    """A first try is often a minute of audio: three 20 s files used to prepare into train only (an item
    needed ten examples' length before it was cut in time). Each now gives validation and test one
    example's length, prepare's summary says what each split got, and no sample is in two splits.
    (12.5 s files here: as short as the rule allows with the default 4 s examples, and quicker.)"""
    from ddsp_lab.data import load_prepared

    root = tmp_path / "minute"
    root.mkdir()
    for i, f in enumerate((220.0, 330.0, 440.0)):
        sf.write(root / f"take{i}.wav", tone(f, 12.5), 16000)
    out = ddsp_lab("prepare", "source=folder", f"source.root={root}", "out=data", "crepe_model=tiny", cwd=tmp_path)
    ds = load_prepared(tmp_path / "data")
    counts = {s: sum(1 for x in ds["split"] if x == s) for s in ("train", "validation", "test")}
    assert counts["validation"] >= 3 and counts["test"] >= 3 and counts["train"] >= 3, counts
    assert (f"splits: train {counts['train']}, validation {counts['validation']}, test {counts['test']} examples "
            f"(each item cut in time blocks)") in out.stdout, out.stdout
    assert "is empty" not in out.stdout
    spans: dict = {}  # (file, split) -> the examples' first samples (example_id: "<file>@<offset>")
    for example_id, split in zip(ds["example_id"], ds["split"]):
        name, offset = example_id.rsplit("@", 1)
        spans.setdefault(name, {}).setdefault(split, []).append(int(offset))
    n = 4 * 16000  # samples per example
    for name, by_split in spans.items():  # no sample of one split lies in an example of another
        assert set(by_split) == {"train", "validation", "test"}, (name, by_split.keys())
        for split, starts in by_split.items():
            others = [o for s2, v in by_split.items() if s2 != split for o in v]
            assert all(abs(a - b) >= n for a in starts for b in others), (name, split)


@pytest.mark.slow
def test_a_run_that_would_evaluate_an_empty_split_is_refused_before_it_trains(tmp_path):
    """A sweep whose post-training evaluation has no data used to train every job and then fail each one.
    The check runs first and names the fixes; `ddsp-lab eval`'s evaluation keeps the same rule."""
    from ddsp_lab.eval import evaluate

    from test_streaming import _model

    root = tmp_path / "short"
    root.mkdir()
    for i, f in enumerate((220.0, 330.0)):  # 2.5 s each: under three 1 s examples' length, so train only
        sf.write(root / f"take{i}.wav", tone(f, 2.5), 16000)
    ddsp_lab("prepare", "source=folder", f"source.root={root}", "out=data", "crepe_model=tiny",
             "example_seconds=1.0", cwd=tmp_path)
    out = ddsp_lab("train", "experiment=tiny", "data.path=data", "run_dir=run", "logger=csv",
                   "evaluate.after_training=true", "model.f0_metric=false", *QUICK_TRAIN, cwd=tmp_path, ok=False)
    assert out.returncode != 0
    assert "evaluate.split=test: the test split of" in out.stderr and "is empty (train" in out.stderr, out.stderr[-2000:]
    assert "use evaluate.split=train, or evaluate.after_training=false, or longer recordings" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained
    with pytest.raises(ValueError, match=r"split=validation: the validation split of .* is empty .* use split=train"):
        evaluate(_model(), tmp_path / "data", split="validation")


@pytest.mark.slow
def test_prepare_hub_from_a_local_dataset(tmp_path):
    """data/README.md: `ddsp-lab prepare source=hub source.name=<id or local path> out=...`, offline,
    on a local dataset (parquet files with an audio column, as `datasets` writes them)."""
    import io

    import datasets

    from ddsp_lab.data import load_prepared

    rows = []
    for f in (220.0, 330.0):
        buf = io.BytesIO()
        sf.write(buf, tone(f, 2.0), 16000, format="WAV")
        rows.append({"bytes": buf.getvalue(), "path": None})
    folder = tmp_path / "hubdata"
    folder.mkdir()
    ds = datasets.Dataset.from_dict({"audio": rows}).cast_column("audio", datasets.Audio(decode=False))
    ds.to_parquet(str(folder / "train.parquet"))
    ddsp_lab("prepare", "source=hub", f"source.name={folder}", "out=hub", "crepe_model=tiny",
             "example_seconds=1.0", cwd=tmp_path)
    assert len(load_prepared(tmp_path / "hub")) == 4


# -------------------------------------------------------------------------------------------- train
PAPER_RUNS = {  # README's training commands (GPU trainers swapped for the CPU one, sizes shrunk)
    "solo_violin": ["experiment=solo_violin", "data=folder"],
    "nsynth_supervised": ["experiment=nsynth_supervised"],
    "nsynth_z": ["experiment=nsynth_z"],
    "nsynth_unsupervised": ["experiment=nsynth_unsupervised"],
}


@pytest.mark.parametrize("name", sorted(PAPER_RUNS))
@pytest.mark.slow
def test_paper_experiments_train_on_prepared_data(name, demo_4s, tmp_path):
    """Each paper model trains from its experiment file with nothing but data.path (the shipped
    sizes: 4 s examples, full decoder, reverb), here for 2 steps of batch 2 on the CPU."""
    out = ddsp_lab("train", *PAPER_RUNS[name], f"data.path={demo_4s}", f"run_dir={tmp_path / 'run'}",
                   "trainer=cpu", "data.datamodule.batch_size=2", "data.datamodule.num_workers=0", "logger=csv",
                   *QUICK_TRAIN, cwd=tmp_path)
    assert "val/total" in out.stdout, out.stdout
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
    if name == "nsynth_unsupervised":  # f0 from the ResNet, the CREPE loss as its own term, the encoder's f0 metric
        import torch

        assert "train/crepe" in out.stdout and "val/f0_encoder_l1_cents" in out.stdout
        state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
        assert not any("crepe" in k for k in state)  # the frozen CREPE weights are not saved


@pytest.mark.slow
def test_solo_48k_trains_on_data_prepared_at_48k(tmp_path):
    """The 48 kHz path end to end (1 s examples here: the rate is what is tested, not the length)."""
    ddsp_lab("prepare", "source=demo", "out=p48", "crepe_model=tiny", "sample_rate=48000", "source.n_examples=8",
             "example_seconds=1.0", cwd=tmp_path)
    out = ddsp_lab("train", "experiment=solo_48k", "data.path=p48", "run_dir=run", "trainer=cpu", "example_seconds=1.0",
                   "data.datamodule.batch_size=2", "data.datamodule.num_workers=0", "logger=csv", *QUICK_TRAIN,
                   cwd=tmp_path)
    assert "val/total" in out.stdout
    assert "sample_rate: 48000" in (tmp_path / "run" / "config.yaml").read_text()


@pytest.mark.parametrize("logger,expect", [("tensorboard", "tensorboard/**/events.out.tfevents.*"),
                                           ("csv", "logs/**/metrics.csv"), ("none", None)])
@pytest.mark.slow
def test_every_logger_trains(logger, expect, demo_1s, tmp_path):
    ddsp_lab("train", "experiment=tiny", f"data.path={demo_1s}", f"logger={logger}", f"run_dir={tmp_path}",
             *QUICK_TRAIN, cwd=tmp_path)
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    if expect:
        assert list(tmp_path.glob(expect)), sorted(str(p) for p in tmp_path.rglob("*"))[:30]


NOISE = ("Tip:", "GPU available", "TPU available", "LeafSpec", "anonymous setting",
         "Tried to log to step", "smaller than the logging interval", "wandb: ", "font cache")


@pytest.mark.slow
def test_a_first_training_run_prints_nothing_a_user_cannot_act_on(demo_1s, tmp_path):
    """Lightning's tips and accelerator lines, its own deprecations, W&B's offline chatter and its
    dropped-step warning (the media logged before training used to be dropped) are gone; what is
    left says where the run and its offline W&B run are."""
    env = {k: v for k, v in ENV.items() if k != "WANDB_SILENT"}  # the user's environment, not the tests'
    out = ddsp_lab("train", "experiment=tiny", f"data.path={demo_1s}", "logger=wandb", f"run_dir={tmp_path / 'run'}",
                   *QUICK_TRAIN, "trainer.val_check_interval=1", "callbacks.media.every_n_steps=1", cwd=tmp_path, env=env)
    text = out.stdout + out.stderr
    assert not [n for n in NOISE if n in text], [line for line in text.splitlines() if any(n in line for n in NOISE)]
    assert "offline W&B run: " in out.stdout and "(wandb sync " in out.stdout
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*/files/media/audio/media/*target*.wav"))
    assert len(runs) == 2, runs  # the media of steps 1 and 2, none dropped


@pytest.mark.slow
def test_sweep_on_the_local_submitit_launcher(demo_1s, tmp_path):
    """README: `ddsp-lab train -m hydra/launcher=local ...` (the runs as parallel local processes;
    hydra/launcher=slurm submits the same jobs to SLURM)."""
    ddsp_lab("train", "-m", "hydra/launcher=local", "experiment=tiny", f"data.path={demo_1s}", "logger=csv",
             "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}", "trainer.enable_progress_bar=false",
             *QUICK_TRAIN, cwd=tmp_path)
    for job in ("0_experiment=tiny,seed=0", "1_experiment=tiny,seed=1"):  # named by what they set, not the shared keys
        assert (tmp_path / "sweep" / job / "checkpoints" / "last.ckpt").exists(), sorted(
            str(p) for p in (tmp_path / "sweep").rglob("*"))[:40]


@pytest.mark.parametrize("launcher,target", [
    ("slurm", "ddsp_lab_launcher.slurm_launcher.SlurmLauncher"),
    ("submitit_slurm", "hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ("local", "hydra_submitit_launcher.submitit_launcher.LocalLauncher"),
    ("submitit_local", "hydra_submitit_launcher.submitit_launcher.LocalLauncher")])
def test_launchers_compose(launcher, target, tmp_path):
    out = ddsp_lab("train", f"hydra/launcher={launcher}", "experiment=solo_violin", "data.path=x", "--cfg", "hydra",
                   cwd=tmp_path)
    assert f"hydra_plugins.{target}" in out.stdout


GPU_COMMANDS = [  # README commands for machines we do not have here: they must compose and resolve
    ["experiment=solo_violin", "data=folder", "data.path=data/prepared/violin", "trainer=gpu"],
    ["experiment=nsynth_supervised", "data.path=data/prepared/nsynth", "trainer=ddp", "trainer.devices=4"],
    ["experiment=nsynth_unsupervised", "data.path=data/prepared/nsynth", "trainer=gpu"],
    ["experiment=nsynth_supervised", "data.path=/scratch/nsynth_prepared", "trainer=ddp_multinode",
     "trainer.num_nodes=2", "trainer.devices=4", "run_dir=runs/nsynth_sup", "resume=auto"],
]


@pytest.mark.parametrize("overrides", GPU_COMMANDS, ids=lambda o: "-".join(x.split("=")[1] for x in o[:1] + o[-1:]))
def test_gpu_and_cluster_commands_compose_resolved(overrides, tmp_path):
    out = ddsp_lab("train", *overrides, "--cfg", "job", "--resolve", cwd=tmp_path)
    assert "???" not in out.stdout and "accelerator: gpu" in out.stdout


# --------------------------------------------------------------------------- configs as a library
def test_configs_compose_through_hydras_api_after_importing_ddsp_lab_only(tmp_path):
    """A notebook composes the project's configs with Hydra's API: the ${eval:...} resolver is
    registered by `import ddsp_lab` (not only by the CLI)."""
    code = ("import ddsp_lab, os; from hydra import compose, initialize_config_module; "
            "from omegaconf import OmegaConf\n"
            "with initialize_config_module('ddsp_lab.conf', version_base='1.3'):\n"
            "    cfg = compose('train', overrides=['experiment=solo_violin', 'data.path=x', 'run_dir=r'])\n"
            "c = OmegaConf.to_container(cfg, resolve=True); assert 'ddsp_lab.cli' not in __import__('sys').modules\n"
            "print(c['n_samples'], c['n_frames'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["64000", "1000"]


def test_a_wheel_carries_its_configs(tmp_path):
    """`pip install .` (not editable) must give a ddsp-lab with its configs: build the wheel, install
    it without dependencies into a fresh target and run its console script from elsewhere."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                            "-w", str(wheels), str(REPO)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-3000:]
    deprecated = [line for line in (build.stdout + build.stderr).splitlines() if "Deprecat" in line]
    assert not deprecated, deprecated  # e.g. setuptools' `project.license` as a TOML table (an SPDX string now)
    wheel = next(wheels.glob("ddsp_lab-*.whl"))
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**ENV, "PYTHONPATH": str(target)}
    script = target / "bin" / "ddsp-lab"
    out = subprocess.run([sys.executable, str(script), "train", "experiment=tiny", "data.path=x", "--cfg", "job"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "n_harmonics: 20" in out.stdout
    where = subprocess.run([sys.executable, "-c", "import ddsp_lab; print(ddsp_lab.__file__)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert where.stdout.strip().startswith(str(target)), where.stdout  # the wheel's copy, not the checkout


# ------------------------------------------------------------------- the README's Python snippets
def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_the_readme_has_python_snippets_to_run():
    assert _python_blocks(REPO / "README.md"), "README.md lost its ```python examples"


@pytest.mark.parametrize("code", _python_blocks(REPO / "README.md"), ids=lambda c: c.splitlines()[0][:40])
@pytest.mark.slow
def test_readme_python_snippets_run(code, tmp_path):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, f"{code}\n{out.stderr[-3000:]}"


def test_prepare_hub_on_a_folder_of_audio_points_to_the_folder_source(tmp_path):
    sf.write(tmp_path / "a.wav", tone(220.0, 1.0), 16000)
    out = ddsp_lab("prepare", "source=hub", f"source.name={tmp_path}", f"out={tmp_path / 'o'}", cwd=tmp_path, ok=False)
    assert out.returncode != 0 and f"source=folder source.root={tmp_path}" in out.stderr


# ------------------------------------------------------- README commands exactly as they are typed
@pytest.mark.slow
def test_readme_demo_commands_as_typed(tmp_path):
    """`ddsp-lab demo` and `ddsp-lab demo out=my_dir sample_rate=48000 duration_s=5 synth=harmonic_noise`."""
    ddsp_lab("demo", cwd=tmp_path)
    assert len(list((tmp_path / "demo_out").glob("*.wav"))) == 13
    ddsp_lab("demo", "out=my_dir", "sample_rate=48000", "duration_s=5", "synth=harmonic_noise", cwd=tmp_path)
    audio, sr = sf.read(tmp_path / "my_dir" / "synth_stack.wav")
    assert sr == 48000 and len(audio) == 5 * 48000 and np.isfinite(audio).all()


@pytest.mark.slow
def test_readme_prepare_train_resume_as_typed(tmp_path):
    """`ddsp-lab prepare source=demo out=data/prepared/demo crepe_model=tiny example_seconds=1.0`, `ddsp-lab inspect
    data/prepared/demo`, `ddsp-lab train experiment=tiny data.path=data/prepared/demo` (its 200
    steps) and `ddsp-lab train experiment=tiny run_dir=runs/my_run resume=true`, in one folder."""
    out = ddsp_lab("prepare", "source=demo", "out=data/prepared/demo", "crepe_model=tiny", "example_seconds=1.0",
                   cwd=tmp_path)
    assert "24 items, 24 examples" in out.stdout, out.stdout
    ddsp_lab("inspect", "data/prepared/demo", cwd=tmp_path)
    ddsp_lab("train", "experiment=tiny", "data.path=data/prepared/demo", "run_dir=runs/my_run", cwd=tmp_path)
    ckpt = tmp_path / "runs" / "my_run" / "checkpoints" / "last.ckpt"
    import torch

    assert torch.load(ckpt, weights_only=False)["global_step"] == 200
    config = (tmp_path / "runs" / "my_run" / "config.yaml").read_text()
    assert "path: data/prepared/demo" in config and "???" not in config
    assert list((tmp_path / "runs" / "my_run" / "wandb").glob("offline-run-*"))
    again = ddsp_lab("train", "experiment=tiny", "run_dir=runs/my_run", "resume=true", "trainer.max_steps=210", cwd=tmp_path)
    assert torch.load(ckpt, weights_only=False)["global_step"] == 210, again.stdout[-2000:]
    # `ddsp-lab train -m experiment=tiny model.optimizer.lr=1e-3,3e-3 trainer.max_steps=20`, in the same folder
    ddsp_lab("train", "-m", "experiment=tiny", "model.optimizer.lr=1e-3,3e-3", "trainer.max_steps=20", cwd=tmp_path)
    sweeps = list((tmp_path / "multirun").iterdir())
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir() and p.name[0].isdigit())
    assert len(sweeps) == 1 and len(jobs) == 2 and all("lr=" in j for j in jobs), jobs
    for job in jobs:
        assert torch.load(sweeps[0] / job / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 20


def test_cpu_allocator_tuning_applies_on_glibc_and_is_switched_off_by_its_variable():
    """`ddsp-lab` tunes glibc malloc (ddsp_lab.runtime); DDSP_LAB_MALLOC_TUNING=0 leaves it alone."""
    import os
    import platform
    import subprocess
    import sys

    code = "from ddsp_lab.runtime import tune_cpu_allocator; print(tune_cpu_allocator())"
    env = {k: v for k, v in os.environ.items() if k != "DDSP_LAB_MALLOC_TUNING"}
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "DDSP_LAB_MALLOC_TUNING": "0"})
    glibc = platform.libc_ver()[0] == "glibc"
    assert on.stdout.strip() == str(glibc) and off.stdout.strip() == "False"


@pytest.mark.slow
def test_quickstart_takes_the_logger_as_train_does(tmp_path):
    """`ddsp-lab quickstart logger=csv` (it used to fail: "Could not override 'logger'"), on a
    small corpus and a few steps: the run logs CSV, and no W&B run is made."""
    out = ddsp_lab("quickstart", "logger=csv", "steps=4", "n_examples=6", "out=qs", cwd=tmp_path)
    assert "validation spectral loss" in out.stdout
    assert list((tmp_path / "qs" / "run" / "logs").glob("version_*/metrics.csv"))
    assert not (tmp_path / "qs" / "run" / "wandb").exists()


def test_an_unknown_command_suggests_the_nearest_one(tmp_path):
    out = ddsp_lab("trian", "experiment=tiny", cwd=tmp_path, ok=False)
    assert out.returncode != 0 and "unknown command 'trian' (did you mean `ddsp-lab train`?)" in out.stderr
    out = ddsp_lab("xyzzy", cwd=tmp_path, ok=False)
    assert "unknown command 'xyzzy'" in out.stderr and "did you mean" not in out.stderr


def test_train_help_shows_its_groups_and_the_defaults_of_what_is_chosen(tmp_path):
    """`ddsp-lab train --help` (it printed Hydra's generic "cli is powered by Hydra" page) and
    `ddsp-lab train experiment=tiny --help`: the command's groups with the option in use marked,
    and every key with its default as composed (nothing is run, nothing is written)."""
    out = ddsp_lab("train", "--help", cwd=tmp_path)
    assert out.stdout.startswith("usage: ddsp-lab train ")
    assert "Train a DDSP autoencoder" in out.stdout and "powered by Hydra" not in out.stdout
    groups = dict(re.findall(r"^  (\S+)\s+(.+)$", out.stdout.split("options and their defaults")[0], re.M))
    assert groups["decoder"] == "mlp, rnn_fc*, rnn_fc_tiny" and "solo_violin" in groups["experiment"]
    assert "hparams_search" in groups and "ablation_decoder" in groups["+sweep"]
    assert "n_harmonics: 100" in out.stdout and "lr: 0.0003" in out.stdout
    tiny = ddsp_lab("train", "experiment=tiny", "-h", cwd=tmp_path)
    assert "n_harmonics: 20" in tiny.stdout and "rnn_fc_tiny*" in tiny.stdout
    assert list(tmp_path.iterdir()) == []  # help ran nothing


def test_every_command_has_its_own_help(tmp_path):
    """`ddsp-lab <command> --help` for every command: its line of the command list, its options
    (required ones shown as ???), exit 0, even where running it would need arguments."""
    from ddsp_lab.cli import COMMANDS

    for command, doc in COMMANDS.items():
        out = ddsp_lab(command, "--help", cwd=tmp_path)
        assert out.stdout.startswith(f"usage: ddsp-lab {command} ") and doc in out.stdout, (command, out.stdout[:500])
        assert "options and their defaults" in out.stdout, command
    assert "checkpoint: ???" in ddsp_lab("transfer", "--help", cwd=tmp_path).stdout
    assert "sweep_dir: ???" in ddsp_lab("table", "--help", cwd=tmp_path).stdout  # not taken for a folder named --help
