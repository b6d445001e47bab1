"""Units (MIDI/Hz, dB, unit interval, scaled sigmoids, safe maths) and frame-rate resampling."""
from __future__ import annotations

import math

import pytest
import torch

from ddsp_lab import dsp
from ddsp_lab.dsp import (amplitude_to_db, db_to_amplitude, db_to_power, exp_sigmoid, hz_to_midi,
                          hz_to_unit, logb, midi_to_hz, midi_to_unit, power_to_db, resample,
                          safe_divide, safe_log, soft_limit, sym_exp_sigmoid, unit_to_hz,
                          unit_to_midi, upsample_with_windows)

RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _close(actual, expected, dtype, atol=0.0):
    torch.testing.assert_close(actual, expected, rtol=RTOL[dtype], atol=atol)


# --- MIDI <-> Hz -------------------------------------------------------------------------------

def test_midi_hz_anchor_and_octaves(dtype):
    notes = torch.tensor([21.0, 57.0, 69.0, 81.0, 108.0], dtype=dtype)
    hz = midi_to_hz(notes)
    _close(hz[2], torch.tensor(440.0, dtype=dtype), dtype)
    _close(hz[1] * 2, hz[2], dtype)  # 12 semitones = one octave
    _close(hz[3], hz[2] * 2, dtype)
    _close(hz[0], torch.tensor(27.5, dtype=dtype), dtype)  # A0
    assert hz.dtype == dtype


def test_midi_hz_round_trip(dtype):
    notes = torch.linspace(1.0, 127.0, 381, dtype=dtype)
    _close(hz_to_midi(midi_to_hz(notes)), notes, dtype)
    hz = torch.logspace(math.log10(8.2), math.log10(12000.0), 300, dtype=dtype)
    _close(midi_to_hz(hz_to_midi(hz)), hz, dtype)


def test_hz_to_midi_nonpositive_is_zero_and_silence_flag():
    assert torch.equal(hz_to_midi(torch.tensor([0.0, -5.0])), torch.zeros(2))
    out = midi_to_hz(torch.tensor([0.0, 69.0]), midi_zero_silence=True)
    assert out[0] == 0.0 and out[1] == pytest.approx(440.0)
    assert midi_to_hz(torch.tensor(0.0)).item() == pytest.approx(8.1758, rel=1e-4)


# --- dB ---------------------------------------------------------------------------------------

def test_db_amplitude_round_trip(dtype):
    amp = torch.logspace(-3.9, 1.0, 200, dtype=dtype)  # inside the 80 dB range
    _close(db_to_amplitude(amplitude_to_db(amp)), amp, dtype)
    db = torch.linspace(-79.0, 20.0, 200, dtype=dtype)
    _close(amplitude_to_db(db_to_amplitude(db)), db, dtype, atol=1e-4 if dtype == torch.float32 else 0)
    _close(power_to_db(db_to_power(db)), db, dtype, atol=1e-4 if dtype == torch.float32 else 0)


def test_db_values_floor_and_reference(dtype):
    assert amplitude_to_db(torch.tensor(10.0, dtype=dtype)).item() == pytest.approx(20.0)
    assert power_to_db(torch.tensor(10.0, dtype=dtype)).item() == pytest.approx(10.0)
    amp = torch.tensor([0.3, 2.0], dtype=dtype)
    _close(power_to_db(amp ** 2), amplitude_to_db(amp), dtype)  # power = amplitude squared
    silence = amplitude_to_db(torch.tensor([0.0, 1e-9], dtype=dtype))
    assert torch.equal(silence, torch.full_like(silence, -80.0))  # floored at -range_db
    assert amplitude_to_db(torch.tensor(0.0), range_db=60.0).item() == -60.0
    assert amplitude_to_db(torch.tensor(1.0), ref_db=6.0).item() == pytest.approx(-6.0)
    assert db_to_amplitude(torch.tensor(-6.0), ref_db=6.0).item() == pytest.approx(1.0)


# --- unit interval <-> Hz / MIDI --------------------------------------------------------------

def test_unit_hz_round_trip_and_end_points(dtype):
    unit = torch.linspace(0.0, 1.0, 101, dtype=dtype)
    hz = unit_to_hz(unit, 20.0, 8000.0)
    _close(hz[[0, -1]], torch.tensor([20.0, 8000.0], dtype=dtype), dtype)
    _close(hz[50], torch.tensor(math.sqrt(20.0 * 8000.0), dtype=dtype), dtype)  # log-spaced
    assert bool((hz[1:] > hz[:-1]).all())
    _close(hz_to_unit(hz, 20.0, 8000.0), unit, dtype, atol=1e-6 if dtype == torch.float32 else 0)


def test_unit_midi_round_trip_and_clip(dtype):
    unit = torch.linspace(-0.5, 1.5, 41, dtype=dtype)
    _close(midi_to_unit(unit_to_midi(unit)), unit, dtype, atol=1e-6)
    clipped = unit_to_midi(unit, clip=True)
    assert clipped.min().item() == 20.0 and clipped.max().item() == 90.0
    assert hz_to_unit(torch.tensor([1.0, 1e5]), 20.0, 8000.0, clip=True).tolist() == [0.0, 1.0]


# --- scaled sigmoids and safe maths -----------------------------------------------------------

def test_exp_sigmoid_value_at_zero_and_range(dtype):
    at_zero = exp_sigmoid(torch.zeros((), dtype=dtype)).item()
    assert at_zero == pytest.approx(2.0 * 0.5 ** math.log(10.0) + 1e-7, rel=1e-6)
    x = torch.linspace(-60.0, 60.0, 1001, dtype=dtype)
    y = exp_sigmoid(x)
    assert bool((y >= 1e-7).all()) and bool((y <= 2.0 + 1e-7).all())
    assert bool((y[1:] >= y[:-1]).all())  # monotonic
    assert y[0].item() == pytest.approx(1e-7, rel=1e-3)  # never exactly zero
    assert y[-1].item() == pytest.approx(2.0, rel=1e-6)
    y3 = exp_sigmoid(x, exponent=3.0, max_value=5.0, threshold=0.5)
    assert y3.min().item() >= 0.5 and y3.max().item() == pytest.approx(5.5, rel=1e-6)


def test_sym_exp_sigmoid_is_even_with_its_minimum_at_zero(dtype):
    x = torch.linspace(-6.0, 6.0, 121, dtype=dtype)
    y = sym_exp_sigmoid(x)
    _close(y, y.flip(0), dtype)
    assert y.argmin().item() == 60  # x = 0
    assert y[60].item() < 1e-6
    assert y[-1].item() == pytest.approx(2.0, rel=1e-3)


def test_soft_limit_stays_in_range():
    x = torch.linspace(-50.0, 50.0, 1001, dtype=torch.float64)
    y = soft_limit(x, 0.0, 1.0)
    assert bool((y >= 0.0).all()) and bool((y <= 1.0).all())
    # monotonic, up to the ~2e-9 step of torch softplus switching to identity at x = 20
    assert bool((y[1:] >= y[:-1] - 1e-8).all())
    assert y[0].item() == pytest.approx(0.0, abs=1e-12)
    assert y[-1].item() == pytest.approx(1.0, abs=1e-12)


def test_safe_log_divide_logb():
    assert safe_log(torch.tensor([0.0, -1.0])).tolist() == pytest.approx([math.log(1e-5)] * 2)
    assert safe_log(torch.tensor(1e-30, dtype=torch.float64)).item() == pytest.approx(-69.0776, rel=1e-5)
    assert safe_divide(torch.tensor(1.0), torch.tensor(0.0)).item() == pytest.approx(1e7)
    assert safe_divide(torch.tensor(3.0), torch.tensor(2.0)).item() == 1.5
    assert logb(torch.tensor(8.0), 2.0).item() == pytest.approx(3.0)
    assert logb(torch.tensor(1000.0), 10.0).item() == pytest.approx(3.0)


# --- frame-rate resampling --------------------------------------------------------------------

@pytest.mark.parametrize("add_endpoint", (True, False))
@pytest.mark.parametrize("method", ("linear", "nearest", "window", "cubic"))
def test_resample_reproduces_constants(method, add_endpoint, dtype):
    value = 0.123456789
    x = torch.full((2, 17, 3), value, dtype=dtype)
    n_out = 16 * 17 if add_endpoint else 16 * 16
    y = resample(x, n_out, method=method, add_endpoint=add_endpoint)
    assert y.shape == (2, n_out, 3) and y.dtype == dtype
    expected = torch.full_like(y, value)
    if method in ("linear", "nearest"):
        assert torch.equal(y, expected)
    else:  # window weights sum to one, cubic kernel weights too: exact up to rounding
        torch.testing.assert_close(y, expected, rtol=2 * torch.finfo(dtype).eps, atol=0.0)


def test_window_upsampling_passes_through_frame_values(dtype, seed):
    x = torch.randn(2, 12, 3, dtype=dtype)
    hop = 20
    y = upsample_with_windows(x, 12 * hop)
    assert torch.equal(y[:, ::hop], x)  # sample j * hop is frame j
    yr = resample(x, 12 * hop, method="window")
    assert torch.equal(yr, y)


@pytest.mark.parametrize("method", ("linear", "window"))
def test_upsampling_stays_between_neighbouring_frames(method, seed):
    x = torch.randn(1, 30, 2, dtype=torch.float64)
    hop = 16
    y = resample(x, 30 * hop, method=method)
    ext = torch.cat([x, x[:, -1:]], dim=1)
    lo = torch.minimum(ext[:, :-1], ext[:, 1:]).repeat_interleave(hop, dim=1)
    hi = torch.maximum(ext[:, :-1], ext[:, 1:]).repeat_interleave(hop, dim=1)
    assert bool((y >= lo - 1e-12).all()) and bool((y <= hi + 1e-12).all())  # no overshoot


def test_linear_resampling_reproduces_ramps(dtype):
    n_frames, hop = 9, 7
    ramp = torch.arange(n_frames, dtype=dtype)
    # Without the end point, first and last frames land on the ends: the ramp stays exact.
    y = resample(ramp, (n_frames - 1) * hop + 1, add_endpoint=False)
    _close(y, torch.linspace(0.0, n_frames - 1, (n_frames - 1) * hop + 1, dtype=dtype), dtype, 1e-6)
    # With the end point, output i sits at i * n_frames / n_out and the last frame is held.
    y = resample(ramp, n_frames * hop)
    pos = torch.arange(n_frames * hop, dtype=dtype) / hop
    _close(y, pos.clamp(max=n_frames - 1), dtype, 1e-6)
    # Downsampling works too.
    _close(resample(torch.arange(8.0, dtype=dtype), 4, add_endpoint=False),
           torch.tensor([0.0, 7 / 3, 14 / 3, 7.0], dtype=dtype), dtype, 1e-6)


def test_nearest_takes_the_floor_frame(seed):
    x = torch.randn(3, 10)
    y = resample(x, 40, method="nearest")
    assert torch.equal(y, x.repeat_interleave(4, dim=1))


@pytest.mark.parametrize("shape", ((10,), (2, 10), (2, 10, 3), (2, 10, 3, 2)))
def test_resample_keeps_rank(shape):
    x = torch.ones(shape)
    expected = (50,) if len(shape) == 1 else (shape[0], 50, *shape[2:])
    assert resample(x, 50).shape == expected


def test_window_upsampling_rejects_uneven_lengths():
    with pytest.raises(ValueError, match="n_timesteps"):
        upsample_with_windows(torch.ones(1, 10, 1), 95)
    with pytest.raises(ValueError, match="n_timesteps"):
        resample(torch.ones(1, 10, 1), 95, method="window")


def test_resample_rejects_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        resample(torch.ones(1, 10, 1), 100, method="sinc")
    with pytest.raises(ValueError, match="n_timesteps"):
        resample(torch.ones(1, 10, 1), 0)
    with pytest.raises(ValueError, match="inputs"):
        resample(torch.ones(()), 10)


def test_one_hop_rule_for_frames_and_samples():
    assert dsp.hop_size(16000, 250) == 64 and dsp.hop_size(48000, 50) == 960
    assert dsp.hop_size(16000, 250, n_samples=64000) == 64
    with pytest.raises(ValueError, match=r"frame_rate \(300\) must divide sample_rate \(16000\)"):
        dsp.hop_size(16000, 300)
    with pytest.raises(ValueError, match=r"n_samples \(100\) must be a multiple of the hop"):
        dsp.hop_size(16000, 250, n_samples=100)
    assert dsp.hop_size(16000, 300, exact=False) == 53  # the reference's low-level convention (floor)
    with pytest.raises(ValueError, match="must not exceed"):
        dsp.hop_size(100, 200, exact=False)


def test_a_pitch_shift_of_twelve_semitones_doubles_f0():
    assert dsp.semitones_to_ratio(12.0) == 2.0 and dsp.semitones_to_ratio(-24.0) == 0.25
    f0 = torch.tensor([440.0])
    shifted = f0 * dsp.semitones_to_ratio(torch.tensor(7.0))
    assert torch.allclose(dsp.hz_to_midi(shifted) - dsp.hz_to_midi(f0), torch.tensor([7.0]), atol=1e-4)
