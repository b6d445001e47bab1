"""Processors: DSP truths (band-shaped noise, impulse responses, exact delays, spectral peaks),
randomness control, batch consistency, gradients, the ProcessorGroup DAG and bad input."""
from __future__ import annotations

import math

import hydra
import pytest
import torch
from omegaconf import OmegaConf
from torch.autograd import gradcheck

from ddsp_lab import dsp
from ddsp_lab.losses import MultiScaleSpectralLoss
from ddsp_lab.processors import (Add, Crop, ExpDecayReverb, FilteredNoise, FilteredNoiseReverb,
                                 FIRFilter, Harmonic, Mix, ModDelay, ProcessorGroup, Reverb,
                                 Sinusoidal, Wavetable, get_scale_fn)

FLOAT_DTYPES = (torch.float32, torch.float64)


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _noise(shape: tuple[int, ...], seed: int, dtype=torch.float64) -> torch.Tensor:
    """Uniform(-1, 1), as the processors draw it."""
    return torch.rand(shape, generator=_gen(seed), dtype=dtype) * 2.0 - 1.0


def _peak_hz(audio: torch.Tensor, sample_rate: int) -> float:
    spec = torch.fft.rfft(audio[0].double()).abs()
    return spec.argmax().item() * sample_rate / audio.shape[-1]


# ---------------------------------------------------------------- FilteredNoise spectrum


@pytest.mark.parametrize("fdtype", FLOAT_DTYPES)
def test_filtered_noise_spectrum_follows_band_profile(fdtype):
    # 65 bands (0 .. Nyquist) in four steps spanning 26 dB, constant over time, linear amplitude.
    steps = ((0, 16, 1.0), (16, 32, 0.1), (32, 48, 0.5), (48, 65, 2.0))
    mags = torch.zeros(65, dtype=fdtype)
    for lo, hi, level in steps:
        mags[lo:hi] = level
    synth = FilteredNoise(n_samples=16000, window_size=0, scale_fn=None)
    audio = synth(mags.expand(32, 1, 65), generator=_gen(0))
    assert audio.shape == (32, 16000) and audio.dtype == fdtype

    # Welch: Hann frames of 512 (31.25 Hz bins; band k of the 128-tap filter = bin 4 k), 50 % hop.
    n_fft = 512
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    frames = audio[:, 256:].double().unfold(-1, n_fft, n_fft // 2) * window
    psd = (torch.fft.rfft(frames).abs() ** 2).mean((0, 1)) / (window ** 2).sum()
    noise_power = 1.0 / 3.0  # uniform(-1, 1)
    for lo, hi, level in steps:
        bins = torch.arange(4 * (lo + 3), min(4 * (hi - 4), n_fft // 2) + 1)  # away from the steps
        measured_db = 10.0 * torch.log10(psd[bins])
        expected_db = 10.0 * math.log10(level ** 2 * noise_power)
        err = (measured_db - expected_db).abs().max().item()
        assert err < 1.0, f"band {lo}..{hi} (|H| = {level}): off by {err:.2f} dB"


# ---------------------------------------------------------------- randomness


def test_filtered_noise_generator_seeds():
    synth = FilteredNoise(n_samples=2000, window_size=65)
    raw = torch.randn(2, 10, 17, generator=_gen(5))
    a = synth(raw, generator=_gen(1))
    b = synth(raw, generator=_gen(1))
    c = synth(raw, generator=_gen(2))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3 * a.abs().max()
    # The generator attribute is used when no argument is given.
    synth.generator = _gen(1)
    torch.testing.assert_close(synth(raw), a, rtol=0, atol=0)


def test_filtered_noise_injected_noise_is_frequency_filter():
    synth = FilteredNoise(n_samples=2000, window_size=65)
    raw = torch.randn(3, 10, 17, generator=_gen(5), dtype=torch.float64)
    mags = synth.get_controls(raw)["magnitudes"]
    torch.testing.assert_close(mags, dsp.exp_sigmoid(raw - 5.0))  # initial_bias -5
    noise = _noise((3, 2000), seed=7)
    expected = dsp.frequency_filter(noise, mags, window_size=65)
    torch.testing.assert_close(synth.get_signal(mags, noise=noise), expected, rtol=0, atol=0)
    # Deterministic whatever the generator says; forward == get_signal(get_controls).
    torch.testing.assert_close(synth(raw, noise=noise, generator=_gen(1)), expected)
    torch.testing.assert_close(synth(raw, noise=noise, generator=_gen(2)), expected)
    # Batch-1 noise is shared by every item.
    shared = noise[:1]
    torch.testing.assert_close(synth.get_signal(mags, noise=shared),
                               dsp.frequency_filter(shared.expand(3, -1), mags, window_size=65))
    with pytest.raises(ValueError, match="noise"):
        synth.get_signal(mags, noise=noise[:, :1000])


def test_exp_decay_reverb_injected_noise_and_seeds():
    n_ir = 400
    rev = ExpDecayReverb(reverb_length=n_ir)
    audio = torch.randn(2, 1000, generator=_gen(0), dtype=torch.float64)
    gain = torch.tensor([[0.5], [-1.0]], dtype=torch.float64)
    decay = torch.tensor([[1.0], [3.0]], dtype=torch.float64)
    noise = _noise((1, n_ir), seed=3)
    ir = rev.get_controls(audio, gain, decay, noise=noise)["ir"]
    t = torch.linspace(0.0, 1.0, n_ir, dtype=torch.float64)
    expected_ir = dsp.exp_sigmoid(gain) * torch.exp(-(2.0 + torch.exp(decay)) * t) * noise
    torch.testing.assert_close(ir, expected_ir)
    out = rev(audio, gain, decay, noise)
    wet = dsp.fft_convolve(audio, torch.nn.functional.pad(expected_ir[:, 1:], (1, 0)),
                           padding="same", delay_compensation=0)
    torch.testing.assert_close(out, wet + audio)
    torch.testing.assert_close(rev(audio, gain, decay, noise), out, rtol=0, atol=0)
    # Seeded noise through the generator attribute.
    outs = []
    for seed in (1, 1, 2):
        rev.generator = _gen(seed)
        outs.append(rev(audio, gain, decay))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert (outs[0] - outs[2]).abs().max() > 1e-6


def test_filtered_noise_reverb_injected_noise_and_seeds():
    n_ir, n_frames, n_banks = 600, 6, 8
    rev = FilteredNoiseReverb(reverb_length=n_ir, window_size=33, n_frames=n_frames,
                              n_filter_banks=n_banks)
    audio = torch.randn(2, 1500, generator=_gen(0), dtype=torch.float64)
    raw = torch.randn(2, n_frames, n_banks, generator=_gen(1), dtype=torch.float64)
    noise = _noise((2, n_ir), seed=4)
    ir = rev.get_controls(audio, raw, noise=noise)["ir"]
    expected_ir = dsp.frequency_filter(noise, dsp.exp_sigmoid(raw - 3.0), window_size=33)
    torch.testing.assert_close(ir, expected_ir, rtol=0, atol=0)
    torch.testing.assert_close(rev(audio, raw, noise), rev(audio, raw, noise), rtol=0, atol=0)
    outs = []
    for seed in (1, 1, 2):
        rev.generator = _gen(seed)
        assert rev.noise_synth.generator is rev.generator
        outs.append(rev(audio, raw))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert (outs[0] - outs[2]).abs().max() > 1e-6


# ---------------------------------------------------------------- Reverb


@pytest.mark.parametrize("fdtype", FLOAT_DTYPES)
def test_reverb_of_impulse_is_masked_ir(fdtype):
    n_ir, n = 100, 300
    ir = torch.randn(1, n_ir, generator=_gen(0), dtype=fdtype)
    delta = torch.zeros(1, n, dtype=fdtype)
    delta[0, 0] = 1.0
    expected = ir.clone()
    expected[0, 0] = 0.0  # dry mask
    tol = dict(rtol=1e-5, atol=1e-5) if fdtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)

    wet = Reverb(trainable=False, add_dry=False)(delta, ir)
    assert wet.shape == (1, n) and wet.dtype == fdtype
    torch.testing.assert_close(wet[:, :n_ir], expected, **tol)
    torch.testing.assert_close(wet[:, n_ir:], torch.zeros(1, n - n_ir, dtype=fdtype), **tol)

    mixed = Reverb(trainable=False, add_dry=True)(delta, ir)
    expected[0, 0] = 1.0
    torch.testing.assert_close(mixed[:, :n_ir], expected, **tol)


def test_trainable_reverb_parameter_receives_gradients():
    rev = Reverb(trainable=True, reverb_length=64)
    params = dict(rev.named_parameters())
    assert list(params) == ["ir"] and params["ir"].shape == (64,)
    audio = torch.randn(3, 256, generator=_gen(0))
    torch.testing.assert_close(rev.get_controls(audio)["ir"], rev.ir.expand(3, 64))
    rev(audio).pow(2).sum().backward()
    grad = rev.ir.grad
    assert torch.isfinite(grad).all()
    assert (grad[1:].abs() > 0).all()
    assert grad[0] == 0  # the masked dry tap does not reach the output


def test_reverb_gradcheck_wrt_ir_and_audio():
    audio = torch.randn(2, 48, generator=_gen(0), dtype=torch.float64, requires_grad=True)
    ir = torch.randn(2, 16, generator=_gen(1), dtype=torch.float64, requires_grad=True)
    rev = Reverb(trainable=False, add_dry=True)
    assert gradcheck(lambda a, h: rev(a, h), (audio, ir))


def test_fir_filter_gradcheck_wrt_audio_and_magnitudes():
    audio = torch.randn(1, 32, generator=_gen(0), dtype=torch.float64, requires_grad=True)
    raw = torch.randn(1, 2, 9, generator=_gen(1), dtype=torch.float64, requires_grad=True)
    for window_size in (0, 9):  # full 16-tap IR, and a trimmed one
        fir = FIRFilter(window_size=window_size)
        assert gradcheck(lambda a, m: fir(a, m), (audio, raw))


def test_harmonic_gradcheck_wrt_amplitudes_and_distribution():
    synth = Harmonic(n_samples=64, sample_rate=1000, n_harmonics=3)
    f0 = torch.tensor([[[60.0], [80.0], [100.0], [90.0]]], dtype=torch.float64)
    amp = torch.randn(1, 4, 1, generator=_gen(0), dtype=torch.float64, requires_grad=True)
    dist = torch.randn(1, 4, 3, generator=_gen(1), dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, d: synth(a, d, f0), (amp, dist))


# ---------------------------------------------------------------- Harmonic controls


@pytest.mark.parametrize("normalize", (True, False))
def test_harmonic_distribution_renormalised_below_nyquist(normalize):
    # f0 3 kHz at 16 kHz: harmonics 3 and 6 kHz are audible, 9 and 12 kHz are not.
    synth = Harmonic(n_samples=16000, sample_rate=16000, scale_fn=None,
                     normalize_below_nyquist=normalize)
    amps = torch.full((1, 100, 1), 0.8, dtype=torch.float64)
    f0 = torch.full((1, 100, 1), 3000.0, dtype=torch.float64)
    controls = synth.get_controls(amps, torch.ones(1, 100, 4, dtype=torch.float64), f0)
    want = [0.5, 0.5, 0.0, 0.0] if normalize else [0.25] * 4
    torch.testing.assert_close(controls["harmonic_distribution"][0, 0],
                               torch.tensor(want, dtype=torch.float64))
    audio = synth.get_signal(**controls)
    spectrum = torch.fft.rfft(audio[0]).abs() * 2.0 / audio.shape[-1]  # 1 Hz bins, sine amplitude
    for hz in (3000, 6000):
        assert spectrum[hz].item() == pytest.approx(0.8 * want[0], abs=1e-6)
    assert spectrum.sum() - spectrum[3000] - spectrum[6000] < 1e-6  # nothing else, no aliases


def test_harmonic_scales_raw_controls_with_exp_sigmoid():
    synth = Harmonic(n_samples=1000, sample_rate=16000)
    raw_amp = torch.randn(2, 10, 1, generator=_gen(0))
    raw_dist = torch.randn(2, 10, 6, generator=_gen(1))
    f0 = torch.full((2, 10, 1), 100.0)
    controls = synth.get_controls(raw_amp, raw_dist, f0)
    torch.testing.assert_close(controls["amplitudes"], dsp.exp_sigmoid(raw_amp))
    dist = dsp.exp_sigmoid(raw_dist)
    torch.testing.assert_close(controls["harmonic_distribution"], dist / dist.sum(-1, keepdim=True))


# ---------------------------------------------------------------- Harmonic fits a tone


def test_harmonic_gradient_descent_fits_target_tone():
    torch.manual_seed(0)
    n_frames, n_samples, n_harmonics = 250, 16000, 16
    synth = Harmonic(n_samples=n_samples, sample_rate=16000, n_harmonics=n_harmonics)
    f0 = torch.full((1, n_frames, 1), 220.0)
    target_amp = torch.full((1, n_frames, 1), -1.0)
    target_dist = (torch.rand(1, 1, n_harmonics, generator=_gen(1)) * 4.0 - 2.0).expand(1, n_frames, -1)
    with torch.no_grad():
        target = synth(target_amp, target_dist, f0)
    loss_fn = MultiScaleSpectralLoss(fft_sizes=(1024, 256, 64))
    # Raw (pre exp_sigmoid) controls, constant over time, from the zero init.
    amp = torch.zeros(1, 1, 1, requires_grad=True)
    dist = torch.zeros(1, 1, n_harmonics, requires_grad=True)
    opt = torch.optim.Adam([amp, dist], lr=0.05)

    def loss() -> torch.Tensor:
        return loss_fn(target, synth(amp.expand(1, n_frames, 1), dist.expand(1, n_frames, -1), f0))

    with torch.no_grad():
        initial = loss().item()
    for _ in range(150):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    with torch.no_grad():
        final = loss().item()
    assert final < 0.1 * initial, f"spectral loss {initial:.3f} -> {final:.3f}"
    fitted = dsp.exp_sigmoid(amp).item()
    wanted = dsp.exp_sigmoid(torch.tensor(-1.0)).item()
    assert abs(fitted - wanted) < 0.1 * wanted, f"amplitude {fitted:.4f}, target {wanted:.4f}"


# ---------------------------------------------------------------- ProcessorGroup

GROUP_YAML = """
_target_: ddsp_lab.processors.ProcessorGroup
nodes:
  - processor: {_target_: ddsp_lab.processors.Harmonic, n_samples: 4000, sample_rate: 16000,
                n_harmonics: 8}
    inputs: [amps, harmonic_distribution, f0_hz]
    name: harmonic
  - processor: {_target_: ddsp_lab.processors.FilteredNoise, n_samples: 4000, window_size: 65,
                n_bands: 33}
    inputs: [noise_magnitudes]
    name: noise
  - processor: {_target_: ddsp_lab.processors.Add}
    inputs: [harmonic, noise]
    name: add
  - processor: {_target_: ddsp_lab.processors.Reverb, trainable: true, reverb_length: 800}
    inputs: [add]
    name: reverb
"""


def _group_features(batch: int = 2, n_frames: int = 50) -> dict[str, torch.Tensor]:
    g = _gen(0)
    return {"amps": torch.randn(batch, n_frames, 1, generator=g),
            "harmonic_distribution": torch.randn(batch, n_frames, 8, generator=g),
            "f0_hz": torch.full((batch, n_frames, 1), 220.0) * torch.tensor([1.0, 1.5])[:batch, None, None],
            "noise_magnitudes": torch.randn(batch, n_frames, 33, generator=g)}


def test_processor_group_from_yaml_matches_manual_composition():
    group = hydra.utils.instantiate(OmegaConf.create(GROUP_YAML))
    assert isinstance(group, ProcessorGroup)
    assert group.names == ["harmonic", "noise", "add", "reverb"]
    assert group.external_inputs() == {"amps": 1, "harmonic_distribution": 8, "f0_hz": 1,
                                       "noise_magnitudes": 33}
    reverb = group.processors[3]
    with torch.no_grad():
        reverb.ir.copy_(torch.randn(800, generator=_gen(9)) * 0.1)
    group.processors[1].generator = _gen(3)
    features = _group_features()
    with torch.no_grad():
        out = group.run(features)

    expected_keys = set(features) | {
        "harmonic", "harmonic/amplitudes", "harmonic/harmonic_distribution", "harmonic/f0_hz",
        "noise", "noise/magnitudes", "add", "add/signal_one", "add/signal_two",
        "reverb", "reverb/audio", "reverb/ir"}
    assert set(out) == expected_keys
    for key, value in features.items():
        assert out[key] is value

    # Manual composition with fresh processors and the same noise (seed 3).
    harmonic = Harmonic(n_samples=4000, sample_rate=16000, n_harmonics=8)(
        features["amps"], features["harmonic_distribution"], features["f0_hz"])
    noise = FilteredNoise(n_samples=4000, window_size=65, n_bands=33)(
        features["noise_magnitudes"], noise=_noise((2, 4000), seed=3, dtype=torch.float32))
    added = harmonic + noise
    ir = reverb.ir.detach()
    wet = dsp.fft_convolve(added, torch.nn.functional.pad(ir[1:], (1, 0)).expand(2, -1),
                           padding="same", delay_compensation=0)
    tol = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["harmonic"], harmonic, **tol)
    torch.testing.assert_close(out["noise"], noise, **tol)
    torch.testing.assert_close(out["add"], added, **tol)
    torch.testing.assert_close(out["reverb"], wet + added, **tol)
    torch.testing.assert_close(out["reverb/ir"], ir.expand(2, -1))
    torch.testing.assert_close(out["noise/magnitudes"],
                               dsp.exp_sigmoid(features["noise_magnitudes"] - 5.0))
    assert out["harmonic/harmonic_distribution"].sum(-1).sub(1.0).abs().max() < 1e-5
    group.processors[1].generator = _gen(3)
    with torch.no_grad():
        torch.testing.assert_close(group(features), out["reverb"], rtol=0, atol=0)


def test_processor_group_missing_key_raises_naming_it():
    group = hydra.utils.instantiate(OmegaConf.create(GROUP_YAML))
    features = _group_features()
    del features["f0_hz"]
    with pytest.raises(ValueError, match="f0_hz"):
        group.run(features)
    dangling = ProcessorGroup([
        {"processor": FilteredNoise(n_samples=4000, window_size=65), "inputs": ["noise_magnitudes"],
         "name": "noise"},
        {"processor": Add(), "inputs": ["noise", "no_such_signal"], "name": "sum"}])
    with pytest.raises(ValueError, match="no_such_signal"):
        dangling.run(_group_features())


def test_processor_group_bad_definitions_raise():
    def node(name: str) -> dict:
        return {"processor": FilteredNoise(n_samples=4000), "inputs": ["m"], "name": name}

    with pytest.raises(ValueError, match="'a'"):
        ProcessorGroup([node("a"), node("a")])
    with pytest.raises(ValueError, match="empty"):
        ProcessorGroup([])
    with pytest.raises(ValueError, match="nowhere"):
        ProcessorGroup([node("a")], output="nowhere")
    with pytest.raises(ValueError, match="Add"):
        ProcessorGroup([node("a"), {"processor": Add(), "inputs": ["a"], "name": "b"}])


# ---------------------------------------------------------------- every processor, every rate

# (sample_rate, frame_rate): frame rates dividing the sample rate; 0.2 s = 5 Hz FFT bins.
RATES = ((16000, 250), (22050, 150), (44100, 100), (48000, 250))
PROCESSOR_NAMES = ("Harmonic", "FilteredNoise", "Wavetable", "Sinusoidal", "Reverb",
                   "ExpDecayReverb", "FilteredNoiseReverb", "FIRFilter", "ModDelay")


def _run_processor(name: str, sample_rate: int, frame_rate: int, dtype) -> tuple[torch.Tensor, float | None]:
    """Returns (audio, expected spectral peak in Hz or None)."""
    batch, n = 2, sample_rate // 5
    n_frames = n * frame_rate // sample_rate
    g = _gen(0)
    audio = torch.randn(batch, n, generator=g, dtype=dtype)
    f0 = torch.full((batch, n_frames, 1), 440.0, dtype=dtype)
    half = torch.full((batch, n_frames, 1), 0.5, dtype=dtype)
    n_ir = sample_rate // 10
    if name == "Harmonic":
        dist = torch.zeros(batch, n_frames, 4, dtype=dtype)
        dist[..., 0] = 1.0
        dist[..., 2] = 0.5
        return Harmonic(n, sample_rate, scale_fn=None, n_harmonics=4)(half, dist, f0), 440.0
    if name == "Wavetable":
        table = torch.sin(2 * math.pi * torch.arange(64, dtype=dtype) / 64).expand(batch, 64)
        return Wavetable(n, sample_rate, scale_fn=None)(half, table, f0), 440.0
    if name == "Sinusoidal":
        amps = torch.tensor([0.5, 0.2], dtype=dtype).expand(batch, n_frames, 2)
        freqs = torch.tensor([440.0, 1500.0], dtype=dtype).expand(batch, n_frames, 2)
        return Sinusoidal(n, sample_rate, amp_scale_fn=None, freq_scale_fn=None)(amps, freqs), 440.0
    if name == "FilteredNoise":
        mags = torch.randn(batch, n_frames, 33, generator=g, dtype=dtype)
        return FilteredNoise(n, window_size=257)(mags, generator=_gen(1)), None
    if name == "Reverb":
        return Reverb(trainable=True, reverb_length=n_ir)(audio), None
    if name == "ExpDecayReverb":
        gain, decay = half[:, 0], half[:, 0] * 4.0
        rev = ExpDecayReverb(reverb_length=n_ir)
        rev.generator = _gen(1)
        return rev(audio, gain, decay), None
    if name == "FilteredNoiseReverb":
        rev = FilteredNoiseReverb(reverb_length=n_ir, n_frames=5, n_filter_banks=16)
        rev.generator = _gen(1)
        return rev(audio, torch.randn(batch, 5, 16, generator=g, dtype=dtype)), None
    if name == "FIRFilter":
        mags = torch.randn(batch, n_frames, 33, generator=g, dtype=dtype)
        return FIRFilter(window_size=65)(audio, mags), None
    if name == "ModDelay":
        gain = torch.randn(batch, n_frames, 1, generator=g, dtype=dtype)
        phase = torch.randn(batch, n_frames, 1, generator=g, dtype=dtype)
        return ModDelay(sample_rate=sample_rate)(audio, gain, phase), None
    raise KeyError(name)


@pytest.mark.parametrize("fdtype", FLOAT_DTYPES)
@pytest.mark.parametrize("sample_rate,frame_rate", RATES)
@pytest.mark.parametrize("name", PROCESSOR_NAMES)
def test_every_processor_at_common_rates(name, sample_rate, frame_rate, fdtype):
    out, peak_hz = _run_processor(name, sample_rate, frame_rate, fdtype)
    assert out.shape == (2, sample_rate // 5)
    assert out.dtype == fdtype
    assert torch.isfinite(out).all()
    assert out.abs().max() > 1e-3
    if peak_hz is not None:
        assert _peak_hz(out, sample_rate) == pytest.approx(peak_hz, abs=1e-9)


# ---------------------------------------------------------------- batched == per item


def _assert_batch_consistent(fn, *batched: torch.Tensor) -> None:
    out = fn(*batched)
    for i in range(out.shape[0]):
        single = fn(*(x[i:i + 1] for x in batched))
        torch.testing.assert_close(out[i:i + 1], single, rtol=1e-10, atol=1e-10)


def test_batched_equals_per_item():
    g, b, n, t = _gen(0), 3, 4000, 50
    kw = dict(generator=g, dtype=torch.float64)
    audio = torch.randn(b, n, **kw)
    f0 = torch.tensor([110.0, 220.0, 330.0], dtype=torch.float64)[:, None, None] * (
        1.0 + 0.1 * torch.rand(b, t, 1, **kw))
    harmonic = Harmonic(n, 16000, n_harmonics=10)
    _assert_batch_consistent(harmonic, torch.randn(b, t, 1, **kw), torch.randn(b, t, 10, **kw), f0)
    noise_synth = FilteredNoise(n, window_size=65)
    _assert_batch_consistent(lambda m, z: noise_synth(m, noise=z), torch.randn(b, t, 33, **kw),
                             torch.rand(b, n, **kw) * 2 - 1)
    _assert_batch_consistent(FIRFilter(window_size=65), audio, torch.randn(b, t, 33, **kw))
    _assert_batch_consistent(Reverb(add_dry=True), audio, torch.randn(b, 300, **kw))
    _assert_batch_consistent(ModDelay(sample_rate=16000), audio, torch.randn(b, t, 1, **kw),
                             torch.randn(b, t, 1, **kw))


# ---------------------------------------------------------------- ModDelay


@pytest.mark.parametrize("phase,delay", ((0.0, 16), (0.25, 20), (0.5, 24), (0.75, 28)))
@pytest.mark.parametrize("frame_rate_controls", (False, True))
def test_mod_delay_constant_phase_delays_impulse_exactly(phase, delay, frame_rate_controls):
    # center 1 ms + depth 1 ms at 16 kHz: max_length 32 taps, delay = 16 + 16 phase samples.
    fx = ModDelay(center_ms=1.0, depth_ms=1.0, sample_rate=16000, gain_scale_fn=None,
                  phase_scale_fn=None, add_dry=False)
    n, at = 400, 100
    audio = torch.zeros(1, n, dtype=torch.float64)
    audio[0, at] = 1.0
    steps = 10 if frame_rate_controls else n
    gain = torch.ones(1, steps, 1, dtype=torch.float64)
    out = fx(audio, gain, torch.full((1, steps, 1), phase, dtype=torch.float64))
    expected = torch.zeros_like(audio)
    expected[0, at + delay] = 1.0
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("phase,delay,scale", (
    (0.9375, 31, 1.0),            # delay 31: just inside the 32-tap line
    (1.0, 0, 1.0),                # delay 32 = max_length wraps to the undelayed sample
    (1.03125, 0, 0.5),            # delay 32.5: half way from the wrapped tap to silence
    (1.0625, None, 0.0),          # delay 33 = max_length + 1: silence
    (1.5, None, 0.0),             # delay 40: past the line, silence
    (3.0, None, 0.0),
    (math.inf, None, 0.0),
    (-1.0, 0, 1.0),               # delay 0
    (-1.03125, 0, 0.5),           # delay -0.5: half way to silence
    (-1.0625, None, 0.0),         # delay -1: silence
    (-1.5, None, 0.0),
    (-math.inf, None, 0.0),
))
@pytest.mark.parametrize("fdtype", FLOAT_DTYPES)
def test_mod_delay_phase_outside_unit_range_reads_silence_past_the_line(phase, delay, scale, fdtype):
    # No phase_scale_fn: center 1 ms + depth 1 ms at 16 kHz, max_length 32, delay = 16 + 16 phase.
    fx = ModDelay(center_ms=1.0, depth_ms=1.0, sample_rate=16000, gain_scale_fn=None,
                  phase_scale_fn=None, add_dry=False)
    n, at = 200, 60
    audio = torch.zeros(1, n, dtype=fdtype)
    audio[0, at] = 1.0
    out = fx(audio, torch.ones(1, n, 1, dtype=fdtype), torch.full((1, n, 1), phase, dtype=fdtype))
    expected = torch.zeros_like(audio)
    if delay is not None:
        expected[0, at + delay] = scale
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def _reference_variable_length_delay(phase: torch.Tensor, audio: torch.Tensor, max_length: int) -> torch.Tensor:
    """ddsp.core.variable_length_delay restated: relu(1 - |p - k| max_length) weights over the reversed
    causal frames of max_length samples with their first entry appended, for any phase."""
    frames = torch.nn.functional.pad(audio, (max_length - 1, 0)).unfold(-1, max_length, 1).flip(-1)
    table = torch.cat([frames, frames[..., :1]], dim=-1)  # [b, n, max_length + 1]
    grid = torch.linspace(0.0, 1.0, max_length + 1, dtype=phase.dtype)
    weights = torch.relu(1.0 - (phase[..., None] - grid).abs() * max_length)
    return (weights * table).sum(-1)


def test_variable_length_delay_matches_reference_lookup_for_any_phase():
    audio = torch.randn(2, 500, generator=_gen(3), dtype=torch.float64)
    phase = torch.rand(2, 500, generator=_gen(4), dtype=torch.float64) * 3.0 - 1.0  # [-1, 2)
    out = dsp.variable_length_delay(phase[..., None], audio, max_length=24)
    torch.testing.assert_close(out, _reference_variable_length_delay(phase, audio, 24), rtol=0, atol=1e-12)


def test_variable_length_delay_gradcheck_across_the_line_end():
    audio = torch.randn(1, 40, generator=_gen(5), dtype=torch.float64, requires_grad=True)
    # positions 0.3 .. 17.7 on an 8-tap line: inside, across the wrapped tap, and past it
    phase = (torch.linspace(0.3, 17.7, 40, dtype=torch.float64) / 8.0)[None].requires_grad_()
    assert gradcheck(lambda p, a: dsp.variable_length_delay(p, a, max_length=8), (phase, audio))


def test_mod_delay_add_dry_and_gain():
    fx = ModDelay(center_ms=1.0, depth_ms=1.0, sample_rate=16000, gain_scale_fn=None,
                  phase_scale_fn=None, add_dry=True)
    audio = torch.zeros(1, 200, dtype=torch.float64)
    audio[0, 10] = 1.0
    out = fx(audio, torch.full((1, 200, 1), 0.5, dtype=torch.float64),
             torch.full((1, 200, 1), 0.5, dtype=torch.float64))
    expected = audio.clone()
    expected[0, 10 + 24] = 0.5
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- Add, Mix, Crop


def test_add():
    a, b = torch.randn(2, 50), torch.randn(2, 50)
    torch.testing.assert_close(Add()(a, b), a + b)
    with pytest.raises(ValueError, match="Add"):
        Add()(a, b[:, :40])


def test_mix_semantics():
    s1, s2 = torch.ones(2, 100, dtype=torch.float64), torch.full((2, 100), 2.0, dtype=torch.float64)
    mix = Mix()

    def level(x: float) -> torch.Tensor:
        return torch.full((2, 5), x, dtype=torch.float64)

    torch.testing.assert_close(mix(s1, s2, level(20.0)), torch.full_like(s1, 3.0), rtol=0, atol=1e-3)
    torch.testing.assert_close(mix(s1, s2, level(-20.0)), torch.zeros_like(s1), rtol=0, atol=1e-3)
    m = 0.5  # sigmoid(0)
    expected = math.sqrt(m) * 1.0 + (1.0 - math.sqrt(1.0 - m)) * 2.0
    torch.testing.assert_close(mix(s1, s2, level(0.0)), torch.full_like(s1, expected))
    # Frame-rate levels are upsampled linearly to the signals' length.
    ramp = torch.tensor([[-20.0, 20.0]], dtype=torch.float64)
    out, controls = mix.forward_with_controls(s1[:1], s2[:1], ramp)
    assert controls["mix_level"].shape[:2] == (1, 100)
    assert out[0, 0] < 1e-3 and abs(out[0, -1] - 3.0) < 1e-3
    assert (out.diff(dim=-1) >= -1e-12).all()


def test_mix_accepts_frame_controls_like_other_processors():
    # Controls are [batch, n_frames, 1] throughout the library; audio is [batch, n_samples].
    for batch in (1, 2):
        s1, s2 = torch.ones(batch, 100), torch.full((batch, 100), 2.0)
        out = Mix()(s1, s2, torch.full((batch, 5, 1), 20.0))
        assert out.shape == (batch, 100)
        torch.testing.assert_close(out, torch.full((batch, 100), 3.0), rtol=0, atol=1e-3)


def test_crop():
    audio = torch.arange(20.0)[None].expand(2, -1)
    torch.testing.assert_close(Crop(4, "front")(audio), audio[:, 4:])
    torch.testing.assert_close(Crop(4, "back")(audio), audio[:, :16])
    torch.testing.assert_close(Crop(4, "center")(audio), audio[:, 2:18])
    with pytest.raises(ValueError, match="crop_location"):
        Crop(4, "middle")


# ---------------------------------------------------------------- bad input


def test_harmonic_bad_distribution_rank_raises():
    synth = Harmonic(n_samples=1000, n_harmonics=None)
    with pytest.raises(ValueError, match="harmonic_distribution"):
        synth(torch.zeros(1, 10, 1), torch.zeros(1, 10), torch.full((1, 10, 1), 100.0))
    with pytest.raises(ValueError, match="harmonic_distribution"):
        Harmonic(n_samples=1000, n_harmonics=4)(torch.zeros(1, 10, 1), torch.zeros(1, 10, 5),
                                                torch.full((1, 10, 1), 100.0))


def test_reverb_without_ir_raises():
    with pytest.raises(ValueError, match="ir"):
        Reverb(trainable=False)(torch.zeros(1, 100))
    with pytest.raises(ValueError, match="audio"):
        Reverb(trainable=True, reverb_length=10)(torch.zeros(1, 1, 100))


def test_unknown_scale_fn_raises():
    with pytest.raises(ValueError, match="not_a_scale_fn"):
        get_scale_fn("not_a_scale_fn")
    for make in (lambda: Harmonic(scale_fn="nope"), lambda: FilteredNoise(scale_fn="nope"),
                 lambda: ModDelay(phase_scale_fn="nope"), lambda: FIRFilter(scale_fn="nope")):
        with pytest.raises(ValueError, match="scale_fn"):
            make()
    assert get_scale_fn(None) is None
    x = torch.randn(5)
    torch.testing.assert_close(get_scale_fn("exp_sigmoid")(x), dsp.exp_sigmoid(x))


def test_harmonic_tilt_prior_weights_harmonic_k_by_tilt_log2_k_db():
    from ddsp_lab.processors import Harmonic

    synth = Harmonic(n_samples=640, sample_rate=16000, n_harmonics=8, tilt_db_per_octave=-6.0)
    flat = Harmonic(n_samples=640, sample_rate=16000, n_harmonics=8)
    raw = dict(amplitudes=torch.zeros(1, 10, 1), harmonic_distribution=torch.zeros(1, 10, 8),
               f0_hz=torch.full((1, 10, 1), 100.0))
    dist = synth.get_controls(**raw)["harmonic_distribution"][0, 0]
    torch.testing.assert_close(dist[[1, 3, 7]] / dist[[0, 1, 3]], torch.full((3,), 10 ** (-6 / 20)))  # per octave
    torch.testing.assert_close(dist.sum(), torch.tensor(1.0))
    torch.testing.assert_close(flat.get_controls(**raw)["harmonic_distribution"][0, 0], torch.full((8,), 1 / 8))
