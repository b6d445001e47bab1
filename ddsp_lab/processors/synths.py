"""Synthesizers: frame-wise controls -> audio [batch, n_samples].

Length comes from the call: every synth here takes `n_samples` per call (get_signal / forward, or
ProcessorGroup.run(..., n_samples=n)), or at construction (a fixed length, the reference's style);
the per-call value wins; with neither it raises. The frame rate is n_frames / n_samples * the
sample rate: render any duration from controls of the matching number of frames.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import dsp
from .base import Processor, check_controls, check_n_samples, get_scale_fn


def _sample_noise(shape: tuple[int, ...], like: Tensor, noise: Tensor | None,
                  generator: torch.Generator | None) -> Tensor:
    """Uniform(-1, 1) noise of `shape`, or the injected `noise` (checked), on like's device/dtype."""
    if noise is not None:
        if tuple(noise.shape) != tuple(shape) and not (noise.shape[0] == 1 and tuple(noise.shape[1:]) == tuple(shape[1:])):
            raise ValueError(f"noise must be {list(shape)} (or batch 1), got {tuple(noise.shape)}")
        return noise.to(dtype=like.dtype, device=like.device).expand(shape)
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device) * 2.0 - 1.0


class Harmonic(Processor):
    """Harmonic oscillator bank (the paper's additive synth).

    Controls: amplitudes [b, t, 1], harmonic_distribution [b, t, n_harmonics], f0_hz [b, t, 1].
    scale_fn (default the paper's exp_sigmoid) scales amplitudes AND distribution (not f0); the
    distribution is then normalised over the harmonics below Nyquist (normalize_below_nyquist).

    tilt_db_per_octave: a fixed spectral-tilt prior on the distribution (harmonic k weighted by
    tilt * log2(k) dB before normalising; 0, the default, is the reference). At 48 kHz an untrained
    decoder spreads its energy over ~70 audible harmonics; the spectral loss then first shrinks the
    harmonic amplitude, the filtered noise takes over and the harmonic part never recovers (the
    reference's reported failure at 44.1 kHz; reproduced in tests/test_train.py). A -12 dB/octave
    prior starts the distribution where instruments are and the harmonic part trains.

    n_samples: a fixed output length (None, the default: given per call, see the module docstring).
    """

    def __init__(self, n_samples: int | None = None, sample_rate: int = 16000,
                 scale_fn: str | None = "exp_sigmoid", normalize_below_nyquist: bool = True,
                 amp_resample_method: str = "window", n_harmonics: int | None = None,
                 tilt_db_per_octave: float = 0.0):
        super().__init__()
        self.n_samples, self.sample_rate = check_n_samples(n_samples), sample_rate
        self.tilt_db_per_octave = float(tilt_db_per_octave)
        self.scale_fn = get_scale_fn(scale_fn)
        self.normalize_below_nyquist = normalize_below_nyquist
        self.amp_resample_method = amp_resample_method
        self.n_harmonics = n_harmonics

    def control_sizes(self) -> dict[str, int | None]:
        return {"amplitudes": 1, "harmonic_distribution": self.n_harmonics, "f0_hz": 1}

    def get_controls(self, amplitudes: Tensor, harmonic_distribution: Tensor, f0_hz: Tensor) -> dict[str, Tensor]:
        check_controls("amplitudes", amplitudes, 1)
        check_controls("harmonic_distribution", harmonic_distribution, self.n_harmonics)
        check_controls("f0_hz", f0_hz, 1)
        if self.scale_fn is not None:
            amplitudes = self.scale_fn(amplitudes)
            harmonic_distribution = self.scale_fn(harmonic_distribution)
        if self.tilt_db_per_octave:
            k = torch.arange(1, harmonic_distribution.shape[-1] + 1, device=harmonic_distribution.device,
                             dtype=harmonic_distribution.dtype)
            harmonic_distribution = harmonic_distribution * dsp.db_to_amplitude(self.tilt_db_per_octave * torch.log2(k))
        sr = self.sample_rate if self.normalize_below_nyquist else None
        harmonic_distribution = dsp.normalize_harmonics(harmonic_distribution, f0_hz, sr)
        return {"amplitudes": amplitudes, "harmonic_distribution": harmonic_distribution, "f0_hz": f0_hz}

    def get_signal(self, amplitudes: Tensor, harmonic_distribution: Tensor, f0_hz: Tensor,
                   n_samples: int | None = None) -> Tensor:
        """Scaled controls [b, t, 1], [b, t, n_harmonics], [b, t, 1] -> [b, n_samples]."""
        return dsp.harmonic_synthesis(f0_hz, amplitudes, harmonic_distribution=harmonic_distribution,
                                      n_samples=self.resolve_n_samples(n_samples), sample_rate=self.sample_rate,
                                      amp_resample_method=self.amp_resample_method)


class FilteredNoise(Processor):
    """Uniform noise through time-varying FIR filters designed from band magnitudes.

    Controls: magnitudes [b, t, n_bands] (raw; scale_fn(magnitudes + initial_bias)). Noise comes
    from `generator` (argument or attribute) or is injected with `noise` [b, n_samples] (whose
    length is then the output length when no n_samples is given).
    n_samples: a fixed output length (None, the default: given per call).
    """

    def __init__(self, n_samples: int | None = None, window_size: int = 257,
                 scale_fn: str | None = "exp_sigmoid", initial_bias: float = -5.0,
                 n_bands: int | None = None):
        super().__init__()
        self.n_samples, self.window_size = check_n_samples(n_samples), window_size
        self.scale_fn = get_scale_fn(scale_fn)
        self.initial_bias = initial_bias
        self.n_bands = n_bands
        self.generator: torch.Generator | None = None

    def control_sizes(self) -> dict[str, int | None]:
        return {"magnitudes": self.n_bands}

    def get_controls(self, magnitudes: Tensor) -> dict[str, Tensor]:
        check_controls("magnitudes", magnitudes, self.n_bands)
        if self.scale_fn is not None:
            magnitudes = self.scale_fn(magnitudes + self.initial_bias)
        return {"magnitudes": magnitudes}

    def get_signal(self, magnitudes: Tensor, noise: Tensor | None = None,
                   generator: torch.Generator | None = None, n_samples: int | None = None) -> Tensor:
        """Scaled magnitudes [b, t, n_bands] -> [b, n_samples]."""
        if n_samples is None and self.n_samples is None and noise is not None:
            n_samples = noise.shape[-1]
        shape = (magnitudes.shape[0], self.resolve_n_samples(n_samples))
        white = _sample_noise(shape, magnitudes, noise, generator or self.generator)
        return dsp.frequency_filter(white, magnitudes, window_size=self.window_size)

    def forward(self, magnitudes: Tensor, noise: Tensor | None = None,
                generator: torch.Generator | None = None, n_samples: int | None = None) -> Tensor:
        return self.get_signal(**self.get_controls(magnitudes), noise=noise, generator=generator,
                               n_samples=n_samples)


class Wavetable(Processor):
    """Wavetable oscillator: amplitudes [b, t, 1], wavetables [b, t, n_wavetable] or
    [b, n_wavetable], f0_hz [b, t, 1]. scale_fn applies to amplitudes and wavetables (as the
    reference: positive tables, hence a DC offset; pass scale_fn=None for bipolar tables).
    n_samples: a fixed output length (None, the default: given per call)."""

    def __init__(self, n_samples: int | None = None, sample_rate: int = 16000,
                 scale_fn: str | None = "exp_sigmoid", n_wavetable: int | None = None):
        super().__init__()
        self.n_samples, self.sample_rate = check_n_samples(n_samples), sample_rate
        self.scale_fn = get_scale_fn(scale_fn)
        self.n_wavetable = n_wavetable

    def control_sizes(self) -> dict[str, int | None]:
        return {"amplitudes": 1, "wavetables": self.n_wavetable, "f0_hz": 1}

    def get_controls(self, amplitudes: Tensor, wavetables: Tensor, f0_hz: Tensor) -> dict[str, Tensor]:
        if self.scale_fn is not None:
            amplitudes = self.scale_fn(amplitudes)
            wavetables = self.scale_fn(wavetables)
        return {"amplitudes": amplitudes, "wavetables": wavetables, "f0_hz": f0_hz}

    def get_signal(self, amplitudes: Tensor, wavetables: Tensor, f0_hz: Tensor,
                   n_samples: int | None = None) -> Tensor:
        """Scaled controls -> [b, n_samples]."""
        return dsp.wavetable_synthesis(f0_hz, amplitudes, wavetables, self.resolve_n_samples(n_samples),
                                       self.sample_rate)


class Sinusoidal(Processor):
    """Bank of freely moving sinusoids: amplitudes, frequencies [b, t, n_sinusoids].

    freq_scale_fn (default frequencies_sigmoid, 8.18 Hz .. 8 kHz as in the reference) maps raw
    outputs to Hz; sinusoids at or above Nyquist are silenced.
    n_samples: a fixed output length (None, the default: given per call).
    """

    def __init__(self, n_samples: int | None = None, sample_rate: int = 16000,
                 amp_scale_fn: str | None = "exp_sigmoid", amp_resample_method: str = "window",
                 freq_scale_fn: str | None = "frequencies_sigmoid", n_sinusoids: int | None = None):
        super().__init__()
        self.n_samples, self.sample_rate = check_n_samples(n_samples), sample_rate
        self.amp_scale_fn = get_scale_fn(amp_scale_fn)
        self.freq_scale_fn = get_scale_fn(freq_scale_fn)
        self.amp_resample_method = amp_resample_method
        self.n_sinusoids = n_sinusoids

    def control_sizes(self) -> dict[str, int | None]:
        return {"amplitudes": self.n_sinusoids, "frequencies": self.n_sinusoids}

    def get_controls(self, amplitudes: Tensor, frequencies: Tensor) -> dict[str, Tensor]:
        if self.amp_scale_fn is not None:
            amplitudes = self.amp_scale_fn(amplitudes)
        if self.freq_scale_fn is not None:
            frequencies = self.freq_scale_fn(frequencies)
            amplitudes = dsp.remove_above_nyquist(frequencies, amplitudes, self.sample_rate)
        return {"amplitudes": amplitudes, "frequencies": frequencies}

    def get_signal(self, amplitudes: Tensor, frequencies: Tensor, n_samples: int | None = None) -> Tensor:
        """Scaled amplitudes, frequencies (Hz) [b, t, n_sinusoids] -> [b, n_samples]."""
        n = self.resolve_n_samples(n_samples)
        amp_env = dsp.resample(amplitudes, n, method=self.amp_resample_method)
        freq_env = dsp.resample(frequencies, n)
        return dsp.oscillator_bank(freq_env, amp_env, self.sample_rate)


class TensorToAudio(Processor):
    """Network output used directly as audio: samples [b, n, 1] or [b, t, frame] -> [b, n]."""

    def get_controls(self, samples: Tensor) -> dict[str, Tensor]:
        return {"samples": samples}

    def get_signal(self, samples: Tensor) -> Tensor:
        return samples.reshape(samples.shape[0], -1)
