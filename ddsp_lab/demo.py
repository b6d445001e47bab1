"""The demo job: render every synth and effect from hand-made controls, as WAV + spectrogram PNG.

Controls are raw (pre-scaling) network-style values where a processor scales them, so the demo
exercises exactly the path a trained model takes. Deterministic given the seed.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from . import dsp
from . import processors as P
from .media import save_spectrogram, save_wav


def _inv_exp_sigmoid(y: Tensor) -> Tensor:
    """Raw value whose exp_sigmoid is y (for hand-made controls)."""
    s = ((y - 1e-7).clamp(min=1e-9) / 2.0) ** (1.0 / math.log(10.0))
    return torch.log(s / (1.0 - s).clamp(min=1e-9))


def demo_controls(sample_rate: int, frame_rate: int, n_frames: int, n_harmonics: int = 60,
                  n_bands: int = 65) -> dict[str, Tensor]:
    """A phrase: a glide 220 -> 660 Hz with vibrato, a swelling amplitude, brightening spectrum."""
    t = torch.arange(n_frames, dtype=torch.float64) / frame_rate
    dur = n_frames / frame_rate
    f0 = 220.0 * 3.0 ** (t / dur) * (1.0 + 0.01 * torch.sin(2 * math.pi * 5.5 * t))
    env = torch.sin(math.pi * t / (dur - 1.0 / frame_rate)).clamp(min=0) ** 0.5
    k = torch.arange(1, n_harmonics + 1, dtype=torch.float64)
    tilt = 1.0 + 2.0 * (1.0 - t / dur)  # spectral slope falls: the sound brightens
    dist = k[None, :] ** -tilt[:, None]
    bands = torch.linspace(0, 1, n_bands, dtype=torch.float64)
    noise = 0.02 * env[:, None] * torch.exp(-3.0 * bands)[None, :] + 1e-4
    as_raw = lambda x: _inv_exp_sigmoid(x.float())[None]  # noqa: E731
    return {
        "f0_hz": f0.float()[None, :, None],
        "amps": as_raw(0.5 * env[:, None]),
        "harmonic_distribution": as_raw(dist / dist.sum(-1, keepdim=True)),
        "noise_magnitudes": as_raw(noise) + 5.0,  # FilteredNoise adds initial_bias -5
    }


def _renders(sr: int, fr: int, n: int, ctl: dict[str, Tensor], synth_stack: torch.nn.Module | None,
             gen: torch.Generator) -> dict[str, Callable[[], Tensor]]:
    n_frames = ctl["f0_hz"].shape[1]
    # synths take their length per call (n_samples=n), as a trained model renders any duration
    harmonic = lambda: P.Harmonic(sample_rate=sr)(ctl["amps"], ctl["harmonic_distribution"], ctl["f0_hz"], n_samples=n)  # noqa: E731
    noise_synth = P.FilteredNoise()
    noise_synth.generator = gen
    noise = lambda mags: noise_synth(mags, n_samples=n)  # noqa: E731
    dry = lambda: harmonic() + 0.5 * noise(ctl["noise_magnitudes"])  # noqa: E731
    t = torch.arange(n, dtype=torch.float32)[None, :, None] / sr
    wavetable = dsp.harmonic_distribution_to_wavetable(torch.tensor([[1.0, 0.5, 0.33, 0.25, 0.2, 0.0, 0.14, 0.0]]), 256)
    sin_freqs = ctl["f0_hz"] * torch.tensor([1.0, 2.01, 3.03, 4.07, 5.9])
    # frequencies_sigmoid (depth 1) = unit_to_hz(sigmoid(x), 0, 8000): linear in MIDI from MIDI 0
    sin_raw = torch.logit(dsp.hz_to_midi(sin_freqs) / dsp.hz_to_midi(torch.tensor(8000.0)))
    lfo = lambda rate: torch.sin(2 * math.pi * rate * t) * 3.0  # noqa: E731  raw phase for sigmoid
    cutoff = torch.linspace(-6, 2, n_frames)[None, :, None] + torch.linspace(2, -6, 65)[None, None, :]
    renders = {
        "harmonic": harmonic,
        "filtered_noise": lambda: noise(ctl["noise_magnitudes"] + 2.0),
        "wavetable": lambda: P.Wavetable(sample_rate=sr, scale_fn=None)(0.4 * torch.ones(1, n_frames, 1), wavetable,
                                                                         ctl["f0_hz"], n_samples=n),
        "sinusoidal": lambda: P.Sinusoidal(sample_rate=sr, amp_scale_fn=None)(0.1 * torch.ones(1, n_frames, 5), sin_raw,
                                                                              n_samples=n),
        "harmonic_plus_noise": dry,
        "reverb": lambda: P.Reverb(add_dry=True)(dry(), P.ExpDecayReverb(reverb_length=sr)._get_ir(
            torch.tensor([[-2.0]]), torch.tensor([[1.0]]), None)),
        "exp_decay_reverb": lambda: P.ExpDecayReverb(reverb_length=2 * sr)(dry(), torch.tensor([[-1.0]]), torch.tensor([[0.5]])),
        "filtered_noise_reverb": lambda: P.FilteredNoiseReverb(reverb_length=sr, n_frames=50, n_filter_banks=16)(
            dry(), torch.linspace(0, -4, 50)[None, :, None] + torch.linspace(1, -3, 16)[None, None, :]),
        "fir_filter": lambda: P.FIRFilter()(noise(ctl["noise_magnitudes"] + 6.0), cutoff),
        "chorus": lambda: P.ModDelay(20.0, 8.0, sr)(dry(), torch.zeros(1, n, 1), lfo(0.8)),
        "flanger": lambda: P.ModDelay(2.0, 2.0, sr)(dry(), torch.zeros(1, n, 1), lfo(0.3)),
        "vibrato": lambda: P.ModDelay(5.0, 2.0, sr, gain_scale_fn=None, add_dry=False)(dry(), torch.ones(1, n, 1), lfo(6.0)),
    }
    if synth_stack is not None:
        renders["synth_stack"] = lambda: synth_stack(ctl, n_samples=n)
    return renders


def run_demo(out_dir: str | Path, sample_rate: int = 16000, frame_rate: int = 250,
             duration_s: float = 3.0, seed: int = 0, synth_stack: torch.nn.Module | None = None) -> list[Path]:
    """Render every synth and effect into out_dir; returns the written files."""
    hop = dsp.hop_size(sample_rate, frame_rate)
    out_dir = Path(out_dir)
    n_frames = int(round(duration_s * frame_rate))
    n = n_frames * hop
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ctl = demo_controls(sample_rate, frame_rate, n_frames)
    written = []
    with torch.no_grad():
        for name, render in _renders(sample_rate, frame_rate, n, ctl, synth_stack, gen).items():
            audio = render()[0]
            if not bool(torch.isfinite(audio).all()):
                raise RuntimeError(f"demo render {name!r} produced non-finite audio")
            written.append(save_wav(out_dir / f"{name}.wav", audio, sample_rate))
            written.append(save_spectrogram(out_dir / f"{name}.png", audio, sample_rate, title=name))
    return written
