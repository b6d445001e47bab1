"""Streaming (ddsp_lab.realtime.StreamingModel): block by block, the offline render, delayed by the
stated latency; the reverb by partitioned convolution; the phase exact over an hour."""
from __future__ import annotations

import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from ddsp_lab import dsp
from ddsp_lab.conf import CONF_DIR
from ddsp_lab.realtime import StreamingModel
from ddsp_lab.training import build_model

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")  # blocks are small tensors: one thread is faster


def _model(*overrides: str):
    """The tiny model, untrained, as `ddsp-lab train experiment=tiny synth=harmonic_noise_reverb` builds it."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=tiny", "synth=harmonic_noise_reverb", "run_dir=unused",
                                          "data.path=unused", "model.f0_metric=false", *overrides])
    torch.manual_seed(0)
    model = build_model(cfg).model.eval()
    for node in model.synth.processors:
        if getattr(node, "ir", None) is not None:  # a room worth hearing (trained IRs start near silence)
            with torch.no_grad():  # 1.5 s of decaying noise
                n = node.ir.numel()
                node.ir.copy_(0.05 * torch.exp(-4.0 * torch.arange(n) / 24000.0) * torch.randn(n))
    return model


def _curves(seconds: float, frame_rate: int = 250):
    n = int(seconds * frame_rate)
    t = torch.arange(n) / frame_rate
    f0 = 330.0 * 2 ** (0.3 * torch.sin(2 * math.pi * 0.4 * t) + 0.01 * torch.sin(2 * math.pi * 5.5 * t))
    ld = -5.0 + 15.0 * torch.sin(2 * math.pi * 0.7 * t) - 60.0 * ((t % 2.0) > 1.6)  # notes with silences between
    return f0[None, :, None], ld[None, :, None]


@pytest.fixture(scope="module")
def model():
    return _model()


@pytest.mark.parametrize("block", [64, 256, 2048])
def test_streaming_equals_the_offline_render_delayed_by_its_latency(model, block):
    f0, ld = _curves(10.24)  # 2560 frames: whole blocks of 1, 4 and 32 frames
    offline = model.render({"f0_hz": f0, "loudness_db": ld}, seed=0)[0]
    live = StreamingModel(model, block_size=block, seed=0)
    assert live.latency == 64  # the filtered noise's (and harmonic's) one frame of look-ahead
    per = block // 64
    out = torch.cat([live(f0[:, i:i + per], ld[:, i:i + per])[0] for i in range(0, f0.shape[1], per)])
    assert out.shape == offline.shape
    assert float(out[:64].abs().max()) == 0.0
    err = float((out[64:] - offline[:-64]).abs().max())
    assert err < 1e-4 * max(1.0, float(offline.abs().max())), err
    tail = offline[int(1.61 * 16000):int(2.0 * 16000)]  # a silence after a note: only the reverb sounds
    assert float(tail.abs().max()) > 1e-3  # so the reverb is in what was compared


def test_reset_gives_what_a_fresh_model_gives_and_bad_blocks_are_refused(model):
    f0, ld = _curves(1.0)
    live = StreamingModel(model, block_size=256, seed=0)
    first = torch.cat([live(f0[:, i:i + 4], ld[:, i:i + 4]) for i in range(0, 100, 4)], -1)
    live.reset()
    again = torch.cat([live(f0[:, i:i + 4], ld[:, i:i + 4]) for i in range(0, 100, 4)], -1)
    fresh = StreamingModel(model, block_size=256, seed=0)
    new = torch.cat([fresh(f0[:, i:i + 4], ld[:, i:i + 4]) for i in range(0, 100, 4)], -1)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(first, new, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"f0_hz must be one block of 4 frames"):
        live(f0[:, :5], ld[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        live(torch.full((1, 4), float("nan")), ld[:, :4])
    with pytest.raises(ValueError, match=r"block_size must be a whole number of hops \(64 samples"):
        StreamingModel(model, block_size=100)
    with pytest.raises(ValueError, match="between 64 and 4096"):
        StreamingModel(model, block_size=8192)
    with pytest.raises(ValueError, match="the model runs at 16000 Hz, the host at 44100 Hz"):
        StreamingModel(model, block_size=256, sample_rate=44100)
    with pytest.raises(ValueError, match=r"x must be \[1, channels >= 2, 256\]"):
        fresh.audio_rate(torch.zeros(1, 2, 128))


def test_audio_rate_controls_as_plugin_hosts_send_them(model):
    """nn~ / libtorch convention: [1, channels, block] in, [1, 1, block] out; controls read at each
    frame's first sample."""
    f0, ld = _curves(0.5)
    by_frames = StreamingModel(model, block_size=512, seed=0)
    by_samples = StreamingModel(model, block_size=512, seed=0)
    for i in range(0, 120, 8):
        x = torch.stack([f0[0, i:i + 8, 0].repeat_interleave(64), ld[0, i:i + 8, 0].repeat_interleave(64)])[None]
        got = by_samples.audio_rate(x)
        assert got.shape == (1, 1, 512)
        torch.testing.assert_close(got[:, 0], by_frames(f0[:, i:i + 8], ld[:, i:i + 8]), rtol=0, atol=0)


def test_partitioned_convolution_equals_one_fft_convolution():
    torch.manual_seed(0)
    ir = torch.randn(2, 5000, dtype=torch.float64) * torch.exp(-torch.arange(5000) / 1000.0)
    x = torch.randn(2, 64 * 200, dtype=torch.float64)
    want = dsp.fft_convolve(x, ir, padding="valid", delay_compensation=0)[:, :x.shape[-1]]
    conv = dsp.PartitionedConvolution(ir, 64)
    got = torch.cat([conv(x[:, i:i + 64]) for i in range(0, x.shape[-1], 64)], -1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match=r"blocks must be \[2, 64\]"):
        conv(x[:, :65])


def test_the_oscillator_phase_stays_exact_over_an_hour_of_blocks():
    """One hour at 16 kHz in blocks of 60 s (the same code path as any block size: the phase is
    carried in float64 and wrapped): within 1e-3 rad of the closed form at every block."""
    sr, hop, f0 = 16000, 64, 441.0078125  # exact in float32; a minute of it is not whole cycles
    frames = 60 * sr // hop
    f = torch.full((1, frames, 1), f0)
    amps = torch.full((1, frames, 1), 0.5)
    phase = None
    for k in range(1, 61):
        audio, phase = dsp.harmonic_chunk(f, amps, hop, sr, next_frame=(f[:, :1], amps[:, :1]), initial_phase=phase)
        n = k * frames * hop
        closed = 2 * math.pi * math.fmod(f0 * n / sr, 1.0)  # f0 * n / sr is exact in float64 here
        err = abs(math.remainder(float(phase[0]) - closed, 2 * math.pi))
        assert err < 1e-3, (k, err)
    assert abs(math.sin(closed)) > 0.1  # a sample worth comparing: the block's last is sin of the phase after it
    assert abs(float(audio[0, -1]) - 0.5 * math.sin(closed)) < 1e-3


def _sung(seconds: float, sr: int) -> torch.Tensor:
    """A harmonic tone gliding up half an octave with vibrato, quieter for its last third."""
    t = torch.arange(int(seconds * sr)) / sr
    f0 = 220 * 2 ** (0.5 * t / seconds + 0.01 * torch.sin(2 * math.pi * 5 * t))
    phase = torch.cumsum(2 * math.pi * f0.double() / sr, 0)
    x = sum(torch.sin(k * phase) / k for k in range(1, 8)) * 0.3 * torch.clamp(t / 0.1, max=1)
    return (x * (1 - 0.5 * (t > 2 * seconds / 3))).float()


def test_live_features_equal_the_offline_features_delayed_by_their_latency():
    from ddsp_lab import features
    from ddsp_lab.features import FeatureSettings
    from ddsp_lab.realtime import LiveFeatures

    x = _sung(3.072, 16000)  # whole blocks
    settings = FeatureSettings(16000, 250, crepe_model="tiny", viterbi=False)
    offline = features.compute(x, 16000, settings)
    live = LiveFeatures(settings, block_size=512)
    assert live.delay_frames == 16 and live.latency == 1024  # the loudness window's half: 2048 / 2 samples
    out = [live(x[None, i:i + 512]) for i in range(0, x.numel(), 512)]
    f0, confidence, loudness = (torch.cat([o[k] for o in out], -1)[0] for k in range(3))
    d, m = live.delay_frames, x.numel() // 64 - live.delay_frames
    assert float(loudness[:d].max()) == -120.0 and float(f0[:d].abs().max()) == 0.0  # before the signal
    torch.testing.assert_close(loudness[d:], offline["loudness_db"][0, :m], rtol=0, atol=1e-3)
    torch.testing.assert_close(confidence[d:], offline["f0_confidence"][0, :m], rtol=0, atol=1e-4)
    cents = 1200 * torch.log2(f0[d:] / offline["f0_hz"][0, :m]).abs()
    assert float(cents.max()) < 0.1
    with pytest.raises(ValueError, match=r"audio must be one block \[1, 512\]"):
        live(x[None, :500])


def test_live_transfer_is_the_offline_analysis_and_render_delayed_by_its_latency(model):
    from ddsp_lab import features
    from ddsp_lab.apps.curves import hold_f0
    from ddsp_lab.features import FeatureSettings
    from ddsp_lab.realtime import LiveTransfer

    x = _sung(2.048, 16000)
    live = LiveTransfer(model, block_size=512, pitch_shift=-12.0)
    assert live.latency == 1024 + 64
    out = torch.cat([live(x[None, i:i + 512])[0] for i in range(0, x.numel(), 512)])
    got = features.compute(x, 16000, FeatureSettings(16000, 250, crepe_model="tiny", viterbi=False))
    d, n = live.features.delay_frames, x.numel() // 64
    f0 = torch.cat([torch.zeros(d), got["f0_hz"][0]])[:n]
    conf = torch.cat([torch.zeros(d), got["f0_confidence"][0]])[:n]
    ld = torch.cat([torch.full((d,), -120.0), got["loudness_db"][0]])[:n]
    on = conf >= 0.5
    f0 = hold_f0(torch.cat([torch.zeros(1), f0]), torch.cat([torch.ones(1, dtype=torch.bool), on]))[1:] / 2
    ld = torch.where(on, ld, ld - 20.0)
    offline = model.render({"f0_hz": f0[None, :, None], "loudness_db": ld[None, :, None]}, seed=0)[0]
    assert float(out[:64].abs().max()) == 0.0 and float(offline.abs().max()) > 1e-2
    assert float((out[64:] - offline[:-64]).abs().max()) < 1e-4


Z_MODEL = ("encoder=z_mfcc_gru", "decoder.input_keys=[ld_scaled,f0_scaled,z]", "+decoder.input_sizes=[1,1,16]")


def test_live_z_equals_the_encoders_offline_z_delayed_by_its_latency():
    from ddsp_lab.realtime import LiveZ
    from ddsp_lab.networks.encoders import ZEncoder

    model = _model(*Z_MODEL)
    encoder = next(m for m in model.modules() if isinstance(m, ZEncoder))
    x = _sung(2.048, 16000)
    with torch.no_grad():
        offline = encoder({"audio": x[None]})["z"][0]  # [128, 16]
    live = LiveZ(encoder, block_size=256)
    assert live.delay_frames == 8 and live.latency == 512  # half the 1024-sample MFCC window
    z = torch.cat([live(x[None, i:i + 256]) for i in range(0, x.numel(), 256)], 1)[0]
    d, m = live.delay_frames, x.numel() // 64 - live.delay_frames
    assert float(z[:d].abs().max()) == 0.0 and float(offline.abs().max()) > 1e-2
    torch.testing.assert_close(z[d:], offline[:m], rtol=0, atol=1e-5)
    live.reset()
    torch.testing.assert_close(live(x[None, :256]), z[None, :4], rtol=0, atol=0)
    with pytest.raises(ValueError, match="whole number of hops"):
        LiveZ(encoder, block_size=100)


def test_live_transfer_of_a_z_model_feeds_the_streaming_model_z_aligned_with_the_features():
    """A z model's live transfer computes z from the same audio (LiveZ, 8 frames late) and delays it
    to the features' 16: by hand, the encoder's offline z delayed by 16 frames gives the same audio."""
    from ddsp_lab.networks.encoders import ZEncoder
    from ddsp_lab.realtime import LiveTransfer

    model = _model(*Z_MODEL)
    x = _sung(2.048, 16000)
    live, ref = LiveTransfer(model, block_size=512), LiveTransfer(model, block_size=512)
    assert live.latency == 1024 + 64 and live.z.delay_frames == 8
    out = torch.cat([live(x[None, i:i + 512])[0] for i in range(0, x.numel(), 512)])
    with torch.no_grad():
        z = next(m for m in model.modules() if isinstance(m, ZEncoder))({"audio": x[None]})["z"]
    d = ref.features.delay_frames
    z = torch.cat([torch.zeros(1, d, z.shape[-1]), z], 1)
    by_hand = []
    for k, i in enumerate(range(0, x.numel(), 512)):  # ref's features and controls, offline z
        f0, ld = ref.controls(*ref.features(x[None, i:i + 512]))
        by_hand.append(ref.stream(f0, ld, z[:, k * 8:(k + 1) * 8])[0])
    assert float(out.abs().max()) > 1e-2
    torch.testing.assert_close(out, torch.cat(by_hand), rtol=0, atol=1e-4)
