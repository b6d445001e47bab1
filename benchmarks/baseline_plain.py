"""Reference-style plain-torch implementations: what a direct port of ddsp's core.py computes
(sample-rate [batch, n_samples, n_harmonics] envelopes, one cumsum, one sin over the whole tensor;
framed FFT filtering; centre-free STFT loss). Same numbers as ddsp_lab up to float32 phase drift;
used as the baseline measured in the same run."""
from __future__ import annotations

import math

import torch

from ddsp_lab import dsp


def harmonic_plain(amps_raw, dist_raw, f0_hz, n_samples, sample_rate):
    amps = dsp.exp_sigmoid(amps_raw)
    dist = dsp.normalize_harmonics(dsp.exp_sigmoid(dist_raw), f0_hz, sample_rate)
    n_h = dist.shape[-1]
    freqs = f0_hz * torch.arange(1, n_h + 1, dtype=f0_hz.dtype)
    f_env = dsp.resample(freqs, n_samples)                       # [b, n, h]
    a_env = dsp.upsample_with_windows(amps * dist, n_samples)    # [b, n, h]
    a_env = torch.where(f_env >= sample_rate / 2, torch.zeros_like(a_env), a_env)
    phase = torch.cumsum(f_env * (2 * math.pi / sample_rate), dim=1)
    return (a_env * torch.sin(phase)).sum(-1)
