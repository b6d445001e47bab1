"""The paper's resynthesis metrics, per example, on curves (the evaluator computes the curves).

As DESIGN.md and the reference's evaluation define them:
  - loudness L1: mean over frames of |loudness(resynthesis) - loudness(target)|, dB;
  - f0 L1: mean |MIDI(f0 of the resynthesis) - MIDI(f0 of the target)| in semitones over the
    frames where the target's CREPE confidence is >= 0.85;
  - f0 outlier: an example whose resynthesis has no frame of confidence >= 0.85, or whose f0 L1 is
    above 12 semitones. Examples whose target has no confident frame are left out first (of the f0
    L1 and of the outlier ratio), and counted;
  - loudness L1 in the unit of the paper's Table 2 (`paper_loudness`): standard deviations.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import dsp

CONFIDENCE_THRESHOLD = 0.85
OUTLIER_SEMITONES = 12.0
# The reference's evaluation code at the paper's release: its loudness statistics on NSynth.
PAPER_LOUDNESS_MEAN, PAPER_LOUDNESS_STD = -4.0599, 3.5105


def _frames(name: str, x: Tensor) -> Tensor:
    x = x[..., 0] if x.dim() == 3 else x
    if x.dim() != 2:
        raise ValueError(f"{name} must be [batch, n_frames(, 1)], got {tuple(x.shape)}")
    return x


def _same_frames(*curves: tuple[str, Tensor]) -> list[Tensor]:
    out = [_frames(n, c) for n, c in curves]
    n_frames = min(c.shape[1] for c in out)
    if any(c.shape[0] != out[0].shape[0] for c in out):
        raise ValueError(f"batch sizes differ: {[(n, tuple(c.shape)) for (n, _), c in zip(curves, out)]}")
    if max(c.shape[1] for c in out) - n_frames > 1:  # one frame of rounding between framings
        raise ValueError(f"frame counts differ: {[(n, tuple(c.shape)) for (n, _), c in zip(curves, out)]}")
    return [c[:, :n_frames] for c in out]


def loudness_l1(loudness_db: Tensor, target_loudness_db: Tensor) -> Tensor:
    """[batch]: mean |loudness - target| over frames (dB, or whatever unit the curves are in)."""
    x, t = _same_frames(("loudness_db", loudness_db), ("target_loudness_db", target_loudness_db))
    return (x - t).abs().mean(1)


def f0_metrics(f0_hz: Tensor, confidence: Tensor, target_f0_hz: Tensor, target_confidence: Tensor,
               threshold: float = CONFIDENCE_THRESHOLD,
               outlier_semitones: float = OUTLIER_SEMITONES) -> dict[str, Tensor]:
    """Per example [batch]:
        f0_l1_semitones: mean |MIDI difference| over the target's confident frames (NaN where the
            target has none);
        target_confident: the target has a frame with confidence >= threshold;
        f0_outlier: 1.0 where (target confident and) the resynthesis has no confident frame or
            its f0 L1 exceeds outlier_semitones; 0.0 otherwise; NaN where left out.
    """
    f0, c, f0_t, c_t = _same_frames(("f0_hz", f0_hz), ("confidence", confidence),
                                    ("target_f0_hz", target_f0_hz), ("target_confidence", target_confidence))
    mask = (c_t >= threshold).to(f0.dtype)
    diff = (dsp.hz_to_midi(f0.clamp(min=1e-3)) - dsp.hz_to_midi(f0_t.clamp(min=1e-3))).abs()
    n = mask.sum(1)
    confident_target = n > 0
    l1 = torch.where(confident_target, (diff * mask).sum(1) / n.clamp(min=1.0), torch.full_like(n, math.nan))
    no_confident_output = ~(c >= threshold).any(1)
    outlier = (no_confident_output | (l1 > outlier_semitones)).to(f0.dtype)
    return {"f0_l1_semitones": l1, "target_confident": confident_target,
            "f0_outlier": torch.where(confident_target, outlier, torch.full_like(outlier, math.nan))}


def paper_loudness(audio: Tensor, sample_rate: int = 16000, n_fft: int = 2048, hop: int = 64) -> Tensor:
    """Loudness as the reference's evaluation code computed it at the paper's release, in its
    standardised units: log(mean over frequency of the A-weighted STFT magnitude + 1e-4), then
    (x - mean) / std with the reference's NSynth statistics. The A-weighting is librosa's
    perceptual weighting of |X|^2 (ref 1, amin 1e-15, top_db 200, A-weights floored at -80 dB),
    back to amplitude. STFT: Hann, centred with reflection (librosa's stft of that time).
    audio [batch, n_samples] -> [batch, n_samples // hop + 1]."""
    if audio.dim() != 2:
        raise ValueError(f"audio must be [batch, n_samples], got {tuple(audio.shape)}")
    x = audio.float()  # a metric: float32 is ample (the 1e-15 floor is far above float32's range end)
    if x.shape[-1] <= n_fft // 2:
        x = torch.nn.functional.pad(x, (0, n_fft // 2 + 1 - x.shape[-1]))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft, dtype=x.dtype, device=x.device),
                      center=True, pad_mode="reflect", return_complex=True)
    # power_to_db(|X|^2, amin 1e-15, top_db 200) + A(f), back to amplitude: the same as flooring the
    # power at max(1e-15, 1e-20 x its maximum) and weighting the magnitude by 10^(A / 20)
    power = spec.real.square() + spec.imag.square()
    power = torch.maximum(power.clamp(min=1e-15), power.amax(dim=(-2, -1), keepdim=True) * 1e-20)
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64, device=x.device)
    gain = (10.0 ** (dsp.a_weighting_db(freqs).to(x.device) / 20.0)).to(x.dtype)
    amplitude = power.sqrt() * gain[:, None]
    loudness = torch.log(amplitude.mean(dim=-2) + 1e-4)  # [batch, frames]
    return ((loudness - PAPER_LOUDNESS_MEAN) / PAPER_LOUDNESS_STD).to(audio.dtype)
