"""The oscillators without float64 (Apple MPS has none): dsp.float64_free() forces, on CPU, the
fixed-point phase path that MPS takes by itself (dsp.fixed_phase). Its phase stays within 1e-6 rad
of the exact phase over 60 s at 48 kHz, where a float32 running sum is radians off; every synth
renders what it renders with float64; and a render on that path makes no float64 tensor at all.
Measured: 3.4e-7 rad from the exact phase after 60 s at 48 kHz (the float32 output's own rounding),
where the float64 path's running sum has drifted 2.1e-6 rad."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from torch.overrides import TorchFunctionMode

from ddsp_lab import dsp
from ddsp_lab.processors import FilteredNoise, Harmonic, PositionalNoise, ProcessorGroup, Sinusoidal, Wavetable


def _wrapped(a: torch.Tensor, b: torch.Tensor) -> float:
    d = torch.remainder(a.double() - b.double() + math.pi, 2 * math.pi) - math.pi
    return float(d.abs().max())


def _glide(n_frames: int, lo: float, hi: float) -> torch.Tensor:
    t = torch.linspace(0.0, 1.0, n_frames, dtype=torch.float64)
    return (lo * (hi / lo) ** (0.5 - 0.5 * torch.cos(2 * math.pi * 3 * t))).float()  # three sweeps lo -> hi


def test_the_phase_without_float64_is_exact_to_1e_6_rad_after_60_s_at_48_khz():
    sr, hop, n_frames = 48000, 192, 250 * 60  # 60 s at 250 frames/s: 2.88 M samples
    tone = torch.full((1, n_frames + 1), 19999.37)  # a sustained partial near Nyquist: the fastest phase
    env = torch.full((n_frames * hop,), 19999.37)
    with dsp.float64_free():
        segments = dsp.segment_phase(tone, sr, hop).reshape(-1)
        samples = dsp.cumulative_phase(env, 2 * math.pi / sr, dim=0)
        end = dsp.phase.segment_end_phase(tone, sr, hop)
    assert segments.dtype == samples.dtype == end.dtype == torch.float32
    f = Fraction(float(tone[0, 0]))
    for n in (0, 1000, 10 ** 6, n_frames * hop - 1):  # inclusive sum: sample n has phase (n + 1) f / sr
        exact = float(((n + 1) * f / sr) % 1) * 2 * math.pi
        assert _wrapped(segments[n], torch.tensor(exact)) < 1e-6, n
        assert _wrapped(samples[n], torch.tensor(exact)) < 1e-6, n
    assert _wrapped(end, torch.tensor(float((n_frames * hop * f / sr) % 1) * 2 * math.pi)) < 1e-6
    drift = torch.cumsum(env * (2 * math.pi / sr), 0)  # the classic float32 running sum: radians off
    assert _wrapped(drift[-1], torch.tensor(float((n_frames * hop * f / sr) % 1) * 2 * math.pi)) > 0.1
    # a glide through 200 Hz - 20 kHz agrees with the float64 path (which itself drifts ~2e-6 rad here)
    glide = _glide(n_frames + 1, 200.0, 20000.0)[None]
    with dsp.float64_free():
        fixed = dsp.segment_phase(glide, sr, hop)
    assert _wrapped(fixed, dsp.segment_phase(glide.double(), sr, hop)) < 1e-5


@pytest.mark.parametrize("name", ["harmonic", "sinusoidal", "wavetable", "noise"])
def test_every_synth_renders_the_same_without_float64_one_shot_and_in_chunks(name):
    g = torch.Generator().manual_seed(0)
    n_frames, hop = 500, 64
    f0 = _glide(n_frames, 110.0, 880.0)[None, :, None]
    if name == "harmonic":
        proc, args = Harmonic(sample_rate=16000, n_harmonics=20), (torch.randn(1, n_frames, 1, generator=g),
                                                                   torch.randn(1, n_frames, 20, generator=g), f0)
    elif name == "sinusoidal":
        proc, args = Sinusoidal(sample_rate=16000, n_sinusoids=8), (torch.randn(1, n_frames, 8, generator=g),
                                                                   torch.randn(1, n_frames, 8, generator=g))
    elif name == "wavetable":
        proc, args = Wavetable(sample_rate=16000, scale_fn=None, n_wavetable=64), (
            torch.rand(1, n_frames, 1, generator=g), torch.randn(1, n_frames, 64, generator=g), f0)
    else:
        proc, args = FilteredNoise(window_size=257, n_bands=65), (torch.randn(1, n_frames, 65, generator=g),)
    group = ProcessorGroup([{"processor": proc, "inputs": [f"x{i}" for i in range(len(args))], "name": "out"}],
                           frame_rate=250, sample_rate=16000)
    controls = {f"x{i}": a for i, a in enumerate(args)}
    want = group.run(controls, generator=PositionalNoise(3), n_samples=n_frames * hop)["out"]

    def chunked():
        state, pieces, a, look = {}, [], 0, group.stream_lookahead()
        for m in (1, 7, 100, 250, 3, 139):
            chunk = {k: v[:, a:a + m + look] for k, v in controls.items()}
            pieces.append(group.stream(chunk, m * hop, state, generator=PositionalNoise(3)))
            a += m
        return torch.cat(pieces, -1)

    with dsp.float64_free():
        once = group.run(controls, generator=PositionalNoise(3), n_samples=n_frames * hop)["out"]
        pieces = chunked()
    peak = float(want.abs().max())
    assert peak > 1e-3
    assert float((once - want).abs().max()) < 1e-4 * max(1.0, peak)
    assert float((pieces - want).abs().max()) < 1e-4 * max(1.0, peak)


class _Float64Spy(TorchFunctionMode):
    """Records every torch call that returns a float64 tensor."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                self.calls.append(getattr(func, "__name__", str(func)))
        return out


def test_a_model_renders_and_streams_without_making_a_float64_tensor():
    from test_streaming import _model  # the tiny model: harmonic + filtered noise + reverb

    from ddsp_lab.realtime import StreamingModel

    model = _model()
    f0 = _glide(250, 200.0, 600.0)[None, :, None]
    ld = torch.full((1, 250, 1), -20.0)

    def work():
        with torch.no_grad():
            model.render({"f0_hz": f0, "loudness_db": ld}, seed=0)
            live = StreamingModel(model, block_size=256, seed=0)
            for i in range(0, 248, 4):
                live(f0[:, i:i + 4, 0], ld[:, i:i + 4, 0])

    default = _Float64Spy()
    with default:
        work()
    assert "cumsum" in default.calls  # the spy sees the float64 path's sums
    with dsp.float64_free():
        work()  # builds the cached constants (filter designs, windows: float64 on the CPU, once)
        spy = _Float64Spy()
        with spy:
            work()
    assert spy.calls == [], sorted(set(spy.calls))
