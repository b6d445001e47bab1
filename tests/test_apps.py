"""The applications (ddsp_lab.apps and `ddsp-lab transfer|control|dereverb|reverb|interpolate`) on a
tiny model trained here: on low harmonic tones (MIDI 45-52), with the paper's trainable reverb."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import ddsp_lab
from ddsp_lab import apps, features
from ddsp_lab.features import FeatureSettings

CLI = Path(sys.executable).parent / "ddsp-lab"
TRAIN_MIDI = (45, 47, 50, 52)


def _tone(midi: float, seconds: float, sr: int, on_seconds: float | None = None, n_harmonics: int = 8,
          swell: bool = False) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12) * (1 + 0.003 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, n_harmonics + 1) if k * f0.max() < sr / 2)
    envelope = np.minimum(1.0, t / 0.05)
    if swell:  # the level sweeps 30 dB back and forth: a model learns loudness from it
        envelope = envelope * 10 ** (-1.5 * (0.5 - 0.5 * np.cos(2 * np.pi * t / seconds * 2)))
    if on_seconds is not None:
        envelope = envelope * np.clip(1 - (t - on_seconds) / 0.02, 0, 1)
    return (0.2 * envelope * x).astype(np.float32)


def _cli(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=600, cwd=cwd)
    if ok:
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """`ddsp-lab train experiment=tiny synth=harmonic_noise_reverb`, 60 steps on 4 low tones."""
    from ddsp_lab.data import FolderSource, PrepareConfig, prepare

    root = tmp_path_factory.mktemp("apps")
    (root / "wavs").mkdir()
    for midi in TRAIN_MIDI:
        sf.write(root / "wavs" / f"tone_{midi}.wav", _tone(midi, 3.0, 16000, swell=True), 16000)
    prepare(FolderSource(str(root / "wavs")), root / "data",
            PrepareConfig("folder", example_seconds=1.0, crepe_model="tiny", viterbi=False), progress=False)
    _cli("train", "experiment=tiny", "synth=harmonic_noise_reverb", f"data.path={root / 'data'}",
         f"run_dir={root / 'run'}", "trainer.max_steps=60", "trainer.val_check_interval=60",
         "trainer.num_sanity_val_steps=0", "logger=csv", "model.f0_metric=false", "data.datamodule.batch_size=2",
         cwd=root)
    return root / "run"


@pytest.fixture(scope="module")
def model(run):
    return ddsp_lab.load(run / "checkpoints" / "last.ckpt")


def _pitch(audio: torch.Tensor, sr: int) -> float:
    """Median MIDI pitch of the confident frames (CREPE tiny)."""
    got = features.compute(audio, sr, FeatureSettings(crepe_model="tiny", viterbi=False))
    f0, conf = got["f0_hz"][0], got["f0_confidence"][0]
    assert bool((conf > 0.5).any()), "no confident frame"
    return float(69 + 12 * torch.log2(f0[conf > 0.5] / 440).median())


@pytest.mark.slow
def test_transfer_keeps_the_pitch_of_a_tone_without_adjustment(model):
    tone = torch.from_numpy(_tone(48.3, 1.5, 44100))
    result = apps.timbre_transfer(model, tone, 44100, auto_adjust=False)
    assert result.sample_rate == 16000 and result.audio.shape == (int(1.5 * 250) * 64,)
    assert bool(torch.isfinite(result.audio).all()) and float(result.audio.abs().max()) > 1e-3
    assert abs(_pitch(result.audio, 16000) - _pitch(tone, 44100)) < 0.25  # semitones: 25 cents
    assert any("resampled from 44100 Hz" in n for n in result.notes)


def test_auto_adjust_moves_a_tone_two_octaves_above_the_range_by_whole_octaves_into_it(model):
    low, _, high = apps.training_pitch_range(model.dataset_statistics)
    assert 44 < low < high < 53, (low, high)  # the training tones' range, as recorded by prepare
    tone = torch.from_numpy(_tone(high + 24, 1.5, 16000))
    result = apps.timbre_transfer(model, tone, 16000, auto_adjust=True)
    assert result.info["octaves"] == -2
    heard_in, heard_out = _pitch(tone, 16000), _pitch(result.audio, 16000)
    assert low - 0.25 <= heard_out <= high + 0.25, (heard_out, low, high)
    assert abs(heard_out - (heard_in - 24)) < 0.25
    # the notes' loudness is mapped onto the training distribution: its median lands near the training median
    train_median = model.dataset_statistics["loudness_db_confident_quantiles"][50]
    assert abs(float(result.curves["loudness_db/to the model"][result.curves["f0_hz/input"] > 0].median()) - train_median) < 6


def test_transfer_cli_writes_wav_and_png_from_a_stereo_file_at_another_rate(run, tmp_path):
    stereo = np.stack([_tone(50, 1.0, 22050), 0.5 * _tone(50, 1.0, 22050)], axis=1)
    sf.write(tmp_path / "take.wav", stereo, 22050)
    out = _cli("transfer", f"checkpoint={run / 'checkpoints' / 'last.ckpt'}", "audio=take.wav", "pitch_shift=2",
               cwd=tmp_path)
    assert "2 channels mixed down to mono" in out.stdout and "resampled from 22050 Hz" in out.stdout, out.stdout
    audio, sr = sf.read(tmp_path / "take.transfer.wav")
    assert sr == 16000 and len(audio) == 250 * 64 and np.isfinite(audio).all()
    assert (tmp_path / "take.transfer.png").stat().st_size > 10_000
    assert str(tmp_path / "take.transfer.wav") in out.stdout


def test_control_plays_notes_the_model_never_heard(run, model, tmp_path):
    out = _cli("control", f"checkpoint={run / 'checkpoints' / 'last.ckpt'}", "notes=C3:0:0.6 A4:0.6:0.9:110",
               "vibrato_hz=5", "vibrato_cents=30", "out=melody.wav", cwd=tmp_path)
    audio, sr = sf.read(tmp_path / "melody.wav", dtype="float32")
    assert sr == 16000 and len(audio) == math.ceil((1.5 + 0.5) * 250) * 64 and np.isfinite(audio).all()
    assert "outside the training range" in out.stdout and "extrapolates" in out.stdout, out.stdout
    assert (tmp_path / "melody.png").exists()
    assert abs(_pitch(torch.from_numpy(audio[:int(0.55 * sr)]), sr) - 48) < 0.25  # C3, the first note
    # loudness control alone leaves the pitch where it is and scales the level
    loud = apps.control(model, notes="C3:0:1").audio
    quieter = [apps.control(model, notes="C3:0:1", loudness_shift=shift).audio for shift in (-12, -24)]
    assert abs(_pitch(quieter[0][:16000], sr) - _pitch(loud[:16000], sr)) < 0.25
    power = [float(x[:16000].square().mean()) for x in (loud, *quieter)]
    # each 12 dB down lowers the level (a 60-step model renders about 3 dB for 12), and 24 dB by well over half
    assert power[0] > power[1] > power[2] and power[2] < 0.5 * power[0], power


def test_control_of_a_recording_shifts_its_pitch_by_the_interval_asked(run, tmp_path):
    tone = _tone(47, 1.2, 16000)
    sf.write(tmp_path / "take.wav", tone, 16000)
    _cli("control", f"checkpoint={run / 'checkpoints' / 'last.ckpt'}", "audio=take.wav", "pitch_shift=5",
         "loudness_scale=1.5", cwd=tmp_path)
    audio, sr = sf.read(tmp_path / "take.control.wav", dtype="float32")
    assert len(audio) == 300 * 64 and np.isfinite(audio).all()
    assert abs(_pitch(torch.from_numpy(audio), sr) - (_pitch(torch.from_numpy(tone), 16000) + 5)) < 0.25


def test_notes_and_edits():
    notes = apps.parse_notes("A4:0:0.5 Bb3:0.5:0.25:64,60:1:1")
    assert [n.pitch for n in notes] == [69, 58, 60] and notes[1].velocity == 64
    f0, ld = apps.notes_to_curves(notes, 250, (-10.0, 20.0), -40.0, tail_s=0.5)
    assert f0.shape == ld.shape == (int(2.5 * 250),)
    assert float(f0[50]) == pytest.approx(440.0, rel=1e-4) and float(f0[200]) == pytest.approx(233.08, rel=1e-3)
    assert float(ld[50]) == pytest.approx(-10 + 30 * 100 / 127, abs=1e-4) and float(ld[-1]) == -40.0
    f0e, lde = apps.edit(f0, ld, pitch_shift=12, loudness_shift=-6)
    torch.testing.assert_close(f0e, 2 * f0, rtol=1e-5, atol=0)
    torch.testing.assert_close(lde, ld - 6)
    for bad, match in (("A4:0", "pitch:start:duration"), ("H4:0:1", "note name"), ("A4:-1:1", "start >= 0"),
                       ("A4:0:1:200", "velocity")):
        with pytest.raises(ValueError, match=match):
            apps.parse_notes(bad)


def test_dereverb_takes_the_room_away_and_the_reverb_transfer_gives_back_the_ir(run, model, tmp_path):
    node = model.synth.processors[model.synth.names.index(apps.reverb_nodes(model)[-1])]
    with torch.no_grad():  # a reverberant room: 1.5 s of decaying noise
        n = node.ir.numel()
        decay = torch.exp(-4.0 * torch.arange(n) / 24000.0)
        node.ir.copy_(0.05 * decay * torch.randn(n, generator=torch.Generator().manual_seed(0)))
    tone = torch.from_numpy(_tone(50, 1.6, 16000, on_seconds=0.6))
    result = apps.dereverb(model, tone, 16000)
    dry, wet = result.audio, result.info["wet"]
    assert dry.shape == wet.shape == (400 * 64,)
    after = slice(int(0.75 * 16000), None)  # after the note's offset
    assert float(dry[after].square().sum()) < 0.1 * float(wet[after].square().sum())
    # reverb transfer: a unit impulse through the exported IR is the IR; the node does exactly that
    ir = apps.impulse_response(model)
    assert ir.shape == (48000,) and float(ir[0]) == 1.0
    impulse = torch.zeros(16000)
    impulse[0] = 1.0
    torch.testing.assert_close(apps.apply_reverb(impulse, 16000, ir, 16000).audio[:48000], ir, atol=1e-6, rtol=0)
    torch.testing.assert_close(node(torch.cat([impulse, torch.zeros(32000)])[None])[0], ir, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_reverb_cli_exports_the_learned_ir_and_applies_it(run, tmp_path):
    ckpt = run / "checkpoints" / "last.ckpt"
    impulse = np.zeros(8000, np.float32)
    impulse[0] = 0.5
    sf.write(tmp_path / "click.wav", impulse, 8000)
    out = _cli("reverb", f"checkpoint={ckpt}", "audio=click.wav", "out=click_room.wav", cwd=tmp_path)
    ir, sr = sf.read(tmp_path / "click_room_ir.wav", dtype="float32")
    want = apps.impulse_response(ddsp_lab.load(ckpt)).numpy()
    assert sr == 16000 and np.allclose(ir, want, atol=1e-7)
    wet, sr = sf.read(tmp_path / "click_room.wav", dtype="float32")
    assert sr == 16000 and len(wet) == 16000 + 48000 - 1 and "resampled from 8000 Hz" in out.stdout
    # any IR file applies too (here the exported one, to the click at the IR's rate)
    sf.write(tmp_path / "click16.wav", np.r_[np.float32(0.5), np.zeros(15999, np.float32)], 16000)
    _cli("reverb", "ir=click_room_ir.wav", "audio=click16.wav", "out=again.wav", cwd=tmp_path)
    again, _ = sf.read(tmp_path / "again.wav", dtype="float32")
    assert np.allclose(again[:48000], 0.5 * want, atol=1e-4)  # 16-bit output
    # dereverb as typed: the dry WAV, the wet one beside it, the figure
    sf.write(tmp_path / "take.wav", _tone(50, 1.0, 16000), 16000)
    out = _cli("dereverb", f"checkpoint={ckpt}", "audio=take.wav", cwd=tmp_path)
    dry, _ = sf.read(tmp_path / "take.dereverb.wav", dtype="float32")
    wet, _ = sf.read(tmp_path / "take.dereverb_wet.wav", dtype="float32")
    assert len(dry) == len(wet) == 16000 and (tmp_path / "take.dereverb.png").exists()
    assert "bypassed" in out.stdout, out.stdout


def test_three_minutes_transfer_in_one_call_with_bounded_memory(run, tmp_path):
    """180 s at 16 kHz through one timbre_transfer call (f0 given: CREPE on CPU would take minutes
    here) in a fresh process: its peak RSS stays under 2 GB."""
    script = f"""
import resource, torch, numpy as np, ddsp_lab
from ddsp_lab import apps
model = ddsp_lab.load({str(run / 'checkpoints' / 'last.ckpt')!r})
n = 180 * 16000
t = torch.arange(n, dtype=torch.float64) / 16000
audio = (0.2 * torch.sin(2 * torch.pi * 110.0 * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 0.3 * t))).float()
result = apps.timbre_transfer(model, audio, 16000, f0_hz=torch.full((n // 64,), 110.0))
assert result.audio.shape == (n,) and bool(torch.isfinite(result.audio).all())
print("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    peak = float(out.stdout.split("peak_mb")[1])
    assert peak < 2048, peak


@pytest.mark.slow
def test_interpolate_blends_z_between_two_recordings(tmp_path):
    from ddsp_lab.data import DemoSource, PrepareConfig, prepare

    prepare(DemoSource(4), tmp_path / "data", PrepareConfig("demo", example_seconds=1.0, crepe_model="tiny",
                                                            viterbi=False), progress=False)
    _cli("train", "experiment=nsynth_z", "example_seconds=1.0", "decoder=rnn_fc_tiny",
         "decoder.input_keys=[ld_scaled,f0_scaled,z]", "decoder.input_sizes=[1,1,16]", "encoder.rnn_channels=32",
         "n_harmonics=20", "n_noise_bands=16", f"data.path={tmp_path / 'data'}", f"run_dir={tmp_path / 'run'}",
         "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.num_sanity_val_steps=0", "logger=csv",
         "model.f0_metric=false", "data.datamodule.batch_size=2", cwd=tmp_path)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    model = ddsp_lab.load(ckpt)
    a, b = torch.from_numpy(_tone(50, 1.0, 16000)), torch.from_numpy(_tone(57, 1.0, 16000, n_harmonics=2))
    plain = model.from_audio(a, 16000, chunk_seconds=10.0, seed=0)[0]
    start = apps.interpolate(model, a, 16000, b, 16000, alpha=0.0)
    torch.testing.assert_close(start.audio, plain, atol=1e-5, rtol=0)  # alpha 0: a's own resynthesis
    end = apps.interpolate(model, a, 16000, b, 16000, alpha=1.0)
    assert end.audio.shape == plain.shape and bool(torch.isfinite(end.audio).all())
    assert float((end.audio - plain).abs().max()) > 1e-4 and end.info["z_distance"] > 0
    sf.write(tmp_path / "a.wav", a.numpy(), 16000)
    sf.write(tmp_path / "b.wav", b.numpy(), 16000)
    out = _cli("interpolate", f"checkpoint={ckpt}", "audio_a=a.wav", "audio_b=b.wav", "alpha=0.5", cwd=tmp_path)
    assert (tmp_path / "a-b.interpolate.wav").exists() and (tmp_path / "a-b.interpolate.png").exists(), out.stdout


def test_bad_inputs_get_messages_that_name_what_is_wrong(run, model, tmp_path, monkeypatch):
    ckpt = f"checkpoint={run / 'checkpoints' / 'last.ckpt'}"
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    sf.write(tmp_path / "noise.wav", (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32), 16000)
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really")
    for args, message in ((("transfer", ckpt, "audio=silence.wav"), "is silent"),
                          (("transfer", ckpt, "audio=junk.wav"), "not a readable audio file"),
                          (("transfer", "checkpoint=noise.wav", "audio=noise.wav"), "not a torch checkpoint")):
        out = _cli(*args, cwd=tmp_path, ok=False)
        assert out.returncode != 0 and message in out.stderr, (args, out.stderr[-1500:])
    # the rest in process: the same config and run_app the command runs, without a new interpreter each
    from hydra import compose, initialize_config_dir

    from ddsp_lab.apps.run import run_app
    from ddsp_lab.conf import CONF_DIR

    monkeypatch.chdir(tmp_path)
    for command, overrides, message in (("transfer", [ckpt, "audio=noise.wav"], "no frame of the input has a confident pitch"),
                                        ("transfer", [ckpt, "audio=missing.wav"], "no such file missing.wav"),
                                        ("control", [ckpt], "give notes="), ("reverb", ["audio=noise.wav"], "give checkpoint=")):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose(command, overrides=overrides)
        with pytest.raises((ValueError, FileNotFoundError, SystemExit), match=message):
            run_app(command, cfg)
    nan = torch.from_numpy(_tone(50, 0.5, 16000))
    nan[100] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        apps.timbre_transfer(model, nan, 16000)
    with pytest.raises(ValueError, match="mono audio"):
        apps.timbre_transfer(model, torch.zeros(2, 100) + 0.1, 16000)
    no_reverb = _without_reverb(ddsp_lab.load(run / "checkpoints" / "last.ckpt"))
    with pytest.raises(ValueError, match="no reverb node"):
        apps.dereverb(no_reverb, nan.nan_to_num(), 16000)
    with pytest.raises(ValueError, match="z encoder"):
        apps.interpolate(model, nan.nan_to_num(), 16000, nan.nan_to_num(), 16000)
    with pytest.raises(ValueError, match="must be a ddsp_lab DDSP"):
        apps.timbre_transfer(object(), nan.nan_to_num(), 16000)


def _without_reverb(model):
    from ddsp_lab.models import DDSP
    from ddsp_lab.processors import ProcessorGroup

    names = model.synth.names
    keep = [(p, i, n) for p, i, n in zip(model.synth.processors, model.synth.inputs, names) if n not in apps.reverb_nodes(model)]
    synth = ProcessorGroup([(p, i, n) for p, i, n in keep], frame_rate=model.frame_rate)
    return DDSP(model.preprocessor, model.decoder, synth, sample_rate=model.sample_rate, frame_rate=model.frame_rate)
