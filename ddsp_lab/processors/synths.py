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
from ..dsp.filters import fast_fft_size
from .base import BlockPlan, Processor, check_controls, check_n_samples, get_scale_fn
from .noise import PositionalNoise, uniform_at


def _sample_noise(shape: tuple[int, ...], like: Tensor, noise: Tensor | None,
                  generator: torch.Generator | PositionalNoise | None, start: int | Tensor = 0) -> Tensor:
    """Uniform(-1, 1) noise of `shape` [batch, n], or the injected `noise` (checked), on like's
    device/dtype; with a PositionalNoise, the values at positions start .. start + n - 1 (start an
    int, or an int64 tensor [] in a block: the position then stays a value of the graph)."""
    if noise is not None:
        if tuple(noise.shape) != tuple(shape) and not (noise.shape[0] == 1 and tuple(noise.shape[1:]) == tuple(shape[1:])):
            raise ValueError(f"noise must be {list(shape)} (or batch 1), got {tuple(noise.shape)}")
        return noise.to(dtype=like.dtype, device=like.device).expand(shape)
    if isinstance(generator, PositionalNoise):
        positions = start + torch.arange(shape[1], dtype=torch.int64, device=like.device)
        return uniform_at(generator.key(), positions, shape[0]).to(like.dtype)
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device) * 2.0 - 1.0


def _with_next_frame(x: Tensor, m: int) -> Tensor:
    """A chunk's m frames and the one after them (the last held where the signal ends)."""
    return x[:, :m + 1] if x.shape[1] > m else torch.cat([x[:, :m], x[:, m - 1:m]], dim=1)


def _virtual_mask(plan: BlockPlan, n: int, per: int, like: Tensor) -> Tensor:
    """[n] True for the block's units (frames: per = 1, samples: per = hop) before the signal."""
    return plan.first * per + torch.arange(n, device=like.device) < 0


def _phase_state(inputs) -> dict[str, Tensor]:
    ref = next(x for x in inputs if x.dim() == 3)
    return {"phase": torch.zeros(ref.shape[0], dtype=dsp.fixed_phase.phase_dtype(ref.device), device=ref.device)}


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

    def block_init(self, inputs, hop, lookahead, partition=None):
        return {}, _phase_state(inputs)

    def block(self, inputs, plan, constants, state):
        """state: the fundamental's phase (float64) after the block's last sample. Frames before
        the signal (plan.first < 0) do not advance it: frame 0 starts as in one shot."""
        c = self.get_controls(*inputs)
        n, hop = plan.n_frames, plan.hop
        f0 = _with_next_frame(c["f0_hz"], n)
        amps = _with_next_frame(c["amplitudes"] * c["harmonic_distribution"], n)
        totals = dsp.segment_phase_totals(f0, self.sample_rate, hop)[..., 0]  # [b, n]
        phase = state["phase"] - (totals * _virtual_mask(plan, n, 1, totals)).sum(1)
        audio, phase = dsp.harmonic_chunk(f0[:, :n], amps[:, :n], hop, self.sample_rate, self.amp_resample_method,
                                          (f0[:, n:], amps[:, n:]), phase)
        return audio, {"phase": phase}


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

    def block_init(self, inputs, hop, lookahead, partition=None):
        """state: the filtered noise not yet played, from the block's first sample on (in steady state
        lookahead * hop - delay + fft_size - hop samples: the frames filtered ahead and the filters'
        tails)."""
        mags = inputs[0]
        ir_size = dsp.design_ir_size(mags.shape[-1], self.window_size)
        delay = dsp.delay_compensation_samples(ir_size)
        fft_size = fast_fft_size(hop + ir_size - 1)
        size = max(0, lookahead * hop - delay + fft_size - hop)
        return {}, {"tail": mags.new_zeros(mags.shape[0], size, dtype=torch.promote_types(mags.dtype, torch.float32))}

    def block(self, inputs, plan, constants, state):
        """The frames new to this block (the last plan.n_new of the window) are filtered when they
        arrive, with the noise of their sample positions, into the tail; the block plays the tail's
        first n_frames * hop samples. Filters are centred (delay-compensated) as in one shot."""
        mags = self.get_controls(*inputs)["magnitudes"]
        hop, n_out, window = plan.hop, plan.n_frames * plan.hop, mags.shape[1]
        tail = state["tail"]
        if plan.n_new:
            new = mags[:, window - plan.n_new:]
            start = (plan.first + window - plan.n_new) * hop  # the new frames' first sample
            white = _sample_noise((new.shape[0], plan.n_new * hop), new, None, self.generator, start=start)
            filtered = dsp.filter_frames(white.reshape(new.shape[0], plan.n_new, hop), new, self.window_size)
            # filtered sample i is the unshifted convolution at the new frames' first sample + i; the
            # output at sample t is that convolution at t + delay (the centred filters)
            delay = dsp.delay_compensation_samples(dsp.design_ir_size(mags.shape[-1], self.window_size))
            offset = (window - plan.n_new) * hop - delay
            if offset < 0:  # the first block: the convolution's first `delay` samples are never played
                filtered, offset = filtered[:, -offset:], 0
            size = max(tail.shape[1], offset + filtered.shape[1])
            tail = torch.nn.functional.pad(tail, (0, size - tail.shape[1])) + \
                torch.nn.functional.pad(filtered.to(tail.dtype), (offset, size - offset - filtered.shape[1]))
        if tail.shape[1] < n_out:
            tail = torch.nn.functional.pad(tail, (0, n_out - tail.shape[1]))
        return tail[:, :n_out], {"tail": tail[:, n_out:]}


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

    def block_init(self, inputs, hop, lookahead, partition=None):
        return {}, _phase_state(inputs)

    def block(self, inputs, plan, constants, state):
        """state: the phase (float64). Rendered one frame past the block (the envelopes'
        interpolation towards the next frame), then cut to it; samples before the signal do not
        advance the phase."""
        c = self.get_controls(*inputs)
        m, n_samples = plan.n_frames, plan.n_frames * plan.hop
        tables = c["wavetables"]
        tables = _with_next_frame(tables, m) if tables.dim() == 3 and tables.shape[1] > 1 else tables
        f0 = _with_next_frame(c["f0_hz"], m)
        f_env = dsp.resample(f0, (m + 1) * plan.hop)[:, :n_samples]  # [b, n, 1]
        before = f_env * _virtual_mask(plan, n_samples, plan.hop, f_env)[:, None]
        phase = state["phase"] - dsp.end_phase(before, self.sample_rate)[:, 0]
        audio = dsp.wavetable_synthesis(f0, _with_next_frame(c["amplitudes"], m), tables, (m + 1) * plan.hop,
                                        self.sample_rate, phase)[:, :n_samples]
        return audio, {"phase": dsp.end_phase(f_env, self.sample_rate, phase[:, None])[:, 0]}


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

    def block_init(self, inputs, hop, lookahead, partition=None):
        return {}, {"phase": torch.zeros(inputs[0].shape[0], inputs[0].shape[-1], device=inputs[0].device,
                                         dtype=dsp.fixed_phase.phase_dtype(inputs[0].device))}

    def block(self, inputs, plan, constants, state):
        """state: each sinusoid's phase (float64). The envelopes are made one frame past the block
        (their interpolation towards the next frame), then cut to it; samples before the signal
        do not advance the phases."""
        c = self.get_controls(*inputs)
        m, n_samples = plan.n_frames, plan.n_frames * plan.hop
        amp_env = dsp.resample(_with_next_frame(c["amplitudes"], m), (m + 1) * plan.hop,
                               method=self.amp_resample_method)[:, :n_samples]
        freq_env = dsp.resample(_with_next_frame(c["frequencies"], m), (m + 1) * plan.hop)[:, :n_samples]
        before = freq_env * _virtual_mask(plan, n_samples, plan.hop, freq_env)[:, None]
        phase = state["phase"] - dsp.end_phase(before, self.sample_rate)
        audio = dsp.oscillator_bank(freq_env, amp_env, self.sample_rate, initial_phase=phase)
        return audio, {"phase": dsp.end_phase(freq_env, self.sample_rate, phase)}


class TensorToAudio(Processor):
    """Network output used directly as audio: samples [b, n, 1] or [b, t, frame] -> [b, n]."""

    def get_controls(self, samples: Tensor) -> dict[str, Tensor]:
        return {"samples": samples}

    def get_signal(self, samples: Tensor) -> Tensor:
        return samples.reshape(samples.shape[0], -1)
