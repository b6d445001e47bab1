"""`prepare` / `load_prepared` / `ddsp-lab inspect`: demo corpus against its true f0, a folder of good
and bad recordings, splits of few and many files, per-recording features and flat memory, progress,
kill-and-resume, shards (also started together), settings compared in one form, and bad input."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from ddsp_lab.data import (DemoSource, FolderSource, PrepareConfig, compute_loudness_frames, load_prepared,
                           prepare, split_of)
from ddsp_lab.data.demo_corpus import demo_example

CLI = str(Path(sys.executable).parent / "ddsp-lab")  # the installed console script
from ddsp_lab.features import recording_loudness

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 16000
FRAME_RATE = 250
HOP = SAMPLE_RATE // FRAME_RATE
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
FEATURE_COLUMNS = ("audio", "f0_hz", "f0_confidence", "loudness_db")
# CREPE on short recordings makes small network calls; a second intra-op thread spin-waits on a
# busy 2-core machine (measured: 33 vs 3.4 ms per frame for 10-frame calls)
pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def cents(f0_hz: np.ndarray, ref_hz: np.ndarray | float) -> np.ndarray:
    return 1200.0 * np.log2(np.asarray(f0_hz, np.float64) / np.asarray(ref_hz, np.float64))


def harmonic_tone(f0_hz: float, seconds: float, sample_rate: int = SAMPLE_RATE, n_harmonics: int = 5,
                  amplitude: float = 0.3) -> np.ndarray:
    """[n_samples] float32: harmonics k with amplitude 1/k, a short fade in and out."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    tone = sum(np.sin(2 * np.pi * k * f0_hz * t + 0.4 * k) / k for k in range(1, n_harmonics + 1))
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.02, 0, 1)
    return (amplitude * tone * fade / 1.5).astype(np.float32)


def folder_config(**overrides) -> PrepareConfig:
    settings = {"source": "folder", "sample_rate": SAMPLE_RATE, "frame_rate": FRAME_RATE, "example_seconds": 1.0,
                "crepe_model": "tiny", "items_per_part": 2}  # sorted items: the first part is all skipped
    return PrepareConfig(**{**settings, **overrides})


def columns(ds) -> dict[str, np.ndarray]:
    """Every column as one numpy array ([n_examples, ...])."""
    return ds.with_format("numpy")[:]


def by_id(ds) -> dict[str, dict]:
    """example_id -> row (numpy arrays)."""
    ds = ds.with_format("numpy")
    return {row["example_id"]: row for row in ds}


def _midi_note_file(path: Path, program: int, note: int, seconds_at_120bpm: float) -> None:
    """A one-note standard MIDI file (format 0, 480 ticks per beat, 120 bpm)."""
    ticks = int(seconds_at_120bpm * 2 * 480)
    vlq = [ticks & 0x7F]
    while ticks > 0x7F:
        ticks >>= 7
        vlq.insert(0, (ticks & 0x7F) | 0x80)
    events = bytes([0, 0xC0, program, 0, 0x90, note, 100, *vlq, 0x80, note, 0, 0, 0xFF, 0x2F, 0])
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + (480).to_bytes(2, "big")
    path.write_bytes(header + b"MTrk" + len(events).to_bytes(4, "big") + events)


def _render_fluidsynth_note(path: Path) -> bool:
    """Renders a violin C4 (261.63 Hz) with fluidsynth where available; False otherwise."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        return False
    midi = path.with_suffix(".mid")
    _midi_note_file(midi, program=40, note=60, seconds_at_120bpm=2.5)
    out = subprocess.run(["fluidsynth", "-ni", "-R", "0", "-C", "0", "-g", "0.8", "-r", str(SAMPLE_RATE),
                          "-F", str(path), str(SOUNDFONT), str(midi)], capture_output=True, timeout=60)
    midi.unlink()
    return out.returncode == 0 and path.exists() and sf.info(str(path)).frames > 2 * SAMPLE_RATE


# --------------------------------------------------------------------------------------------- demo
def test_demo_generation_is_deterministic():
    a, b = demo_example(5, seconds=1.0), demo_example(5, seconds=1.0)
    for key in ("audio", "f0_true_hz", "amplitude_true"):
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["audio"], demo_example(6, seconds=1.0)["audio"])
    (ex,) = DemoSource(n_examples=8).load("demo-00005", SAMPLE_RATE, FRAME_RATE, SAMPLE_RATE)
    assert np.array_equal(ex.audio, a["audio"].numpy()) and ex.example_id == "demo-00005"


def test_demo_prepare_f0_matches_true_f0_and_stores_documented_columns(tmp_path):
    n_examples, seconds = 3, 2.0
    n_samples, n_frames = int(seconds * SAMPLE_RATE), int(seconds * FRAME_RATE)
    config = PrepareConfig(source="demo", example_seconds=seconds, crepe_model="tiny")
    summary = prepare(DemoSource(n_examples=n_examples), tmp_path, config, progress=False)
    assert summary["items"] == summary["examples"] == n_examples and summary["skipped"] == []
    ds = load_prepared(tmp_path)
    assert len(ds) == n_examples
    assert set(ds.column_names) >= {"audio", "f0_hz", "f0_confidence", "loudness_db", "example_id", "split",
                                    "f0_true_hz"}
    rows = columns(ds)
    assert list(rows["example_id"]) == [f"demo-{i:05d}" for i in range(n_examples)]
    audio = rows["audio"]
    assert audio.shape == (n_examples, n_samples) and audio.dtype == np.float32
    for key in ("f0_hz", "f0_confidence", "loudness_db", "f0_true_hz"):
        assert rows[key].shape == (n_examples, n_frames) and rows[key].dtype == np.float32, key
    assert set(rows["split"]) <= {"train", "validation", "test"}

    # the stored audio is the generated audio; its features are recomputable from it
    for i in range(n_examples):
        assert np.array_equal(audio[i], demo_example(i, SAMPLE_RATE, FRAME_RATE, seconds)["audio"].numpy())
    loudness = compute_loudness_frames(torch.from_numpy(audio), SAMPLE_RATE, FRAME_RATE).numpy()
    np.testing.assert_array_equal(rows["loudness_db"], loudness)

    # CREPE's f0 against the synthesiser's true f0, where CREPE is confident
    confident = rows["f0_confidence"] > 0.5
    assert confident.mean() > 0.5, confident.mean()
    err = np.abs(cents(rows["f0_hz"], rows["f0_true_hz"]))[confident]
    assert np.median(err) < 15.0, np.median(err)

    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["statistics"]["examples"] == n_examples and info["skipped"] == []


# ------------------------------------------------------------------------------------------- folder
GOOD_TONES = {"strings/low/tone_a.wav": 196.0, "strings/tone_b.wav": 311.0, "tone_c.wav": 523.0}
GOOD_SECONDS = 2.5  # -> windows at 0 s and 1 s: two 1 s examples per file
STEREO = "stereo/deep/mix.flac"  # 44.1 kHz, 1.5 s -> one example
STEREO_HZ = 330.0
BAD = {"broken/corrupt.wav": "unreadable", "short.wav": "too short", "strings/low/silent.wav": "silent"}


def _stereo_mono_mix(n_samples: int, sample_rate: int) -> np.ndarray:
    """The analytic mono mix (L + R) / 2 of the stereo file, sampled at sample_rate."""
    t = np.arange(n_samples) / sample_rate
    left = 0.4 * np.sin(2 * np.pi * STEREO_HZ * t)
    right = 0.2 * np.sin(2 * np.pi * STEREO_HZ * t + 1.0)
    return 0.5 * (left + right)


def _build_folder(root: Path) -> dict[str, float]:
    """Good, bad and odd recordings in nested folders; returns {good file: f0_hz}."""
    for rel, f0 in GOOD_TONES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, harmonic_tone(f0, GOOD_SECONDS), SAMPLE_RATE, subtype="FLOAT")
    for rel in (*BAD, STEREO):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / "broken/corrupt.wav").write_bytes(np.random.default_rng(0).bytes(20000))
    sf.write(root / "short.wav", harmonic_tone(440.0, 0.1), SAMPLE_RATE, subtype="FLOAT")
    sf.write(root / "strings/low/silent.wav", np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    n_44k = int(1.5 * 44100)
    t = np.arange(n_44k) / 44100
    stereo = np.stack([0.4 * np.sin(2 * np.pi * STEREO_HZ * t), 0.2 * np.sin(2 * np.pi * STEREO_HZ * t + 1.0)], axis=1)
    sf.write(root / STEREO, stereo, 44100, subtype="PCM_24")
    (root / "README.txt").write_text("not audio: ignored")
    good = dict(GOOD_TONES)
    (root / "real").mkdir()
    if _render_fluidsynth_note(root / "real" / "violin_c4.wav"):
        good["real/violin_c4.wav"] = 261.63
    return good


@pytest.fixture(scope="module")
def folder_prepared(tmp_path_factory):
    """The nested folder of good and bad files, prepared once (1 shard, 1 s examples, CREPE tiny)."""
    root = tmp_path_factory.mktemp("recordings")
    good = _build_folder(root)
    out = tmp_path_factory.mktemp("prepared") / "out"
    summary = prepare(FolderSource(str(root)), out, folder_config(), progress=False)
    return SimpleNamespace(root=root, out=out, summary=summary, good=good)


@pytest.mark.slow
def test_folder_prepare_skips_bad_files_with_reasons(folder_prepared):
    fp = folder_prepared
    summary = fp.summary
    n_items = len(fp.good) + len(BAD) + 1  # every audio file is an item; README.txt is not
    assert summary["items"] == n_items
    reasons = {s["item"]: s["reason"] for s in summary["skipped"]}
    assert set(reasons) == set(BAD), reasons
    for item, why in BAD.items():
        assert reasons[item].startswith(why), (item, reasons[item])
    info = json.loads((fp.out / "dataset_info.json").read_text())
    assert {s["item"]: s["reason"] for s in info["skipped"]} == reasons
    assert (fp.out / "shard-000-of-001" / "COMPLETE.json").exists()  # bad files did not stop the run
    ds = load_prepared(fp.out)
    n_rendered = sum(1 for f in ds["source_file"] if f not in GOOD_TONES and f != STEREO)
    assert summary["examples"] == len(ds) == info["statistics"]["examples"] == 2 * len(GOOD_TONES) + 1 + n_rendered
    assert set(ds["source_file"]) == {*fp.good, STEREO}


def test_folder_examples_are_windows_of_their_files(folder_prepared):
    fp = folder_prepared
    rows = by_id(load_prepared(fp.out))
    want_ids = {f"{f}@{s}" for f in GOOD_TONES for s in (0, SAMPLE_RATE)} | {f"{STEREO}@0"}
    assert want_ids <= set(rows)
    for rel in GOOD_TONES:
        audio, sr = sf.read(str(fp.root / rel), dtype="float32")
        assert sr == SAMPLE_RATE
        for start in (0, SAMPLE_RATE):
            row = rows[f"{rel}@{start}"]
            assert np.array_equal(row["audio"], audio[start:start + SAMPLE_RATE]), (rel, start)
            assert row["offset_s"] == start / SAMPLE_RATE


def test_folder_stereo_44k1_is_mixed_to_mono_and_resampled(folder_prepared):
    row = by_id(load_prepared(folder_prepared.out))[f"{STEREO}@0"]
    audio = row["audio"]
    assert audio.shape == (SAMPLE_RATE,) and audio.dtype == np.float32
    want = _stereo_mono_mix(SAMPLE_RATE, SAMPLE_RATE)
    inner = slice(200, None)  # the resampling filter's start-up transient
    np.testing.assert_allclose(audio[inner], want[inner], atol=2e-3, rtol=0)
    confident = row["f0_confidence"][10:-10] > 0.5
    assert confident.mean() > 0.9
    assert np.median(np.abs(cents(row["f0_hz"][10:-10][confident], STEREO_HZ))) < 10.0


def test_folder_features_match_tones_and_loudness(folder_prepared):
    """Loudness is computed once per file: each example's frames are the file's frames; they equal a
    per-window analysis wherever a frame's 2048 samples lie inside the example, and at the file's
    start (zero padding in both); near an interior window edge they see the real audio around."""
    fp = folder_prepared
    ds = load_prepared(fp.out).with_format("numpy")
    cols = columns(ds)
    per_window = compute_loudness_frames(torch.from_numpy(cols["audio"]), SAMPLE_RATE, FRAME_RATE).numpy()
    inner = slice(1024 // HOP, -(1024 // HOP))  # half of n_fft = 2048
    np.testing.assert_allclose(cols["loudness_db"][:, inner], per_window[:, inner], atol=1e-4, rtol=0)
    starts = cols["offset_s"] == 0
    np.testing.assert_allclose(cols["loudness_db"][starts, :-(1024 // HOP)], per_window[starts, :-(1024 // HOP)],
                               atol=1e-4, rtol=0)
    n_frames = cols["loudness_db"].shape[1]
    for i, row in enumerate(ds):
        if row["source_file"] not in GOOD_TONES:
            continue
        audio = torch.from_numpy(sf.read(str(fp.root / row["source_file"]), dtype="float32")[0])  # 16 kHz
        first = int(round(row["offset_s"] * FRAME_RATE))
        whole_file = recording_loudness(audio, SAMPLE_RATE, FRAME_RATE).numpy()[first:first + n_frames]
        np.testing.assert_allclose(row["loudness_db"], whole_file, atol=1e-4, rtol=0)
        # every window here ends inside its tone: its last frame hears the tone go on, a per-window
        # analysis hears half a frame of zeros (-3 dB)
        assert row["loudness_db"][-1] > per_window[i, -1] + 2.0, (row["example_id"], row["loudness_db"][-1])
        f0, conf = row["f0_hz"][10:-10], row["f0_confidence"][10:-10]
        assert (conf > 0.5).mean() > 0.9, row["example_id"]
        err = np.abs(cents(f0[conf > 0.5], GOOD_TONES[row["source_file"]]))
        assert np.median(err) < 10.0, (row["example_id"], np.median(err))


def test_folder_real_instrument_note(folder_prepared):
    rel = "real/violin_c4.wav"
    if rel not in folder_prepared.good:
        pytest.skip("fluidsynth or /usr/share/sounds/sf2/FluidR3_GM.sf2 not available")
    rows = [r for r in load_prepared(folder_prepared.out).with_format("numpy") if r["source_file"] == rel]
    assert rows
    f0 = np.concatenate([r["f0_hz"][r["f0_confidence"] > 0.5] for r in rows])
    assert f0.size > 100
    assert np.median(np.abs(cents(f0, 261.63))) < 25.0


def test_few_short_files_go_whole_to_train_and_the_empty_splits_warn(folder_prepared):
    """Under 20 files: the time-block rule; every file here is shorter than 10 examples, too short
    for a validation or test block to hold one, so each goes whole to train, and the empty splits
    are reported in the summary and dataset_info.json."""
    fp = folder_prepared
    info = json.loads((fp.out / "dataset_info.json").read_text())
    assert fp.summary["split_rule"] == info["split_rule"] == "time_blocks"
    assert set(load_prepared(fp.out)["split"]) == {"train"}
    for name in ("validation", "test"):
        assert any(f"the {name} split is empty" in w for w in fp.summary["warnings"]), fp.summary["warnings"]
    assert info["warnings"] == fp.summary["warnings"] and len(info["warnings"]) == 2
    # load_prepared(split=...) partitions the dataset
    sizes = [len(load_prepared(fp.out, split=s)) for s in ("train", "validation", "test")]
    assert sizes[1:] == [0, 0] and sum(sizes) == len(load_prepared(fp.out))


# ------------------------------------------------------------------------- splits and progress
class _RecordingBar:
    """Stands in for tqdm: records what prepare shows."""
    instances: list = []

    def __init__(self, *args, total=None, unit="it", disable=False, **kwargs):
        self.total, self.unit, self.n, self.updates = total, unit, 0.0, []
        _RecordingBar.instances.append(self)

    def update(self, n=1):
        self.n += n
        self.updates.append(n)

    def write(self, *args, **kwargs):
        pass

    def close(self):
        pass


def _tone_folder(root: Path, seconds: float, freqs) -> list[str]:
    root.mkdir(parents=True)
    names = []
    for i, f0 in enumerate(freqs):
        names.append(f"take_{i:02d}.wav")
        sf.write(root / names[-1], harmonic_tone(f0, seconds), SAMPLE_RATE, subtype="FLOAT")
    return names


def _cheap_config(**overrides) -> PrepareConfig:
    """1 s examples at 10 frames/s (CREPE's cost is per frame), CREPE tiny without Viterbi: the
    cheapest real analysis, for tests about what is cut and where it goes."""
    return folder_config(**{"frame_rate": 10, "viterbi": False, **overrides})


def test_few_long_files_split_in_time_blocks_and_progress_counts_seconds_of_audio(tmp_path, monkeypatch):
    """3 files of 20 s (under 20 files: time blocks): each file's first 16 s train, then 2 s
    validation, 2 s test, and no sample of one split's examples lies in another's; the progress
    bar counts seconds of audio through CREPE, block by block (at most 16 s a step)."""
    import sys

    import tqdm

    monkeypatch.setattr(tqdm, "tqdm", _RecordingBar)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal: the bar
    _RecordingBar.instances = []
    names = _tone_folder(tmp_path / "takes", 20.0, (196.0, 262.0, 330.0))
    out = tmp_path / "out"
    summary = prepare(FolderSource(str(tmp_path / "takes")), out, _cheap_config(), progress=True)
    info = json.loads((out / "dataset_info.json").read_text())
    assert summary["split_rule"] == info["split_rule"] == "time_blocks"
    assert summary["splits"] == {"train": 48, "validation": 6, "test": 6} and summary["warnings"] == []
    assert info["statistics"]["splits"] == summary["splits"] and info["warnings"] == []
    ds = load_prepared(out)
    ranges = defaultdict(lambda: defaultdict(list))  # file -> split -> sample ranges
    for example_id, split in zip(ds["example_id"], ds["split"]):
        name, start = example_id.rsplit("@", 1)
        ranges[name][split].append((int(start), int(start) + SAMPLE_RATE))
    assert set(ranges) == set(names)
    for name, by_split in ranges.items():
        spans = {s: (min(a for a, _ in r), max(b for _, b in r)) for s, r in by_split.items()}
        assert set(spans) == {"train", "validation", "test"}, name
        assert spans["train"][1] <= 16 * SAMPLE_RATE <= spans["validation"][0], spans
        assert spans["validation"][1] <= 18 * SAMPLE_RATE <= spans["test"][0], spans
        # no sample in two splits: the splits' spans do not overlap
        assert spans["train"][1] <= spans["validation"][0] and spans["validation"][1] <= spans["test"][0]

    (bar,) = _RecordingBar.instances
    assert bar.unit == " s of audio" and bar.total == pytest.approx(60.0)  # its rate reads "s of audio/s"
    assert bar.n == pytest.approx(60.0)
    assert max(bar.updates) <= 16.0 + 1e-9 and len([u for u in bar.updates if u > 0]) >= 9  # 3 blocks a file


def test_progress_without_a_terminal_is_a_line_every_five_percent_of_the_audio(capsys):
    """CI and SLURM logs get plain lines, each saying what it counts, not a redrawn bar's flood."""
    from ddsp_lab.data.prepare import _progress

    bar = _progress(600.0, "prepare shard 0/1", True)  # under pytest stderr is no terminal
    for _ in range(600):
        bar.update(1.0)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 20, lines  # every 5 %
    assert lines[0].startswith("prepare shard 0/1: 30 of 600 s of audio (5 %), ETA ")
    assert lines[-1].startswith("prepare shard 0/1: 600 of 600 s of audio (100 %), ETA 0:00:00")
    assert all(line.endswith("s of audio per second") for line in lines)


def test_many_short_files_keep_the_by_file_split(tmp_path):
    names = _tone_folder(tmp_path / "notes", 1.0, np.geomspace(150, 600, 30))
    source = FolderSource(str(tmp_path / "notes"))
    summary = prepare(source, tmp_path / "out", _cheap_config(items_per_part=16), progress=False)
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert summary["split_rule"] == info["split_rule"] == "by_file"
    ds = load_prepared(tmp_path / "out")
    assert len(ds) == 30 and summary["warnings"] == []
    assert dict(zip(ds["source_file"], ds["split"])) == {n: split_of(n) for n in names}
    assert set(ds["split"]) == {"train", "validation", "test"}


def test_an_empty_split_warns(tmp_path):
    _tone_folder(tmp_path / "one", 1.5, (220.0,))
    with pytest.warns(UserWarning, match="the validation split is empty"):
        summary = prepare(FolderSource(str(tmp_path / "one")), tmp_path / "out", _cheap_config(), progress=False)
    assert summary["splits"] == {"train": 1, "validation": 0, "test": 0}
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info["warnings"] == summary["warnings"] and len(summary["warnings"]) == 2


# ----------------------------------------------------------------------------- settings compared
def test_settings_compare_in_one_form_and_a_real_difference_names_its_key(tmp_path):
    """A tuple and a list (or an OmegaConf list) are one setting: the resume finds the shard done;
    another value is refused, naming the nested key."""
    from omegaconf import OmegaConf

    demo = _cheap_config(source="demo", source_args={"n_examples": 1, "pitch_range": (24, 84)})
    prepare(DemoSource(n_examples=1), tmp_path / "out", demo, progress=False)
    for args in ({"n_examples": 1, "pitch_range": [24, 84]},
                 OmegaConf.create({"n_examples": 1, "pitch_range": [24, 84]})):
        again = prepare(DemoSource(n_examples=1), tmp_path / "out", _cheap_config(source="demo", source_args=args),
                        progress=False)
        assert again.get("already_complete"), again
    with pytest.raises(ValueError, match=r"source_args\.pitch_range"):
        prepare(DemoSource(n_examples=1), tmp_path / "out",
                _cheap_config(source="demo", source_args={"n_examples": 1, "pitch_range": (24, 96)}), progress=False)
    stored = json.loads((tmp_path / "out" / "prepare_config.json").read_text())
    assert stored["source_args"]["pitch_range"] == [24, 84]


# -------------------------------------------------------------------------------------------- shards
@pytest.mark.slow
def test_two_shards_hold_every_example_exactly_once(folder_prepared, tmp_path):
    fp = folder_prepared
    out = tmp_path / "sharded"
    config = folder_config(num_shards=2)
    prepare(FolderSource(str(fp.root)), out, config, shard=0, progress=False)
    assert (out / "shard-000-of-002" / "COMPLETE.json").exists()
    assert not (out / "dataset_info.json").exists()
    with pytest.raises(ValueError, match=r"unfinished"):
        load_prepared(out)
    prepare(FolderSource(str(fp.root)), out, config, shard=1, progress=False)
    assert (out / "dataset_info.json").exists()

    ds, ref = load_prepared(out), load_prepared(fp.out)
    ids = list(ds["example_id"])
    assert len(ids) == len(set(ids)) == len(ref)
    assert set(ids) == set(ref["example_id"])
    rows, ref_rows = by_id(ds), by_id(ref)
    for eid, row in rows.items():
        assert np.array_equal(row["audio"], ref_rows[eid]["audio"]), eid
        np.testing.assert_array_equal(row["loudness_db"], ref_rows[eid]["loudness_db"])
        np.testing.assert_allclose(row["f0_hz"], ref_rows[eid]["f0_hz"], rtol=1e-4)
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["statistics"]["examples"] == len(ref)
    assert {s["item"] for s in info["skipped"]} == set(BAD)


def _prepare_shard_after_barrier(barrier, out: str, shard: int) -> None:
    """A shard of a 2-shard demo prepare, started when its sibling is ready too (a SLURM array)."""
    torch.set_num_threads(1)
    source, config = DemoSource(n_examples=4), _cheap_config(source="demo", num_shards=2)
    barrier.wait(timeout=240)
    prepare(source, out, config, shard=shard, progress=False)


@pytest.mark.slow
def test_shards_started_at_the_same_moment_both_finish_as_one_dataset(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = tmp_path / "out"
    procs = [ctx.Process(target=_prepare_shard_after_barrier, args=(barrier, str(out), i)) for i in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0, 0]
    ds = load_prepared(out)
    assert sorted(ds["example_id"]) == [f"demo-{i:05d}" for i in range(4)]
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["statistics"]["examples"] == 4 and info["config"]["num_shards"] == 2
    assert [p.name for p in out.rglob("*") if "tmp" in p.name] == []  # no temporary name left behind


def test_the_first_writer_of_the_settings_wins_and_the_other_compares(tmp_path, monkeypatch):
    """A sibling shard writes prepare_config.json between our check and our write: ours does not
    replace it; we compare against it (and refuse, naming the key, when its settings differ)."""
    real_link = os.link

    def sibling_first(crepe_model):
        def link(src, dst):
            Path(dst).write_text(json.dumps({**json.loads(Path(src).read_text()), "crepe_model": crepe_model}))
            return real_link(src, dst)  # raises FileExistsError: the sibling was first
        return link

    config = _cheap_config(source="demo")
    monkeypatch.setattr(os, "link", sibling_first("full"))
    with pytest.raises(ValueError, match="crepe_model"):
        prepare(DemoSource(n_examples=1), tmp_path / "a", config, progress=False)
    assert json.loads((tmp_path / "a" / "prepare_config.json").read_text())["crepe_model"] == "full"
    monkeypatch.setattr(os, "link", sibling_first("tiny"))  # the same settings: we join its dataset
    assert prepare(DemoSource(n_examples=1), tmp_path / "b", config, progress=False)["examples"] == 1
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if p.is_file()) == ["dataset_info.json",
                                                                                 "prepare_config.json"]
    # a finished shard whose dataset_info.json was lost (a crash after COMPLETE.json) writes it again
    (tmp_path / "b" / "dataset_info.json").unlink()
    assert prepare(DemoSource(n_examples=1), tmp_path / "b", config, progress=False)["already_complete"]
    assert json.loads((tmp_path / "b" / "dataset_info.json").read_text())["statistics"]["examples"] == 1


_MEMORY_CHILD = """
import importlib, json, resource, sys
import datasets, torch
from ddsp_lab.data import FolderSource, PrepareConfig
from ddsp_lab.features import CrepeF0

torch.set_num_threads(1)
prep = importlib.import_module("ddsp_lab.data.prepare")

class StandInCrepe(CrepeF0):
    # the real framing, blocks, decoding and confidence; a stand-in network (a sigmoid of each
    # normalised frame's first 360 samples) so that 20 minutes run in seconds on 2 cores
    def __init__(self, model, viterbi, device=None):
        super().__init__("tiny", viterbi, "cpu")
        self.net = lambda frames: torch.sigmoid(frames[:, :360])

prep.CrepeF0 = StandInCrepe
peak_mb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before = peak_mb()
config = PrepareConfig("folder", crepe_model="tiny", viterbi=False)
summary = prep.prepare(FolderSource(sys.argv[1]), sys.argv[2], config, progress=False)
print(json.dumps({"before_mb": before, "peak_mb": peak_mb(), "examples": summary["examples"]}))
"""


@pytest.mark.slow
def test_preparing_a_20_minute_file_keeps_memory_flat(tmp_path):
    """One 20-minute file, 4 s examples at a 1 s hop (1191 examples, 300 MB of audio rows): features
    once per file in blocks, rows written in bounded groups. The peak resident memory of prepare
    (in a subprocess, above what its imports took) stays under 2 GB (measured: 0.6 GB); analysing
    every window at once needs over 10 GB here (their spectra alone: 1191 x 1001 x 1025 x 8 bytes). CREPE's network is replaced by a cheap stand-in with its
    interface (only here, for time); everything else is prepare's own path."""
    (tmp_path / "long").mkdir()
    seconds, sr = 20 * 60, SAMPLE_RATE
    with sf.SoundFile(str(tmp_path / "long" / "take.wav"), "w", sr, 1, subtype="PCM_16") as f:
        for start in range(0, seconds, 60):  # written a minute at a time
            t = np.arange(start * sr, (start + 60) * sr) / sr
            f.write((0.3 * np.sin(2 * np.pi * 220 * t + 3 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32))
    run = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(tmp_path / "long"), str(tmp_path / "out")],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["examples"] == (960 - 4 + 1) + 2 * (120 - 4 + 1)  # time blocks: 960 s, 120 s, 120 s
    assert report["peak_mb"] - report["before_mb"] < 2048, report
    print(f"20-minute file: peak RSS {report['peak_mb']:.0f} MB, {report['peak_mb'] - report['before_mb']:.0f} MB "
          f"above the imports")
    assert len(load_prepared(tmp_path / "out")) == report["examples"]


# -------------------------------------------------------------------------------- kill and resume
def _prepare_cmd(root: Path, out: Path) -> list[str]:
    return [str(CLI), "prepare", "source=folder", f"source.root={root}", f"out={out}",
            "example_seconds=1.0", "crepe_model=tiny", "items_per_part=1", "progress=false", "device=cpu",
            "frame_rate=100"]  # CREPE's cost is per frame: 100 Hz frames make each part 2.5x cheaper


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _kill_after_first_part(cmd: list[str], shard_dir: Path) -> None:
    """Runs cmd until its first part is committed, then SIGKILLs it."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (shard_dir / "part-00000").is_dir():
            assert proc.poll() is None, f"prepare exited before its first part: {proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "no part-00000 after 180 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_killed_prepare_resumes_to_the_same_dataset(tmp_path):
    root = tmp_path / "recordings"
    for i, f0 in enumerate((150.0, 190.0, 240.0, 300.0, 380.0, 480.0)):
        rel = root / ("ab"[i % 2]) / f"note_{i}.wav"
        rel.parent.mkdir(parents=True, exist_ok=True)
        sf.write(rel, harmonic_tone(f0, 1.0), SAMPLE_RATE, subtype="FLOAT")
    out_a, out_b = tmp_path / "A", tmp_path / "B"
    shard_dir = out_a / "shard-000-of-001"

    # B, the uninterrupted reference, runs alongside A (their imports overlap on the two cores)
    proc_b = subprocess.Popen(_prepare_cmd(root, out_b), cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        _kill_after_first_part(_prepare_cmd(root, out_a), shard_dir)
        assert not (shard_dir / "COMPLETE.json").exists(), "the run finished before the kill: nothing tested"
        assert not (out_a / "dataset_info.json").exists()

        # incomplete: refused by default; allow_incomplete reads only committed parts, never a temp dir
        with pytest.raises(ValueError, match="unfinished"):
            load_prepared(out_a)
        shutil.copytree(shard_dir / "part-00000", shard_dir / ".tmp-part-00001-1")  # stale, complete-looking
        n_parts = len([p for p in shard_dir.glob("part-*") if p.is_dir()])
        assert 1 <= n_parts < 6
        assert len(load_prepared(out_a, allow_incomplete=True)) == n_parts  # one example per file and part

        _run(_prepare_cmd(root, out_a))
        _, err_b = proc_b.communicate(timeout=300)
        assert proc_b.returncode == 0, err_b[-3000:]
    finally:
        if proc_b.poll() is None:
            proc_b.kill()
            proc_b.communicate()

    ds_a, ds_b = load_prepared(out_a), load_prepared(out_b)
    assert len(ds_a) == len(ds_b) == 6
    assert ds_a.column_names == ds_b.column_names
    assert list(ds_a["example_id"]) == list(ds_b["example_id"])
    a, b = columns(ds_a), columns(ds_b)
    for column in ds_a.column_names:
        assert np.array_equal(a[column], b[column]), column
    assert (out_a / "dataset_info.json").exists()

    again = _run(_prepare_cmd(root, out_a))
    assert "already complete" in again.stdout
    assert len([p for p in shard_dir.glob("part-*") if p.is_dir()]) == 6


# ---------------------------------------------------------------------------------------- bad input
def test_missing_root_raises_file_not_found_naming_source_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="source.root"):
        FolderSource(str(tmp_path / "does-not-exist"))


def test_folder_without_audio_raises(tmp_path):
    root = tmp_path / "empty"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "notes.txt").write_text("no audio here")
    with pytest.raises(ValueError, match="no audio"):
        FolderSource(str(root)).items()
    with pytest.raises(ValueError, match="no audio"):
        prepare(FolderSource(str(root)), tmp_path / "out", folder_config(), progress=False)


@pytest.mark.parametrize(("setting", "value"), [("sample_rate", 24000), ("crepe_model", "full"),
                                                 ("example_seconds", 2.0)])
def test_reusing_out_with_other_settings_raises(folder_prepared, setting, value):
    fp = folder_prepared
    before = sorted(p.name for p in fp.out.rglob("*"))
    with pytest.raises(ValueError, match=setting):
        prepare(FolderSource(str(fp.root)), fp.out, folder_config(**{setting: value}), progress=False)
    assert sorted(p.name for p in fp.out.rglob("*")) == before  # refused before touching anything


def test_load_prepared_on_unprepared_dir_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_prepared(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_prepared(tmp_path / "nothing-here")


@pytest.mark.parametrize(("overrides", "name"), [({"example_seconds": 1.003}, "example_seconds"),
                                                  ({"frame_rate": 300}, "frame_rate"),
                                                  ({"crepe_model": "small"}, "crepe_model"),
                                                  ({"num_shards": 0}, "num_shards")])
def test_invalid_config_raises_before_writing(tmp_path, overrides, name):
    out = tmp_path / "out"
    root = tmp_path / "rec"
    root.mkdir()
    sf.write(root / "a.wav", harmonic_tone(220.0, 1.0), SAMPLE_RATE)
    with pytest.raises(ValueError, match=name):
        prepare(FolderSource(str(root)), out, folder_config(**overrides), progress=False)
    assert not out.exists()


def test_shard_out_of_range_raises(tmp_path):
    with pytest.raises(ValueError, match="shard"):
        prepare(DemoSource(n_examples=1), tmp_path / "out", folder_config(num_shards=2), shard=2, progress=False)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ inspect
def test_inspect_cli_prints_count_and_writes_png(folder_prepared):
    fp = folder_prepared
    n_examples = len(load_prepared(fp.out))
    png = fp.out / "statistics.png"  # the default
    assert not png.exists()
    out = subprocess.run([str(CLI), "inspect", f"path={fp.out}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{n_examples} examples" in out.stdout
    assert f"skipped items: {len(BAD)}" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_all_bad_folder_completes_with_zero_examples_and_reasons(tmp_path):
    import json as _json

    from ddsp_lab.data import FolderSource, PrepareConfig, load_prepared, prepare

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.wav").write_bytes(b"not audio at all" * 10)
    summary = prepare(FolderSource(str(tmp_path / "in")), tmp_path / "out",
                      PrepareConfig("folder", example_seconds=1.0, crepe_model="tiny"), progress=False)
    assert summary["examples"] == 0 and summary["skipped"][0]["reason"].startswith("unreadable")
    info = _json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info["statistics"] is None and info["skipped"][0]["item"] == "x.wav"
    with pytest.raises(ValueError, match="no examples"):
        load_prepared(tmp_path / "out")


def test_split_selection_writes_nothing_into_the_dataset(tmp_path):
    from ddsp_lab.data import DemoSource, PrepareConfig, load_prepared, prepare

    prepare(DemoSource(4), tmp_path / "out", PrepareConfig("demo", example_seconds=1.0, crepe_model="tiny",
                                                           viterbi=False), progress=False)
    before = sorted(p.name for p in (tmp_path / "out").rglob("*"))
    train = load_prepared(tmp_path / "out", "train")
    assert set(train["split"]) == {"train"}
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == before
