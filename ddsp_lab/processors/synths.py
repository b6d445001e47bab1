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
from ..dsp.filters import _overlap_add
from .base import Processor, check_controls, check_n_samples, get_scale_fn
from .noise import PositionalNoise


def _sample_noise(shape: tuple[int, ...], like: Tensor, noise: Tensor | None,
                  generator: torch.Generator | PositionalNoise | None, start: int = 0) -> Tensor:
    """Uniform(-1, 1) noise of `shape` [batch, n], or the injected `noise` (checked), on like's
    device/dtype; with a PositionalNoise, the values at positions start .. start + n - 1."""
    if noise is not None:
        if tuple(noise.shape) != tuple(shape) and not (noise.shape[0] == 1 and tuple(noise.shape[1:]) == tuple(shape[1:])):
            raise ValueError(f"noise must be {list(shape)} (or batch 1), got {tuple(noise.shape)}")
        return noise.to(dtype=like.dtype, device=like.device).expand(shape)
    if isinstance(generator, PositionalNoise):
        return generator.uniform(shape[0], start, shape[1], like.dtype, like.device)
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device) * 2.0 - 1.0


def _with_next_frame(x: Tensor, m: int) -> Tensor:
    """A chunk's m frames and the one after them (the last held where the signal ends)."""
    return x[:, :m + 1] if x.shape[1] > m else torch.cat([x[:, :m], x[:, m - 1:m]], dim=1)


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

    def stream_lookahead(self, hop: int) -> int:
        return 1  # the last segment of a chunk interpolates towards the next frame

    def stream(self, amplitudes: Tensor, harmonic_distribution: Tensor, f0_hz: Tensor, n_samples: int,
               hop: int, state: dict) -> Tensor:
        """One chunk; state: the fundamental's phase (float64), so chunks continue exactly."""
        c = self.get_controls(amplitudes, harmonic_distribution, f0_hz)
        m = n_samples // hop
        f0, amps = c["f0_hz"], c["amplitudes"] * c["harmonic_distribution"]
        following = (f0[:, m:m + 1], amps[:, m:m + 1]) if f0.shape[1] > m else None
        audio, state["phase"] = dsp.harmonic_chunk(f0[:, :m], amps[:, :m], hop, self.sample_rate,
                                                   self.amp_resample_method, following, state.get("phase"))
        return audio


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

    def stream_lookahead(self, hop: int) -> int:
        """The filters are linear-phase, compensated to be centred: they look ahead half their
        length (frequency_impulse_response's size; with n_bands unknown, the window's)."""
        if self.n_bands:
            ir_size = 2 * (self.n_bands - 1)
            if 0 < self.window_size < ir_size:
                ir_size = self.window_size if self.window_size % 2 else self.window_size - 1
        elif self.window_size > 0:
            ir_size = self.window_size
        else:
            raise ValueError("FilteredNoise(window_size=0) needs n_bands to render in chunks")
        return -(-dsp.delay_compensation_samples(ir_size) // hop)

    def stream(self, magnitudes: Tensor, n_samples: int, hop: int, state: dict) -> Tensor:
        """One chunk; state: the blocks filtered so far and their tail (OverlapAdd). Noise for a
        block is drawn when the block is first filtered (a lookahead frame of the previous chunk),
        at its sample position for a PositionalNoise."""
        mags = self.get_controls(magnitudes)["magnitudes"]
        position, done = state.get("position", 0), state.get("blocks_done", 0)  # samples out, blocks filtered
        first = position // hop  # the chunk's first frame
        new = mags[:, done - first:]
        if new.shape[1]:
            ir = dsp.frequency_impulse_response(new, self.window_size)
            white = _sample_noise((new.shape[0], new.shape[1] * hop), new, None, self.generator, start=done * hop)
            blocks = dsp.block_convolve(white.reshape(new.shape[0], new.shape[1], hop), ir)
            state.setdefault("tail", dsp.OverlapAdd()).add(_overlap_add(blocks, hop), done * hop)
            state["blocks_done"], state["delay"] = done + new.shape[1], dsp.delay_compensation_samples(ir.shape[-1])
        state["position"] = position + n_samples
        return state["tail"].take(position + state["delay"], n_samples)


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

    def stream_lookahead(self, hop: int) -> int:
        return 1

    def stream(self, amplitudes: Tensor, wavetables: Tensor, f0_hz: Tensor, n_samples: int, hop: int,
               state: dict) -> Tensor:
        """One chunk; state: the phase (float64). Rendered one frame past the chunk (the
        envelopes' interpolation towards the next frame), then cut to the chunk."""
        c = self.get_controls(amplitudes, wavetables, f0_hz)
        m = n_samples // hop
        tables = c["wavetables"]
        tables = _with_next_frame(tables, m) if tables.dim() == 3 and tables.shape[1] > 1 else tables
        f0 = _with_next_frame(c["f0_hz"], m)
        audio = dsp.wavetable_synthesis(f0, _with_next_frame(c["amplitudes"], m), tables, (m + 1) * hop,
                                        self.sample_rate, state.get("phase"))[:, :n_samples]
        f_env = dsp.resample(f0, (m + 1) * hop)[:, :n_samples]
        state["phase"] = dsp.end_phase(f_env, self.sample_rate, state.get("phase")[:, None]
                                       if state.get("phase") is not None else None)[:, 0]
        return audio


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

    def stream_lookahead(self, hop: int) -> int:
        return 1

    def stream(self, amplitudes: Tensor, frequencies: Tensor, n_samples: int, hop: int, state: dict) -> Tensor:
        """One chunk; state: each sinusoid's phase (float64). The envelopes are made one frame
        past the chunk (their interpolation towards the next frame), then cut to the chunk."""
        c = self.get_controls(amplitudes, frequencies)
        m = n_samples // hop
        amp_env = dsp.resample(_with_next_frame(c["amplitudes"], m), (m + 1) * hop,
                               method=self.amp_resample_method)[:, :n_samples]
        freq_env = dsp.resample(_with_next_frame(c["frequencies"], m), (m + 1) * hop)[:, :n_samples]
        audio = dsp.oscillator_bank(freq_env, amp_env, self.sample_rate, initial_phase=state.get("phase"))
        state["phase"] = dsp.end_phase(freq_env, self.sample_rate, state.get("phase"))
        return audio


class TensorToAudio(Processor):
    """Network output used directly as audio: samples [b, n, 1] or [b, t, frame] -> [b, n]."""

    def get_controls(self, samples: Tensor) -> dict[str, Tensor]:
        return {"samples": samples}

    def get_signal(self, samples: Tensor) -> Tensor:
        return samples.reshape(samples.shape[0], -1)
