"""Networks: the reference's preprocessor scaling and the RNN-FC decoder with Keras weights,
checked against an independent numpy implementation of the Keras layers."""
import numpy as np
import pytest
import torch

from ddsp_lab import dsp
from ddsp_lab.networks import F0LoudnessPreprocessor, RnnFcDecoder
from ddsp_lab.networks.encoders import F0ResNetEncoder, ZEncoder

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def _keras_weights(rng, sizes, ch, rnn, n_layers, n_out):
    w = {}
    def stack(prefix, n_in):
        for j in range(n_layers):
            w[f"{prefix}_fc{j}_dense_kernel"] = rng.standard_normal((n_in if j == 0 else ch, ch)) * 0.3
            w[f"{prefix}_fc{j}_dense_bias"] = rng.standard_normal(ch) * 0.1
            w[f"{prefix}_fc{j}_ln_gamma"] = 1 + rng.standard_normal(ch) * 0.1
            w[f"{prefix}_fc{j}_ln_beta"] = rng.standard_normal(ch) * 0.1
    for i, n in enumerate(sizes):
        stack(f"in{i}", n)
    w["gru_kernel"] = rng.standard_normal((ch * len(sizes), 3 * rnn)) * 0.3
    w["gru_recurrent_kernel"] = rng.standard_normal((rnn, 3 * rnn)) * 0.3
    w["gru_bias"] = rng.standard_normal((2, 3 * rnn)) * 0.1
    stack("out", ch * len(sizes) + rnn)
    w["dense_out_kernel"] = rng.standard_normal((ch, n_out)) * 0.3
    w["dense_out_bias"] = rng.standard_normal(n_out) * 0.1
    return w


def _keras_forward(w, inputs, n_layers, rnn):
    """Keras semantics in numpy: Dense (x @ kernel + bias), LayerNormalization(eps=1e-3),
    leaky_relu(alpha=0.2), GRU(reset_after=True) with gates z, r, h."""
    def stack(prefix, x):
        for j in range(n_layers):
            x = x @ w[f"{prefix}_fc{j}_dense_kernel"] + w[f"{prefix}_fc{j}_dense_bias"]
            mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
            x = (x - mu) / np.sqrt(var + 1e-3) * w[f"{prefix}_fc{j}_ln_gamma"] + w[f"{prefix}_fc{j}_ln_beta"]
            x = np.where(x > 0, x, 0.2 * x)
        return x
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    hidden = [stack(f"in{i}", x) for i, x in enumerate(inputs)]
    x = np.concatenate(hidden, -1)
    b, t, _ = x.shape
    h = np.zeros((b, rnn))
    kz, kr, kh = np.split(w["gru_kernel"], 3, axis=-1)
    uz, ur, uh = np.split(w["gru_recurrent_kernel"], 3, axis=-1)
    (bz, br, bh), (rbz, rbr, rbh) = np.split(w["gru_bias"][0], 3), np.split(w["gru_bias"][1], 3)
    outs = []
    for step in range(t):
        xt = x[:, step]
        z = sig(xt @ kz + bz + h @ uz + rbz)
        r = sig(xt @ kr + br + h @ ur + rbr)
        hh = np.tanh(xt @ kh + bh + r * (h @ uh + rbh))
        h = z * h + (1 - z) * hh
        outs.append(h)
    y = stack("out", np.concatenate(hidden + [np.stack(outs, 1)], -1))
    return y @ w["dense_out_kernel"] + w["dense_out_bias"]


def test_rnn_fc_decoder_with_keras_weights_matches_keras_semantics():
    rng = np.random.default_rng(0)
    splits = (("amps", 1), ("harmonic_distribution", 10), ("noise_magnitudes", 5))
    w = _keras_weights(rng, (1, 1), ch=24, rnn=32, n_layers=2, n_out=16)
    inputs = [rng.uniform(0, 1, (2, 50, 1)), rng.uniform(0, 1, (2, 50, 1))]
    expected = _keras_forward(w, inputs, 2, 32)
    dec = RnnFcDecoder(rnn_channels=32, ch=24, layers_per_stack=2, output_splits=splits).double()
    dec.load_reference_weights({k: torch.tensor(v) for k, v in w.items()})
    out = dec({"ld_scaled": torch.tensor(inputs[0]), "f0_scaled": torch.tensor(inputs[1])})
    got = torch.cat([out[k] for k, _ in splits], -1).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10)
    # torch's own numerics (one argument away) differ measurably
    other = RnnFcDecoder(rnn_channels=32, ch=24, layers_per_stack=2, output_splits=splits,
                         layer_norm_eps=1e-5, leaky_slope=0.01).double()
    other.load_reference_weights({k: torch.tensor(v) for k, v in w.items()})
    got2 = torch.cat([other({"ld_scaled": torch.tensor(inputs[0]), "f0_scaled": torch.tensor(inputs[1])})[k]
                      for k, _ in splits], -1).detach().numpy()
    assert np.abs(got2 - expected).max() > 1e-3


def test_decoder_outputs_split_by_name_and_check_inputs():
    dec = RnnFcDecoder(rnn_channels=16, ch=8, layers_per_stack=1,
                       output_splits=(("amps", 1), ("harmonic_distribution", 4)))
    x = {"ld_scaled": torch.rand(3, 20, 1), "f0_scaled": torch.rand(3, 20, 1)}
    out = dec(x)
    assert out["amps"].shape == (3, 20, 1) and out["harmonic_distribution"].shape == (3, 20, 4)
    with pytest.raises(ValueError, match="f0_scaled"):
        dec({"ld_scaled": torch.rand(3, 20, 1)})
    with pytest.raises(ValueError, match="output_splits"):
        RnnFcDecoder(output_splits=())


def test_preprocessor_scaling_and_resampling():
    pre = F0LoudnessPreprocessor(time_steps=100)
    f0 = torch.full((2, 25), 440.0)
    ld = torch.linspace(-80, 0, 25).expand(2, -1)
    out = pre({"f0_hz": f0, "loudness_db": ld})
    assert out["f0_scaled"].shape == (2, 100, 1)
    assert torch.allclose(out["f0_scaled"], torch.full((2, 100, 1), 69.0 / 127))
    assert out["ld_scaled"][0, 0, 0] == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(out["loudness_db"], dsp.resample(ld[..., None], 100))
    with pytest.raises(ValueError, match="loudness_db"):
        pre({"f0_hz": f0})


def test_preprocessor_computes_loudness_from_audio():
    audio = 0.5 * torch.sin(2 * torch.pi * 1000 * torch.arange(16000) / 16000)[None]
    out = F0LoudnessPreprocessor(time_steps=250, compute_loudness=True)(
        {"f0_hz": torch.full((1, 250), 1000.0), "audio": audio})
    expected = dsp.resample(dsp.compute_loudness(audio)[..., None], 250)
    assert torch.allclose(out["loudness_db"], expected)


# ---------------------------------------------------------------- spectral front-ends under autocast


def _tone_and_noise(n: int = 8000, batch: int = 2) -> torch.Tensor:
    t = torch.arange(n) / 16000
    noise = torch.randn(batch, n, generator=torch.Generator().manual_seed(0))
    return 0.5 * torch.sin(2 * torch.pi * 440.0 * t) + 0.05 * noise


def _assert_float32_under_bf16_autocast(front_end, audio: torch.Tensor) -> None:
    """front_end(audio) under CPU bf16 autocast: float32 and equal to the plain float32 output."""
    plain = front_end(audio)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = front_end(audio)
        from_bf16 = front_end(audio.bfloat16())  # a reduced-precision input is cast up first
    assert plain.dtype == mixed.dtype == from_bf16.dtype == torch.float32
    torch.testing.assert_close(mixed, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(from_bf16, front_end(audio.bfloat16().float()), rtol=1e-5, atol=1e-5)


def test_z_encoder_mfcc_front_end_stays_float32_under_autocast():
    encoder = ZEncoder(time_steps=50, z_dims=4, rnn_channels=8, n_mfcc=13)
    audio = _tone_and_noise()
    _assert_float32_under_bf16_autocast(encoder.mfcc, audio)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        z = encoder({"audio": audio})["z"]  # the GRU and dense layers may run in bf16
    assert z.shape == (2, 50, 4) and torch.isfinite(z).all()


@pytest.mark.parametrize("spectrum", ("logmel", "cqt"))
def test_f0_resnet_encoder_log_spectrum_stays_float32_under_autocast(spectrum):
    encoder = F0ResNetEncoder(time_steps=50, spectrum=spectrum, mel_bins=64, fft_size=512,
                              cqt_fmin=220.0, cqt_bins=36, cqt_bins_per_octave=12,
                              channels=(8,), blocks=(1,), f0_bins=16)
    audio = _tone_and_noise()
    _assert_float32_under_bf16_autocast(encoder.log_spectrum, audio)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder({"audio": audio})
    assert out["f0_hz"].shape == (2, 50, 1) and torch.isfinite(out["f0_hz"]).all()


def test_preprocessor_loudness_stays_float32_under_autocast():
    pre = F0LoudnessPreprocessor(time_steps=50, compute_loudness=True)
    audio = _tone_and_noise()
    f0 = torch.full((2, 50), 440.0)
    _assert_float32_under_bf16_autocast(lambda a: pre({"f0_hz": f0, "audio": a})["loudness_db"], audio)
