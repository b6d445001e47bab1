"""Training (first increment): configs compose and instantiate, a short fit learns, resume
continues the step count, bad configs fail at start with their messages."""
import os
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir

from ddsp_lab.conf import CONF_DIR
from ddsp_lab.data import DDSPDataModule
from ddsp_lab.training import build_model
from _ddp import run_ddp

CLI = str(__import__('pathlib').Path(sys.executable).parent / "ddsp-lab")  # the installed console script

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def _compose(overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=False)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(experiment, tmp_path):
    cfg = _compose([f"experiment={experiment}", "run_dir=" + str(tmp_path), "data.path=" + str(tmp_path)])
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert model.synth.external_inputs()["harmonic_distribution"] == cfg.n_harmonics


def test_logger_none_composes_to_no_logger(tmp_path):
    assert _compose(["logger=none", f"run_dir={tmp_path}", f"data.path={tmp_path}"]).logger is None


@pytest.mark.slow
def test_short_fit_on_one_demo_example_drives_the_spectral_loss_down(demo_data, tmp_path):
    torch.manual_seed(0)
    cfg = _compose(["experiment=tiny", f"data.path={demo_data}", f"run_dir={tmp_path}"])
    model = build_model(cfg)
    dm = DDSPDataModule(str(demo_data), batch_size=1)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    opt = model.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(120):
        total = model.compute_losses(batch, model(batch))["total"]
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total))
    assert min(losses[-10:]) < 0.5 * losses[0], (losses[0], losses[-10:])


def _train(args, cwd):
    return subprocess.run([str(CLI), "train", "experiment=tiny",
                           "trainer.enable_progress_bar=false", "logger=csv", *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


def _train_losses(run) -> dict[int, float]:
    import csv

    losses = {}
    for path in sorted(run.glob("logs/version_*/metrics.csv")):  # a resumed run logs a new version
        with open(path) as f:
            losses.update({int(r["step"]): float(r["train/total"]) for r in csv.DictReader(f) if r.get("train/total")})
    return losses


@pytest.mark.slow
def test_cli_resume_continues_step_count_optimizer_and_data_with_the_same_losses(demo_data, tmp_path):
    """A run stopped mid-epoch after 3 steps and resumed to 6 logs the same losses for steps 4-6 as an
    uninterrupted 6-step run: step count, optimiser and scheduler state, the data stream and the
    noise synth's random state all continue."""
    common = [f"data.path={demo_data}", "data.datamodule.batch_size=1", "trainer.val_check_interval=3",
              "trainer.log_every_n_steps=1", "model.f0_metric=false", "model.scheduler.step_size=2",
              "model.scheduler.gamma=0.5"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    out = _train([*common, f"run_dir={whole}", "trainer.max_steps=6"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    out = _train([*common, f"run_dir={parts}", "trainer.max_steps=3"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (parts / "config.yaml").exists() and (parts / "checkpoints" / "last.ckpt").exists()
    out = _train([*common, f"run_dir={parts}", "trainer.max_steps=6", "resume=true"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(parts / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 6
    assert ckpt["lr_schedulers"][0]["last_epoch"] == 6
    expected, resumed = _train_losses(whole), _train_losses(parts)
    later = sorted(k for k in expected if k >= 3)
    assert later == [3, 4, 5], expected
    assert [resumed[k] for k in later] == pytest.approx([expected[k] for k in later], rel=1e-5), (expected, resumed)
    assert len(set(expected.values())) == len(expected)  # the losses do change from step to step


def test_bad_configs_fail_at_start(demo_data, tmp_path):
    """Configs that do not fit together fail before training with a message naming what is wrong:
    through the CLI for a missing data path (what users meet most), in process for the rest (the
    same compose and `train(cfg)` the CLI runs, without a new interpreter per case)."""
    from hydra.errors import MissingConfigException

    from ddsp_lab.training import train

    out = _train([f"data.path={tmp_path / 'missing'}", f"run_dir={tmp_path / 'b'}"], tmp_path)
    assert out.returncode != 0 and "data.path" in out.stderr
    base = ["experiment=tiny", "logger=csv", "trainer.enable_progress_bar=false", f"data.path={demo_data}"]
    cases = [(["+decoder.output_splits=[[amps,1],[harmonic_distribution,20],[noise_magnitudes,8]]"],
              "do not fit the synth stack"),  # heads given by hand that disagree with the synth stack
             (["sample_rate=22050"], "sample_rate"), (["resume=true"], "resume"), (["frame_rate=200"], "frame_rate=250"),
             (["synth.nodes.0.processor._target_=ddsp_lab.processors.NoSuchSynth"], "NoSuchSynth")]
    for i, (overrides, message) in enumerate(cases):
        with pytest.raises(BaseException, match=message):  # ValueError, FileNotFoundError or SystemExit
            train(_compose([*base, f"run_dir={tmp_path / str(i)}", *overrides]))
    for group in ("synth", "encoder"):  # an unknown synth stack or encoder: Hydra lists the known ones
        with pytest.raises(MissingConfigException, match=f"Could not find '{group}/no_such_{group}'"):
            _compose([*base, f"run_dir={tmp_path / group}", f"{group}=no_such_{group}"])


@pytest.mark.slow
def test_offline_wandb_run_holds_the_logged_audio_and_images(demo_data, tmp_path):
    import os

    run = tmp_path / "run"
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    out = subprocess.run([str(CLI), "train", "experiment=tiny", "logger=wandb",
                          f"data.path={demo_data}", f"run_dir={run}", "trainer.max_steps=4",
                          "trainer.val_check_interval=2", "trainer.enable_progress_bar=false"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    media = offline[0] / "files" / "media"
    assert list(media.rglob("*.wav")) and list(media.rglob("*.png"))
    assert list((run / "media").rglob("*_resynthesis.wav")) and list((run / "media").rglob("example0.png"))
    record = next(offline[0].glob("run-*.wandb")).read_bytes()  # holds the config until `wandb sync`
    assert b"n_parameters" in record and b"harmonic_distribution" in record  # the model's size, resolved config


UNSUPERVISED_SMALL = ["experiment=nsynth_unsupervised", "data=demo", "example_seconds=1.0", "decoder=rnn_fc_tiny",
                      "encoder.encoders.z.rnn_channels=16", "encoder.encoders.f0.channels=[8,16]",
                      "encoder.encoders.f0.blocks=[1,1]"]


@pytest.mark.parametrize("overrides", [["experiment=tiny"], UNSUPERVISED_SMALL], ids=["supervised", "unsupervised"])
@pytest.mark.slow
def test_nan_batch_is_skipped_and_counted_and_persistent_nan_stops(demo_data, tmp_path, overrides):
    import pytorch_lightning as pl

    torch.manual_seed(0)
    cfg = _compose([*overrides, f"data.path={demo_data}", f"run_dir={tmp_path}"])
    model = build_model(cfg, max_consecutive_skips=3)
    dm = DDSPDataModule(str(demo_data), batch_size=1)
    dm.setup()
    good = next(iter(dm.val_dataloader()))
    bad = {k: v.clone() for k, v in good.items()}
    bad["audio"][0, 100] = float("nan")

    class Batches(torch.utils.data.IterableDataset):
        def __init__(self, pattern):
            self.pattern = pattern

        def __iter__(self):
            return iter([{k: v[0] for k, v in (bad if b else good).items()} for b in self.pattern])

    def run(pattern, steps):
        trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             log_every_n_steps=1, limit_val_batches=0, enable_model_summary=False)
        trainer.fit(model, torch.utils.data.DataLoader(Batches(pattern), batch_size=1))

    run([False], 1)
    before = {k: v.clone() for k, v in model.state_dict().items() if "skipped" not in k and "consecutive" not in k}
    run([True], 1)  # a NaN batch: no parameter moves, the skip is counted
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, (changed[:5], int(model.skipped_steps))
    assert int(model.skipped_steps) == 1
    run([False], 1)
    assert int(model.skipped_steps) == 1 and int(model.consecutive_skips) == 0
    with pytest.raises(RuntimeError, match="consecutive steps had a non-finite loss"):
        run([True] * 6, 6)


@pytest.mark.slow
def test_load_synthesize_and_export_match_the_eager_model(demo_data, tmp_path):
    import ddsp_lab
    from ddsp_lab.models import DDSP, export

    run = tmp_path / "run"
    out = _train([f"data.path={demo_data}", f"run_dir={run}", "trainer.max_steps=4",
                  "trainer.val_check_interval=2"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    model = ddsp_lab.load(run / "checkpoints" / "last.ckpt")
    assert isinstance(model, DDSP) and not model.training
    f0 = torch.full((1, 250, 1), 330.0)
    ld = torch.linspace(-40.0, 10.0, 250)[None, :, None]
    audio = model.synthesize(f0, ld)
    assert audio.shape == (1, 16000) and torch.isfinite(audio).all()
    torch.manual_seed(0)
    with torch.no_grad():
        eager = model.render_once({"f0_hz": f0, "loudness_db": ld})
    program = export(model, f0, ld)
    torch.manual_seed(0)  # the same noise draws
    assert torch.equal(program.module()(f0, ld), eager)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        ddsp_lab.load(tmp_path / "nope.ckpt")


def test_validation_metrics_and_mixed_precision_keep_the_synth_in_float32(demo_data, tmp_path):
    cfg = _compose(["experiment=tiny", f"data.path={demo_data}", f"run_dir={tmp_path}"])
    model = build_model(cfg)
    dm = DDSPDataModule(str(demo_data), batch_size=2)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad():
        outputs = model(batch)
        metrics = model.resynthesis_metrics(batch, outputs)
        # resynthesizing the target itself gives zero error
        perfect = model.resynthesis_metrics(batch, {**outputs, model.synth.output: batch["audio"]})
    assert metrics["loudness_l1_db"] > 0.1 and perfect["loudness_l1_db"] == 0.0
    assert float(perfect["f0_l1_cents"]) == 0.0 and torch.isfinite(metrics["f0_l1_cents"])
    for dtype in (torch.bfloat16, torch.float16):
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype):
            out = model(batch)
            losses = model.compute_losses(batch, out)
        assert out[model.synth.output].dtype == torch.float32 and torch.isfinite(losses["total"])


@pytest.mark.slow
def test_fp16_mixed_precision_trains_with_the_grad_scaler(demo_data, tmp_path):
    """trainer.precision=16-mixed: Lightning's GradScaler; steps it finds overflowing are skipped by
    the scaler and counted by the model's guard, and training still lowers the loss."""
    out = _train([f"data.path={demo_data}", f"run_dir={tmp_path / 'r'}", "trainer.max_steps=12",
                  "trainer.val_check_interval=12", "trainer.precision=16-mixed", "trainer.log_every_n_steps=1",
                  "model.f0_metric=false"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    losses = _train_losses(tmp_path / "r")
    assert len(losses) == 12 and all(v == v for v in losses.values())
    assert min(losses[k] for k in range(8, 12)) < losses[0]


@pytest.mark.slow
def test_two_process_ddp_on_cpu_completes_its_checkpoint_loads_and_resumes_exactly(demo_data, tmp_path):
    """2 ranks (gloo): the run completes, the checkpoint loads, and a run stopped after 2 steps and
    resumed logs the same losses for steps 3-4 as the uninterrupted one (each rank's data share
    and random state continue)."""
    import ddsp_lab

    env = dict(os.environ, OMP_NUM_THREADS="1")

    def ddp_train(run, *args):
        out = run_ddp([str(CLI), "train", "experiment=tiny", "logger=csv",
                       f"data.path={demo_data}", f"run_dir={run}", "trainer.val_check_interval=2",
                       "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
                       "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
                       "model.f0_metric=false", *args], env=env, timeout=600, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    run, parts = tmp_path / "run", tmp_path / "parts"
    out = ddp_train(run, "trainer.max_steps=4")
    assert "[rank: 1]" in out.stdout + out.stderr  # the second process ran
    ckpt = run / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=False)
    assert saved["global_step"] == 4
    ranks = saved["rng_states"]  # each rank's random states, for an exact resume
    assert len(ranks) == 2 and not torch.equal(ranks[0]["training_noise"], ranks[1]["training_noise"])
    ddp_train(parts, "trainer.max_steps=2")
    ddp_train(parts, "trainer.max_steps=4", "resume=true")
    expected, resumed = _train_losses(run), _train_losses(parts)
    assert sorted(expected) == [0, 1, 2, 3]
    assert [resumed[k] for k in (2, 3)] == pytest.approx([expected[k] for k in (2, 3)], rel=1e-5), (expected, resumed)
    assert ddsp_lab.load(ckpt).synthesize(torch.full((1, 250, 1), 440.0), torch.zeros(1, 250, 1)).shape == (1, 16000)


@pytest.mark.slow
def test_the_readme_main_job_drives_the_validation_loss_down_by_60_percent(tmp_path):
    import re

    env = dict(__import__("os").environ, WANDB_MODE="offline", WANDB_SILENT="true")
    out = subprocess.run([str(CLI), "quickstart", f"out={tmp_path / 'qs'}"],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    match = re.search(r"validation spectral loss ([\d.]+) -> ([\d.]+)", out.stdout)
    assert match, out.stdout[-2000:]
    before, after = float(match.group(1)), float(match.group(2))
    assert after <= 0.4 * before, (before, after)
    run = tmp_path / "qs" / "run"
    assert list((run / "media").rglob("*_resynthesis.wav")) and list((run / "wandb").glob("offline-run-*"))
    assert str(run) in out.stdout


def test_resume_modes(tmp_path):
    from ddsp_lab.training import resolve_resume

    assert resolve_resume(False, tmp_path) is None and resolve_resume("auto", tmp_path) is None
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint"):
        resolve_resume(True, tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert resolve_resume("auto", tmp_path) == resolve_resume(True, tmp_path) == str(tmp_path / "checkpoints" / "last.ckpt")
    import os

    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"")  # Lightning's SLURM pre-emption checkpoint, newer
    os.utime(tmp_path / "checkpoints" / "last.ckpt", (1, 1))
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "hpc_ckpt_1.ckpt")


def _fit_harmonic_tone(overrides, steps: int, sample_rate: int = 48000):
    """Fits the model of `overrides` to one 0.5 s harmonic tone (330 Hz, 12 harmonics at k^-1);
    returns (first loss, last loss, harmonic / noise energy of the last output, harmonic rms, target rms)."""
    from ddsp_lab.features import compute_loudness_frames

    torch.manual_seed(0)
    cfg = _compose(["experiment=solo_48k", "synth=harmonic_noise", "decoder=rnn_fc_tiny", "example_seconds=0.5",
                    f"sample_rate={sample_rate}", "run_dir=unused", "data.path=unused", "model.optimizer.lr=3e-3",
                    *overrides])
    model = build_model(cfg)
    n, n_frames = int(cfg.n_samples), int(cfg.n_frames)
    t = torch.arange(n) / sample_rate
    k = torch.arange(1, 13)[:, None]
    target = (0.3 * (torch.sin(2 * torch.pi * 330.0 * k * t) / k).sum(0))[None] * torch.linspace(0.5, 1.0, n)
    batch = {"audio": target, "f0_hz": torch.full((1, n_frames, 1), 330.0), "f0_confidence": torch.ones(1, n_frames, 1),
             "loudness_db": compute_loudness_frames(target, sample_rate, 250)[..., None]}
    opt = model.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(steps):
        out = model(batch)
        loss = model.compute_losses(batch, out)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    h, noise = out["harmonic"].detach(), out["noise"].detach()
    return losses[0], losses[-1], float(h.square().mean() / noise.square().mean()), float(h.square().mean().sqrt()), \
        float(target.square().mean().sqrt())


def test_the_48k_model_trains_its_harmonic_part():
    """solo_48k (with its -12 dB/octave prior on the harmonic distribution): fitting a harmonic tone,
    the harmonic synth carries the sound (the reference's harmonic part is reported not to train at
    44.1 kHz). Without the prior the failure is reproduced: the noise takes over."""
    first, last, ratio, h_rms, target_rms = _fit_harmonic_tone([], steps=100)
    assert last < 0.3 * first and ratio > 100 and abs(h_rms / target_rms - 1) < 0.3, (first, last, ratio, h_rms)
    _, _, ratio_flat, h_rms_flat, _ = _fit_harmonic_tone(["harmonic_tilt_db_per_octave=0.0"], steps=40)
    assert ratio_flat < 1e-2 and h_rms_flat < 0.01 * target_rms, (ratio_flat, h_rms_flat)


@pytest.mark.slow
def test_validation_f0_error_is_the_mean_over_confident_frames_and_nan_without_any(demo_data, tmp_path):
    """A validation batch with no confident frame (silence) adds nothing to val/f0_l1_cents (it used to
    add a 0 weighted like any batch); a validation with none at all reports NaN, not 0."""
    import math

    import pytorch_lightning as pl

    cfg = _compose(["experiment=tiny", f"data.path={demo_data}", f"run_dir={tmp_path}"])
    model = build_model(cfg)
    dm = DDSPDataModule(str(demo_data), batch_size=2)
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    silent = {**batch, "audio": torch.zeros_like(batch["audio"])}
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    with torch.no_grad():
        alone = model.resynthesis_metrics(batch, model(batch))
    assert int(alone["f0_l1_cents_frames"]) > 0
    loader = lambda batches: torch.utils.data.DataLoader(batches, batch_size=None)  # noqa: E731
    got = trainer.validate(model, dataloaders=loader([batch, silent]), verbose=False)[0]
    assert got["val/f0_l1_cents"] == pytest.approx(float(alone["f0_l1_cents"]), rel=1e-3)
    none = trainer.validate(model, dataloaders=loader([silent]), verbose=False)[0]
    assert math.isnan(none["val/f0_l1_cents"])


@pytest.mark.slow
def test_a_ddp_sweep_runs_each_job_with_its_own_ranks_in_its_own_directory(demo_data, tmp_path):
    """`ddsp-lab train -m ... trainer=ddp seed=0,1` on Hydra's basic launcher: the jobs run one after
    the other in one process; each starts its own ranks, which write into that job's directory
    (the second job used to inherit the first one's process group and environment, and fail)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = run_ddp([str(CLI), "train", "-m", "experiment=tiny", "logger=csv", f"data.path={demo_data}",
                   "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_steps=2",
                   "trainer.val_check_interval=2", "trainer.num_sanity_val_steps=0", "model.f0_metric=false",
                   "trainer.enable_progress_bar=false", "seed=0,1", "hydra.sweep.dir=sweep"],
                  env=env, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name[0].isdigit())
    assert len(jobs) == 2 and (out.stdout + out.stderr).count("[rank: 1]") >= 2
    for job in jobs:
        assert torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]  # no rank wrote anywhere else


def test_media_are_written_at_the_model_sample_rate_whatever_the_first_processor(tmp_path):
    """A stack whose first processor declares no sample rate (filtered noise) at 48 kHz: the media
    WAVs are 48 kHz (they used to fall back to 16 kHz from the first processor)."""
    from types import SimpleNamespace

    import soundfile as sf

    from ddsp_lab.media.logger import MediaLogger
    from ddsp_lab.losses import MultiScaleSpectralLoss
    from ddsp_lab.networks import F0LoudnessPreprocessor, RnnFcDecoder
    from ddsp_lab.processors import FilteredNoise, ProcessorGroup
    from ddsp_lab.training import DDSPAutoencoder

    synth = ProcessorGroup([{"processor": FilteredNoise(n_bands=8), "inputs": ["noise_magnitudes"], "name": "noise"}],
                           frame_rate=250, sample_rate=48000)
    module = DDSPAutoencoder(F0LoudnessPreprocessor(frame_rate=250, sample_rate=48000),
                             RnnFcDecoder(rnn_channels=8, ch=8, layers_per_stack=1), synth,
                             {"spectral": MultiScaleSpectralLoss()}, sample_rate=48000, frame_rate=250)
    n_frames = 50
    batch = {"audio": torch.zeros(1, n_frames * 192), "f0_hz": torch.full((1, n_frames), 220.0),
             "loudness_db": torch.full((1, n_frames), -30.0)}
    logger = MediaLogger(every_n_steps=1, n_examples=1)
    logger.on_validation_batch_end(None, module, None, batch, 0)
    trainer = SimpleNamespace(global_step=1, is_global_zero=True, default_root_dir=str(tmp_path), loggers=[])
    logger.log_media(trainer, module)
    info = sf.info(str(tmp_path / "media" / "step-0000001" / "example0_resynthesis.wav"))
    assert info.samplerate == 48000 and info.frames == n_frames * 192


def _wandb_run_record(path):
    """The run record of an offline W&B run file (run-*.wandb): LevelDB-log blocks of protobuf
    records after a 7-byte W&B header, read here since wandb 0.31 ships no Python reader."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, buf = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        buf, pos = buf + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(buf)
            if record.WhichOneof("record_type") == "run":
                return record.run
            buf = b""
    raise AssertionError(f"no run record in {path}")


def test_a_sweep_gives_each_job_its_own_wandb_run_grouped_by_sweep_typed_by_axis(demo_data, tmp_path):
    """`ddsp-lab train -m ... seed=0,1` with W&B offline: one run per job (the second job logged
    into the first one's before), both in the sweep's group, job type the swept axis, each named
    by its overrides."""
    sweep = tmp_path / "my_sweep"
    env = dict(os.environ, WANDB_MODE="offline")
    out = subprocess.run([CLI, "train", "-m", "experiment=tiny", "logger=wandb", f"data.path={demo_data}",
                          "trainer.max_steps=2", "trainer.val_check_interval=2", "model.f0_metric=false",
                          "seed=0,1", f"hydra.sweep.dir={sweep}"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = sorted(sweep.glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 2, runs
    records = [_wandb_run_record(p) for p in runs]
    assert [r.run_group for r in records] == ["my_sweep", "my_sweep"]
    assert [r.job_type for r in records] == ["seed", "seed"]
    assert [r.display_name for r in records] == ["experiment=tiny,model.f0_metric=False,seed=0",
                                                 "experiment=tiny,model.f0_metric=False,seed=1"]
    assert "seed=1" in records[1].tags
