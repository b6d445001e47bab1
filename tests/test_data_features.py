"""Frame-wise training features: CREPE f0 on tones of known pitch, the frame convention, loudness frames."""
from __future__ import annotations

import math

import pytest
import torch

from ddsp_lab import dsp
from ddsp_lab.data import CrepeF0, compute_loudness_frames, frame_hop

SAMPLE_RATE = 16000
FRAME_RATE = 250
HOP = SAMPLE_RATE // FRAME_RATE
TONE_HZ = (100.0, 147.0, 220.0, 330.0, 494.0, 740.0, 1000.0)
EDGE_FRAMES = 10  # CREPE's 1024-sample window runs into the zero padding near both ends


def harmonic_tone(f0_hz: float, sample_rate: int, seconds: float = 1.0, phase: float = 0.0) -> torch.Tensor:
    """A sine plus a weaker 2nd harmonic, [n_samples] float32."""
    t = torch.arange(int(round(seconds * sample_rate)), dtype=torch.float64) / sample_rate
    tone = 0.5 * torch.sin(2 * math.pi * f0_hz * t + phase) + 0.15 * torch.sin(4 * math.pi * f0_hz * t + 2 * phase + 0.3)
    return tone.float()


def cents_error(f0_hz: torch.Tensor, true_hz: torch.Tensor) -> torch.Tensor:
    return 1200.0 * torch.log2(f0_hz.double() / true_hz.double())


@pytest.fixture(scope="module")
def crepe() -> CrepeF0:
    return CrepeF0("tiny", device="cpu")


@pytest.fixture(scope="module")
def tones() -> torch.Tensor:
    """[n_tones, 16000]: 1 s of each TONE_HZ at 16 kHz, each with its own phase."""
    return torch.stack([harmonic_tone(f, SAMPLE_RATE, phase=0.7 * i) for i, f in enumerate(TONE_HZ)])


@pytest.fixture(scope="module")
def tones_f0(crepe, tones) -> tuple[torch.Tensor, torch.Tensor]:
    return crepe(tones, SAMPLE_RATE, FRAME_RATE)


def test_crepe_tiny_tracks_tones_100hz_to_1khz(tones_f0):
    f0_hz, confidence = tones_f0
    err = cents_error(f0_hz, torch.tensor(TONE_HZ)[:, None])[:, EDGE_FRAMES:-EDGE_FRAMES]
    assert err.abs().median() < 10.0, err.abs().median(dim=1).values
    # every tone is tracked, not just most frames: no octave errors, per-tone median within 10 cents
    assert (err.abs().max(dim=1).values < 50.0).all(), err.abs().max(dim=1).values
    assert (err.abs().median(dim=1).values < 10.0).all(), err.abs().median(dim=1).values
    # a clean harmonic tone is confidently voiced
    assert confidence[:, EDGE_FRAMES:-EDGE_FRAMES].median() > 0.5


def test_crepe_frame_count_is_n_samples_over_hop(tones, tones_f0, crepe):
    f0_hz, confidence = tones_f0
    assert f0_hz.shape == confidence.shape == (len(TONE_HZ), SAMPLE_RATE // HOP)
    assert f0_hz.dtype == confidence.dtype == torch.float32
    # another frame rate and length: 0.5 s at 100 Hz frames -> 50 frames; a 1-D input is one batch item
    f0_100, conf_100 = crepe(tones[2, :8000], SAMPLE_RATE, 100)
    assert f0_100.shape == conf_100.shape == (1, 50)


def test_crepe_frame_i_is_centred_on_sample_i_times_hop(crepe):
    """A pitch step from 220 to 330 Hz at sample 125 * hop: f0 crosses the (log) midpoint at frame 125."""
    step = 125 * HOP
    first, second = harmonic_tone(220.0, SAMPLE_RATE), harmonic_tone(330.0, SAMPLE_RATE)
    audio = torch.cat([first[:step], second[step:]])[None]
    f0_hz, _ = crepe(audio, SAMPLE_RATE, FRAME_RATE)
    above = (f0_hz[0] > math.sqrt(220.0 * 330.0)).nonzero()[:, 0]
    assert int(above[0]) in (124, 125, 126), f0_hz[0, 118:132]
    assert (f0_hz[0, 130:-EDGE_FRAMES] > math.sqrt(220.0 * 330.0)).all()
    assert (f0_hz[0, EDGE_FRAMES:120] < math.sqrt(220.0 * 330.0)).all()


def test_crepe_is_deterministic(crepe, tones):
    audio = tones[[0, 4]]  # 100 Hz frames keep it cheap; the decoding is the same at any rate
    f0_a, conf_a = crepe(audio, SAMPLE_RATE, 100)
    f0_b, conf_b = crepe(audio, SAMPLE_RATE, 100)
    assert torch.equal(f0_a, f0_b) and torch.equal(conf_a, conf_b)


@pytest.mark.parametrize(("sample_rate", "frame_rate"), [(16000, 300), (48000, 300)],
                         ids=("not-dividing-16k", "divides-48k-not-crepe-16k"))
def test_crepe_rejects_frame_rate_that_does_not_divide(crepe, sample_rate, frame_rate):
    audio = torch.zeros(1, sample_rate)
    with pytest.raises(ValueError, match="frame_rate"):
        crepe(audio, sample_rate, frame_rate)


def test_crepe_rejects_length_not_a_multiple_of_hop(crepe):
    with pytest.raises(ValueError, match="multiple of the hop"):
        crepe(torch.zeros(1, 16000 + 10), SAMPLE_RATE, FRAME_RATE)


def test_crepe_rejects_unknown_model():
    with pytest.raises(ValueError, match="crepe_model"):
        CrepeF0("medium")


def test_crepe_resamples_44k1_input_to_the_same_pitch(crepe):
    """44.1 kHz audio is resampled to CREPE's 16 kHz: same pitch as the tone recorded at 16 kHz
    (frame rate 100 Hz, which divides both 44100 and 16000)."""
    freqs = (220.0, 660.0)
    audio_44k = torch.stack([harmonic_tone(f, 44100) for f in freqs])
    audio_16k = torch.stack([harmonic_tone(f, 16000) for f in freqs])
    f0_44k, conf_44k = crepe(audio_44k, 44100, 100)
    f0_16k, _ = crepe(audio_16k, 16000, 100)
    assert f0_44k.shape == f0_16k.shape == (2, 100)  # 44100 / 441 = 16000 / 160 frames
    inner = slice(4, -4)  # 4 frames of 10 ms cover CREPE's half window
    err = cents_error(f0_44k, torch.tensor(freqs)[:, None])[:, inner]
    assert err.abs().median() < 10.0, err.abs().median(dim=1).values
    assert (err.abs().max(dim=1).values < 50.0).all()
    assert cents_error(f0_44k, f0_16k)[:, inner].abs().median() < 3.0
    assert conf_44k[:, inner].median() > 0.5


def test_frame_hop_validates():
    assert frame_hop(16000, 250) == 64 and frame_hop(44100, 100, 44100) == 441
    with pytest.raises(ValueError, match="frame_rate"):
        frame_hop(16000, 300)
    with pytest.raises(ValueError, match="n_samples"):
        frame_hop(16000, 250, 1000)


@pytest.mark.parametrize(("sample_rate", "frame_rate", "n_samples"),
                         [(16000, 250, 16000), (16000, 100, 8000), (44100, 100, 22050), (48000, 250, 24000)])
def test_loudness_frames_are_centred_loudness_without_the_extra_frame(sample_rate, frame_rate, n_samples, dtype):
    g = torch.Generator().manual_seed(0)
    audio = (torch.rand(2, n_samples, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    audio = audio * torch.linspace(0, 1, n_samples, dtype=dtype)  # a crescendo: frames differ
    hop = sample_rate // frame_rate
    got = compute_loudness_frames(audio, sample_rate, frame_rate)
    want = dsp.compute_loudness(audio, sample_rate, frame_rate, n_fft=2048, padding="center")[..., : n_samples // hop]
    assert got.shape == (2, n_samples // hop) and got.dtype == dtype
    assert torch.equal(got, want)


def test_loudness_frame_i_is_centred_on_sample_i_times_hop():
    """A short 1 kHz burst centred on sample 100 * hop peaks in frame 100."""
    n = SAMPLE_RATE
    t = torch.arange(n, dtype=torch.float64) / SAMPLE_RATE
    centre = 100 * HOP
    burst = torch.sin(2 * math.pi * 1000 * t) * torch.exp(-0.5 * ((torch.arange(n) - centre) / 200.0) ** 2)
    ld = compute_loudness_frames(burst[None], SAMPLE_RATE, FRAME_RATE)
    assert ld.shape == (1, n // HOP)
    assert int(ld.argmax()) == 100


def test_loudness_frames_scale_with_amplitude():
    """Doubling the amplitude raises every (unfloored) frame by 20 log10(2) dB."""
    tone = harmonic_tone(440.0, SAMPLE_RATE).double()[None]
    ld = compute_loudness_frames(tone, SAMPLE_RATE, FRAME_RATE)
    ld2 = compute_loudness_frames(2.0 * tone, SAMPLE_RATE, FRAME_RATE)
    torch.testing.assert_close(ld2 - ld, torch.full_like(ld, 20 * math.log10(2.0)), atol=1e-9, rtol=0)


def test_loudness_frames_reject_length_not_a_multiple_of_hop():
    with pytest.raises(ValueError, match="multiple of the hop"):
        compute_loudness_frames(torch.zeros(1, 16010), SAMPLE_RATE, FRAME_RATE)
