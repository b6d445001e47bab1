"""FIR design meets its requested magnitudes, FFT convolution equals direct convolution (static and
block-wise time-varying), filters pass and stop the right tones at every sample rate, band-limited
audio resampling keeps tones, gradients, argument checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from ddsp_lab.dsp import (fft_convolve, frequency_filter, frequency_impulse_response, resample_audio,
                          sinc, sinc_filter, sinc_impulse_response)

SR_FRAME_RATES = ((16000, 250), (22050, 150), (44100, 300), (48000, 250))  # frame rate | sample rate
EXACT = {torch.float32: 1e-6, torch.float64: 1e-12}


def _sine(f_hz: float, sample_rate: float, n_samples: int, dtype=torch.float32) -> torch.Tensor:
    t = torch.arange(n_samples, dtype=torch.float64) / sample_rate
    return torch.sin(2 * math.pi * f_hz * t).to(dtype)


def _amplitude_at(audio: torch.Tensor, f_hz: int) -> float:
    """Amplitude of the f_hz component of a 1 s signal [n_samples] (1 Hz bins)."""
    return (2.0 * torch.fft.rfft(audio.double()).abs()[f_hz] / audio.shape[-1]).item()


def _tone_amplitude(segment: torch.Tensor, f_hz: float, sample_rate: float, start: int) -> float:
    """Least-squares amplitude of a tone at f_hz in a segment starting at sample `start`."""
    t = (start + torch.arange(segment.shape[-1], dtype=torch.float64)) / sample_rate
    basis = torch.stack([torch.sin(2 * math.pi * f_hz * t), torch.cos(2 * math.pi * f_hz * t)], dim=1)
    coef = torch.linalg.lstsq(basis, segment.double()[:, None]).solution
    return coef.norm().item()


def _hann_smoothed(mags: torch.Tensor) -> torch.Tensor:
    """What a full-length Hann window does to sampled magnitudes: circular convolution with
    (1/4, 1/2, 1/4) over the even-symmetric spectrum (mirror at DC and at Nyquist)."""
    ext = torch.cat([mags[..., 1:2], mags, mags[..., -2:-1]], dim=-1)
    return 0.5 * ext[..., 1:-1] + 0.25 * (ext[..., :-2] + ext[..., 2:])


# --- FIR design ---------------------------------------------------------------------------------

def test_fir_meets_requested_magnitudes_full_window(dtype):
    n_freq = 65
    f = torch.linspace(0.0, 1.0, n_freq, dtype=dtype)
    smooth = (0.6 + 0.4 * torch.cos(math.pi * f))[None]
    ir = frequency_impulse_response(smooth)
    assert ir.shape == (1, 2 * (n_freq - 1)) and ir.dtype == dtype
    measured = torch.fft.rfft(ir, dim=-1).abs()  # design bins are the rfft bins of the full IR
    torch.testing.assert_close(measured, smooth, rtol=0, atol=1e-3)
    flat = torch.fft.rfft(frequency_impulse_response(torch.ones(1, n_freq, dtype=dtype))).abs()
    torch.testing.assert_close(flat, torch.ones_like(flat), rtol=0, atol=EXACT[dtype])


def test_fir_response_is_the_hann_smoothed_request(dtype, seed):
    mags = torch.rand(3, 4, 33, dtype=dtype)  # arbitrary, framed
    measured = torch.fft.rfft(frequency_impulse_response(mags), dim=-1).abs()
    torch.testing.assert_close(measured, _hann_smoothed(mags), rtol=0, atol=EXACT[dtype])


def test_fir_is_linear_phase_and_framewise(seed):
    mags = torch.rand(2, 5, 65, dtype=torch.float64) + 0.5
    ir = frequency_impulse_response(mags)  # [2, 5, 128]
    centre = ir.shape[-1] // 2
    assert bool((ir.abs().argmax(-1) == centre).all())
    torch.testing.assert_close(ir[..., centre + 1:], ir[..., 1:centre].flip(-1))  # symmetric
    for j in range(5):
        torch.testing.assert_close(ir[:, j], frequency_impulse_response(mags[:, j]))


@pytest.mark.parametrize("window_size", (33, 65, 127))
def test_fir_shortened_window_approximately_meets_request(window_size):
    f = torch.linspace(0.0, 1.0, 65, dtype=torch.float64)
    smooth = (0.6 + 0.4 * torch.cos(math.pi * f))[None]
    ir = frequency_impulse_response(smooth, window_size=window_size)
    assert ir.shape == (1, window_size)
    measured = torch.fft.rfft(ir, n=128, dim=-1).abs()
    torch.testing.assert_close(measured, smooth, rtol=0, atol=2e-2)  # coarser with fewer taps


def test_flat_request_is_a_pure_delay(seed):
    audio = torch.randn(2, 1000, dtype=torch.float64)
    ones = torch.ones(2, 65, dtype=torch.float64)
    # 128-tap IR peaking at 64 with the reference's 'same' crop of 62: a 2-sample delay remains.
    out = frequency_filter(audio, ones)
    torch.testing.assert_close(out[:, 2:], audio[:, :-2])
    valid = frequency_filter(audio, ones, padding="valid")
    assert valid.shape == (2, 1000 + 127)
    torch.testing.assert_close(valid[:, 2:1002], audio)
    # Odd window: the crop removes the whole linear-phase delay.
    odd = frequency_filter(audio, ones, window_size=65)
    torch.testing.assert_close(odd, audio, rtol=1e-2, atol=0)  # the window's centre tap ~ 1


# --- FFT convolution ----------------------------------------------------------------------------

def _direct_full(audio: torch.Tensor, ir: torch.Tensor) -> np.ndarray:
    return np.stack([np.convolve(a, h) for a, h in zip(audio.double().cpu().numpy(),
                                                         ir.double().cpu().numpy())])


def _blockwise_full(audio: torch.Tensor, irs: torch.Tensor) -> np.ndarray:
    """Cut audio into n_frames blocks of ceil(n / n_frames) samples, convolve block j with IR j,
    overlap-add at the block hop."""
    a, h = audio.double().cpu().numpy(), irs.double().cpu().numpy()
    batch, n = a.shape
    n_frames, ir_size = h.shape[1:]
    hop = -(-n // n_frames)
    out = np.zeros((batch, n + ir_size - 1))
    for b in range(batch):
        for j in range(n_frames):
            block = a[b, j * hop:(j + 1) * hop]
            out[b, j * hop:j * hop + len(block) + ir_size - 1] += np.convolve(block, h[b, j])
    return out


def test_fft_convolve_equals_direct_convolution(dtype, device, seed):
    audio = torch.randn(3, 1000, dtype=dtype, device=device)
    ir = torch.randn(3, 100, dtype=dtype, device=device) / 10.0
    out = fft_convolve(audio, ir, padding="valid", delay_compensation=0)
    assert out.shape == (3, 1099) and out.dtype == dtype and out.device.type == device.type
    assert np.abs(out.double().cpu().numpy() - _direct_full(audio, ir)).max() <= 1e-5


@pytest.mark.parametrize("n_frames", (10, 7))  # 7 does not divide 1000: the last block is short
def test_time_varying_fft_convolve_equals_blockwise_convolution(n_frames, dtype, device, seed):
    audio = torch.randn(3, 1000, dtype=dtype, device=device)
    irs = torch.randn(3, n_frames, 60, dtype=dtype, device=device) / 10.0
    out = fft_convolve(audio, irs, padding="valid", delay_compensation=0)
    assert out.shape == (3, 1059) and out.dtype == dtype
    assert np.abs(out.double().cpu().numpy() - _blockwise_full(audio, irs)).max() <= 1e-5


def test_fft_convolve_same_padding_and_broadcast(seed):
    audio = torch.randn(3, 500, dtype=torch.float64)
    ir = torch.randn(1, 40, dtype=torch.float64)
    full = _direct_full(audio, ir.expand(3, -1))
    same = fft_convolve(audio, ir, padding="same", delay_compensation=0)  # causal filter output
    np.testing.assert_allclose(same.numpy(), full[:, :500], atol=1e-12)
    shifted = fft_convolve(audio, ir, padding="same", delay_compensation=5)
    np.testing.assert_allclose(shifted.numpy(), full[:, 5:505], atol=1e-12)
    default = fft_convolve(audio, ir)  # reference: crop (ir_size - 1) // 2 - 1 = 18
    np.testing.assert_allclose(default.numpy(), full[:, 18:518], atol=1e-12)
    irs = torch.randn(3, 40, dtype=torch.float64)  # one audio, three IRs
    out = fft_convolve(audio[:1], irs, padding="valid", delay_compensation=0)
    np.testing.assert_allclose(out.numpy(), _direct_full(audio[:1].expand(3, -1), irs), atol=1e-12)


def test_repeated_ir_equals_single_ir(seed):
    audio = torch.randn(2, 1600)
    ir = torch.randn(2, 64) / 8.0
    torch.testing.assert_close(fft_convolve(audio, ir[:, None].expand(2, 25, 64)), fft_convolve(audio, ir),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("framed", (False, True))
def test_fft_convolve_batched_equals_per_item(framed, seed):
    audio = torch.randn(4, 800)
    ir = torch.randn(4, 8, 50) if framed else torch.randn(4, 50)
    batched = fft_convolve(audio, ir)
    for i in range(4):
        torch.testing.assert_close(batched[i:i + 1], fft_convolve(audio[i:i + 1], ir[i:i + 1]))


# --- filtering at every sample rate -------------------------------------------------------------

@pytest.mark.parametrize("sample_rate,frame_rate", SR_FRAME_RATES)
def test_frequency_filter_passes_and_stops_at_every_sample_rate(sample_rate, frame_rate):
    f_pass, f_stop = round(sample_rate / 8), round(3 * sample_rate / 8)  # design bins 16 and 48
    audio = (_sine(f_pass, sample_rate, sample_rate) + _sine(f_stop, sample_rate, sample_rate))[None]
    low_pass = (torch.arange(65) <= 32).float()  # cut at half Nyquist
    mags = low_pass[None, None].expand(1, frame_rate, 65)  # one filter per frame
    out = frequency_filter(audio, mags)[0]
    assert out.shape == (sample_rate,)
    assert _amplitude_at(out, f_pass) == pytest.approx(1.0, rel=1e-2)
    assert _amplitude_at(out, f_stop) < 1e-3
    torch.testing.assert_close(out, frequency_filter(audio, low_pass[None])[0], rtol=0, atol=1e-5)


def test_time_varying_filter_switches_between_frames():
    sr, n = 16000, 16000
    audio = (_sine(1000, sr, n) + _sine(6000, sr, n))[None]
    bins = torch.arange(65)
    low, high = (bins <= 24).float(), (bins >= 40).float()  # 3 kHz / 5 kHz edges
    mags = torch.cat([low.expand(1, 50, 65), high.expand(1, 50, 65)], dim=1)  # 100 frames of 160
    out = frequency_filter(audio, mags)[0]
    first, second = out[500:7500], out[8500:15500]
    assert _tone_amplitude(first, 1000, sr, 500) == pytest.approx(1.0, rel=1e-2)
    assert _tone_amplitude(first, 6000, sr, 500) < 1e-3
    assert _tone_amplitude(second, 6000, sr, 8500) == pytest.approx(1.0, rel=1e-2)
    assert _tone_amplitude(second, 1000, sr, 8500) < 1e-3


def test_sinc_impulse_response_shape_symmetry_and_dc_gain(dtype):
    ir = sinc_impulse_response(torch.full((2, 3, 1), 2000.0, dtype=dtype), window_size=64, sample_rate=16000)
    assert ir.shape == (2, 3, 65) and ir.dtype == dtype
    torch.testing.assert_close(ir.sum(-1), torch.ones(2, 3, dtype=dtype))
    torch.testing.assert_close(ir, ir.flip(-1))
    x = torch.tensor([0.0, 1.0, 2.0, -3.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(sinc(x), torch.tensor([1.0, 0.0, 0.0, 0.0, 2 / math.pi], dtype=torch.float64))


@pytest.mark.parametrize("high_pass", (False, True))
def test_sinc_filter_separates_tones(high_pass):
    sr, n = 16000, 16000
    audio = (_sine(500, sr, n) + _sine(6000, sr, n))[None]
    cutoff = torch.full((1, 10, 1), 2000.0)
    out = sinc_filter(audio, cutoff, window_size=256, sample_rate=sr, high_pass=high_pass)[0]
    kept, removed = (6000, 500) if high_pass else (500, 6000)
    assert _amplitude_at(out, kept) == pytest.approx(1.0, rel=1e-2)
    assert _amplitude_at(out, removed) < 1e-2


# --- band-limited resampling --------------------------------------------------------------------

@pytest.mark.parametrize("orig,new", ((16000, 48000), (44100, 16000), (22050, 16000), (48000, 44100)))
def test_resample_audio_keeps_a_tone(orig, new, dtype):
    out = resample_audio(_sine(1000, orig, orig, dtype)[None], orig, new)
    assert out.shape == (1, math.ceil(orig * new / orig)) and out.dtype == dtype
    out = out[0]
    assert torch.fft.rfft(out.double()).abs().argmax().item() == 1000
    assert _amplitude_at(out, 1000) == pytest.approx(1.0, rel=1e-2)
    ref = _sine(1000, new, new, torch.float64)
    assert (out[200:-200].double() - ref[200:-200]).abs().max().item() < 1e-3  # away from the edges


def test_resample_audio_removes_what_the_new_rate_cannot_hold():
    out = resample_audio(_sine(10000, 44100, 44100)[None], 44100, 16000)[0]  # would alias to 6 kHz
    assert out[200:-200].abs().max().item() < 1e-3


@pytest.mark.parametrize("n", (999, 1001))
def test_resample_audio_lengths_and_ranks(n, seed):
    assert resample_audio(torch.randn(2, n), 16000, 48000).shape == (2, math.ceil(n * 3))
    assert resample_audio(torch.randn(n), 44100, 16000).shape == (math.ceil(n * 16000 / 44100),)
    x = torch.randn(2, n)
    assert resample_audio(x, 22050, 22050) is x


# --- dtype, gradients ---------------------------------------------------------------------------

def test_filters_preserve_dtype_and_agree_across_dtypes(dtype, seed):
    audio = torch.randn(2, 640, dtype=torch.float64)
    mags = torch.rand(2, 10, 33, dtype=torch.float64)
    ref = frequency_filter(audio, mags)
    out = frequency_filter(audio.to(dtype), mags.to(dtype))
    assert out.dtype == dtype and out.shape == (2, 640)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
    ref = sinc_filter(audio, torch.full((2, 4, 1), 0.3, dtype=torch.float64), window_size=32)
    out = sinc_filter(audio.to(dtype), torch.full((2, 4, 1), 0.3, dtype=dtype), window_size=32)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)


def test_gradcheck_frequency_filter(seed):
    audio = torch.randn(2, 32, dtype=torch.float64, requires_grad=True)
    mags = torch.rand(2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, m: frequency_filter(a, m), (audio, mags))


def test_gradcheck_fft_convolve_reverb(seed):
    audio = torch.randn(2, 32, dtype=torch.float64, requires_grad=True)
    decay = torch.exp(-torch.arange(16, dtype=torch.float64) / 4.0)
    ir = (torch.randn(2, 16, dtype=torch.float64) * decay).requires_grad_()
    assert gradcheck(lambda a, h: fft_convolve(a, h, delay_compensation=0), (audio, ir))


# --- argument checks ----------------------------------------------------------------------------

def test_fft_convolve_rejects_bad_input():
    with pytest.raises(ValueError, match="impulse_response"):
        fft_convolve(torch.zeros(2, 100), torch.zeros(3, 10))  # batch mismatch
    with pytest.raises(ValueError, match="impulse_response"):
        fft_convolve(torch.zeros(1, 10), torch.zeros(1, 6, 4))  # blocks of 2 -> 5 blocks, not 6
    with pytest.raises(ValueError, match="audio"):
        fft_convolve(torch.zeros(100), torch.zeros(1, 10))
    with pytest.raises(ValueError, match="padding"):
        fft_convolve(torch.zeros(1, 100), torch.zeros(1, 10), padding="full")


def test_fir_and_resample_audio_reject_bad_input():
    with pytest.raises(ValueError, match="magnitudes"):
        frequency_impulse_response(torch.ones(65))
    with pytest.raises(ValueError, match="orig_sample_rate"):
        resample_audio(torch.zeros(1, 100), -16000, 8000)
    with pytest.raises(ValueError, match="orig_sample_rate"):
        resample_audio(torch.zeros(1, 100), 16000.5, 8000)
    with pytest.raises(ValueError, match="audio"):
        resample_audio(torch.zeros(1, 1, 100), 16000, 8000)


def test_fast_fft_size_is_the_smallest_power_of_two_or_three_times_one_that_fits():
    from ddsp_lab.dsp.filters import fast_fft_size

    got = {n: fast_fft_size(n) for n in (1, 2, 3, 5, 191, 192, 193, 256, 257, 385, 111999)}
    assert got == {1: 1, 2: 2, 3: 3, 5: 6, 191: 192, 192: 192, 193: 256, 256: 256, 257: 384, 385: 512,
                   111999: 131072}


@pytest.mark.parametrize("window_size,n_bands", [(257, 65), (0, 65), (65, 65), (40, 16)],
                         ids=["full window", "no window", "shortened (complex path)", "shortened, 16 bands"])
@pytest.mark.parametrize("hop", (64, 192), ids=["16 kHz hop (shift rolls hop chunks)", "48 kHz hop (shift rolls samples)"])
def test_frequency_filter_by_its_design_matrix_equals_designing_and_convolving_each_filter(window_size, n_bands, hop, dtype):
    """frequency_filter forms the filters' spectra as magnitudes @ a cached design matrix (real up to
    the causal shift for symmetric designs, applied as a roll of each block in the overlap-add): the
    values and gradients of designing each FIR and convolving by FFT, with and without autograd."""
    torch.manual_seed(0)
    audio = torch.rand(3, 100 * hop, dtype=dtype) * 2 - 1
    mags = torch.rand(3, 100, n_bands, dtype=dtype, requires_grad=True)
    got = frequency_filter(audio, mags, window_size)
    want = fft_convolve(audio, frequency_impulse_response(mags, window_size))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, want, rtol=0, atol=tol * float(want.abs().max()))
    with torch.no_grad():  # the filtering multiplies the block spectra in place
        torch.testing.assert_close(frequency_filter(audio, mags, window_size), want, rtol=0, atol=tol * float(want.abs().max()))
    g_got, = torch.autograd.grad(got.square().sum(), mags)
    g_want, = torch.autograd.grad(want.square().sum(), mags)
    torch.testing.assert_close(g_got, g_want, rtol=0, atol=tol * 10 * float(g_want.abs().max()))
    broadcast = frequency_filter(audio, mags[:1].detach(), window_size)  # one set of filters for every row
    torch.testing.assert_close(broadcast[1], frequency_filter(audio[1:2], mags[:1].detach(), window_size)[0])


def test_a_design_matrix_first_made_in_inference_mode_serves_training():
    """Lightning validates in inference mode before it trains: the cached design must be a plain tensor."""
    from ddsp_lab.dsp import filters

    filters._DESIGN_CACHE.clear()
    audio, mags = torch.rand(2, 640) - 0.5, torch.rand(2, 10, 33, requires_grad=True)
    with torch.inference_mode():
        frequency_filter(audio, mags.detach(), 0)
    frequency_filter(audio, mags, 0).square().sum().backward()
    assert mags.grad is not None and bool(torch.isfinite(mags.grad).all())
