"""Spectral front-ends and loudness: tones land in their bins with the window's gain, A-weighted
loudness follows Parseval and the A curve, frame counts per padding mode at every sample rate and
frame rate, batch and dtype consistency, argument checks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

from ddsp_lab.dsp import (a_weighting_db, compute_logmag, compute_logmel, compute_loudness, compute_mag,
                          compute_mel, compute_mfcc, compute_power, compute_rms_energy, cqt, frame,
                          mel_weight_matrix, safe_log, stft)
from ddsp_lab.dsp import loudness, spectral
from ddsp_lab.dsp._cache import CACHE_SIZE

SR_FRAME_RATES = ((16000, 250), (22050, 150), (44100, 300), (48000, 250))  # frame rate | sample rate
SAMPLE_RATES = (16000, 22050, 44100, 48000)


def _sine(f_hz: float, sample_rate: float, n_samples: int, amplitude: float = 1.0,
          dtype=torch.float32) -> torch.Tensor:
    t = torch.arange(n_samples, dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * math.pi * f_hz * t)).to(dtype)[None]


def _sine_loudness_db(amplitude: float, n_fft: int) -> float:
    """Loudness of a sine at 1 kHz (A-weight 0 dB), by Parseval: a periodic Hann (sum w^2 = 3N/8)
    puts 3 N^2 A^2 / 32 of power into the positive bins; the mean runs over N / 2 + 1 bins."""
    return 10.0 * math.log10(3.0 * n_fft ** 2 * amplitude ** 2 / (16.0 * (n_fft + 2)))


def _interior(loudness: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Frames whose window lies wholly inside the signal ('center' padding)."""
    edge = n_fft // (2 * hop) + 1
    return loudness[..., edge:-edge]


# --- loudness -----------------------------------------------------------------------------------

def test_loudness_of_a_sine_and_a_20_db_step(dtype):
    sr, n_fft, hop = 16000, 512, 64
    tone = _sine(1000, sr, 8000, 1.0, dtype)
    loud = compute_loudness(tone, sr, 250, n_fft=n_fft)
    quiet = compute_loudness(0.1 * tone, sr, 250, n_fft=n_fft)
    assert loud.dtype == dtype and loud.shape == (1, 8000 // hop + 1)
    inner = _interior(loud, n_fft, hop)
    torch.testing.assert_close(inner, torch.full_like(inner, _sine_loudness_db(1.0, n_fft)), rtol=0, atol=0.1)
    diff = _interior(loud - quiet, n_fft, hop)
    assert bool(((diff - 20.0).abs() <= 0.5).all())


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
@pytest.mark.parametrize("frame_rate", (250, 100, 50))
def test_loudness_at_every_sample_and_frame_rate(sample_rate, frame_rate):
    n_fft = 2048  # also resolves 100 Hz; 512 would be shorter than the hop at 44.1 kHz / 50 Hz
    hop = sample_rate // frame_rate  # floored where the frame rate does not divide (22050 / 250)
    n = sample_rate // 2
    tone = _sine(1000, sample_rate, n)
    loud = compute_loudness(tone, sample_rate, frame_rate, n_fft=n_fft)
    assert loud.shape == (1, n // hop + 1)
    inner = _interior(loud, n_fft, hop)
    assert inner.numel() > 0
    torch.testing.assert_close(inner, torch.full_like(inner, _sine_loudness_db(1.0, n_fft)), rtol=0, atol=0.1)
    quiet = _interior(compute_loudness(0.1 * tone, sample_rate, frame_rate, n_fft=n_fft), n_fft, hop)
    assert bool((((inner - quiet) - 20.0).abs() <= 0.5).all())
    # A-weighting: 100 Hz sits ~19 dB (19.1 on the curve) below 1 kHz at equal amplitude.
    low = _interior(compute_loudness(_sine(100, sample_rate, n), sample_rate, frame_rate, n_fft=n_fft),
                    n_fft, hop)
    assert bool((((inner - low) - 19.0).abs() <= 1.0).all())


def test_a_weighting_curve():
    w = a_weighting_db(torch.tensor([0.0, 100.0, 1000.0, 10000.0]))
    assert w.tolist() == pytest.approx([-80.0, -19.1, 0.0, -2.5], abs=0.1)  # IEC 61672 table


def test_loudness_padding_modes_and_silence(seed):
    audio = torch.randn(2, 4096)
    assert compute_loudness(audio, 16000, 250).shape == (2, 4096 // 64 + 1)
    assert compute_loudness(audio, 16000, 250, padding="same").shape == (2, 4096 // 64)
    assert compute_loudness(audio, 16000, 250, padding="valid").shape == (2, (4096 - 512) // 64 + 1)
    silence = compute_loudness(torch.zeros(1000), 16000, 250)
    assert silence.shape == (1000 // 64 + 1,)
    assert torch.equal(silence, torch.full_like(silence, -80.0))
    assert bool((compute_loudness(torch.zeros(1, 1000), range_db=60.0) == -60.0).all())


def test_loudness_batched_equals_per_item(device, seed):
    audio = torch.randn(3, 4000, device=device) * torch.tensor([[1.0], [0.1], [0.01]], device=device)
    batched = compute_loudness(audio, 16000, 250)
    assert batched.shape == (3, 4000 // 64 + 1) and batched.device.type == device.type
    for i in range(3):
        torch.testing.assert_close(batched[i], compute_loudness(audio[i], 16000, 250))


def test_loudness_agrees_across_dtypes(dtype, seed):
    audio = torch.randn(2, 4000, dtype=torch.float64)
    ref = compute_loudness(audio, 16000, 250)
    out = compute_loudness(audio.to(dtype), 16000, 250)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-3 if dtype == torch.float32 else 1e-10)


def test_rms_and_power_of_a_sine():
    tone = _sine(1000, 16000, 16000, 0.5, torch.float64)  # 512-sample frames hold 32 whole cycles
    rms = compute_rms_energy(tone, 16000, 250)
    assert rms.shape == (1, 16000 // 64 + 1)
    inner = rms[:, 5:-5]
    torch.testing.assert_close(inner, torch.full_like(inner, 0.5 / math.sqrt(2)))
    power = compute_power(tone, 16000, 250)[:, 5:-5]
    torch.testing.assert_close(power, torch.full_like(power, 20 * math.log10(0.5 / math.sqrt(2))))


def test_loudness_rejects_bad_rates():
    with pytest.raises(ValueError, match="frame_rate"):
        compute_loudness(torch.zeros(1, 1000), sample_rate=16000, frame_rate=20000)
    with pytest.raises(ValueError, match="sample_rate"):
        compute_loudness(torch.zeros(1, 1000), sample_rate=0)
    with pytest.raises(ValueError, match="padding"):
        compute_loudness(torch.zeros(1, 1000), padding="reflect")
    with pytest.raises(ValueError, match="audio"):
        compute_loudness(torch.zeros(1, 1000, 2))


# --- magnitude spectra --------------------------------------------------------------------------

@pytest.mark.parametrize("sample_rate,frame_rate", SR_FRAME_RATES)
def test_mag_peak_and_gain_at_every_sample_rate(sample_rate, frame_rate):
    size = 2048
    k = round(1000 * size / sample_rate)
    n = sample_rate // 2
    mag = compute_mag(_sine(k * sample_rate / size, sample_rate, n, 0.5), size)  # a bin-centred tone
    hop = size // 4
    assert mag.shape == (1, math.ceil(n / hop), size // 2 + 1)
    inner = mag[0, : (n - size) // hop + 1]  # frames wholly inside the signal
    assert bool((inner.argmax(-1) == k).all())
    # Peak = A * sum(w) / 2 = A * N / 4 for a periodic Hann.
    torch.testing.assert_close(inner[:, k], torch.full_like(inner[:, k], 0.5 * size / 4), rtol=1e-4, atol=0)
    # Frame rate as hop: the frame count is ceil(n / hop).
    fr_hop = sample_rate // frame_rate
    fr_mag = compute_mag(_sine(1000, sample_rate, n), 4 * fr_hop, overlap=0.75)
    assert fr_mag.shape[1] == math.ceil(n / fr_hop)


def test_stft_pads_odd_frames_to_a_power_of_two_fft(dtype, seed):
    audio = torch.randn(2, 5000, dtype=dtype)
    spec = stft(audio, frame_size=1000, overlap=0.5)
    assert spec.shape == (2, math.ceil(5000 / 500), 513) and spec.is_complex()
    frames = frame(audio, 1000, 500)  # the frame zero-padded at its end to 1024
    window = torch.hann_window(1000, periodic=True, dtype=dtype)
    torch.testing.assert_close(spec, torch.fft.rfft(frames * window, n=1024))
    torch.testing.assert_close(compute_logmag(audio, 1000, 0.5), safe_log(spec.abs()))


def test_frame_covers_every_sample(seed):
    audio = torch.randn(2, 1000)
    frames = frame(audio, 256, 100)
    assert frames.shape == (2, 10, 256)
    assert torch.equal(frames[:, 3], audio[:, 300:556])
    assert torch.equal(frames[:, 9, :100], audio[:, 900:])
    assert torch.equal(frames[:, 9, 100:], torch.zeros(2, 156))
    with pytest.raises(ValueError, match="frame_size"):
        frame(audio[:, :100], 256, 100, pad_end=False)


@pytest.mark.parametrize("sample_rate", SAMPLE_RATES)
def test_spectra_agree_across_dtypes(sample_rate, dtype, seed):
    audio = torch.randn(2, sample_rate // 4, dtype=torch.float64)
    ref = compute_mag(audio, 1024)
    out = compute_mag(audio.to(dtype), 1024)
    assert out.dtype == dtype and out.shape == ref.shape
    torch.testing.assert_close(out.double(), ref, rtol=1e-4 if dtype == torch.float32 else 1e-10, atol=1e-3)


# --- mel, MFCC, CQT -----------------------------------------------------------------------------

def test_mel_filterbank_shape_and_triangles():
    w = mel_weight_matrix(64, 1025, 16000, 0.0, 8000.0, torch.float64)
    assert w.shape == (1025, 64)
    assert torch.equal(w[0], torch.zeros(64, dtype=torch.float64))  # DC excluded
    assert bool((w >= 0).all()) and bool((w <= 1).all())
    peaks = w.argmax(0)
    assert bool((peaks[1:] > peaks[:-1]).all())  # centres rise with the band index


def test_mel_of_a_tone_peaks_in_its_band():
    mel = compute_mel(_sine(1000, 16000, 16000, dtype=torch.float64), lo_hz=0.0, hi_hz=8000.0, bins=64)
    edges = np.linspace(0.0, 1127.0 * np.log1p(8000 / 700), 66)
    expected = int(np.argmin(np.abs(edges[1:-1] - 1127.0 * np.log1p(1000 / 700))))
    assert bool((mel[0, 1:-4].argmax(-1) == expected).all())


def test_mfcc_is_the_scaled_dct_of_the_log_mel(seed):
    audio = torch.randn(2, 8000, dtype=torch.float64)
    mfcc = compute_mfcc(audio, mfcc_bins=13)
    logmel = compute_logmel(audio, 20.0, 8000.0, 128, 1024)
    assert mfcc.shape == (2, math.ceil(8000 / 256), 13)
    ref = scipy.fft.dct(logmel.numpy(), type=2, axis=-1)[..., :13] / math.sqrt(2 * 128)
    np.testing.assert_allclose(mfcc.numpy(), ref, atol=1e-9)


def test_cqt_of_a_tone_peaks_at_its_semitone():
    mag = cqt(_sine(440, 16000, 16000), 16000, hop_length=256, fmin=32.70, n_bins=84)
    assert mag.shape[0] == 1 and mag.shape[2] == 84
    assert mag[0, mag.shape[1] // 2].argmax().item() == round(12 * math.log2(440 / 32.70))


# --- cached constants (mel, DCT, A-weighting): one build and one copy per device and dtype ------


_CACHED = (spectral._mel_matrix, spectral._dct_matrix, loudness._a_weights_power)


def _misses() -> tuple[int, ...]:
    return tuple(c.cache_info().misses for c in _CACHED)


def test_mel_matrix_is_cached_per_device_and_dtype(device):
    a = mel_weight_matrix(64, 1025, 16000, 0.0, 8000.0, torch.float32, device)
    assert mel_weight_matrix(64, 1025, 16000, 0.0, 8000.0, torch.float32, device) is a
    assert a.device.type == device.type and a.dtype == torch.float32
    b = mel_weight_matrix(64, 1025, 16000, 0.0, 8000.0, torch.float64, device)
    assert b is not a and b.dtype == torch.float64
    torch.testing.assert_close(a, b.float(), rtol=0, atol=0)  # both cast from the float64 build
    assert mel_weight_matrix(64, 1025, 16000, 0.0, 7600.0, torch.float32, device) is not a


@pytest.mark.parametrize("fn", (compute_mel, compute_logmel, compute_mfcc, compute_loudness),
                         ids=lambda f: f.__name__)
def test_spectral_functions_build_their_matrices_once(fn, device, dtype, seed):
    audio = torch.randn(2, 4000, dtype=dtype, device=device)
    first = fn(audio)
    for c in _CACHED:
        c.cache_clear()
    rebuilt = fn(audio)  # a fresh build gives the same values (results are unchanged by the cache)
    misses = _misses()
    again = fn(audio)
    assert _misses() == misses  # no new matrix and no new copy: every constant came from the cache
    torch.testing.assert_close(rebuilt, first, rtol=0, atol=0)
    torch.testing.assert_close(again, first, rtol=0, atol=0)


def test_cached_matrices_keep_reference_values(dtype):
    # the cache holds what the float64 formula gives, cast to the requested dtype
    w = mel_weight_matrix(8, 33, 16000, 0.0, 8000.0, dtype)
    mel = lambda hz: 1127.0 * math.log1p(hz / 700.0)  # noqa: E731 - HTK mel
    edges = np.linspace(mel(0.0), mel(8000.0), 10)
    m = mel(1000.0)  # bin 2 of 33 over 0 - 8 kHz is 500 Hz; bin 4 is 1000 Hz
    k = int(np.searchsorted(edges, m)) - 1  # the band whose rising edge holds 1 kHz
    rising = (m - edges[k]) / (edges[k + 1] - edges[k])
    assert w.dtype == dtype and float(w[4, k]) == pytest.approx(rising, rel=1e-6)
    gains = loudness._a_weights_power(16000.0, 512, dtype=dtype)
    f = torch.linspace(0.0, 8000.0, 257, dtype=torch.float64)
    torch.testing.assert_close(gains, (10.0 ** (a_weighting_db(f) / 10.0)).to(dtype), rtol=0, atol=0)


def test_cache_built_in_inference_mode_serves_training():
    for c in _CACHED:
        c.cache_clear()
    audio = torch.randn(1, 4000, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        compute_mfcc(audio), compute_loudness(audio)  # first build, e.g. in a validation loop
    x = audio.clone().requires_grad_()
    (compute_mfcc(x).sum() + compute_loudness(x).sum()).backward()  # saves the cached matrices
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_constant_cache_is_bounded():
    for i in range(CACHE_SIZE + 10):
        mel_weight_matrix(2, 5 + i, 16000, 0.0, 8000.0)
    info = spectral._mel_matrix.cache_info()
    assert info.maxsize == CACHE_SIZE and info.currsize <= CACHE_SIZE
