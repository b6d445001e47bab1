"""NSynth (published layout) and hub (datasets.load_dataset, here on a local dataset) sources."""
import io
import json

import numpy as np
import pytest
import soundfile as sf

from ddsp_lab.data import HubSource, NSynthSource, PrepareConfig, load_prepared, prepare

SR = 16000


def _tone(f, seconds=4.0, sr=SR, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.fixture(scope="module")
def nsynth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsynth")
    layout = [("acoustic", "keyboard", 60, 100), ("electronic", "keyboard", 62, 100),
              ("acoustic", "brass", 90, 100), ("acoustic", "string", 48, 50), ("synthetic", "bass", 40, 100)]
    for split in ("nsynth-train", "nsynth-valid"):
        (root / split / "audio").mkdir(parents=True)
        meta = {}
        for i, (source, family, pitch, velocity) in enumerate(layout):
            note = f"{split[7:]}_{family}_{source}_{i:03d}-{pitch:03d}-{velocity:03d}"
            sf.write(root / split / "audio" / f"{note}.wav", _tone(440 * 2 ** ((pitch - 69) / 12)), SR)
            meta[note] = {"note_str": note, "pitch": pitch, "velocity": velocity,
                          "instrument_str": f"{family}_{source}_{i:03d}", "instrument_family_str": family,
                          "instrument_source_str": source}
        (root / split / "examples.json").write_text(json.dumps(meta))
    return root


def test_nsynth_filters_as_the_paper_and_keeps_metadata(nsynth_root, tmp_path):
    src = NSynthSource(str(nsynth_root))  # acoustic, MIDI 24-84
    assert len(src.items()) == 4 and all("acoustic" in i for i in src.items())
    assert len(NSynthSource(str(nsynth_root), families=["string"]).items()) == 2
    assert len(NSynthSource(str(nsynth_root), velocities=[50]).items()) == 2
    assert len(NSynthSource(str(nsynth_root), instrument_sources=None, pitch_range=(0, 127)).items()) == 10
    prepare(src, tmp_path / "out", PrepareConfig("nsynth", example_seconds=1.0, crepe_model="tiny",
                                                 viterbi=False), progress=False)
    ds = load_prepared(tmp_path / "out")
    assert sorted(set(ds["split"])) == ["train", "validation"]
    row = ds.with_format("numpy")[0]
    assert {"pitch", "velocity", "instrument_family_str", "instrument_source_str", "instrument_str"} <= set(row)
    f0 = float(np.median(row["f0_hz"][10:-10]))
    assert abs(1200 * np.log2(f0 / (440 * 2 ** ((int(row["pitch"]) - 69) / 12)))) < 30


def test_nsynth_bad_roots_and_empty_filters(nsynth_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root"):
        NSynthSource(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="examples.json"):
        NSynthSource(str(tmp_path))
    with pytest.raises(ValueError, match="select no example"):
        NSynthSource(str(nsynth_root), families=["flute"])


@pytest.fixture(scope="module")
def local_hub_dataset(tmp_path_factory):
    import datasets

    rows = []
    for f in (220.0, 330.0, 440.0):
        buf = io.BytesIO()
        sf.write(buf, _tone(f, 2.0, 44100), 44100, format="WAV")
        rows.append({"bytes": buf.getvalue(), "path": None})
    root = tmp_path_factory.mktemp("hub")
    ds = datasets.Dataset.from_dict({"audio": rows}).cast_column("audio", datasets.Audio(decode=False))
    ds.to_parquet(str(root / "train.parquet"))
    return root


@pytest.mark.parametrize("streaming", [False, True])
def test_hub_source_reads_a_local_dataset(local_hub_dataset, streaming):
    src = HubSource(str(local_hub_dataset), streaming=streaming, max_examples=3 if streaming else None)
    assert len(src.items()) == 3
    examples = list(src.load(src.items()[1], SR, 250, SR))
    assert len(examples) == 2 and examples[0].audio.shape == (SR,)  # 2 s at 44.1 kHz -> two 1 s examples
    spec = np.abs(np.fft.rfft(examples[0].audio))
    assert abs(int(np.argmax(spec)) - 330) <= 1


def test_hub_source_errors(local_hub_dataset):
    with pytest.raises(ValueError, match="audio_column"):
        HubSource(str(local_hub_dataset), audio_column="sound")
    with pytest.raises(ValueError, match="max_examples"):
        HubSource(str(local_hub_dataset), streaming=True)
