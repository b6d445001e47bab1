"""Effects: audio [batch, n_samples] (+ controls) -> audio [batch, n_samples]."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import dsp
from .base import Processor, check_audio, get_scale_fn
from .synths import FilteredNoise, _sample_noise, _with_next_frame


class Reverb(Processor):
    """Convolution reverb with a trainable impulse response or one given as input.

    The IR's first tap is masked (it would duplicate the dry path); the wet signal is the 'same'
    FFT convolution without delay compensation; add_dry adds the input (dry/wet). With
    trainable=True the IR is a parameter of reverb_length taps (the paper: 3 s = 48000 at 16 kHz).
    """

    PARTITIONED_MAX = 4096  # stream chunks up to this long use the partitioned convolution

    def __init__(self, trainable: bool = False, reverb_length: int = 48000, add_dry: bool = True):
        super().__init__()
        self.trainable, self.reverb_length, self.add_dry = trainable, reverb_length, add_dry
        self.ir = nn.Parameter(torch.randn(reverb_length) * 1e-6) if trainable else None

    @staticmethod
    def _mask_dry_ir(ir: Tensor) -> Tensor:
        ir = ir[None] if ir.dim() == 1 else ir[..., 0] if ir.dim() == 3 else ir
        return torch.nn.functional.pad(ir[:, 1:], (1, 0))

    def _match(self, audio: Tensor, ir: Tensor) -> Tensor:
        ir = ir[None] if ir.dim() == 1 else ir
        return ir.expand(audio.shape[0], *ir.shape[1:])

    def get_controls(self, audio: Tensor, ir: Tensor | None = None) -> dict[str, Tensor]:
        check_audio("audio", audio)
        if self.trainable:
            ir = self._match(audio, self.ir)
        elif ir is None:
            raise ValueError("Reverb(trainable=False) needs an ir [batch, ir_size] input, got None")
        return {"audio": audio, "ir": ir}

    def get_signal(self, audio: Tensor, ir: Tensor) -> Tensor:
        wet = dsp.fft_convolve(audio, self._mask_dry_ir(ir).to(audio.dtype), padding="same",
                               delay_compensation=0)
        return wet + audio if self.add_dry else wet

    def block_init(self, inputs, hop, lookahead, partition=None):
        """constants: the IR's partition spectra (made once: a drawn IR is drawn here); state: the
        partitioned convolution's delay line of input spectra and the previous input partition.
        partition: samples per partition (default one hop; the exported engine: its block)."""
        audio = inputs[0]
        ir = self._mask_dry_ir(self.get_controls(*inputs)["ir"]).to(audio.dtype)
        part = int(partition or hop)
        spectra = dsp.partition_spectra(ir, part)  # [batch | 1, P, part + 1, 2]
        return {"spectra": spectra}, {"line": audio.new_zeros(audio.shape[0], *spectra.shape[1:]),
                                      "previous": audio.new_zeros(audio.shape[0], part)}

    def block(self, inputs, plan, constants, state):
        """Uniformly partitioned overlap-save (dsp.partitioned_step): per partition one FFT pair and
        a multiply-add per IR partition, whatever the IR's length."""
        audio = inputs[0]
        part, n = state["previous"].shape[-1], audio.shape[-1]
        if n % part:
            raise ValueError(f"{type(self).__name__}: blocks must be whole partitions ({part} samples), got {n}")
        line, previous, pieces = state["line"], state["previous"], []
        for i in range(0, n, part):
            wet, line, previous = dsp.partitioned_step(audio[:, i:i + part], constants["spectra"], line, previous)
            pieces.append(wet)
        wet = torch.cat(pieces, -1)
        return (wet + audio if self.add_dry else wet), {"line": line, "previous": previous}

    def stream(self, audio: Tensor, *controls: Tensor, n_samples: int, hop: int, state: dict) -> Tensor:
        """One chunk of audio through the reverb; the IR is made once (a drawn IR is drawn at the
        first chunk). A stream that starts with chunks of up to PARTITIONED_MAX samples (real-time
        blocks) renders by `block` with partitions of one hop (every chunk is whole hops); one that
        starts with longer chunks (chunked offline renders) convolves each chunk with the whole IR by
        one FFT and carries the wet tail (OverlapAdd)."""
        if "block" in state or ("ir" not in state and n_samples <= self.PARTITIONED_MAX):
            return super().stream(audio, *controls, n_samples=n_samples, hop=hop, state=state)
        if "ir" not in state:
            state["ir"] = self._mask_dry_ir(self.get_controls(audio, *controls)["ir"]).to(audio.dtype)
        position = state.get("position", 0)
        full = dsp.fft_convolve(audio, state["ir"], padding="valid", delay_compensation=0)
        tail = state.setdefault("tail", dsp.OverlapAdd())
        tail.add(full, position)
        state["position"] = position + n_samples
        wet = tail.take(position, n_samples)
        return wet + audio if self.add_dry else wet


class ExpDecayReverb(Reverb):
    """Reverb whose IR is noise under an exponential decay: gain * exp(-(2 + exp(decay)) t) * noise,
    t in [0, 1] over reverb_length; gain, decay [batch, 1] (or trainable scalars)."""

    def __init__(self, trainable: bool = False, reverb_length: int = 48000,
                 scale_fn: str | None = "exp_sigmoid", add_dry: bool = True):
        super().__init__(trainable=False, reverb_length=reverb_length, add_dry=add_dry)
        self.trainable = trainable
        self.scale_fn = get_scale_fn(scale_fn)
        self.gain = nn.Parameter(torch.full((1,), 2.0)) if trainable else None
        self.decay = nn.Parameter(torch.full((1,), 4.0)) if trainable else None
        self.generator: torch.Generator | None = None

    def _get_ir(self, gain: Tensor, decay: Tensor, noise: Tensor | None) -> Tensor:
        gain = self.scale_fn(gain) if self.scale_fn is not None else gain
        time = torch.linspace(0.0, 1.0, self.reverb_length, dtype=gain.dtype, device=gain.device)
        white = _sample_noise((1, self.reverb_length), gain, noise, self.generator)
        return gain * torch.exp(-(2.0 + torch.exp(decay)) * time) * white

    def get_controls(self, audio: Tensor, gain: Tensor | None = None, decay: Tensor | None = None,
                     noise: Tensor | None = None) -> dict[str, Tensor]:
        check_audio("audio", audio)
        if self.trainable:
            gain, decay = self.gain[None], self.decay[None]
        elif gain is None or decay is None:
            raise ValueError("ExpDecayReverb(trainable=False) needs gain and decay [batch, 1] inputs")
        ir = self._get_ir(gain, decay, noise)
        return {"audio": audio, "ir": self._match(audio, ir)}


class FilteredNoiseReverb(Reverb):
    """Reverb whose IR is filtered noise: magnitudes [batch, n_frames, n_filter_banks] shape how
    each band decays over the reverb_length taps (trainable: a parameter [n_frames, n_banks])."""

    def __init__(self, trainable: bool = False, reverb_length: int = 48000, window_size: int = 257,
                 n_frames: int = 1000, n_filter_banks: int = 16, scale_fn: str | None = "exp_sigmoid",
                 initial_bias: float = -3.0, add_dry: bool = True):
        super().__init__(trainable=False, reverb_length=reverb_length, add_dry=add_dry)
        self.trainable = trainable
        self.noise_synth = FilteredNoise(reverb_length, window_size, scale_fn, initial_bias)
        self.magnitudes = nn.Parameter(torch.randn(n_frames, n_filter_banks) * 0.01) if trainable else None

    @property
    def generator(self) -> torch.Generator | None:
        return self.noise_synth.generator

    @generator.setter
    def generator(self, value: torch.Generator | None) -> None:
        self.noise_synth.generator = value

    def get_controls(self, audio: Tensor, magnitudes: Tensor | None = None,
                     noise: Tensor | None = None) -> dict[str, Tensor]:
        check_audio("audio", audio)
        if self.trainable:
            magnitudes = self.magnitudes[None]
        elif magnitudes is None:
            raise ValueError("FilteredNoiseReverb(trainable=False) needs magnitudes [batch, n_frames, n_bands]")
        ir = self.noise_synth(magnitudes, noise=noise)
        return {"audio": audio, "ir": self._match(audio, ir)}


class FIRFilter(Processor):
    """Time-varying linear-phase FIR filter: audio [b, n], magnitudes [b, t, n_bands] (one filter
    per block of n / t samples; scale_fn applied to the magnitudes)."""

    def __init__(self, window_size: int = 257, scale_fn: str | None = "exp_sigmoid"):
        super().__init__()
        self.window_size = window_size
        self.scale_fn = get_scale_fn(scale_fn)

    def get_controls(self, audio: Tensor, magnitudes: Tensor) -> dict[str, Tensor]:
        check_audio("audio", audio)
        if self.scale_fn is not None:
            magnitudes = self.scale_fn(magnitudes)
        return {"audio": audio, "magnitudes": magnitudes}

    def get_signal(self, audio: Tensor, magnitudes: Tensor) -> Tensor:
        return dsp.frequency_filter(audio, magnitudes, window_size=self.window_size)


class ModDelay(Processor):
    """Modulated delay line: chorus, flanger, vibrato.

    The delay is center_ms + depth_ms * phase (phase in [0, 1] after phase_scale_fn), the wet path
    is scaled by gain (after gain_scale_fn). gain and phase are [b, n, 1] at the sample rate, or
    [b, t, 1] at a frame rate (upsampled linearly).

    The delay line holds max_length = int(sample_rate / 1000 * (center_ms + depth_ms)) samples.
    Without a phase_scale_fn a phase outside [0, 1] can ask for more (or less than 0): as in the
    reference, a delay of max_length reads the undelayed sample (the line wraps), delays between
    max_length and max_length + 1 samples fade it out linearly, and delays of max_length + 1
    samples or more read silence; negative delays fade the undelayed sample out over one sample
    (-1 < delay < 0) and read silence from -1 down (see dsp.variable_length_delay). Typical settings:
      chorus  center 15-25 ms, depth 5-10 ms, add_dry=True, slow LFO (0.5-2 Hz);
      flanger center 1-3 ms, depth 1-3 ms, add_dry=True, LFO 0.1-1 Hz;
      vibrato center 5 ms, depth 2 ms, add_dry=False, LFO 4-7 Hz.
    """

    def __init__(self, center_ms: float = 15.0, depth_ms: float = 10.0, sample_rate: int = 16000,
                 gain_scale_fn: str | None = "exp_sigmoid", phase_scale_fn: str | None = "sigmoid",
                 add_dry: bool = True):
        super().__init__()
        self.center_ms, self.depth_ms, self.sample_rate = center_ms, depth_ms, sample_rate
        self.gain_scale_fn = get_scale_fn(gain_scale_fn)
        self.phase_scale_fn = get_scale_fn(phase_scale_fn)
        self.add_dry = add_dry

    def control_sizes(self) -> dict[str, int | None]:
        return {"audio": None, "gain": 1, "phase": 1}

    def get_controls(self, audio: Tensor, gain: Tensor, phase: Tensor) -> dict[str, Tensor]:
        check_audio("audio", audio)
        if self.gain_scale_fn is not None:
            gain = self.gain_scale_fn(gain)
        if self.phase_scale_fn is not None:
            phase = self.phase_scale_fn(phase)
        return {"audio": audio, "gain": gain, "phase": phase}

    def get_signal(self, audio: Tensor, gain: Tensor, phase: Tensor) -> Tensor:
        n = audio.shape[1]
        gain = gain if gain.dim() == 3 else gain[..., None]
        phase = phase if phase.dim() == 3 else phase[..., None]
        gain = gain if gain.shape[1] == n else dsp.resample(gain, n)
        phase = phase if phase.shape[1] == n else dsp.resample(phase, n)
        max_delay_ms = self.center_ms + self.depth_ms
        max_length = int(self.sample_rate / 1000.0 * max_delay_ms)
        phase = phase * (self.depth_ms / max_delay_ms) + self.center_ms / max_delay_ms
        wet = dsp.variable_length_delay(phase, audio, max_length=max_length) * gain[..., 0]
        return wet + audio if self.add_dry else wet

    def stream_lookahead(self, hop: int) -> int:
        return 1

    def block_init(self, inputs, hop, lookahead, partition=None):
        max_length = int(self.sample_rate / 1000.0 * (self.center_ms + self.depth_ms))
        return {}, {"history": inputs[0].new_zeros(inputs[0].shape[0], max_length)}

    def block(self, inputs, plan, constants, state):
        """gain and phase at the frame rate. state: the delay line (the last max_length samples
        of the input)."""
        c = self.get_controls(*inputs)
        m, n_samples = plan.n_frames, plan.n_frames * plan.hop
        gain, phase = (dsp.resample(_with_next_frame(c[k] if c[k].dim() == 3 else c[k][..., None], m), (m + 1) * plan.hop)
                       [:, :n_samples] for k in ("gain", "phase"))
        history = state["history"]
        max_length = history.shape[-1]
        line = torch.cat([history, c["audio"]], dim=1)
        pad = (0, 0, max_length, 0)
        out = self.get_signal(line, torch.nn.functional.pad(gain, pad), torch.nn.functional.pad(phase, pad))
        return out[:, max_length:], {"history": line[:, -max_length:]}
