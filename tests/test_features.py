"""`ddsp_lab.features`: the one feature path. `compute` on a file's audio (at 16 or 44.1 kHz) gives
the columns `prepare` wrote for it, frame by frame; its loudness is prepare's (n_fft 2048), not the
dsp default's (512); batched equals per-recording; the settings validate and round-trip; torchcrepe
is imported in one module only."""
from __future__ import annotations

import ast
import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ddsp_lab import dsp, features
from ddsp_lab.data import FolderSource, PrepareConfig, load_prepared, prepare
from ddsp_lab.features import CrepeF0, FeatureSettings

PACKAGE = Path(__file__).resolve().parent.parent / "ddsp_lab"
FRAME_RATE = 250
SECONDS = 3.0  # three 1 s examples at a 1 s hop: the kept windows cover every frame of the file
FILES = {"a_16k.wav": 16000, "b_44k1.wav": 44100}
SETTINGS = FeatureSettings(16000, FRAME_RATE, crepe_model="tiny", viterbi=True)
# CREPE on short recordings makes small network calls: one intra-op thread (see tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def melody(sample_rate: int, seconds: float = SECONDS, base_hz: float = 220.0) -> np.ndarray:
    """[n] float32: a harmonic tone gliding over a fifth with vibrato, a loudness swell and a gap."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    f0 = base_hz * 2 ** ((7 / 12) * t / seconds + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = (0.2 + 0.15 * np.sin(2 * np.pi * 0.7 * t)) * (np.abs(t - 1.5) > 0.1)
    return (envelope * tone / 1.5).astype(np.float32)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Two 3 s files (16 kHz and 44.1 kHz) prepared at 16 kHz with CREPE tiny + Viterbi; and
    features.compute of each file as a user reads it (soundfile, its own rate)."""
    tmp = tmp_path_factory.mktemp("features")
    (tmp / "audio").mkdir()
    for (name, rate), base_hz in zip(FILES.items(), (196.0, 330.0)):
        sf.write(tmp / "audio" / name, melody(rate, base_hz=base_hz), rate, subtype="PCM_16")
    config = PrepareConfig("folder", example_seconds=1.0, crepe_model="tiny", viterbi=True)
    with warnings.catch_warnings():  # every example in train (split_fractions (1, 0)): each file is one
        warnings.simplefilter("ignore", UserWarning)  # segment, analysed whole as compute() analyses it
        prepare(FolderSource(str(tmp / "audio"), hop_seconds=1.0, split_fractions=(1.0, 0.0)), tmp / "out", config,
                progress=False)
    crepe = CrepeF0("tiny", viterbi=True, device="cpu")
    computed = {}
    for name in FILES:
        audio, rate = sf.read(tmp / "audio" / name, dtype="float32")
        computed[name] = features.compute(torch.from_numpy(audio), rate, config.feature_settings, crepe=crepe)
    return tmp, load_prepared(tmp / "out").with_format("numpy"), computed, config


@pytest.mark.parametrize("name", FILES)
@pytest.mark.slow
def test_compute_on_a_file_equals_the_prepared_columns(prepared, name):
    _, ds, computed, _ = prepared
    rows = [row for row in ds if row["source_file"] == name]
    assert len(rows) == 3  # windows at 0, 1, 2 s
    n_frames = FRAME_RATE  # 1 s examples
    confident_frames = 0
    for row in rows:
        first = int(round(float(row["offset_s"]) * FRAME_RATE))
        cut = {k: v[0, first:first + n_frames] for k, v in computed[name].items()}
        for key in ("loudness_db", "f0_confidence"):
            torch.testing.assert_close(cut[key], torch.from_numpy(row[key]), rtol=1e-6, atol=1e-6)
        confident = torch.from_numpy(row["f0_confidence"]) > 0.5
        torch.testing.assert_close(cut["f0_hz"][confident], torch.from_numpy(row["f0_hz"])[confident],
                                   rtol=1e-6, atol=1e-4)
        confident_frames += int(confident.sum())
    assert confident_frames > 0.8 * 3 * n_frames  # the comparison covers most frames
    assert computed[name]["f0_hz"].shape == (1, int(SECONDS * FRAME_RATE))  # 44.1 kHz: resampled first


def test_computed_f0_follows_the_melody_at_either_input_rate(prepared):
    _, _, computed, _ = prepared
    t = torch.arange(int(SECONDS * FRAME_RATE)) / FRAME_RATE
    for name, base_hz in zip(FILES, (196.0, 330.0)):
        f0, conf = computed[name]["f0_hz"][0], computed[name]["f0_confidence"][0]
        want = base_hz * 2 ** ((7 / 12) * t / SECONDS + 0.02 * torch.sin(2 * torch.pi * 5 * t))
        sure = (conf > 0.5) & ((t - 1.5).abs() > 0.2) & (t > 0.1) & (t < SECONDS - 0.1)
        error_cents = 1200 * torch.log2(f0[sure] / want[sure]).abs()
        assert sure.sum() > 500 and float(error_cents.median()) < 25, name


def test_loudness_is_prepares_n_fft_2048_not_the_dsp_default_512(prepared):
    tmp, _, computed, _ = prepared
    audio = torch.from_numpy(sf.read(tmp / "audio" / "a_16k.wav", dtype="float32")[0])
    ld = computed["a_16k.wav"]["loudness_db"][0]
    n = ld.shape[-1]
    torch.testing.assert_close(ld, dsp.compute_loudness(audio, 16000, FRAME_RATE, n_fft=2048)[:n])
    default = dsp.compute_loudness(audio, 16000, FRAME_RATE)[:n]  # the reference's low-level n_fft 512
    sounding = ld > -40
    gap_db = (ld - default)[sounding]
    assert sounding.sum() > 500 and 5.0 < float(gap_db.median()) < 7.0  # 10 log10(2048 / 512) on a tone


def test_batched_equals_each_recording_and_1d_input_is_a_batch_of_one():
    crepe = CrepeF0("tiny", viterbi=True, device="cpu")
    audio = torch.from_numpy(np.stack([melody(16000, 0.6), 0.5 * melody(16000, 0.6, base_hz=440.0)]))
    batched = features.compute(audio, 16000, SETTINGS, crepe=crepe)
    for i in range(2):
        one = features.compute(audio[i], 16000, SETTINGS, crepe=crepe)
        for key, value in one.items():
            assert value.shape == (1, 150) and value.dtype == torch.float32
            torch.testing.assert_close(batched[key][i], value[0])


def test_compute_rejects_a_tracker_of_other_settings_and_bad_audio():
    crepe = CrepeF0("tiny", viterbi=False, device="cpu")
    with pytest.raises(ValueError, match="viterbi"):
        features.compute(torch.zeros(1600), 16000, SETTINGS, crepe=crepe)
    with pytest.raises(ValueError, match="audio must be"):
        features.compute(torch.zeros(2, 2, 1600), 16000, SETTINGS, crepe=crepe)
    with pytest.raises(ValueError, match="settings must be"):
        features.compute(torch.zeros(1600), 16000, {"sample_rate": 16000}, crepe=crepe)


def test_settings_validate_round_trip_and_read_older_prepared_configs(prepared):
    tmp, _, _, config = prepared
    recorded = json.loads((tmp / "out" / "prepare_config.json").read_text())
    assert recorded["loudness_n_fft"] == 2048
    assert FeatureSettings.from_dict(recorded) == config.feature_settings == FeatureSettings(
        16000, 250, "tiny", True, 2048)
    older = {k: v for k, v in recorded.items() if k != "loudness_n_fft"}  # prepared before it was recorded
    assert FeatureSettings.from_dict(older).loudness_n_fft == 2048
    assert FeatureSettings.from_dict(SETTINGS.to_dict()) == SETTINGS
    assert SETTINGS.hop == 64 and FeatureSettings(44100, 100).hop == 441
    with pytest.raises(dataclasses.FrozenInstanceError):
        SETTINGS.frame_rate = 100
    for bad, name in (({"frame_rate": 300}, "frame_rate"), ({"sample_rate": 44100, "frame_rate": 250}, "frame_rate"),
                      ({"crepe_model": "small"}, "crepe_model"), ({"sample_rate": 16000.5}, "sample_rate")):
        with pytest.raises(ValueError, match=name):
            FeatureSettings(**bad)


def _torchcrepe_users(path: Path) -> list[str]:
    """What in a module imports torchcrepe or calls our importer of it (code, not comments)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torchcrepe" for a in node.names):
            found.append("import torchcrepe")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torchcrepe":
            found.append("from torchcrepe import")
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name == "import_torchcrepe":
                found.append("import_torchcrepe()")
            elif name in ("import_module", "__import__") and any(
                    isinstance(a, ast.Constant) and str(a.value).startswith("torchcrepe") for a in node.args):
                found.append(f"{name}('torchcrepe')")
    return found


def test_torchcrepe_is_imported_by_one_module_only():
    users = {str(p.relative_to(PACKAGE)): _torchcrepe_users(p) for p in sorted(PACKAGE.rglob("*.py"))}
    users = {k: v for k, v in users.items() if v}
    assert list(users) == ["features/crepe.py"], users
    assert not (PACKAGE / "_crepe.py").exists()


def test_the_model_and_the_perceptual_loss_take_their_features_from_features_not_data():
    for path in (*sorted((PACKAGE / "models").glob("*.py")), PACKAGE / "perceptual.py", PACKAGE / "losses.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                parts = (node.module or "").split(".")
                from_data = parts[0] == "data" if node.level else parts[:2] == ["ddsp_lab", "data"]
                assert not from_data, (path.name, node.module)
