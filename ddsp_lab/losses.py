"""Losses. Every loss is an nn.Module; audio losses are called loss(target_audio, audio) -> scalar.

MultiScaleSpectralLoss defaults to the paper (ICLR 2020): FFT sizes 2048..64 at 75 % overlap, L1 on
magnitudes + L1 on natural-log magnitudes. The reference library's SpectralLoss() default has no
log term: MultiScaleSpectralLoss(logmag_weight=0.0) reproduces it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import dsp
from .dsp._checks import check_choice
from .dsp.spectral import hop_blocks, magnitude_of, overlap_add_windowed, squeeze_audio, windowed_blocks
from .dsp.units import safe_divide

LOSS_TYPES = ("L1", "L2", "COSINE")


def mean_difference(target: Tensor, value: Tensor, loss_type: str = "L1",
                    weights: Tensor | None = None) -> Tensor:
    """Mean over all elements of |d * w| (L1) or d^2 * w (L2), d = target - value (weights are NOT
    normalised, as in the reference); COSINE: mean over frames of 1 - cosine similarity on the
    last axis."""
    loss_type = loss_type.upper()
    check_choice("loss_type", loss_type, LOSS_TYPES)
    if weights is None and loss_type != "COSINE":  # fused kernels, forward and backward
        fn = nn.functional.l1_loss if loss_type == "L1" else nn.functional.mse_loss
        return fn(value, target)
    w = 1.0 if weights is None else weights
    if loss_type == "L1":
        return torch.mean(torch.abs((target - value) * w))
    if loss_type == "L2":
        return torch.mean((target - value) ** 2 * w)
    cos = nn.functional.cosine_similarity(target, value, dim=-1, eps=1e-8)
    return torch.mean((1.0 - cos) * (w[..., 0] if isinstance(w, Tensor) else w))


def _l1_mag_logmag(mag_x: Tensor, mag_t: Tensor, needs_grad: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(mean|Mx - Mt|, mean|log Mx - log Mt|) with safe_log semantics (zeros -> log 1e-5), and
    for the backward pass (None without it) s = sign(Mx - Mt) / (n Mx) and inv = 1 / Mx, both 0
    where Mx = 0: log is monotonic, so both terms share the sign, and their gradients wrt the
    spectrum X are X s (magnitude) and X s inv (log)."""
    positive = mag_x > 0
    diff = mag_x - mag_t
    n = diff.numel()
    log_gap = torch.where(positive, mag_x, 1e-5).log_().sub_(dsp.safe_log(mag_t))
    terms = torch.stack([diff.abs().sum(), log_gap.abs().sum()]) / n
    if not needs_grad:
        return terms, None, None
    inv = torch.where(positive, mag_x, math.inf).reciprocal_()
    return terms, diff.sign_().mul_(inv).div_(n), inv


class _L1MagLogmag(torch.autograd.Function):
    """Both L1 spectral terms of one scale from its complex spectrum X, fused (_l1_mag_logmag)."""

    @staticmethod
    def forward(ctx, spec_x: Tensor, mag_t: Tensor) -> Tensor:
        terms, s, inv = _l1_mag_logmag(magnitude_of(spec_x), mag_t, ctx.needs_input_grad[0])
        if s is not None:
            ctx.save_for_backward(spec_x * s, inv)
        return terms

    @staticmethod
    def backward(ctx, grad: Tensor):
        u, inv = ctx.saved_tensors
        return u * (grad[0] + grad[1] * inv), None


class _L1SpectralScale(torch.autograd.Function):
    """One scale of the paper's loss from the audio, fused end to end: windowed frames, rfft,
    (mean|Mx - Mt|, mean|log Mx - log Mt|). The backward pass is the adjoint of each step written
    out: the two terms' common factor sign(Mx - Mt) X / (n Mx) (_l1_mag_logmag), the adjoint of
    rfft as one inverse real FFT (N irfft(G) with the bins that have a conjugate twin halved;
    autograd's rfft backward is a full complex FFT), then the adjoint of framing, overlap-added.
    Needs frame_size a multiple of hop (frames are shifted views of hop blocks) and pad_end.
    """

    @staticmethod
    def forward(ctx, audio: Tensor, mag_t: Tensor, frame_size: int, hop: int) -> Tensor:
        n_frames, r = max(1, -(-audio.shape[-1] // hop)), frame_size // hop
        fft_size = 1 << math.ceil(math.log2(frame_size))
        window = torch.hann_window(frame_size, periodic=True, dtype=audio.dtype, device=audio.device)
        blocks = hop_blocks(audio, n_frames, r, hop)
        spec = torch.fft.rfft(windowed_blocks(blocks, window, r, n_frames), n=fft_size)
        terms, s, inv = _l1_mag_logmag(magnitude_of(spec), mag_t, ctx.needs_input_grad[0])
        if s is not None:
            ctx.save_for_backward(spec, s, inv, window)
            ctx.sizes = (frame_size, fft_size, r, blocks.shape, audio.shape[-1])
        return terms

    @staticmethod
    def backward(ctx, grad: Tensor):
        spec, u, inv, window = ctx.saved_tensors
        frame_size, fft_size, r, blocks_shape, n = ctx.sizes
        coef = torch.addcmul(grad[0].expand_as(inv), inv, grad[1].expand_as(inv)).mul_(u).mul_(fft_size)
        coef[..., 1:fft_size // 2] *= 0.5  # bins whose conjugate twin the one-sided spectrum omits
        g_spec = torch.view_as_complex(torch.view_as_real(spec) * coef[..., None])
        frames = torch.fft.irfft(g_spec, n=fft_size)[..., :frame_size]
        blocks = overlap_add_windowed(frames, window, r, blocks_shape)
        return blocks.reshape(*blocks_shape[:-2], -1)[..., :n], None, None, None


def _check_pair(target_audio: Tensor, audio: Tensor) -> None:
    if target_audio.shape != audio.shape:
        raise ValueError(f"target_audio and audio must have the same shape [batch, n_samples], got "
                         f"{tuple(target_audio.shape)} and {tuple(audio.shape)}")
    if audio.dim() not in (1, 2):
        raise ValueError(f"audio must be [batch, n_samples], got {tuple(audio.shape)}")


class MultiScaleSpectralLoss(nn.Module):
    """Multi-scale spectral loss: sum over FFT sizes of weighted distances between spectrograms.

    Terms (each weight 0 switches it off): mag (linear magnitude), logmag (natural log, safe_log),
    delta_time / delta_freq (finite differences of the magnitude along time / frequency),
    cumsum_freq (cumulative magnitude over frequency), loudness (A-weighted loudness in dB, n_fft
    2048, at frame_rate). Frames are not centred; window = FFT size; hop = size * (1 - overlap).
    forward returns the total; `terms` returns each term and the total.
    """

    def __init__(self, fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64),
                 loss_type: str = "L1", mag_weight: float = 1.0, delta_time_weight: float = 0.0,
                 delta_freq_weight: float = 0.0, cumsum_freq_weight: float = 0.0,
                 logmag_weight: float = 1.0, loudness_weight: float = 0.0, overlap: float = 0.75,
                 sample_rate: int = 16000, frame_rate: int = 250):
        super().__init__()
        check_choice("loss_type", loss_type.upper(), LOSS_TYPES)
        if not fft_sizes:
            raise ValueError("fft_sizes must name at least one FFT size, got an empty list")
        self.fft_sizes = tuple(int(s) for s in fft_sizes)
        self.loss_type = loss_type.upper()
        self.weights = {"mag": mag_weight, "delta_time": delta_time_weight,
                        "delta_freq": delta_freq_weight, "cumsum_freq": cumsum_freq_weight,
                        "logmag": logmag_weight, "loudness": loudness_weight}
        self.overlap, self.sample_rate, self.frame_rate = overlap, sample_rate, frame_rate

    def _spectral_terms(self, mag_t: Tensor, mag_x: Tensor) -> dict[str, Tensor]:
        w, diff = self.weights, lambda a, b: mean_difference(a, b, self.loss_type)
        out = {}
        if w["mag"]:
            out["mag"] = diff(mag_t, mag_x)
        if w["delta_time"]:
            out["delta_time"] = diff(torch.diff(mag_t, dim=1), torch.diff(mag_x, dim=1))
        if w["delta_freq"]:
            out["delta_freq"] = diff(torch.diff(mag_t, dim=2), torch.diff(mag_x, dim=2))
        if w["cumsum_freq"]:
            out["cumsum_freq"] = diff(torch.cumsum(mag_t, dim=2), torch.cumsum(mag_x, dim=2))
        if w["logmag"]:
            out["logmag"] = diff(dsp.safe_log(mag_t), dsp.safe_log(mag_x))
        return out

    def _fused(self) -> bool:
        """The paper's loss (L1 on mag and/or logmag only) takes the fused path."""
        w = self.weights
        return self.loss_type == "L1" and not (w["delta_time"] or w["delta_freq"] or w["cumsum_freq"])

    def terms(self, target_audio: Tensor, audio: Tensor) -> dict[str, Tensor]:
        """Unweighted terms summed over scales, plus 'total' (the weighted sum)."""
        _check_pair(target_audio, audio)
        sums: dict[str, Tensor] = {}
        fused = self._fused() and not target_audio.requires_grad
        for size in self.fft_sizes:
            with torch.no_grad() if not target_audio.requires_grad else torch.enable_grad():
                mag_t = dsp.compute_mag(target_audio, size, self.overlap)
            hop = int(size * (1.0 - self.overlap))
            if fused and hop >= 1 and size % hop == 0:
                pair = _L1SpectralScale.apply(squeeze_audio(audio), mag_t, size, hop)
                scale_terms = {k: pair[i] for i, k in enumerate(("mag", "logmag")) if self.weights[k]}
            elif fused:
                pair = _L1MagLogmag.apply(dsp.stft(audio, size, self.overlap), mag_t)
                scale_terms = {k: pair[i] for i, k in enumerate(("mag", "logmag")) if self.weights[k]}
            else:
                scale_terms = self._spectral_terms(mag_t, dsp.compute_mag(audio, size, self.overlap))
            for name, value in scale_terms.items():
                sums[name] = sums[name] + value if name in sums else value
        if self.weights["loudness"]:
            ld = [dsp.compute_loudness(a, self.sample_rate, self.frame_rate, n_fft=2048)
                  for a in (target_audio, audio)]
            sums["loudness"] = mean_difference(ld[0], ld[1], self.loss_type)
        sums["total"] = sum(self.weights[k] * v for k, v in sums.items())
        return sums

    def forward(self, target_audio: Tensor, audio: Tensor) -> Tensor:
        return self.terms(target_audio, audio)["total"]


def amp_loss(amp: Tensor, amp_target: Tensor, loss_type: str = "L1", weights: Tensor | None = None,
             log: bool = False, amin: float = 1e-5) -> Tensor:
    """Distance between amplitudes, optionally of log10(max(amin, amp))."""
    if log:
        amp, amp_target = torch.log10(amp.clamp(min=amin)), torch.log10(amp_target.clamp(min=amin))
    return mean_difference(amp, amp_target, loss_type, weights)


def freq_loss(f_hz: Tensor, f_hz_target: Tensor, loss_type: str = "L1",
              weights: Tensor | None = None) -> Tensor:
    """Distance between frequencies in MIDI (semitones)."""
    return mean_difference(dsp.hz_to_midi(f_hz), dsp.hz_to_midi(f_hz_target), loss_type, weights)


class ParamLoss(nn.Module):
    """weight * mean_difference(target, pred): supervision on synth parameters."""

    def __init__(self, weight: float = 1.0, loss_type: str = "L1"):
        super().__init__()
        self.weight, self.loss_type = weight, loss_type

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        return self.weight * mean_difference(target, pred, self.loss_type, weights)


class HarmonicConsistencyLoss(nn.Module):
    """Consistency between two harmonic parameterisations (amplitude, distribution, f0).

    terms(...) -> {'harm_amp_loss', 'harm_dist_loss', 'f0_hz_loss'} (weighted); forward returns
    their sum. Distribution and f0 count only frames whose target amplitude reaches amp_threshold.
    """

    def __init__(self, amp_weight: float = 1.0, dist_weight: float = 1.0, f0_weight: float = 1.0,
                 amp_threshold: float = 1e-4):
        super().__init__()
        self.amp_weight, self.dist_weight, self.f0_weight = amp_weight, dist_weight, f0_weight
        self.amp_threshold = amp_threshold

    def terms(self, harm_amp: Tensor, harm_amp_target: Tensor, harm_dist: Tensor,
              harm_dist_target: Tensor, f0_hz: Tensor, f0_hz_target: Tensor) -> dict[str, Tensor]:
        mask = (harm_amp_target >= self.amp_threshold).to(harm_amp.dtype)
        return {
            "harm_amp_loss": self.amp_weight * amp_loss(harm_amp, harm_amp_target),
            "harm_dist_loss": self.dist_weight * amp_loss(harm_dist, harm_dist_target, weights=mask),
            "f0_hz_loss": self.f0_weight * freq_loss(f0_hz, f0_hz_target, weights=mask),
        }

    def forward(self, *args: Tensor) -> Tensor:
        return sum(self.terms(*args).values())


def wasserstein_distance(u_values: Tensor, v_values: Tensor, u_weights: Tensor | None = None,
                         v_weights: Tensor | None = None, p: float = 1.0,
                         normalize: bool = True) -> Tensor:
    """Distance between weighted 1-D distributions along the last axis: the L^p distance between
    their CDFs, (integral |U - V|^p)^(1/p). For p = 1 this is the Wasserstein-1 distance (as
    scipy.stats.wasserstein_distance); for p = 2 it is scipy's energy distance / sqrt(2), not W2.

    The CDFs are normalised by the total weight (normalize=True). The reference computes that
    normalisation and discards it (un-normalised cumulative weights): normalize=False reproduces it.

    Args:
        u_values, v_values: [..., n_u], [..., n_v]; weights alike (None: uniform).
    Returns:
        [...] distances.
    """
    def cdf(values: Tensor, weights: Tensor | None, at: Tensor) -> Tensor:
        sorted_v, order = torch.sort(values, dim=-1)
        idx = torch.searchsorted(sorted_v.contiguous(), at.contiguous(), right=True)
        if weights is None:
            weights = torch.ones_like(values)
        cum = torch.nn.functional.pad(torch.cumsum(torch.gather(weights, -1, order), -1), (1, 0))
        out = torch.gather(cum, -1, idx)
        return safe_divide(out, cum[..., -1:]) if normalize else out

    all_values, _ = torch.sort(torch.cat([u_values, v_values], dim=-1), dim=-1)
    deltas = torch.diff(all_values, dim=-1)
    at = all_values[..., :-1]
    gap = torch.abs(cdf(u_values, u_weights, at) - cdf(v_values, v_weights, at))
    if p == 1.0:
        return torch.sum(gap * deltas, -1)
    return torch.sum(gap ** p * deltas, -1) ** (1.0 / p)


class WassersteinConsistencyLoss(nn.Module):
    """Consistency between two sets of sinusoids (amps, freqs [batch, n_frames, n]): per frame, the
    Wasserstein-1 distance between their amplitude-weighted frequency distributions (in MIDI with
    midi=True), with properly normalised CDFs; mean over frames, times weight."""

    def __init__(self, weight: float = 1.0, midi: bool = True, normalize: bool = True):
        super().__init__()
        self.weight, self.midi, self.normalize = weight, midi, normalize

    def forward(self, amps_a: Tensor, freqs_a: Tensor, amps_b: Tensor, freqs_b: Tensor) -> Tensor:
        if self.midi:
            freqs_a, freqs_b = dsp.hz_to_midi(freqs_a), dsp.hz_to_midi(freqs_b)
        w = wasserstein_distance(freqs_a, freqs_b, amps_a, amps_b, p=1.0, normalize=self.normalize)
        return self.weight * w.mean()


class KDEConsistencyLoss(nn.Module):
    """Consistency between two sets of sinusoids by Gaussian kernel density estimates (the
    reference's definition, close to a Jeffreys divergence): -log p(a | b) - log p(b | a), where
    p(. | b) is a mixture of Gaussians in MIDI centred on b's sinusoids (scale in semitones),
    weighted by b's normalised amplitudes, and each sinusoid's NLL is weighted by its normalised
    amplitude; plus a term matching the mean amplitudes.

    amps_*, freqs_* (Hz): [batch, n_frames, n_sinusoids]. Returns a scalar.
    """

    def __init__(self, weight_a: float = 1.0, weight_b: float = 1.0, weight_mean_amp: float = 1.0,
                 scale_a: float = 0.1, scale_b: float = 0.1):
        super().__init__()
        self.weight_a, self.weight_b, self.weight_mean_amp = weight_a, weight_b, weight_mean_amp
        self.scale_a, self.scale_b = scale_a, scale_b

    @staticmethod
    def nll(amps: Tensor, freqs: Tensor, amps_target: Tensor, freqs_target: Tensor,
            scale_target: float) -> Tensor:
        """-log p(source | target) per frame: [batch, n_frames]."""
        amps_target = torch.where(amps_target == 0.0, torch.full_like(amps_target, 1e-7), amps_target)
        log_w = torch.log(safe_divide(amps_target, amps_target.sum(-1, keepdim=True)))
        x = dsp.hz_to_midi(freqs)[..., :, None]  # [b, t, source, 1]
        mu = dsp.hz_to_midi(freqs_target)[..., None, :]  # [b, t, 1, target]
        log_normal = -0.5 * ((x - mu) / scale_target) ** 2 - math.log(scale_target * math.sqrt(2 * math.pi))
        log_p = torch.logsumexp(log_w[..., None, :] + log_normal, dim=-1)  # [b, t, source]
        amps_norm = safe_divide(amps, amps.sum(-1, keepdim=True))
        return torch.mean(-log_p * amps_norm, dim=-1)

    def forward(self, amps_a: Tensor, freqs_a: Tensor, amps_b: Tensor, freqs_b: Tensor) -> Tensor:
        loss = amps_a.new_zeros(())
        if self.weight_a > 0:
            loss = loss + torch.mean(self.weight_a * self.nll(amps_a, freqs_a, amps_b, freqs_b, self.scale_b))
        if self.weight_b > 0:
            loss = loss + torch.mean(self.weight_b * self.nll(amps_b, freqs_b, amps_a, freqs_a, self.scale_a))
        if self.weight_mean_amp > 0:
            loss = loss + self.weight_mean_amp * torch.mean(torch.abs(amps_a.mean(-1) - amps_b.mean(-1)))
        return loss

from .perceptual import CrepeEmbeddingLoss  # noqa: E402,F401  (re-exported: configs name ddsp_lab.losses.*)
