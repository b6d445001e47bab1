"""Export (ddsp_lab.realtime, `ddsp-lab export`): the per-block step as TorchScript and ONNX renders
what the eager StreamingModel renders, runs without ddsp_lab, and says what it needs in a JSON."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddsp_lab.realtime import FORMATS, BlockEngine, ScriptedStream, export
from ddsp_lab.realtime import run_exported
from ddsp_lab.realtime import StreamingModel
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ddsp_lab.conf import CONF_DIR
from ddsp_lab.training.runner import build_model
from test_streaming import _model  # the tiny model with a 3 s reverb worth hearing

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")
CLI = Path(sys.executable).with_name("ddsp-lab")


def _controls(seconds: float, per: int, z_dims: int = 0) -> torch.Tensor:
    """[1, n, 2 + z]: a gliding, vibrato f0 and notes with silences between them; whole blocks."""
    n = -(-int(seconds * 250) // per) * per
    t = torch.arange(n) / 250
    f0 = 330.0 * 2 ** (0.3 * torch.sin(2 * math.pi * 0.4 * t) + 0.01 * torch.sin(2 * math.pi * 5.5 * t))
    ld = -5.0 + 15.0 * torch.sin(2 * math.pi * 0.7 * t) - 60.0 * ((t % 2.0) > 1.6)
    z = 0.5 * torch.sin(2 * math.pi * 0.3 * t[:, None] + torch.arange(z_dims))
    return torch.cat([f0[None, :, None], ld[None, :, None], z[None]], -1)


def _eager(model, controls: torch.Tensor, block: int) -> torch.Tensor:
    live = StreamingModel(model, block_size=block, seed=0)
    per, z = block // model.hop_size, controls.shape[-1] > 2
    return torch.cat([live(controls[:, i:i + per, 0], controls[:, i:i + per, 1], controls[:, i:i + per, 2:] if z else None)[0]
                      for i in range(0, controls.shape[1], per)])


def _engine(engine: BlockEngine, controls: torch.Tensor) -> torch.Tensor:
    state, out, per = engine.initial_state(), [], engine.n_frames
    with torch.no_grad():
        for i in range(0, controls.shape[1], per):
            audio, *state = engine.step(controls[:, i:i + per], *state)
            out.append(audio[0])
    return torch.cat(out)


@pytest.fixture(scope="module")
def model():
    return _model()


def _every_streaming_processor():
    """The tiny model over a stack of every processor that streams and is not in the shipped stacks:
    sinusoids + a wavetable, mixed with filtered noise, through a chorus (ModDelay) and a drawn reverb."""
    nodes = [{"processor": {"_target_": "ddsp_lab.processors.Sinusoidal", "sample_rate": 16000, "n_sinusoids": 8},
              "inputs": ["sin_amps", "sin_freqs"], "name": "sines"},
             {"processor": {"_target_": "ddsp_lab.processors.Wavetable", "sample_rate": 16000, "scale_fn": None,
                            "n_wavetable": 64}, "inputs": ["amps", "wavetables", "f0_hz"], "name": "wavetable"},
             {"processor": {"_target_": "ddsp_lab.processors.FilteredNoise", "window_size": 257, "n_bands": 65},
              "inputs": ["noise_magnitudes"], "name": "noise"},
             {"processor": {"_target_": "ddsp_lab.processors.Add"}, "inputs": ["sines", "wavetable"], "name": "tones"},
             {"processor": {"_target_": "ddsp_lab.processors.Mix"}, "inputs": ["tones", "noise", "mix_level"],
              "name": "dry"},
             {"processor": {"_target_": "ddsp_lab.processors.ModDelay", "sample_rate": 16000},
              "inputs": ["dry", "chorus_gain", "chorus_phase"], "name": "chorus"},
             {"processor": {"_target_": "ddsp_lab.processors.ExpDecayReverb", "trainable": True,
                            "reverb_length": 8000}, "inputs": ["chorus"], "name": "audio_synth"}]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=tiny", "run_dir=unused", "data.path=unused",
                                          "model.f0_metric=false"])
    cfg.synth = OmegaConf.create({"_target_": "ddsp_lab.processors.ProcessorGroup", "frame_rate": 250, "nodes": nodes})
    torch.manual_seed(0)
    return build_model(cfg).model.eval()


@pytest.mark.parametrize("overrides", [(), ("synth=harmonic_noise", "decoder=mlp"), ("synth=harmonic",),
                                       ("synth=noise",),
                                       ("encoder=z_mfcc_gru", "decoder.input_keys=[ld_scaled,f0_scaled,z]",
                                        "+decoder.input_sizes=[1,1,16]"),
                                       ("synth=wavetable_noise",), ("synth=sinusoidal",), None],
                         ids=["reverb", "mlp", "harmonic", "noise", "z", "wavetable", "sinusoidal", "chorus"])
def test_the_engine_renders_what_the_streaming_model_renders_for_each_shipped_stack(overrides):
    model = _model(*overrides) if overrides is not None else _every_streaming_processor()
    engine = BlockEngine(model, 256, seed=0)
    controls = _controls(3.0, 4, engine.z_dims)
    ref = _eager(model, controls, 256)
    got = _engine(engine, controls)
    peak, err = float(ref.abs().max()), float((got - ref).abs().max())
    assert got.shape == ref.shape and peak > 1e-5  # (the untrained filtered noise alone is quiet: -80 dB)
    assert err < 1e-4 * peak, (err, peak)
    if overrides in ((), ("synth=harmonic",), ("synth=noise",)):
        assert err < 1e-5  # the paper's stacks: float rounding only (the others' float32 table lookups and
        # network-set frequencies turn the blocks' different rounding into 1e-5 of peak)


@pytest.mark.parametrize("block", [64, 2048])
def test_torchscript_equals_the_eager_stream_and_the_offline_render(model, block, tmp_path):
    info = export(model, tmp_path / "m.ts", "torchscript", block)
    controls = _controls(10.24, block // 64)
    got, _ = run_exported(tmp_path / "m.ts", controls, info)
    ref = _eager(model, controls, block)
    assert float((got - ref).abs().max()) < 1e-5
    offline = model.render({"f0_hz": controls[..., :1], "loudness_db": controls[..., 1:2]}, seed=0)[0]
    assert float(got[:info["latency_samples"]].abs().max()) == 0.0
    assert float((got[64:] - offline[:-64]).abs().max()) < 1e-4  # the stream is the offline render, delayed
    tail = offline[int(1.61 * 16000):int(2.0 * 16000)]  # a silence after a note: the reverb is in the comparison
    assert float(tail.abs().max()) > 1e-3


@pytest.mark.slow
def test_torchscript_runs_in_a_fresh_interpreter_without_ddsp_lab(model, tmp_path):
    info = export(model, tmp_path / "m.ts", "torchscript", 512)
    controls = _controls(2.048, 8)
    x = controls.transpose(1, 2).repeat_interleave(64, -1).contiguous()
    torch.save(x, tmp_path / "x.pt")
    script = f"""
import sys
class NoDdspLab:  # ddsp_lab cannot be imported here: the file must stand alone
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'ddsp_lab':
            raise ImportError('ddsp_lab is not available in this interpreter')
sys.meta_path.insert(0, NoDdspLab())
import torch
stream = torch.jit.load({str(tmp_path / 'm.ts')!r})
x = torch.load({str(tmp_path / 'x.pt')!r})
with torch.no_grad():
    first = torch.cat([stream(x[:, :, i:i + 512]) for i in range(0, x.shape[-1], 512)], -1)
    stream.reset()
    again = torch.cat([stream(x[:, :, i:i + 512]) for i in range(0, x.shape[-1], 512)], -1)
    try:
        stream(x[:, :, :500])
    except Exception as e:
        print('refused:', str(e).splitlines()[-1])
assert torch.equal(first, again), 'reset'
torch.save(first, {str(tmp_path / 'y.pt')!r})
print('modules:', sorted(m for m in sys.modules if m.startswith('ddsp')))
"""
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "modules: []" in out.stdout
    assert "x must be [1, 2, 512]" in out.stdout and "got [1, 2, 500]" in out.stdout
    got = torch.load(tmp_path / "y.pt")[0, 0]
    assert float((got - _eager(model, controls, 512)).abs().max()) < 1e-5
    assert info["latency_samples"] == 64 and info["inputs"][0]["unit"] == "Hz"


@pytest.mark.slow
def test_onnx_runs_in_onnxruntime_with_its_state_as_inputs_and_outputs(model, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    info = export(model, tmp_path / "m.onnx", "onnx", 256)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == [i["name"] for i in info["call"]["inputs"]]
    assert names[:4] == ["controls", "state_in_rnn_state", "state_in_frames_in", "state_in_pending"]
    types = {i.name: i.type for i in session.get_inputs()}
    assert types["state_in_harmonic.phase"] == "tensor(double)" and types["state_in_frames_in"] == "tensor(int64)"
    controls = _controls(10.24, 4)
    got, _ = run_exported(tmp_path / "m.onnx", controls, info)
    assert float((got - _eager(model, controls, 256)).abs().max()) < 1e-5
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["block_size"] == 256 and saved["frames_per_block"] == 4 and saved["sample_rate"] == 16000


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_every_processor_that_streams_exports_and_plays_the_offline_render(fmt, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    model = _every_streaming_processor()
    path = tmp_path / f"m{FORMATS[fmt]}"
    info = export(model, path, fmt, 256)
    assert [n["processor"] for n in info["synth"]["nodes"]] == ["Sinusoidal", "Wavetable", "FilteredNoise", "Add", "Mix",
                                                               "ModDelay", "ExpDecayReverb"]
    controls = _controls(3.072, 4)
    got, _ = run_exported(path, controls, info)
    ref = _eager(model, controls, 256)
    peak = float(ref.abs().max())
    # The sinusoids' frequencies are the decoder's outputs, so a decoder's rounding integrates into their
    # phase: ONNX Runtime's GRU and matmuls differ from torch's by ~1e-7, which after 3 s of 8 kHz partials
    # is ~1e-3 of peak (a 1e-7 nudge of the decoder's bias moves the eager render as much).
    tol = (1e-4 if fmt == "torchscript" else 2e-3) * peak
    assert peak > 1e-3 and float((got - ref).abs().max()) < tol
    offline = model.render({"f0_hz": controls[..., :1], "loudness_db": controls[..., 1:2]}, seed=0)[0]
    lat = info["latency_samples"]
    assert lat == 64 and float(got[:lat].abs().max()) == 0.0
    assert float((got[lat:] - offline[:-lat]).abs().max()) < tol


def test_what_cannot_be_exported_is_refused_by_name(model, tmp_path):
    with pytest.raises(ValueError, match=r"node 'audio_synth' \(FIRFilter on \['noise', 'fir_magnitudes'\]\) does not "
                                         r"stream"):
        _with_fir = _model("synth=noise")
        from ddsp_lab.processors import FIRFilter, ProcessorGroup
        fir = ProcessorGroup([{"processor": _with_fir.synth.processors[0], "inputs": ["noise_magnitudes"],
                               "name": "noise"},
                              {"processor": FIRFilter(), "inputs": ["noise", "fir_magnitudes"], "name": "audio_synth"}],
                             frame_rate=250, sample_rate=16000)
        _with_fir.synth = fir
        BlockEngine(_with_fir, 256)
    with pytest.raises(ValueError, match="predicts f0 from audio"):
        BlockEngine(_model("encoder=f0_resnet", "model.f0_metric=false"), 256)
    with pytest.raises(ValueError, match=r"block_size must be a whole number of hops \(64 samples"):
        BlockEngine(model, 100)
    with pytest.raises(ValueError, match="numpy<2.3.*torchaudio"):
        export(model, tmp_path / "m.nmf", "neutone", 256)
    with pytest.raises(ValueError, match="format must be one of"):
        export(model, tmp_path / "m.x", "tflite", 256)
    scripted = ScriptedStream.compile(BlockEngine(model, 256))
    with pytest.raises(Exception, match=r"x must be \[1, 2, 256\]"):
        scripted(torch.zeros(1, 3, 256))


@pytest.mark.slow
def test_export_cli_as_typed_writes_both_formats_and_checks_them(demo_data, tmp_path):
    run = subprocess.run([str(CLI), "train", "experiment=tiny", "synth=harmonic_noise_reverb", f"data.path={demo_data}",
                          f"run_dir={tmp_path / 'run'}", "trainer.max_steps=3", "trainer.val_check_interval=3",
                          "trainer.num_sanity_val_steps=0", "logger=csv", "model.f0_metric=false"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    for fmt, suffix in (("torchscript", ".ts"), ("onnx", ".onnx")):
        out = subprocess.run([str(CLI), "export", f"checkpoint={ckpt}", f"format={fmt}", "block_size=512"],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        assert f"ddsp-lab export: {fmt}, 16000 Hz, blocks of 512 samples (8 frames), latency 64 samples (4.0 ms)" \
            in out.stdout
        assert "INFO" not in out.stdout + out.stderr  # the exporter's passes are not the user's business
        path = tmp_path / f"run.b512{suffix}"
        assert f"wrote {path}" in out.stdout and path.exists()
        info = json.loads(path.with_suffix(".json").read_text())
        assert info["check"]["max_abs_error"] < 1e-5 and info["check"]["peak"] > 0.0
        assert info["inputs"][0]["trained_range"][0] < info["inputs"][0]["trained_range"][1]
        assert "equal the eager StreamingModel within" in out.stdout
    bad = subprocess.run([str(CLI), "export", f"checkpoint={ckpt}", "block_size=500"], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert bad.returncode != 0 and "block_size must be a whole number of hops" in bad.stderr
    assert "Traceback" not in bad.stderr
