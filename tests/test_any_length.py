"""One model, any length: synths render the length asked for per call (or of the batch's audio, or
n_frames * hop), the preprocessor and encoders keep the input's frames, decoders decode any number
of frames, and a processor with no length at all says so."""
from __future__ import annotations

import math

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir

from ddsp_lab import dsp
from ddsp_lab.conf import CONF_DIR
from ddsp_lab.features import compute_loudness_frames
from ddsp_lab.networks import (EncoderChain, F0LoudnessPreprocessor, F0ResNetEncoder, MlpDecoder, RnnFcDecoder,
                               ZEncoder)
from ddsp_lab.processors import Add, FilteredNoise, Harmonic, ProcessorGroup, Reverb, Sinusoidal, Wavetable

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")
FRAME_RATE = 250
SYNTHS = ("Harmonic", "FilteredNoise", "Wavetable", "Sinusoidal")


def _synth(name: str, sample_rate: int, n_samples: int | None = None):
    """A synth without scaling (controls are linear amplitudes / Hz) and its controls for n_frames:
    a steady 440 Hz tone (white noise for FilteredNoise)."""
    if name == "Harmonic":
        proc = Harmonic(n_samples, sample_rate, scale_fn=None, n_harmonics=3)
    elif name == "FilteredNoise":
        proc = FilteredNoise(n_samples, window_size=65, scale_fn=None)
        proc.generator = torch.Generator().manual_seed(0)
    elif name == "Wavetable":
        proc = Wavetable(n_samples, sample_rate, scale_fn=None)
    else:
        proc = Sinusoidal(n_samples, sample_rate, amp_scale_fn=None, freq_scale_fn=None)

    def controls(n_frames: int) -> tuple[torch.Tensor, ...]:
        f0, half = torch.full((1, n_frames, 1), 440.0), torch.full((1, n_frames, 1), 0.5)
        if name == "Harmonic":
            return half, torch.tensor([1.0, 0.0, 0.5]).expand(1, n_frames, 3), f0
        if name == "FilteredNoise":
            return (torch.ones(1, n_frames, 17),)
        if name == "Wavetable":
            return half, torch.sin(2 * math.pi * torch.arange(64) / 64)[None], f0
        return half, f0

    return proc, controls


@pytest.mark.parametrize("sample_rate", (16000, 48000))
@pytest.mark.parametrize("name", SYNTHS)
def test_each_synth_renders_half_a_second_four_and_sixty_from_as_many_frames(name, sample_rate):
    """One instance, three lengths: the audio is as long as asked, finite, sounding to its last
    0.1 s, and a tone stays at 440 Hz at the end (a wrong frame-to-sample mapping would move it)."""
    proc, controls = _synth(name, sample_rate)
    for seconds in (0.5, 4.0, 60.0):
        n_frames, n = int(seconds * FRAME_RATE), int(seconds * sample_rate)
        with torch.no_grad():
            audio = proc(*controls(n_frames), n_samples=n)
        assert audio.shape == (1, n) and bool(torch.isfinite(audio).all()), (seconds, audio.shape)
        tail = audio[0, -sample_rate // 10:]
        assert float(tail.square().mean().sqrt()) > 0.1 * float(audio.square().mean().sqrt()), seconds
        if name != "FilteredNoise":
            last = audio[0, -sample_rate // 4:]  # 0.25 s: 4 Hz bins
            assert 4.0 * int(torch.fft.rfft(last).abs().argmax()) == 440.0, seconds


@pytest.mark.parametrize("name", SYNTHS)
def test_a_fixed_constructor_length_is_the_default_and_the_call_overrides_it(name):
    fixed, controls = _synth(name, 16000, n_samples=1600)
    free, _ = _synth(name, 16000)
    with torch.no_grad():
        assert fixed(*controls(25)).shape == (1, 1600)
        assert fixed(*controls(25), n_samples=3200).shape == (1, 3200)
        fixed.generator = free.generator = torch.Generator().manual_seed(0)  # FilteredNoise: the same draws
        a = fixed(*controls(25))
        free.generator = torch.Generator().manual_seed(0)
        torch.testing.assert_close(a, free(*controls(25), n_samples=1600), rtol=0, atol=0)


@pytest.mark.parametrize("name", SYNTHS)
def test_a_synth_with_neither_length_raises_naming_n_samples(name):
    proc, controls = _synth(name, 16000)
    with pytest.raises(ValueError, match="n_samples"):
        proc(*controls(10))
    with pytest.raises(ValueError, match="n_samples"):
        proc.get_signal(**proc.get_controls(*controls(10)))


def test_effects_take_their_length_from_their_audio_and_refuse_an_n_samples():
    reverb = Reverb(trainable=True, reverb_length=100)
    assert not reverb.takes_n_samples and Harmonic.takes_n_samples and FilteredNoise.takes_n_samples
    assert reverb(torch.randn(2, 777)).shape == (2, 777)
    with pytest.raises(ValueError, match="n_samples"):
        reverb(torch.randn(2, 777), n_samples=777)


# ---------------------------------------------------------------- ProcessorGroup


def _conf_stack(sample_rate: int = 16000) -> ProcessorGroup:
    """conf/synth/harmonic_noise_reverb.yaml as training builds it (interpolations resolved)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["synth=harmonic_noise_reverb", f"sample_rate={sample_rate}",
                                          "n_harmonics=8", "n_noise_bands=17", "data.path=x", "run_dir=x"])
    return hydra.utils.instantiate(cfg.synth)


def _stack_controls(n_frames: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"amps": torch.randn(1, n_frames, 1, generator=g), "f0_hz": torch.full((1, n_frames, 1), 220.0),
            "harmonic_distribution": torch.randn(1, n_frames, 8, generator=g),
            "noise_magnitudes": torch.randn(1, n_frames, 17, generator=g)}


def test_the_conf_stack_renders_one_and_ten_seconds_by_call_by_frames_and_by_batch_audio():
    stack = _conf_stack()
    assert stack.frame_rate == FRAME_RATE and stack.hop_size == 64 and stack.sample_rate == 16000
    assert stack.external_inputs() == {"amps": 1, "harmonic_distribution": 8, "f0_hz": 1, "noise_magnitudes": 17}
    assert all(getattr(p, "n_samples", None) is None for p in stack.processors)
    for seconds in (1.0, 10.0):
        ctl, n = _stack_controls(int(seconds * FRAME_RATE)), int(seconds * 16000)
        with torch.no_grad():
            by_call = stack.run(ctl, generator=torch.Generator().manual_seed(1), n_samples=n)
            by_frames = stack.run(ctl, generator=torch.Generator().manual_seed(1))
            by_audio = stack.run({**ctl, "audio": torch.zeros(1, n)}, generator=torch.Generator().manual_seed(1))
        audio = by_call[stack.output]
        assert audio.shape == (1, n) and bool(torch.isfinite(audio).all())
        assert float(audio[0, -1600:].abs().max()) > 0  # sounds to the end
        for other in (by_frames, by_audio):
            torch.testing.assert_close(other[stack.output], audio, rtol=0, atol=0)


def test_the_batch_audio_sets_the_length_before_the_frames_and_the_call_before_both():
    stack, ctl = _conf_stack(), _stack_controls(50)  # 50 frames = 3200 samples at hop 64
    with torch.no_grad():
        assert stack({**ctl, "audio": torch.zeros(1, 6400)}).shape == (1, 6400)
        assert stack({**ctl, "audio": torch.zeros(1, 6400)}, n_samples=9600).shape == (1, 9600)
        assert stack(ctl).shape == (1, 3200)


def test_a_group_without_a_length_raises_naming_n_samples_and_fixed_lengths_must_agree():
    nodes = lambda a=None, b=None: [  # noqa: E731
        {"processor": Harmonic(a, n_harmonics=8), "inputs": ["amps", "harmonic_distribution", "f0_hz"], "name": "h"},
        {"processor": FilteredNoise(b), "inputs": ["noise_magnitudes"], "name": "n"},
        {"processor": Add(), "inputs": ["h", "n"], "name": "out"}]
    ctl = _stack_controls(25)
    with pytest.raises(ValueError, match="n_samples"):
        ProcessorGroup(nodes()).run(ctl)
    with pytest.raises(ValueError, match="disagree on n_samples"):
        ProcessorGroup(nodes(1600, 3200))
    with torch.no_grad():
        assert ProcessorGroup(nodes(1600, 1600))(ctl).shape == (1, 1600)  # reference-style fixed length
        assert ProcessorGroup(nodes(1600, None))(ctl).shape == (1, 1600)  # the fixed one sets the other
        assert ProcessorGroup(nodes(), frame_rate=250)(ctl).shape == (1, 1600)
    with pytest.raises(ValueError, match="frame_rate"):
        ProcessorGroup(nodes(), frame_rate=300)  # does not divide 16 kHz
    with pytest.raises(ValueError, match="sample_rate"):
        ProcessorGroup(nodes(), frame_rate=250, sample_rate=48000)  # the Harmonic is at 16 kHz


# ---------------------------------------------------------------- preprocessor, encoders, decoders

N_FRAMES = (250, 1000, 1824)  # 1 s, 4 s, 7.296 s at 250 Hz
HOP = 64


def _audio(n_frames: int) -> torch.Tensor:
    t = torch.arange(n_frames * HOP) / 16000
    return 0.3 * torch.sin(2 * math.pi * 330.0 * t)[None] + 0.01 * torch.randn(1, n_frames * HOP)


def test_the_preprocessor_keeps_the_input_frames_and_computes_loudness_on_them():
    pre, computed = F0LoudnessPreprocessor(), F0LoudnessPreprocessor(compute_loudness=True)
    for n_frames in N_FRAMES:
        f0 = torch.full((1, n_frames, 1), 330.0)
        ld = torch.linspace(-60.0, 0.0, n_frames)[None, :, None]
        out = pre({"f0_hz": f0, "loudness_db": ld})
        assert all(out[k].shape == (1, n_frames, 1) for k in ("f0_hz", "loudness_db", "f0_scaled", "ld_scaled"))
        torch.testing.assert_close(out["ld_scaled"], ld / 80.0 + 1.0)
        audio = _audio(n_frames)
        # prepared data's loudness (n_fft 2048), frame i centred on sample i * hop, n_frames of them
        torch.testing.assert_close(computed({"f0_hz": f0, "audio": audio})["loudness_db"],
                                   compute_loudness_frames(audio, 16000, 250)[:, :n_frames, None])
    with pytest.raises(ValueError, match="loudness_db"):
        pre({"f0_hz": torch.full((1, 250, 1), 330.0), "loudness_db": torch.zeros(1, 249, 1)})


def _encoders() -> dict[str, torch.nn.Module]:
    f0 = lambda spectrum: F0ResNetEncoder(spectrum=spectrum, mel_bins=32, cqt_fmin=110.0, cqt_bins=24,  # noqa: E731
                                          cqt_bins_per_octave=12, channels=(4,), blocks=(1,), f0_bins=16)
    return {"z": ZEncoder(z_dims=3, rnn_channels=8, n_mfcc=13), "f0_logmel": f0("logmel"), "f0_cqt": f0("cqt"),
            "chain": EncoderChain([f0("logmel"), ZEncoder(z_dims=3, rnn_channels=8, n_mfcc=13)])}


@pytest.mark.parametrize("name", ("z", "f0_logmel", "f0_cqt", "chain"))
def test_each_encoder_returns_one_output_per_model_frame(name):
    encoder = _encoders()[name]
    for n_frames in N_FRAMES:
        with torch.no_grad():
            out = encoder({"audio": _audio(n_frames)})
        keys = [k for k in ("z", "f0_hz", "f0_scaled", "f0_probs") if k in out]
        assert keys and all(out[k].shape[:2] == (1, n_frames) for k in keys), {k: out[k].shape for k in keys}
        assert all(bool(torch.isfinite(out[k]).all()) for k in keys)


def test_encoder_front_ends_are_centred_on_the_model_frames():
    """A click at sample k * hop is loudest in front-end frame k (the frame f0 and loudness call k)."""
    encoders = _encoders()
    for k in (0, 37, 249):
        click = torch.zeros(1, 250 * HOP)
        click[0, k * HOP] = 1.0
        mfcc = encoders["z"].mfcc(click)
        assert int(mfcc[0, :, 0].argmax()) == k  # c0: the frame's log energy
        for name in ("f0_logmel", "f0_cqt"):
            assert int(encoders[name].log_spectrum(click)[0].sum(-1).argmax()) == k, name


@pytest.mark.parametrize("decoder", ("rnn_fc", "mlp"))
def test_decoders_decode_any_number_of_frames_and_a_prefix_the_same_alone(decoder):
    """The GRU is causal and the MLP frame-wise: the first frames of a long input decode as they do
    on their own, so nothing in a decoder depends on the length."""
    torch.manual_seed(0)
    splits = (("amps", 1), ("harmonic_distribution", 4))
    dec = (RnnFcDecoder(rnn_channels=8, ch=8, layers_per_stack=1, output_splits=splits) if decoder == "rnn_fc"
           else MlpDecoder(ch=8, layers_per_stack=1, output_splits=splits))
    x = {"ld_scaled": torch.rand(1, 1825, 1), "f0_scaled": torch.rand(1, 1825, 1)}
    with torch.no_grad():
        full = dec(x)
        for n_frames in (1, 250, 1825):
            part = dec({k: v[:, :n_frames] for k, v in x.items()})
            assert part["harmonic_distribution"].shape == (1, n_frames, 4)
            torch.testing.assert_close(part["amps"], full["amps"][:, :n_frames], rtol=1e-5, atol=1e-6)
