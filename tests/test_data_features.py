"""Frame-wise training features: CREPE f0 on tones of known pitch, the frame convention, loudness frames,
and whole recordings analysed once in blocks (equal to one pass, and to per-window analysis away
from window edges)."""
from __future__ import annotations

import math

import pytest
import torch

from ddsp_lab import dsp
from ddsp_lab.data import CrepeF0, compute_loudness_frames, frame_hop
from ddsp_lab.features import recording_loudness, resample_recording

SAMPLE_RATE = 16000
FRAME_RATE = 250
HOP = SAMPLE_RATE // FRAME_RATE
TONE_HZ = (100.0, 147.0, 220.0, 330.0, 494.0, 740.0, 1000.0)
EDGE_FRAMES = 10  # CREPE's 1024-sample window runs into the zero padding near both ends
# CREPE on short recordings makes small network calls; a second intra-op thread spin-waits on a
# busy 2-core machine (measured: 33 vs 3.4 ms per frame for 10-frame calls)
pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


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


# ------------------------------------------------------------------------------- whole recordings
def _melody(seconds: float, sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio [n_samples] float32 and its f0 [n_samples] Hz: notes of 196, 262, 233, 311 Hz (1.5 s
    each) with 5 Hz vibrato, harmonics and a tremolo, so f0, confidence and loudness all move."""
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    notes = torch.tensor(MELODY_HZ, dtype=torch.float64)
    f0 = notes[(t // 1.5).long() % 4] * 2 ** (0.3 / 12 * torch.sin(2 * math.pi * 5 * t))
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    tone = sum(torch.sin(k * phase) / k for k in range(1, 5))
    return (0.3 * tone * (0.6 + 0.4 * torch.sin(2 * math.pi * 0.7 * t))).float(), f0


MELODY_HZ = (196.0, 262.0, 233.0, 311.0)


def test_recording_blocks_join_exactly_and_equal_per_window_features_away_from_window_edges(crepe):
    """A 6 s recording analysed once (CREPE and loudness in blocks of 1.5 s, Viterbi margins of 1 s)
    against (a) one pass over the recording and (b) per-window analysis of its 2 s windows (at 0, 2
    and 4 s), as prepare used to do. Frames are 20 ms (50 Hz) to keep CREPE cheap.
    (a) equal everywhere: the blocks join exactly.
    (b) CREPE activations are frame-local: argmax f0 and confidence equal wherever the frame's 1024
        samples lie inside the window (2 frames from an edge), loudness wherever its 2048 samples do
        (4 frames); at the recording's own ends both see zero padding, so those frames match too.
        Viterbi looks along the path: it equals there too from 0.5 s (25 frames) off an interior edge."""
    frame_rate, seconds, window_s = 50, 6.0, 2.0
    hop, n_win = SAMPLE_RATE // frame_rate, int(window_s * frame_rate)
    crepe_edge, loudness_edge, viterbi_edge = math.ceil(512 / hop), math.ceil(1024 / hop), 25
    audio, f0_true = _melody(seconds)
    argmax = CrepeF0("tiny", viterbi=False, device="cpu")

    act_file = crepe.activations(audio, SAMPLE_RATE, frame_rate)  # one pass, [1, 300, 360]
    tracked = list(crepe.track(audio, SAMPLE_RATE, frame_rate, block_seconds=1.5, margin_seconds=1.0))
    assert [j0 for j0, _, _ in tracked] == [0, 75, 150, 225]
    f0_blocks, conf_blocks = (torch.cat([block[i] for block in tracked]) for i in (1, 2))
    f0_once, conf_once = crepe.decode(act_file)
    torch.testing.assert_close(f0_blocks, f0_once[0], atol=1e-3, rtol=0)  # Hz
    torch.testing.assert_close(conf_blocks, conf_once[0], atol=1e-6, rtol=0)
    ld_blocks = recording_loudness(audio, SAMPLE_RATE, frame_rate, block_frames=75)
    ld_once = recording_loudness(audio, SAMPLE_RATE, frame_rate, block_frames=10 ** 6)
    torch.testing.assert_close(ld_blocks, ld_once, atol=1e-5, rtol=0)

    starts = range(0, int(seconds * SAMPLE_RATE), int(window_s * SAMPLE_RATE))
    windows = torch.stack([audio[s:s + n_win * hop] for s in starts])
    act_win = crepe.activations(windows, SAMPLE_RATE, frame_rate)
    f0_vit, conf_vit = crepe.decode(act_win)
    f0_arg, conf_arg = argmax.decode(act_win)
    f0_arg_file, conf_arg_file = argmax.decode(act_file)
    ld_win = compute_loudness_frames(windows, SAMPLE_RATE, frame_rate)
    for w, s in enumerate(starts):
        first = s // hop
        for edge, got, want, tol in ((crepe_edge, f0_arg_file[0], f0_arg[w], 1e-3),
                                     (crepe_edge, conf_arg_file[0], conf_arg[w], 1e-5),
                                     (loudness_edge, ld_once, ld_win[w], 1e-4),
                                     (viterbi_edge, f0_blocks, f0_vit[w], 1e-3),
                                     (viterbi_edge, conf_blocks, conf_vit[w], 1e-5)):
            lo = 0 if s == 0 else edge  # the recording's own start and end: zero padding in both
            hi = n_win if first + n_win == len(got) else n_win - edge
            torch.testing.assert_close(got[first + lo:first + hi], want[lo:hi], atol=tol, rtol=0)
        if w > 0:  # at an interior window edge the window hears zeros, the recording hears audio
            assert (ld_once[first - 1] - ld_win[w - 1, -1]).abs() > 0.3  # dB
    # the melody is tracked: within 15 cents of the true f0 (median), away from the note changes
    err = cents_error(f0_blocks, f0_true[::hop]).abs()
    per_note = int(1.5 * frame_rate)
    for k, note in enumerate(MELODY_HZ):
        assert err[k * per_note + 5:(k + 1) * per_note - 5].median() < 15.0, (note, err)


@pytest.mark.parametrize(("orig", "new"), [(44100, 16000), (16000, 48000), (48000, 16000)])
def test_resample_recording_in_blocks_equals_one_pass(orig, new):
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(int(2.3 * orig) + 7, generator=g, dtype=torch.float64)
    want = dsp.resample_audio(audio, orig, new)
    got = resample_recording(audio, orig, new, block_seconds=0.31)
    assert got.shape == want.shape and got.dtype == audio.dtype
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_recording_loudness_of_a_window_is_compute_loudness_frames(dtype):
    g = torch.Generator().manual_seed(1)
    audio = ((torch.rand(16000 * 3, generator=g, dtype=torch.float64) * 2 - 1) * torch.linspace(0, 1, 48000,
             dtype=torch.float64)).to(dtype)
    got = recording_loudness(audio, SAMPLE_RATE, FRAME_RATE, block_frames=77)
    assert got.shape == (48000 // HOP,) and got.dtype == dtype
    torch.testing.assert_close(got, compute_loudness_frames(audio[None], SAMPLE_RATE, FRAME_RATE)[0],
                               atol=1e-4 if dtype == torch.float32 else 1e-9, rtol=0)
    with pytest.raises(ValueError, match="one recording"):
        recording_loudness(audio[None], SAMPLE_RATE, FRAME_RATE)
