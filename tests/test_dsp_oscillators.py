"""Oscillators: tones at f0 with the requested amplitude, nothing above Nyquist, float32 phase that
stays on its closed form for a minute, click-free glides, wavetables and delays, batch and dtype
consistency, gradients, argument checks."""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from ddsp_lab.dsp import (cumulative_phase, get_harmonic_frequencies, harmonic_distribution_to_wavetable,
                          harmonic_synthesis, harmonic_to_sinusoidal, linear_lookup,
                          normalize_harmonics, oscillator_bank, remove_above_nyquist, resample,
                          sinusoidal_to_harmonic, streaming_harmonic_synthesis, variable_length_delay,
                          wavetable_synthesis)

SR_FRAME_RATES = ((16000, 250), (22050, 150), (44100, 300), (48000, 250))  # frame rate | sample rate
ATOL = {torch.float32: 1e-4, torch.float64: 1e-10}


def _frames(value: float, n_frames: int, channels: int = 1, dtype=torch.float32, device="cpu"):
    return torch.full((1, n_frames, channels), value, dtype=dtype, device=device)


def _amplitude_at(audio: torch.Tensor, f_hz: int) -> float:
    """Amplitude of the f_hz component of a 1 s signal [n_samples] (1 Hz bins, whole cycles)."""
    return (2.0 * torch.fft.rfft(audio.double()).abs()[f_hz] / audio.shape[-1]).item()


def _closed_form_sine(f_hz: float, n_samples: int, sample_rate: float) -> torch.Tensor:
    """sin of the inclusive phase 2 pi f (n + 1) / sr, in float64 (phase reduced exactly first)."""
    n = torch.arange(1, n_samples + 1, dtype=torch.float64)
    cycles = torch.remainder(n * f_hz, sample_rate) / sample_rate  # exact for integer f and sr
    return torch.sin(2.0 * math.pi * cycles)


# --- tones --------------------------------------------------------------------------------------

def test_one_harmonic_is_a_sinusoid_at_f0(dtype, device):
    sr, n_frames = 16000, 250
    audio = harmonic_synthesis(_frames(440.0, n_frames, dtype=dtype, device=device),
                               _frames(0.5, n_frames, dtype=dtype, device=device),
                               harmonic_distribution=_frames(1.0, n_frames, dtype=dtype, device=device),
                               n_samples=sr, sample_rate=sr)
    assert audio.shape == (1, sr) and audio.dtype == dtype and audio.device.type == device.type
    audio = audio[0].cpu()
    assert torch.fft.rfft(audio.double()).abs().argmax().item() == 440  # 1 Hz bins
    assert _amplitude_at(audio, 440) == pytest.approx(0.5, rel=1e-2)
    assert audio.abs().max().item() == pytest.approx(0.5, rel=1e-2)


@pytest.mark.parametrize("sample_rate,frame_rate", SR_FRAME_RATES)
def test_tone_at_every_sample_rate(sample_rate, frame_rate):
    audio = harmonic_synthesis(_frames(440.0, frame_rate), _frames(0.5, frame_rate),
                               n_samples=sample_rate, sample_rate=sample_rate)[0]
    assert audio.shape == (sample_rate,)
    assert torch.fft.rfft(audio.double()).abs().argmax().item() == 440
    assert _amplitude_at(audio, 440) == pytest.approx(0.5, rel=1e-2)


def test_no_energy_from_harmonics_above_nyquist():
    sr, n_frames = 16000, 250
    f0, amps = _frames(3000.0, n_frames), _frames(1.0, n_frames)
    all_ten = harmonic_synthesis(f0, amps, harmonic_distribution=_frames(1.0, n_frames, 10),
                                 n_samples=sr, sample_rate=sr)[0]
    valid = torch.zeros(1, n_frames, 10)
    valid[..., :2] = 1.0  # 3 and 6 kHz; 9, 12, ... 30 kHz would alias to 7, 4, 1, 2, 5 kHz, ...
    only_valid = harmonic_synthesis(f0, amps, harmonic_distribution=valid, n_samples=sr, sample_rate=sr)[0]
    assert (all_ten - only_valid).abs().max().item() <= 1e-5
    spectrum = 2.0 * torch.fft.rfft(all_ten.double()).abs() / sr
    assert spectrum[3000].item() == pytest.approx(1.0, rel=1e-2)
    assert spectrum[6000].item() == pytest.approx(1.0, rel=1e-2)
    spectrum[[3000, 6000]] = 0.0
    assert spectrum.max().item() < 1e-4  # no alias anywhere (7000, 4000, 1000, 2000, 5000 Hz, ...)


@pytest.mark.parametrize("sample_rate,frame_rate", SR_FRAME_RATES)
def test_nyquist_cut_at_every_sample_rate(sample_rate, frame_rate, seed):
    f0 = _frames(sample_rate / 7.0, frame_rate)  # harmonics 1..3 below Nyquist, 4..10 above
    amps = _frames(0.3, frame_rate)
    dist = torch.rand(1, 1, 10).expand(1, frame_rate, 10)
    three = dist.clone()
    three[..., 3:] = 0.0
    full = harmonic_synthesis(f0, amps, harmonic_distribution=dist, n_samples=sample_rate,
                              sample_rate=sample_rate)
    ref = harmonic_synthesis(f0, amps, harmonic_distribution=three, n_samples=sample_rate,
                             sample_rate=sample_rate)
    assert (full - ref).abs().max().item() <= 1e-5
    assert ref.abs().max().item() > 0.1


def test_oscillator_bank_mutes_sample_by_sample_above_nyquist():
    sr, n = 16000, 4000
    freq = torch.linspace(7000.0, 9000.0, n)[None, :, None]
    audio = oscillator_bank(freq, torch.ones_like(freq), sr)[0]
    above = freq[0, :, 0] >= sr / 2
    assert torch.equal(audio[above], torch.zeros(int(above.sum())))
    assert audio[~above].abs().max().item() > 0.9


def test_harmonic_frequencies_and_normalisation():
    f0 = torch.tensor([[[100.0], [3000.0]]])
    freqs = get_harmonic_frequencies(f0, 4)
    assert freqs[0, 0].tolist() == [100.0, 200.0, 300.0, 400.0]
    dist = torch.ones(1, 2, 4)
    norm = normalize_harmonics(dist, f0, 16000)
    torch.testing.assert_close(norm.sum(-1), torch.ones(1, 2))
    assert norm[0, 1].tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0])  # 9 and 12 kHz dropped
    assert torch.equal(normalize_harmonics(torch.zeros(1, 2, 4)), torch.zeros(1, 2, 4))
    amps = remove_above_nyquist(torch.tensor([7999.0, 8000.0, 8001.0]), torch.ones(3), 16000)
    assert amps.tolist() == [1.0, 0.0, 0.0]  # Nyquist itself is silenced


@pytest.mark.parametrize("method", ("window", "linear", "nearest"))
def test_fast_path_equals_resample_plus_oscillator_bank(method, seed):
    """Segment-wise synthesis (n_samples a multiple of n_frames) is the general path, exactly."""
    f0, amps, dist = _random_controls(2, 10, 5, torch.float64)
    kwargs = dict(harmonic_distribution=dist, n_samples=640, sample_rate=16000, amp_resample_method=method)
    fast = harmonic_synthesis(f0, amps, **kwargs)
    general = harmonic_synthesis(f0, amps, harmonic_shifts=torch.zeros_like(dist), **kwargs)
    torch.testing.assert_close(fast, general, rtol=0, atol=1e-10)
    f_env = resample(f0 * torch.arange(1, 6, dtype=torch.float64), 640)
    a_env = resample(amps * dist, 640, method=method)
    torch.testing.assert_close(fast, oscillator_bank(f_env, a_env, 16000), rtol=0, atol=1e-10)


@pytest.mark.parametrize("grad", (False, True))
def test_cpu_path_skipping_silent_harmonics_equals_every_harmonic(grad, seed):
    """The eager CPU path computes sines only for harmonics audible somewhere in a block and masks
    only those crossing Nyquist inside it; values and gradients are the all-harmonics kernel's."""
    from ddsp_lab.dsp.oscillators import _harmonic_chunk, _harmonic_chunk_host

    batch, n_seg, hop, n_h, nyq = 3, 6, 16, 40, 8000.0
    f0 = torch.tensor([90.0, 400.0, 9000.0])[:, None, None]  # row 2: every harmonic above Nyquist
    glide = torch.linspace(0.0, 1.0, n_seg * hop).reshape(1, n_seg, hop)
    f_sample = f0 * (1.0 + glide)  # harmonics cross Nyquist inside the block, sample by sample
    phase = torch.rand(batch, n_seg, hop) * 6.0
    amps_a = torch.rand(batch, n_seg, n_h, requires_grad=grad)
    amps_b = torch.rand(batch, n_seg, n_h, requires_grad=grad)
    w_b = torch.linspace(0.0, 1.0, hop)
    args = (phase, f_sample, amps_a, amps_b, 1.0 - w_b, w_b, nyq)
    with torch.set_grad_enabled(grad):
        every = _harmonic_chunk(*args)
        work = None if grad else torch.full((batch * n_seg * n_h * hop,), float("nan"))
        skipping = _harmonic_chunk_host(*args, work=work)
    torch.testing.assert_close(skipping, every, rtol=1e-6, atol=1e-6)
    assert skipping[2].abs().max() == 0.0 and every[0].abs().max() > 0.1
    if grad:
        g = torch.randn_like(every)
        ga = torch.autograd.grad((every * g).sum(), (amps_a, amps_b))
        gs = torch.autograd.grad((_harmonic_chunk_host(*args) * g).sum(), (amps_a, amps_b))
        for x, y in zip(ga, gs):
            torch.testing.assert_close(y, x, rtol=1e-6, atol=1e-6)


def test_general_path_handles_lengths_that_are_not_a_multiple():
    f0, amps = _frames(440.0, 10, dtype=torch.float64), _frames(0.5, 10, dtype=torch.float64)
    audio = harmonic_synthesis(f0, amps, n_samples=1001, sample_rate=16000, amp_resample_method="linear")
    assert audio.shape == (1, 1001)
    n = torch.arange(1, 1002, dtype=torch.float64)
    torch.testing.assert_close(audio[0], 0.5 * torch.sin(2 * math.pi * 440.0 * n / 16000))


# --- phase accuracy -----------------------------------------------------------------------------

def _constant_tone(synth: str, f_hz: float, seconds: int, sr: int) -> torch.Tensor:
    n = seconds * sr
    if synth == "harmonic":
        n_frames = seconds * 250
        return harmonic_synthesis(_frames(f_hz, n_frames), _frames(1.0, n_frames), n_samples=n,
                                  sample_rate=sr)[0]
    return oscillator_bank(torch.full((1, n, 1), f_hz), torch.ones(1, n, 1), sr)[0]


@pytest.mark.parametrize("synth", ("harmonic", "oscillator_bank"))
@pytest.mark.parametrize("seconds,sample_rate", ((4, 16000), (60, 48000)))
def test_float32_phase_stays_on_closed_form(synth, seconds, sample_rate):
    audio = _constant_tone(synth, 440.0, seconds, sample_rate)
    assert audio.dtype == torch.float32
    ref = _closed_form_sine(440.0, seconds * sample_rate, sample_rate)
    # |sin a - sin b| <= |a - b|, with equality near zero crossings: 1e-2 bounds the phase error.
    assert (audio.double() - ref).abs().max().item() <= 1e-2


def test_naive_float32_cumsum_drifts_beyond_the_bound():
    """The phase test above is meaningful: a plain float32 running sum fails it at 60 s / 48 kHz."""
    sr, n = 48000, 60 * 48000
    naive = torch.sin(torch.cumsum(torch.full((n,), 2.0 * math.pi * 440.0 / sr), dim=0))
    assert (naive.double() - _closed_form_sine(440.0, n, sr)).abs().max().item() > 1e-2


def test_cumulative_phase_matches_float64_running_sum(seed):
    omega = torch.rand(2, 100_000) * math.pi
    phase = cumulative_phase(omega, dim=1)
    assert phase.dtype == torch.float32 and phase.shape == omega.shape
    assert bool((phase >= 0).all()) and bool((phase < 2 * math.pi + 1e-6).all())
    ref = torch.cumsum(omega.double(), dim=1)
    err = torch.angle(torch.polar(torch.ones_like(ref), phase.double() - ref))  # wrapped difference
    assert err.abs().max().item() < 1e-4


# --- glides -------------------------------------------------------------------------------------

def _exp_glide(n_frames: int = 1000, dtype=torch.float32) -> torch.Tensor:
    """100 -> 1000 Hz exponential glide, [1, n_frames, 1]."""
    t = torch.arange(n_frames, dtype=torch.float64) / (n_frames - 1)
    return (100.0 * 10.0 ** t).to(dtype)[None, :, None]


def _boundary_and_within_d2(audio: torch.Tensor, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """|second difference| straddling each frame boundary, and its max inside each frame.

    Returns ([n_frames - 1] at boundaries 1.., [n_frames] within frames). A stencil centred on
    sample i uses i - 1, i, i + 1: those centred on j hop - 1 and j hop straddle boundary j.
    """
    x = audio.double()
    d2 = (x[2:] - 2.0 * x[1:-1] + x[:-2]).abs()
    d2 = torch.cat([d2.new_zeros(1), d2, d2.new_zeros(1)]).reshape(-1, hop)  # [frame, m]
    at = torch.maximum(d2[1:, 0], d2[:-1, -1])
    within = d2[:, 1:-1].amax(1)
    return at, within


@pytest.mark.parametrize("path", ("window", "linear", "general"))
def test_glide_has_no_clicks_at_frame_boundaries(path):
    sr, hop, n_frames = 16000, 64, 1000
    f0 = _exp_glide(n_frames)
    kwargs = dict(n_samples=n_frames * hop, sample_rate=sr)
    if path == "general":  # shifts force resample + oscillator_bank
        kwargs["harmonic_shifts"] = torch.zeros(1, n_frames, 1)
    else:
        kwargs["amp_resample_method"] = path
    audio = harmonic_synthesis(f0, _frames(1.0, n_frames), **kwargs)[0]
    at, within = _boundary_and_within_d2(audio, hop)
    assert at.max() <= 1.5 * within.max()
    # Locally too (the low end of the glide has tiny second differences, so small clicks show):
    # each boundary against the frames within +-2 of it.
    local = torch.nn.functional.max_pool1d(within[None, None], 5, 1, 2)[0, 0]
    assert bool((at <= 1.5 * torch.maximum(local[1:], local[:-1])).all())


def test_glide_follows_its_integrated_frequency():
    sr, hop, n_frames = 16000, 64, 1000
    f0 = _exp_glide(n_frames)
    audio = harmonic_synthesis(f0, _frames(1.0, n_frames), n_samples=n_frames * hop, sample_rate=sr)[0]
    f_env = resample(f0.double(), n_frames * hop)[0, :, 0]  # frequency is upsampled linearly
    ref = torch.sin(torch.cumsum(2.0 * math.pi * f_env / sr, dim=0))  # inclusive running sum
    assert (audio.double() - ref).abs().max().item() < 1e-3


# --- wavetables, delay, streaming, conversions --------------------------------------------------

def test_sine_wavetable_gives_a_sine(dtype):
    sr, n_frames = 16000, 250
    table = torch.sin(2 * math.pi * torch.arange(2048, dtype=dtype) / 2048)[None]
    audio = wavetable_synthesis(_frames(440.0, n_frames, dtype=dtype), _frames(0.5, n_frames, dtype=dtype),
                                table, n_samples=sr, sample_rate=sr)[0]
    assert audio.dtype == dtype
    n = torch.arange(sr, dtype=torch.float64)
    ref = 0.5 * torch.sin(2 * math.pi * 440.0 * n / sr)  # exclusive phase: first sample at 0
    assert (audio.double() - ref).abs().max().item() < 1e-4
    assert torch.fft.rfft(audio.double()).abs().argmax().item() == 440


def test_harmonic_distribution_to_wavetable_is_a_cosine_sum():
    table = harmonic_distribution_to_wavetable(torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64), 64)
    n = torch.arange(64, dtype=torch.float64)
    ref = torch.cos(2 * math.pi * 2 * n / 64) + 0.5 * torch.cos(2 * math.pi * 3 * n / 64)
    torch.testing.assert_close(table, ref)
    with pytest.raises(ValueError, match="n_wavetable"):
        harmonic_distribution_to_wavetable(torch.ones(40), 64)


def test_linear_lookup_interpolates_and_wraps():
    table = torch.arange(8.0)[None]  # position p * 8
    phase = torch.tensor([[0.0, 0.0625, 0.5, 0.8125, 0.9375]])
    out = linear_lookup(phase, table)
    assert out[0].tolist() == pytest.approx([0.0, 0.5, 4.0, 6.5, 3.5])  # last: between 7 and 0


@pytest.mark.parametrize("phase,max_length,delay", ((0.25, 16, 4), (0.3, 10, 3), (1.0, 16, 0)))
def test_variable_length_delay_delays_by_phase_times_max_length(phase, max_length, delay, seed):
    audio = torch.randn(2, 200, dtype=torch.float64)
    out = variable_length_delay(torch.full_like(audio, phase), audio, max_length)
    torch.testing.assert_close(out[:, delay:], audio[:, :audio.shape[1] - delay])
    assert torch.equal(out[:, :delay], torch.zeros(2, delay, dtype=torch.float64))


def test_streaming_blocks_equal_one_call(seed):
    f = _frames(440.0, 10)
    a = _frames(0.5, 10)
    d = torch.rand(1, 1, 4).expand(1, 10, 4)
    first, phase = streaming_harmonic_synthesis(f, a, d, n_samples=640, sample_rate=16000)
    second, _ = streaming_harmonic_synthesis(f, a, d, initial_phase=phase, n_samples=640,
                                             sample_rate=16000)
    whole, _ = streaming_harmonic_synthesis(_frames(440.0, 20), _frames(0.5, 20), torch.cat([d, d], 1),
                                            n_samples=1280, sample_rate=16000)
    assert (torch.cat([first, second], dim=1) - whole).abs().max().item() < 1e-5


def test_harmonic_sinusoidal_round_trip(seed):
    f0 = torch.full((2, 5, 1), 200.0, dtype=torch.float64)
    amp = torch.rand(2, 5, 1, dtype=torch.float64)
    dist = torch.rand(2, 5, 8, dtype=torch.float64)
    sin_amps, sin_freqs = harmonic_to_sinusoidal(amp, dist, f0, 16000)
    torch.testing.assert_close(sin_freqs[0, 0], 200.0 * torch.arange(1, 9, dtype=torch.float64))
    harm_amp, harm_dist = sinusoidal_to_harmonic(sin_amps, sin_freqs, f0, n_harmonics=8, sample_rate=16000)
    torch.testing.assert_close(harm_amp, amp)
    torch.testing.assert_close(harm_dist, normalize_harmonics(dist))


# --- batch, dtype, gradients --------------------------------------------------------------------

def _random_controls(batch: int, n_frames: int, n_harmonics: int, dtype=torch.float32):
    f0 = (100.0 + 300.0 * torch.rand(batch, n_frames, 1)).to(dtype)
    amps = torch.rand(batch, n_frames, 1).to(dtype)
    dist = torch.rand(batch, n_frames, n_harmonics).to(dtype)
    return f0, amps, dist


@pytest.mark.parametrize("method", ("window", "linear"))
def test_harmonic_synthesis_batched_equals_per_item(method, seed):
    f0, amps, dist = _random_controls(3, 20, 6)
    kwargs = dict(n_samples=20 * 64, sample_rate=16000, amp_resample_method=method)
    batched = harmonic_synthesis(f0, amps, harmonic_distribution=dist, **kwargs)
    assert batched.shape == (3, 20 * 64)
    for i in range(3):
        single = harmonic_synthesis(f0[i:i + 1], amps[i:i + 1], harmonic_distribution=dist[i:i + 1], **kwargs)
        torch.testing.assert_close(batched[i:i + 1], single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("table_frames", (0, 1, 20))
def test_wavetable_synthesis_batched_equals_per_item(table_frames, seed):
    f0, amps, _ = _random_controls(3, 20, 1)
    tables = torch.randn(3, 64) if table_frames == 0 else torch.randn(3, table_frames, 64)
    batched = wavetable_synthesis(f0, amps, tables, n_samples=1280, sample_rate=16000)
    assert batched.shape == (3, 1280)
    for i in range(3):
        single = wavetable_synthesis(f0[i:i + 1], amps[i:i + 1], tables[i:i + 1], n_samples=1280,
                                     sample_rate=16000)
        torch.testing.assert_close(batched[i:i + 1], single, rtol=1e-5, atol=1e-6)


def test_oscillators_preserve_dtype_and_agree_across_dtypes(dtype, seed):
    f0, amps, dist = _random_controls(2, 10, 5, torch.float64)
    ref = harmonic_synthesis(f0, amps, harmonic_distribution=dist, n_samples=640)
    out = harmonic_synthesis(f0.to(dtype), amps.to(dtype), harmonic_distribution=dist.to(dtype),
                             n_samples=640)
    assert out.dtype == dtype and out.shape == ref.shape
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=ATOL[dtype])

    f_env, a_env = resample(f0, 640), resample(amps * dist, 640)
    ref = oscillator_bank(f_env * torch.arange(1, 6), a_env, 16000, sum_sinusoids=False)
    out = oscillator_bank((f_env * torch.arange(1, 6)).to(dtype), a_env.to(dtype), 16000, sum_sinusoids=False)
    assert out.dtype == dtype and out.shape == (2, 640, 5)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=ATOL[dtype])

    table = torch.randn(2, 10, 32, dtype=torch.float64)
    ref = wavetable_synthesis(f0, amps, table, n_samples=640)
    out = wavetable_synthesis(f0.to(dtype), amps.to(dtype), table.to(dtype), n_samples=640)
    assert out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=ATOL[dtype])


def test_gradcheck_oscillator_bank(seed):
    freq = (50.0 + 150.0 * torch.rand(1, 24, 2, dtype=torch.float64)).requires_grad_()
    amps = torch.rand(1, 24, 2, dtype=torch.float64).requires_grad_()
    assert gradcheck(lambda f, a: oscillator_bank(f, a, 1000.0), (freq, amps))


@pytest.mark.parametrize("path", ("window", "linear", "general"))
def test_gradcheck_harmonic_synthesis(path, seed):
    f0 = (30.0 + 20.0 * torch.rand(2, 4, 1, dtype=torch.float64)).requires_grad_()
    amps = torch.rand(2, 4, 1, dtype=torch.float64).requires_grad_()
    dist = torch.rand(2, 4, 3, dtype=torch.float64).requires_grad_()
    inputs = [f0, amps, dist]
    if path == "general":
        inputs.append((0.01 * torch.randn(2, 4, 3, dtype=torch.float64)).requires_grad_())

        def fn(f, a, d, s):
            return harmonic_synthesis(f, a, harmonic_shifts=s, harmonic_distribution=d, n_samples=32,
                                      sample_rate=1000.0)
    else:
        def fn(f, a, d):
            return harmonic_synthesis(f, a, harmonic_distribution=d, n_samples=32, sample_rate=1000.0,
                                      amp_resample_method=path)
    assert gradcheck(fn, tuple(inputs))


# --- argument checks ----------------------------------------------------------------------------

def test_harmonic_synthesis_rejects_bad_frequencies():
    amps = torch.ones(1, 10, 1)
    with pytest.raises(ValueError, match="frequencies"):
        harmonic_synthesis(torch.full((1, 10), 440.0), amps, n_samples=640)
    with pytest.raises(ValueError, match="frequencies"):
        harmonic_synthesis(torch.full((1, 10, 1), -1.0), amps, n_samples=640)
    nan_f0 = torch.full((1, 10, 1), 440.0)
    nan_f0[0, 3] = float("nan")
    with pytest.raises(ValueError, match="frequencies"):
        harmonic_synthesis(nan_f0, amps, n_samples=640)
    with pytest.raises(ValueError, match="frequencies"):
        harmonic_synthesis(torch.full((1, 10, 1), 440, dtype=torch.int64), amps, n_samples=640)


def test_harmonic_synthesis_rejects_bad_controls():
    f0 = torch.full((1, 10, 1), 440.0)
    with pytest.raises(ValueError, match="harmonic_distribution"):
        harmonic_synthesis(f0, torch.ones(1, 10, 1), harmonic_distribution=torch.ones(1, 9, 4), n_samples=640)
    with pytest.raises(ValueError, match="amplitudes"):
        harmonic_synthesis(f0, torch.ones(1, 5, 1), n_samples=640)  # n_frames differ
    with pytest.raises(ValueError, match="amplitudes"):
        harmonic_synthesis(f0.expand(2, 10, 1), torch.ones(3, 10, 1), n_samples=640)  # batch differs
    with pytest.raises(ValueError, match="n_samples"):
        harmonic_synthesis(f0, torch.ones(1, 10, 1), n_samples=0)
    with pytest.raises(ValueError, match="sample_rate"):
        harmonic_synthesis(f0, torch.ones(1, 10, 1), n_samples=640, sample_rate=-1)


def test_other_oscillators_reject_bad_input():
    with pytest.raises(ValueError, match="frequency_envelopes"):
        oscillator_bank(torch.ones(1, 100), torch.ones(1, 100, 1))
    with pytest.raises(ValueError, match="frequencies"):
        wavetable_synthesis(torch.full((1, 10, 1), -5.0), torch.ones(1, 10, 1), torch.ones(1, 64), 640)
    with pytest.raises(ValueError, match="phase"):
        variable_length_delay(torch.zeros(1, 99), torch.zeros(1, 100))
