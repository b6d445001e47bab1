"""The README's main job: `ddsp-lab demo` renders every synth and effect."""
import subprocess
import sys

import numpy as np
import soundfile as sf

CLI = str(__import__('pathlib').Path(sys.executable).parent / "ddsp-lab")  # the installed console script

EXPECTED = {"harmonic", "filtered_noise", "wavetable", "sinusoidal", "harmonic_plus_noise", "reverb",
            "exp_decay_reverb", "filtered_noise_reverb", "fir_filter", "chorus", "flanger", "vibrato",
            "synth_stack"}


def test_demo_cli_writes_every_render(tmp_path):
    out = subprocess.run([str(CLI), "demo", f"out={tmp_path}", "duration_s=1.0",
                          "sample_rate=22050", "frame_rate=245"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(tmp_path) in out.stdout
    for name in EXPECTED:
        audio, sr = sf.read(tmp_path / f"{name}.wav")
        assert sr == 22050 and len(audio) == 22050, name
        assert np.isfinite(audio).all() and np.sqrt(np.mean(audio ** 2)) > 1e-3, name
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_demo_rejects_frame_rate_that_does_not_divide(tmp_path):
    out = subprocess.run([str(CLI), "demo", f"out={tmp_path}", "duration_s=0.5",
                          "sample_rate=16000", "frame_rate=300"], capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "frame_rate" in out.stderr
