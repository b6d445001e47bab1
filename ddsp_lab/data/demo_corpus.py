"""The built-in demo corpus: synthetic solo-instrument phrases, generated deterministically in
seconds, with their true f0 stored, so the main job runs with no download and the feature
extractors can be checked against ground truth.

Each example: a phrase of 1-3 notes (harmonic tone, spectral tilt varying over time) with vibrato,
tremolo, glides between notes, an attack/decay envelope, breath noise, and a little room reverb.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import dsp


def _rand(g: torch.Generator, lo: float, hi: float, shape=()) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)


def demo_example(index: int, sample_rate: int = 16000, frame_rate: int = 250,
                 seconds: float = 4.0, n_harmonics: int = 40) -> dict[str, Tensor]:
    """One deterministic example: {'audio' [n], 'f0_true_hz' [n_frames], 'amplitude_true' [n_frames]}."""
    g = torch.Generator().manual_seed(1000 + index)
    n_frames = int(round(seconds * frame_rate))
    hop = dsp.hop_size(sample_rate, frame_rate)
    n = n_frames * hop
    t = torch.arange(n_frames, dtype=torch.float64) / frame_rate
    # notes: MIDI 45..81, 1-3 per phrase, glides of 60 ms between them
    n_notes = int(torch.randint(1, 4, (1,), generator=g))
    notes = _rand(g, 45.0, 81.0, (n_notes,))
    bounds = torch.linspace(0, seconds, n_notes + 1, dtype=torch.float64)
    midi = torch.full_like(t, float(notes[0]))
    for k in range(1, n_notes):
        ramp = ((t - bounds[k]) / 0.06).clamp(0, 1)
        midi = midi + ramp * float(notes[k] - notes[k - 1])
    vib_rate, vib_depth = float(_rand(g, 4.0, 7.0)), float(_rand(g, 0.0, 0.4))  # semitones
    midi = midi + vib_depth * torch.sin(2 * math.pi * vib_rate * t + float(_rand(g, 0, 6.28)))
    f0 = dsp.midi_to_hz(midi)
    attack, release = float(_rand(g, 0.02, 0.3)), float(_rand(g, 0.1, 0.6))
    env = (t / attack).clamp(max=1) * ((seconds - t) / release).clamp(0, 1)
    trem = 1.0 + float(_rand(g, 0, 0.3)) * torch.sin(2 * math.pi * float(_rand(g, 3, 8)) * t)
    amp = float(_rand(g, 0.05, 0.4)) * env * trem
    k = torch.arange(1, n_harmonics + 1, dtype=torch.float64)
    tilt = float(_rand(g, 0.6, 2.0)) + float(_rand(g, -0.5, 0.5)) * t[:, None] / seconds
    dist = k ** -tilt * (1.0 + 0.5 * torch.rand((1, n_harmonics), generator=g, dtype=torch.float64))
    harmonic = dsp.harmonic_synthesis(f0[None, :, None], amp[None, :, None],
                                      harmonic_distribution=dist[None], n_samples=n,
                                      sample_rate=sample_rate)[0]
    noise = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * float(_rand(g, 0.002, 0.02))
    noise = noise * dsp.upsample_with_windows(env[None, :, None], n)[0, :, 0]
    dry = harmonic + noise
    ir_len = int(0.3 * sample_rate)
    decay = torch.exp(-torch.arange(ir_len, dtype=torch.float64) / (0.05 * sample_rate))
    ir = decay * (torch.rand(ir_len, generator=g, dtype=torch.float64) * 2 - 1) * float(_rand(g, 0.01, 0.05))
    ir[0] = 1.0
    wet = dsp.fft_convolve(dry[None], ir[None], padding="same", delay_compensation=0)[0]
    return {"audio": wet.float(), "f0_true_hz": f0.float(), "amplitude_true": amp.float()}
