"""Losses: zero on identical input, term bookkeeping, loudness in dB, float64 gradcheck,
Wasserstein against scipy, weighting semantics of mean_difference and the parameter losses."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch.autograd import gradcheck

from ddsp_lab import dsp
from ddsp_lab.losses import (HarmonicConsistencyLoss, KDEConsistencyLoss, MultiScaleSpectralLoss,
                             ParamLoss, WassersteinConsistencyLoss, amp_loss, freq_loss, mean_difference, wasserstein_distance)

ALL_TERMS = dict(mag_weight=1.0, delta_time_weight=0.5, delta_freq_weight=0.25,
                 cumsum_freq_weight=0.1, logmag_weight=2.0, loudness_weight=0.01)


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _audio(seed: int, shape=(2, 4000), dtype=torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=_gen(seed), dtype=dtype) * 0.3


def _tone(hz: float, n: int = 4000, sample_rate: int = 16000, amp: float = 0.1) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    return (amp * torch.sin(2 * math.pi * hz * t))[None]


# ---------------------------------------------------------------- MultiScaleSpectralLoss


@pytest.mark.parametrize("loss_type", ("L1", "L2", "COSINE", "l1"))
def test_spectral_loss_zero_iff_identical(loss_type):
    loss_fn = MultiScaleSpectralLoss(fft_sizes=(512, 128, 32), loss_type=loss_type, **ALL_TERMS)
    x, y = _audio(0), _audio(1)
    same = loss_fn.terms(x, x.clone())
    assert set(same) == {"mag", "delta_time", "delta_freq", "cumsum_freq", "logmag", "loudness", "total"}
    for name, value in same.items():
        assert value.dim() == 0 and abs(value.item()) < 1e-9, name
    different = loss_fn.terms(x, y)
    for name, value in different.items():
        assert torch.isfinite(value) and value.item() > 1e-6, name


def test_spectral_loss_terms_and_weighted_total():
    x, y = _audio(0), _audio(1)
    default = MultiScaleSpectralLoss(fft_sizes=(256, 64)).terms(x, y)
    assert set(default) == {"mag", "logmag", "total"}
    torch.testing.assert_close(default["total"], default["mag"] + default["logmag"])

    loss_fn = MultiScaleSpectralLoss(fft_sizes=(256, 64), **ALL_TERMS)
    terms = loss_fn.terms(x, y)
    weights = {"mag": 1.0, "delta_time": 0.5, "delta_freq": 0.25, "cumsum_freq": 0.1,
               "logmag": 2.0, "loudness": 0.01}
    assert set(terms) == set(weights) | {"total"}
    torch.testing.assert_close(terms["total"], sum(w * terms[k] for k, w in weights.items()))
    torch.testing.assert_close(loss_fn(x, y), terms["total"])

    # Spectral terms are sums over the FFT sizes; the mag term is the mean |difference| of |STFT|.
    per_size = [MultiScaleSpectralLoss(fft_sizes=(s,), **ALL_TERMS).terms(x, y) for s in (256, 64)]
    for name in ("mag", "delta_time", "delta_freq", "cumsum_freq", "logmag"):
        torch.testing.assert_close(terms[name], per_size[0][name] + per_size[1][name])
    mag = (dsp.compute_mag(x, 256) - dsp.compute_mag(y, 256)).abs().mean()
    torch.testing.assert_close(per_size[0]["mag"], mag)


def test_spectral_loss_loudness_term_is_level_difference_in_db():
    loss_fn = MultiScaleSpectralLoss(mag_weight=0.0, logmag_weight=0.0, loudness_weight=1.0,
                                     sample_rate=16000, frame_rate=250)
    tone = _tone(1000.0)
    terms = loss_fn.terms(tone, 2.0 * tone)
    assert set(terms) == {"loudness", "total"}
    assert terms["loudness"].item() == pytest.approx(20.0 * math.log10(2.0), abs=1e-6)
    assert loss_fn(tone, tone).item() == pytest.approx(0.0, abs=1e-9)


def test_spectral_loss_shape_mismatch_and_bad_settings_raise():
    loss_fn = MultiScaleSpectralLoss(fft_sizes=(64, 32))
    with pytest.raises(ValueError, match="target_audio"):
        loss_fn(torch.zeros(1, 256), torch.zeros(1, 300))
    with pytest.raises(ValueError, match="target_audio"):
        loss_fn(torch.zeros(2, 256), torch.zeros(1, 256))
    with pytest.raises(ValueError, match="loss_type"):
        MultiScaleSpectralLoss(loss_type="L3")
    with pytest.raises(ValueError, match="fft_sizes"):
        MultiScaleSpectralLoss(fft_sizes=())


@pytest.mark.parametrize("loss_type,extra_terms", (("L1", False), ("L1", True), ("L2", True)))
def test_spectral_loss_gradcheck_float64(loss_type, extra_terms):
    # L1 on mag + logmag only is the paper's loss (a fused path); the others the general one.
    target = _audio(0, (1, 256))
    audio = _audio(1, (1, 256)).requires_grad_(True)
    terms = {k: v for k, v in ALL_TERMS.items() if k != "loudness_weight"} if extra_terms else {}
    loss_fn = MultiScaleSpectralLoss(fft_sizes=(64, 32), loss_type=loss_type, **terms)
    assert gradcheck(lambda a: loss_fn(target, a), (audio,))
    # The target may carry gradients too (e.g. a learnt reference).
    assert gradcheck(lambda t, a: loss_fn(t, a), (target.clone().requires_grad_(True), audio))


def test_spectral_loss_with_a_hop_that_does_not_divide_the_frame_gradchecks_and_equals_the_general_path():
    """overlap 0.7: hops of 19 and 9 samples do not divide 64 and 32, so the fused loss takes its
    spectrum-level function instead of the one-function-per-scale path."""
    target, audio = _audio(0, (1, 256)), _audio(1, (1, 256)).requires_grad_(True)
    loss_fn = MultiScaleSpectralLoss(fft_sizes=(64, 32), overlap=0.7)
    assert gradcheck(lambda a: loss_fn(target, a), (audio,))
    fused = loss_fn(target, audio)
    general = loss_fn(target.clone().requires_grad_(True), audio)  # a target with grad: the general path
    torch.testing.assert_close(fused, general, rtol=1e-10, atol=1e-12)


def test_spectral_loss_same_value_and_gradient_whether_target_needs_grad():
    # A target that needs grad takes the general path; a plain one may take a fused path.
    target, audio = _audio(0, (2, 2000)), _audio(1, (2, 2000))
    for loss_fn in (MultiScaleSpectralLoss(fft_sizes=(512, 128, 32)),
                    MultiScaleSpectralLoss(fft_sizes=(256, 64), logmag_weight=0.0),
                    MultiScaleSpectralLoss(fft_sizes=(256, 64), mag_weight=0.0)):
        results = []
        for target_grad in (False, True):
            t = target.clone().requires_grad_(target_grad)
            a = audio.clone().requires_grad_(True)
            terms = loss_fn.terms(t, a)
            terms["total"].backward()
            results.append((terms, a.grad))
        (terms_a, grad_a), (terms_b, grad_b) = results
        assert set(terms_a) == set(terms_b)
        for name in terms_a:
            torch.testing.assert_close(terms_a[name], terms_b[name].detach(), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad_a, grad_b, rtol=1e-8, atol=1e-12)


def test_spectral_loss_gradient_points_towards_target():
    target = _tone(440.0, n=2048, amp=0.5)
    audio = (0.2 * target).requires_grad_(True)
    MultiScaleSpectralLoss(fft_sizes=(512, 128))(target, audio).backward()
    # Growing the too-quiet tone towards the target lowers the loss: d loss / d scale < 0.
    assert (audio.grad * target).sum() < 0


# ---------------------------------------------------------------- mean_difference and friends


def test_mean_difference_weight_semantics():
    t, v = _audio(0, (2, 5, 3)), _audio(1, (2, 5, 3))
    d = t - v
    torch.testing.assert_close(mean_difference(t, v, "L1"), d.abs().mean())
    torch.testing.assert_close(mean_difference(t, v, "l2"), (d ** 2).mean())
    torch.testing.assert_close(mean_difference(t, v, "L1", torch.full((1,), 2.0, dtype=t.dtype)),
                               2.0 * d.abs().mean())
    # A 0/1 mask is NOT renormalised: masked elements still count in the mean's denominator.
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0], dtype=t.dtype)[None, :, None].expand(2, 5, 1)
    masked = d.abs()[:, [0, 2]].sum() / d.numel()
    torch.testing.assert_close(mean_difference(t, v, "L1", mask), masked)
    torch.testing.assert_close(mean_difference(t, v, "L2", mask), (d ** 2)[:, [0, 2]].sum() / d.numel())
    # COSINE: mean over frames of (1 - cosine similarity over the last axis), frame-weighted.
    cos = (t * v).sum(-1) / (t.norm(dim=-1) * v.norm(dim=-1))
    torch.testing.assert_close(mean_difference(t, v, "COSINE"), (1.0 - cos).mean())
    torch.testing.assert_close(mean_difference(t, v, "COSINE", mask), ((1.0 - cos) * mask[..., 0]).mean())
    assert mean_difference(t, 3.0 * t, "COSINE").item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="loss_type"):
        mean_difference(t, v, "L3")


def test_param_loss():
    pred, target = _audio(0, (4, 7)), _audio(1, (4, 7))
    torch.testing.assert_close(ParamLoss(weight=3.0, loss_type="L2")(pred, target),
                               3.0 * ((target - pred) ** 2).mean())
    torch.testing.assert_close(ParamLoss()(pred, target), (target - pred).abs().mean())
    assert ParamLoss(weight=5.0)(pred, pred).item() == 0.0


def test_freq_loss_in_semitones():
    f = torch.full((1, 10, 1), 220.0, dtype=torch.float64)
    assert freq_loss(f, 2.0 * f).item() == pytest.approx(12.0)  # one octave
    assert freq_loss(f, f * 2.0 ** (1.0 / 12.0)).item() == pytest.approx(1.0)
    assert freq_loss(f, 2.0 * f, loss_type="L2").item() == pytest.approx(144.0)
    assert freq_loss(f, f).item() == pytest.approx(0.0, abs=1e-12)


def test_amp_loss_log():
    ones = torch.ones(2, 3, dtype=torch.float64)
    assert amp_loss(10.0 * ones, ones, log=True).item() == pytest.approx(1.0)  # a decade
    assert amp_loss(10.0 * ones, ones, log=False).item() == pytest.approx(9.0)
    # amin floors both sides: 0 and 1e-5 are the same, 0 vs 1 is 5 decades.
    assert amp_loss(0.0 * ones, 1e-5 * ones, log=True).item() == pytest.approx(0.0, abs=1e-12)
    assert amp_loss(0.0 * ones, ones, log=True).item() == pytest.approx(5.0)
    assert amp_loss(0.0 * ones, ones, log=True, amin=1e-2).item() == pytest.approx(2.0)


def test_consistency_losses_zero_on_identical_positive_otherwise():
    g = _gen(0)
    amp = torch.rand(2, 5, 1, generator=g, dtype=torch.float64) + 0.1
    dist = torch.rand(2, 5, 4, generator=g, dtype=torch.float64) + 0.1
    f0 = torch.rand(2, 5, 1, generator=g, dtype=torch.float64) * 300 + 100
    harm = HarmonicConsistencyLoss()
    assert harm(amp, amp, dist, dist, f0, f0).item() == pytest.approx(0.0, abs=1e-12)
    terms = harm.terms(amp, amp, dist, dist, f0, 2.0 * f0)
    assert terms["f0_hz_loss"].item() == pytest.approx(12.0)  # f0 weight 1, one octave
    assert terms["harm_amp_loss"].item() == 0.0
    wass = WassersteinConsistencyLoss()
    freqs = f0 * torch.arange(1, 5, dtype=torch.float64)
    assert wass(dist, freqs, dist, freqs).item() == pytest.approx(0.0, abs=1e-9)
    assert wass(dist, freqs, dist, 2.0 * freqs).item() == pytest.approx(12.0)  # all shifted an octave


def test_kde_consistency_is_the_two_way_kde_nll():
    """Against a direct scipy computation of -log p(a|b) - log p(b|a) (Gaussian mixtures in MIDI,
    amplitude-weighted) + |mean amp a - mean amp b|; smallest when the two sets coincide."""
    import numpy as np
    from scipy.stats import norm

    g = _gen(1)
    amps_a = torch.rand(1, 2, 3, generator=g, dtype=torch.float64) + 0.1
    amps_b = torch.rand(1, 2, 4, generator=g, dtype=torch.float64) + 0.1
    freqs_a = torch.rand(1, 2, 3, generator=g, dtype=torch.float64) * 500 + 100
    freqs_b = torch.rand(1, 2, 4, generator=g, dtype=torch.float64) * 500 + 100
    midi = lambda f: 12 * np.log2(f / 440.0) + 69  # noqa: E731

    def nll(a, f, at, ft, scale):
        out = []
        for t in range(a.shape[1]):
            w = at[0, t] / at[0, t].sum()
            p = [np.sum(w * norm.pdf(midi(x), midi(ft[0, t]), scale)) for x in f[0, t]]
            out.append(np.mean(-np.log(p) * a[0, t] / a[0, t].sum()))
        return np.mean(out)

    a, fa, b, fb = (x.numpy() for x in (amps_a, freqs_a, amps_b, freqs_b))
    # a wide kernel (in semitones) so that scipy's pdf does not underflow; ours uses logsumexp
    expected = nll(a, fa, b, fb, 20.0) + nll(b, fb, a, fa, 20.0) + np.mean(np.abs(a.mean(-1) - b.mean(-1)))
    kde = KDEConsistencyLoss(scale_a=20.0, scale_b=20.0)
    assert kde(amps_a, freqs_a, amps_b, freqs_b).item() == pytest.approx(expected, rel=1e-9)
    assert kde(amps_a, freqs_a, amps_a, freqs_a) < kde(amps_a, freqs_a, amps_a, freqs_a * 1.02)


# ---------------------------------------------------------------- Wasserstein


def test_wasserstein_matches_scipy_for_weighted_inputs():
    g = _gen(0)
    u = torch.randn(4, 7, generator=g, dtype=torch.float64)
    v = torch.randn(4, 5, generator=g, dtype=torch.float64) + 0.5
    uw = torch.rand(4, 7, generator=g, dtype=torch.float64) * 3 + 0.1
    vw = torch.rand(4, 5, generator=g, dtype=torch.float64) + 0.1
    ours = wasserstein_distance(u, v, uw, vw, normalize=True)
    assert ours.shape == (4,)
    for i in range(4):
        expected = scipy.stats.wasserstein_distance(u[i].numpy(), v[i].numpy(), uw[i].numpy(),
                                                    vw[i].numpy())
        assert ours[i].item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
        unweighted = scipy.stats.wasserstein_distance(u[i].numpy(), v[i].numpy())
        assert wasserstein_distance(u[i], v[i]).item() == pytest.approx(unweighted, rel=1e-10)
    # The reference's un-normalised CDFs give another number unless the weights sum to one.
    raw = wasserstein_distance(u, v, uw, vw, normalize=False)
    assert ((raw - ours).abs() > 1e-3).all()
    unit = wasserstein_distance(u, v, uw / uw.sum(-1, keepdim=True), vw / vw.sum(-1, keepdim=True),
                                normalize=False)
    torch.testing.assert_close(unit, ours)


def test_wasserstein_point_masses_and_p2_cdf_distance():
    zero, three = torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), 3.0, dtype=torch.float64)
    assert wasserstein_distance(zero, three).item() == pytest.approx(3.0)
    # Half the mass moves by 2: W1 = 1.
    u = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    v = torch.tensor([[0.0, 3.0]], dtype=torch.float64)
    assert wasserstein_distance(u, v).item() == pytest.approx(1.0)
    x = torch.from_numpy(np.array([[0.3, -1.0, 2.0]]))
    assert wasserstein_distance(x, x.flip(-1)).item() == pytest.approx(0.0, abs=1e-12)
    # For p != 1 it is the L^p distance between the CDFs (as scipy's and the reference's
    # _cdf_distance); for p = 2 scipy's energy distance is sqrt(2) times it.
    g = _gen(1)
    a, b = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(9, generator=g, dtype=torch.float64)
    aw, bw = torch.rand(6, generator=g, dtype=torch.float64), torch.rand(9, generator=g, dtype=torch.float64)
    energy = scipy.stats.energy_distance(a.numpy(), b.numpy(), aw.numpy(), bw.numpy())
    assert wasserstein_distance(a, b, aw, bw, p=2.0).item() == pytest.approx(energy / math.sqrt(2.0), rel=1e-10)
