"""`ddsp_lab.load`: a checkpoint is self-contained: the model comes back with its rate, its encoder,
its loss weights and its training data's record (feature settings, statistics), and gives the
output of the model the training config builds."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import ddsp_lab
from ddsp_lab import features
from ddsp_lab.data import DDSPDataModule, DemoSource, PrepareConfig, load_prepared, prepare
from ddsp_lab.features import FeatureSettings
from ddsp_lab.training import build_model

CLI = Path(sys.executable).parent / "ddsp-lab"
QUICK = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
         "trainer.num_sanity_val_steps=0", "logger=csv", "trainer.enable_progress_bar=false"]


def _train(tmp_path: Path, sample_rate: int, *overrides: str) -> Path:
    data = tmp_path / "data"
    prepare(DemoSource(4), data, PrepareConfig("demo", sample_rate=sample_rate, example_seconds=1.0,
                                               crepe_model="tiny", viterbi=False), progress=False)
    out = subprocess.run([str(CLI), "train", f"data.path={data}", f"run_dir={tmp_path / 'run'}",
                          f"sample_rate={sample_rate}", "data.datamodule.batch_size=2", *QUICK, *overrides],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp_path / "run"


def _batch(run: Path, sample_rate: int) -> dict:
    ds = load_prepared(run.parent / "data").with_format("torch")
    return {k: ds[:2][k].float() for k in ("audio", "f0_hz", "f0_confidence", "loudness_db")}


@pytest.mark.parametrize("sample_rate,overrides", [
    (48000, ["experiment=tiny", "model.loss_weights={spectral: 2.0}"]),
    (16000, ["experiment=nsynth_z", "example_seconds=1.0", "decoder=rnn_fc_tiny", "decoder.input_keys=[ld_scaled,f0_scaled,z]",
             "decoder.input_sizes=[1,1,16]", "encoder.rnn_channels=32", "n_harmonics=20", "n_noise_bands=16"]),
], ids=["48k", "z"])
@pytest.mark.slow
def test_load_round_trip_keeps_rate_encoder_weights_and_output(sample_rate, overrides, tmp_path):
    run = _train(tmp_path, sample_rate, *overrides)
    loaded = ddsp_lab.load(run / "checkpoints" / "last.ckpt")
    cfg = OmegaConf.load(run / "config.yaml")
    assert loaded.sample_rate == sample_rate and not loaded.training
    reference = build_model(cfg)
    reference.load_state_dict(torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"])
    reference.eval()
    assert loaded.config["model"]["loss_weights"] == cfg.model.loss_weights
    assert reference.loss_weights == {"spectral": 2.0 if sample_rate == 48000 else 1.0}
    assert (loaded.encoder is None) == (cfg.encoder is None)
    batch = _batch(run, sample_rate)
    with torch.no_grad():
        torch.manual_seed(0)
        want = reference(batch)
        torch.manual_seed(0)
        got = loaded(batch)
    if cfg.encoder is not None:
        torch.testing.assert_close(got["z"], want["z"])
    torch.testing.assert_close(got[loaded.synth.output], want[reference.synth.output])


def test_load_refuses_what_is_not_a_ddsp_lab_checkpoint(tmp_path):
    junk = tmp_path / "weights.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        ddsp_lab.load(junk)
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="no ddsp_lab model"):
        ddsp_lab.load(tmp_path / "other.ckpt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ddsp_lab.load(tmp_path / "missing.ckpt")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One short CLI training run (experiment=tiny, 1 s examples at 16 kHz) for the tests below."""
    return _train(tmp_path_factory.mktemp("tiny"), 16000, "experiment=tiny")


@pytest.mark.slow
def test_a_model_trained_on_1s_examples_renders_any_length(tiny_run):
    model = ddsp_lab.load(tiny_run / "checkpoints" / "last.ckpt")
    for seconds in (0.5, 4.0, 60.0):
        n_frames = int(seconds * 250)
        t = torch.arange(n_frames) / 250.0
        f0 = (220.0 * 2 ** (0.1 * torch.sin(2 * torch.pi * 0.5 * t)))[None, :, None]
        ld = torch.full((1, n_frames, 1), -30.0)
        audio = model.synthesize(f0, ld, seed=0)
        assert audio.shape == (1, n_frames * 64), seconds
        assert torch.isfinite(audio).all() and audio[0, -1600:].abs().max() > 1e-4, seconds
    # the minute again in 10 s chunks (bounded memory): the same audio
    chunked = model.synthesize(f0, ld, seed=0, chunk_seconds=10.0)
    assert (chunked - audio).abs().max() < 1e-4


def test_a_loaded_model_resynthesises_a_recording_at_another_rate(tiny_run):
    model = ddsp_lab.load(tiny_run / "checkpoints" / "last.ckpt")
    t = torch.arange(22050) / 44100.0
    tone = 0.3 * torch.sin(2 * torch.pi * 330.0 * t)
    audio = model.from_audio(tone, 44100, seed=1)
    assert audio.shape == (1, 8000) and torch.isfinite(audio).all()  # 0.5 s at the model's 16 kHz
    assert audio.abs().max() > 1e-3
    assert (model.from_audio(tone, 44100, seed=1, chunk_seconds=0.2) - audio).abs().max() < 1e-4


def test_the_checkpoint_carries_the_training_data_statistics_and_feature_settings(tiny_run, tmp_path):
    data = tiny_run.parent / "data"
    model = ddsp_lab.load(tiny_run / "checkpoints" / "last.ckpt")
    info = json.loads((data / "dataset_info.json").read_text())
    assert model.dataset_statistics == info["statistics"]
    assert len(model.dataset_statistics["loudness_db_quantiles"]) == 101
    assert model.feature_settings == FeatureSettings(16000, 250, "tiny", False, 2048)
    assert model.dataset_info["content_hash"] == DDSPDataModule(str(data)).content_hash
    assert model.dataset_info["name"] == "data" and model.dataset_info["source"] == "demo"
    # a new recording through the model's own feature settings, then resynthesised
    t = torch.arange(8000) / 16000
    feats = features.compute(0.3 * torch.sin(2 * torch.pi * 330 * t), 16000, model.feature_settings)
    with torch.no_grad():
        assert model.synthesize(feats["f0_hz"], feats["loudness_db"]).shape == (1, 8000)
    # a checkpoint written before the record was saved still loads, without it
    ckpt = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=False)
    del ckpt["ddsp_lab_dataset"]
    torch.save(ckpt, tmp_path / "older.ckpt")
    older = ddsp_lab.load(tmp_path / "older.ckpt")
    assert older.dataset_statistics is None and older.feature_settings is None and older.dataset_info is None
    # ... and one written before the parts moved into the DDSP module (keys preprocessor.*, decoder.*, ...)
    ckpt["state_dict"] = {k[len("model."):] if k.startswith("model.") else k: v for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, tmp_path / "flat.ckpt")
    f0, ld = torch.full((1, 100, 1), 330.0), torch.full((1, 100, 1), -30.0)
    assert torch.equal(ddsp_lab.load(tmp_path / "flat.ckpt").synthesize(f0, ld, seed=0),
                       model.synthesize(f0, ld, seed=0))


# --- A checkpoint is data: what a model file from the internet could carry is refused, unrun ---

class _RunsOnLoad:
    """Pickles as a call of os.system: unpickling it (torch.load with weights_only=False) runs the command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def _tampered(tiny_run: Path, tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A copy of the tiny run's checkpoint carrying code that would create a marker file:
    'pickle' (an object whose unpickling runs a command), 'system' (a synth processor built by
    `_target_: os.system`), 'builtin' (the encoder built by `_target_: builtins.open`, which
    creates the file) or 'interpolation' (an ${eval:...} string in the config)."""
    marker = tmp_path / f"ran_{kind}"
    ckpt = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    cfg = ckpt["ddsp_lab_config"]
    if kind == "pickle":
        ckpt["extra"] = _RunsOnLoad(f"touch {marker}")
    elif kind == "system":
        cfg["synth"]["nodes"][0]["processor"] = {"_target_": "os.system", "_args_": [f"touch {marker}"]}
    elif kind == "builtin":
        cfg["encoder"] = {"_target_": "builtins.open", "_args_": [str(marker), "w"]}
    else:
        cfg["decoder"]["ch"] = "${eval:'().__class__'}"
    path = tmp_path / f"{kind}.ckpt"
    torch.save(ckpt, path)
    return path, marker


@pytest.mark.parametrize("kind", ["pickle", "system", "builtin", "interpolation"])
def test_load_refuses_a_checkpoint_that_carries_code_and_runs_none_of_it(kind, tiny_run, tmp_path):
    path, marker = _tampered(tiny_run, tmp_path, kind)
    if kind == "pickle":  # the payload is real: an unguarded load runs it
        torch.load(path, weights_only=False)
        assert marker.exists()
        marker.unlink()
    message = {"pickle": "pickled objects that are not plain data", "system": "'os.system'.*trusted_targets",
               "builtin": "'builtins.open'.*trusted_targets", "interpolation": "interpolation"}[kind]
    with pytest.raises(ValueError, match=message):
        ddsp_lab.load(path)
    assert not marker.exists()


def test_only_classes_of_the_model_packages_or_those_the_user_trusts_are_built(tiny_run, tmp_path):
    from ddsp_lab.models.trust import check_targets

    ok = {"_target_": "ddsp_lab.processors.ProcessorGroup",
          "nodes": [{"processor": {"_target_": "ddsp_lab.processors.Harmonic"}}]}
    check_targets(ok, "synth")
    for target in ("ddsp_lab.runtime.tune_cpu_allocator", "ddsp_lab.media.save_wav", "ddsp_lab.processors.synths.torch.save",
                   "ddsp_lab.processors.dsp.resample", "torch.nn.Linear"):
        with pytest.raises(ValueError, match="refused"):
            check_targets({"_target_": target}, "synth")
    check_targets({"_target_": "torch.nn.Linear"}, "synth", trusted=["torch.nn.Linear"])
    # a user's own class, allowed by name, builds
    ckpt = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["ddsp_lab_config"]["encoder"] = {"_target_": "torch.nn.Identity"}
    torch.save(ckpt, tmp_path / "custom.ckpt")
    with pytest.raises(ValueError, match="torch.nn.Identity"):
        ddsp_lab.load(tmp_path / "custom.ckpt")
    assert isinstance(ddsp_lab.load(tmp_path / "custom.ckpt", trusted_targets=["torch.nn.Identity"]).encoder,
                      torch.nn.Identity)


@pytest.mark.parametrize("command", ["transfer", "control", "dereverb", "reverb", "interpolate", "eval", "export"])
def test_every_command_that_takes_a_checkpoint_refuses_one_that_carries_code(command, tiny_run, tmp_path):
    import soundfile as sf

    wav = tmp_path / "in.wav"
    sf.write(wav, 0.3 * torch.sin(2 * torch.pi * 330 * torch.arange(8000) / 16000).numpy(), 16000)
    extra = {"transfer": [f"audio={wav}"], "control": ["notes=A4:0:0.5"], "dereverb": [f"audio={wav}"],
             "reverb": [], "interpolate": [f"audio_a={wav}", f"audio_b={wav}"], "eval": [], "export": []}[command]
    for kind in ("pickle", "builtin"):
        path, marker = _tampered(tiny_run, tmp_path, kind)
        out = subprocess.run([str(CLI), command, f"checkpoint={path}", f"out={tmp_path / ('out_' + kind)}", *extra],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert out.returncode != 0, (kind, out.stdout[-2000:])
        assert ("not plain data" if kind == "pickle" else "'builtins.open'") in out.stderr, (kind, out.stderr[-2000:])
        assert "Traceback" not in out.stderr, out.stderr[-2000:]
        assert not marker.exists(), kind
