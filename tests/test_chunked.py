"""Chunked rendering with carried state: the oscillator phase, the GRU state, the filtered noise's
and the reverb's tails carry across chunks, so a signal rendered in pieces (a long take in bounded
memory, real-time blocks) equals the one-shot render."""
from __future__ import annotations

import pytest
import torch

from ddsp_lab import dsp
from ddsp_lab.models import DDSP
from ddsp_lab.networks import F0LoudnessPreprocessor, MlpDecoder, RnnFcDecoder
from ddsp_lab.processors import (Add, ExpDecayReverb, FilteredNoise, FilteredNoiseReverb, Harmonic, PositionalNoise,
                                 ProcessorGroup, Reverb)


def _stack(sample_rate: int, reverb: str | None, n_harmonics: int = 12, n_bands: int = 65) -> ProcessorGroup:
    nodes = [{"processor": Harmonic(sample_rate=sample_rate, n_harmonics=n_harmonics),
              "inputs": ["amps", "harmonic_distribution", "f0_hz"], "name": "harmonic"},
             {"processor": FilteredNoise(window_size=257, n_bands=n_bands), "inputs": ["noise_magnitudes"],
              "name": "noise"},
             {"processor": Add(), "inputs": ["harmonic", "noise"], "name": "add"}]
    length = sample_rate // 2
    if reverb == "trainable":
        proc = Reverb(trainable=True, reverb_length=length)
        with torch.no_grad():
            proc.ir.copy_(0.05 * torch.randn(length) * torch.exp(-torch.arange(length) / (0.1 * sample_rate)))
    elif reverb == "exp_decay":
        proc = ExpDecayReverb(trainable=True, reverb_length=length)
    elif reverb == "filtered_noise":
        proc = FilteredNoiseReverb(trainable=True, reverb_length=length, n_frames=50)
    if reverb:
        nodes.append({"processor": proc, "inputs": ["add"], "name": "out"})
    return ProcessorGroup(nodes, frame_rate=250)


def _controls(n_frames: int, n_harmonics: int = 12, n_bands: int = 65, batch: int = 2) -> dict:
    g = torch.Generator().manual_seed(1)
    t = torch.arange(n_frames) / 250.0
    f0 = 220.0 * 2.0 ** torch.sin(2 * torch.pi * 0.7 * t)  # an octave of vibrato either way
    return {"amps": torch.randn(batch, n_frames, 1, generator=g),
            "harmonic_distribution": torch.randn(batch, n_frames, n_harmonics, generator=g),
            "noise_magnitudes": torch.randn(batch, n_frames, n_bands, generator=g),
            "f0_hz": f0[None, :, None].expand(batch, n_frames, 1).contiguous()}


def _chunked(group: ProcessorGroup, controls: dict, sizes: list[int], seed: int) -> torch.Tensor:
    lookahead, state, pieces, a = group.stream_lookahead(), {}, [], 0
    for m in sizes:
        chunk = {k: v[:, a:a + m + lookahead] if v.dim() == 3 else v for k, v in controls.items()}
        pieces.append(group.stream(chunk, m * group.hop_size, state, generator=PositionalNoise(seed)))
        a += m
    return torch.cat(pieces, dim=-1)


@pytest.mark.parametrize("sample_rate", [16000, 48000])
@pytest.mark.parametrize("reverb", [None, "trainable", "exp_decay", "filtered_noise"])
def test_a_synth_stack_rendered_in_uneven_chunks_equals_one_shot(sample_rate, reverb):
    group = _stack(sample_rate, reverb)
    controls = _controls(1000)
    sizes = [1, 7, 100, 250, 3, 639]  # 1000 frames: a single frame, a chunk shorter than the filters, ...
    with torch.no_grad():
        one = group.run(controls, generator=PositionalNoise(3), n_samples=1000 * group.hop_size)[group.output]
        chunked = _chunked(group, controls, sizes, seed=3)
    assert chunked.shape == one.shape == (2, 1000 * group.hop_size)
    assert (chunked - one).abs().max() < 1e-5 * one.abs().max()


def test_the_harmonic_phase_carries_exactly_over_a_minute_at_48k():
    n_frames, hop = 15000, 192  # 60 s at 48 kHz
    t = torch.arange(n_frames, dtype=torch.float64) / 250.0
    f0 = (440.0 * 2.0 ** (0.5 * torch.sin(2 * torch.pi * 0.3 * t)))[None, :, None]
    amps = torch.full((1, n_frames, 2), 0.5, dtype=torch.float64)
    one = dsp.harmonic_synthesis(f0, torch.ones_like(f0), harmonic_distribution=amps, n_samples=n_frames * hop,
                                 sample_rate=48000)
    pieces, phase, a = [], None, 0
    for m in [4999, 1, 10000]:
        following = (f0[:, a + m:a + m + 1], amps[:, a + m:a + m + 1]) if a + m < n_frames else None
        audio, phase = dsp.harmonic_chunk(f0[:, a:a + m], amps[:, a:a + m], hop, 48000, "window", following, phase)
        pieces.append(audio)
        a += m
    assert (torch.cat(pieces, -1) - one).abs().max() < 1e-8  # float64 rounding of ~1.7e5 rad of phase


def test_positional_noise_is_uniform_and_keyed_by_position_only():
    noise = PositionalNoise(7)
    whole = noise.uniform(3, 0, 200_000)
    split = torch.cat([noise.uniform(3, 0, 1), noise.uniform(3, 1, 99_999), noise.uniform(3, 100_000, 100_000)], -1)
    assert torch.equal(whole, split)
    assert whole.min() >= -1.0 and whole.max() < 1.0
    assert abs(whole.mean()) < 5e-3 and abs(whole.std() - 3 ** -0.5) < 5e-3  # Uniform(-1, 1)
    lag = torch.corrcoef(torch.stack([whole[0, :-1], whole[0, 1:]]))[0, 1]
    rows = torch.corrcoef(whole)[0, 1:]
    assert abs(lag) < 0.01 and rows.abs().max() < 0.01
    assert not torch.equal(whole[:, :100], PositionalNoise(8).uniform(3, 0, 100))
    assert not torch.equal(whole[:, :100], noise.stream(1).uniform(3, 0, 100))
    assert torch.equal(whole[:, 5:9], noise.uniform(3, 5, 4, dtype=torch.float64).float())


@pytest.mark.parametrize("decoder", ["rnn_fc", "mlp"])
def test_a_causal_decoder_decoded_in_chunks_equals_one_call(decoder):
    torch.manual_seed(0)
    splits = [("amps", 1), ("harmonic_distribution", 5)]
    dec = (RnnFcDecoder(rnn_channels=16, ch=8, layers_per_stack=1, output_splits=splits) if decoder == "rnn_fc"
           else MlpDecoder(ch=8, layers_per_stack=1, output_splits=splits))
    x = {"ld_scaled": torch.rand(2, 300, 1), "f0_scaled": torch.rand(2, 300, 1)}
    with torch.no_grad():
        whole = dec(x)["harmonic_distribution"]
        state = {}
        pieces = [dec({k: v[:, a:a + 70] for k, v in x.items()}, state)["harmonic_distribution"]
                  for a in range(0, 300, 70)]
    torch.testing.assert_close(torch.cat(pieces, 1), whole, rtol=0, atol=1e-6)


def _model(reverb: str | None = "trainable") -> DDSP:
    torch.manual_seed(0)
    decoder = RnnFcDecoder(rnn_channels=24, ch=16, layers_per_stack=1)  # heads derived from the stack
    return DDSP(F0LoudnessPreprocessor(), decoder, _stack(16000, reverb, n_bands=16)).eval()


def _curves(n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(n_frames) / 250.0
    f0 = (262.0 * 2.0 ** (torch.sin(2 * torch.pi * 0.25 * t) / 2))[None, :, None]
    ld = (-30.0 + 15.0 * torch.sin(2 * torch.pi * 0.5 * t))[None, :, None]
    return f0, ld


def test_the_decoders_heads_are_derived_from_the_synth_stack():
    model = _model()
    assert model.decoder.output_splits == [("amps", 1), ("harmonic_distribution", 12), ("noise_magnitudes", 16)]
    with pytest.raises(ValueError, match="do not fit"):
        DDSP(F0LoudnessPreprocessor(), RnnFcDecoder(8, 8, 1, output_splits=[("amps", 1)]), _stack(16000, None))


def test_a_model_streamed_block_by_block_equals_its_render():
    model = _model()
    f0, ld = _curves(1000)
    want = model.synthesize(f0, ld, seed=5)
    state, pieces = model.stream_state(), []
    for a in range(0, 1000, 16):  # 64 ms blocks, as a real-time host would send them
        block = {"f0_hz": f0[:, a:a + 16], "loudness_db": ld[:, a:a + 16]}
        pieces.append(model.stream(block, state, final=a + 16 >= 1000, generator=PositionalNoise(5)))
    lookahead = model.stream_lookahead()
    assert pieces[0].shape[-1] == (16 - lookahead) * 64  # the latency: lookahead frames
    got = torch.cat(pieces, -1)
    assert got.shape == want.shape == (1, 64000)
    assert (got - want).abs().max() < 1e-4


def test_a_minute_rendered_in_chunks_equals_one_shot_without_clicks():
    model = _model()
    f0, ld = _curves(15000)
    one = model.synthesize(f0, ld, seed=0)
    chunked = model.synthesize(f0, ld, seed=0, chunk_seconds=7.3)
    assert one.shape == chunked.shape == (1, 960000) and torch.isfinite(chunked).all()
    assert (chunked - one).abs().max() < 1e-4
    # no click: the sample-to-sample step at every chunk boundary is within the signal's own steps
    step = chunked.diff(dim=-1).abs()[0]
    boundaries = torch.arange(1, 9) * round(7.3 * 250) * 64 - 1
    assert step[boundaries].max() <= step.quantile(0.9999)


@pytest.mark.parametrize("synth", ["sinusoidal", "wavetable_frames", "wavetable_one_table", "mod_delay"])
def test_the_other_oscillators_rendered_in_chunks_equal_one_shot(synth):
    from ddsp_lab.processors import Sinusoidal, Wavetable

    g = torch.Generator().manual_seed(2)
    n_frames, t = 500, torch.arange(500) / 250.0
    f0 = (330.0 * 2.0 ** torch.sin(2 * torch.pi * 0.9 * t))[None, :, None]
    if synth == "sinusoidal":
        proc, inputs = Sinusoidal(sample_rate=48000, n_sinusoids=8), ["amplitudes", "frequencies"]
        controls = {"amplitudes": torch.randn(1, n_frames, 8, generator=g),
                    "frequencies": torch.randn(1, n_frames, 8, generator=g)}
    elif synth == "mod_delay":  # a chorus on a tone: the delay line carries across chunks
        from ddsp_lab.processors import ModDelay

        proc, inputs = ModDelay(center_ms=15.0, depth_ms=10.0, sample_rate=48000), ["audio", "gain", "phase"]
        tone = torch.sin(2 * torch.pi * torch.cumsum(dsp.resample(f0, n_frames * 192)[..., 0], 1) / 48000)
        group = ProcessorGroup([{"processor": proc, "inputs": inputs, "name": "out"}], frame_rate=250)
        controls = {"gain": torch.randn(1, n_frames, 1, generator=g),
                    "phase": torch.sin(2 * torch.pi * 1.5 * t)[None, :, None] * 3}
        with torch.no_grad():
            one = group.run({**controls, "audio": tone})["out"]
            state, pieces, a = {}, [], 0
            for m in [3, 1, 250, 246]:
                chunk = {k: v[:, a:a + m + 1] for k, v in controls.items()}
                chunk["audio"] = tone[:, a * 192:(a + m) * 192]
                pieces.append(group.stream(chunk, m * 192, state))
                a += m
        assert (torch.cat(pieces, -1) - one).abs().max() < 1e-5 * one.abs().max()
        return
    else:
        proc, inputs = Wavetable(sample_rate=48000, n_wavetable=64), ["amplitudes", "wavetables", "f0_hz"]
        tables = torch.randn(1, n_frames if synth == "wavetable_frames" else 1, 64, generator=g)
        controls = {"amplitudes": torch.randn(1, n_frames, 1, generator=g), "f0_hz": f0,
                    "wavetables": tables if synth == "wavetable_frames" else tables[:, 0]}
    group = ProcessorGroup([{"processor": proc, "inputs": inputs, "name": "out"}], frame_rate=250)
    with torch.no_grad():
        one = group.run(controls, n_samples=n_frames * 192)["out"]
        chunked = _chunked(group, controls, [3, 1, 250, 246], seed=0)
    assert chunked.shape == one.shape
    # float32 phase rounding (~1e-7 rad), steepened by a random 64-point table: 1e-4 of the peak
    assert (chunked - one).abs().max() < 1e-4 * one.abs().max()
