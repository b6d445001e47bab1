"""The per-block step of a trained model as one static, exportable computation.

`BlockEngine(model, block_size)` turns a DDSP model into `step(controls, *state) -> (audio,
*state)`: one block of frame-rate controls (f0 Hz, loudness dB[, z]) and the carried state in,
one block of audio and the next state out, with no Python objects, dicts or data-dependent
shapes inside. That one function is what TorchScript compiles (`ScriptedStream` keeps the state
in registered buffers) and what ONNX exports (the state as explicit inputs and outputs).

It renders what `ddsp_lab.realtime.StreamingModel` renders (tests/test_export.py: within 1e-5),
for the shipped synth stacks: Harmonic, FilteredNoise, Add and a Reverb with a fixed (trained)
impulse response, under the F0LoudnessPreprocessor and an RNN-FC or MLP decoder. Anything else is
refused with the node it cannot export.

How the block is laid out. The synth needs `lookahead` (L) frames past those it renders (the
harmonic segment interpolates towards the next frame; the filtered noise's centred filters look
half their length ahead), so block k renders frames [kF - L, kF - L + F) of the F = block / hop
frames received so far, and its audio is the offline render's samples [k B - L hop, (k + 1) B -
L hop): the latency is L hop samples. The first block's L frames before the signal are virtual:
their output is masked to zero and the oscillator's phase is started so that it is exactly 0 at
the first real sample, as offline. The filtered noise filters each frame's noise when the frame
arrives (the positional noise at its sample position, as StreamingModel draws it) into a tail
buffer of fixed length. The reverb is a uniformly partitioned convolution with partitions of one
block (the render is always one whole block long): one FFT pair per block and a multiply-add per
partition, whatever the IR's length.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

from .. import dsp
from ..dsp.filters import fast_fft_size
from ..dsp.oscillators import _harmonic_chunk, _segment_weights
from ..dsp.phase import segment_end_phase, segment_phase, segment_phase_totals
from ..processors import Add, FilteredNoise, Harmonic, PositionalNoise, Reverb
from ..processors.noise import uniform_at

STATE_NAMES = ("rnn_state", "phase", "frames_in", "pending", "noise_tail", "reverb_spectra", "reverb_previous")
_INPUT_CODES = {"f0_scaled": 0, "ld_scaled": 1, "z": 2}


def _unsupported(msg: str) -> ValueError:
    return ValueError(f"export: {msg}; exported models run the shipped synth stacks (Harmonic, FilteredNoise, Add, a "
                      f"trained Reverb) under the F0LoudnessPreprocessor and an RNN-FC or MLP decoder")


class BlockEngine(nn.Module):
    """One block of a trained DDSP model, static and exportable (see the module docstring).

    Args:
        model: a DDSP whose stack is supported (else a ValueError naming what is not).
        block_size: samples per block, a whole number of hops (StreamingModel's rule).
        seed: the filtered noise's positional noise (StreamingModel's seed; an int).

    `step(controls [1, F, 2 (+ z_dims)], *state)` -> (audio [1, block_size], *state), the
    controls f0 (Hz), loudness (dB)[, z] per frame; `initial_state()` the state of a fresh stream.
    """

    def __init__(self, model, block_size: int, seed: int = 0):
        super().__init__()
        from ..networks import F0LoudnessPreprocessor
        from ..networks.decoders import _FcDecoder
        from .streaming import check_block_size

        from ..models.traits import check_model, predicts_f0

        check_model(model)
        pre, dec, synth = model.preprocessor, model.decoder, model.synth
        if predicts_f0(model):
            raise _unsupported("this model predicts f0 from audio (its F0ResNetEncoder); a stream takes f0 as a "
                               "control: export a supervised model")
        if not isinstance(pre, F0LoudnessPreprocessor) or pre.time_steps is not None or pre.compute_loudness:
            raise _unsupported(f"the preprocessor {type(pre).__name__} (time_steps={getattr(pre, 'time_steps', '?')})")
        if not isinstance(dec, _FcDecoder) or dec.dense_out is None:
            raise _unsupported(f"the decoder {type(dec).__name__}")
        hop = model.hop_size
        self.hop, self.block_size = hop, check_block_size(block_size, hop, model.sample_rate, model.frame_rate)
        self.n_frames = self.block_size // hop
        self.sample_rate = int(model.sample_rate)
        self.lookahead = int(model.stream_lookahead())
        self.latency = self.lookahead * hop

        # -- decoder: the same modules, a static forward
        codes = []
        for key in dec.input_keys:
            if key not in _INPUT_CODES:
                raise _unsupported(f"the decoder reads {key!r}")
            codes.append(_INPUT_CODES[key])
        self.input_codes: List[int] = codes
        self.input_stacks, self.rnn, self.out_stack, self.dense_out = dec.input_stacks, dec.rnn, dec.out_stack, dec.dense_out
        self.rnn_channels = dec.rnn.hidden_size if dec.rnn is not None else 1
        self.z_dims = self.z_size(model)
        offsets, a = {}, 0
        for name, size in dec.output_splits:
            offsets[name] = (a, size)
            a += size

        def control(name: str) -> Tuple[int, int]:
            if name not in offsets:
                raise _unsupported(f"the synth input {name!r} is not a decoder output")
            return offsets[name]

        # -- synth stack
        self.has_harmonic = self.has_noise = self.has_reverb = self.add_dry = False
        self.amps_at = self.dist_at = self.mags_at = (0, 0)
        self.n_harmonics, self.harmonic_scaled, self.normalize_nyquist = 1, False, False
        self.register_buffer("tilt", torch.ones(1))
        self.register_buffer("w_a", torch.ones(hop))
        self.register_buffer("w_b", torch.zeros(hop))
        self.noise_scaled, self.noise_bias, self.noise_key, self.noise_delay, self.noise_r = False, 0.0, 0, 0, 1
        self.noise_fft, self.noise_tail_size = 2, 1
        self.register_buffer("noise_re", torch.zeros(1, 1))
        self.register_buffer("noise_im", torch.zeros(1, 1))
        self.n_partitions = 1
        self.register_buffer("ir_spectra", torch.zeros(1, 1, 2))
        sources: dict[str, str] = {}  # node name -> 'harmonic' | 'noise' | 'add' | 'reverb'
        for proc, inputs, name in zip(synth.processors, synth.inputs, synth.names):
            kind = type(proc).__name__
            if name in synth._bypassed:
                raise _unsupported(f"node {name!r} is bypassed")
            if isinstance(proc, Harmonic) and not self.has_harmonic:
                if inputs[2] != "f0_hz":
                    raise _unsupported(f"the Harmonic node {name!r} reads f0 from {inputs[2]!r}, not the f0_hz control")
                self.has_harmonic, sources[name] = True, "harmonic"
                self.amps_at, self.dist_at = control(inputs[0]), control(inputs[1])
                self.n_harmonics = proc.n_harmonics or self.dist_at[1]
                if proc.scale_fn not in (None, dsp.exp_sigmoid):
                    raise _unsupported(f"the Harmonic node {name!r} scales by {proc.scale_fn}")
                self.harmonic_scaled = proc.scale_fn is not None
                k = torch.arange(1, self.n_harmonics + 1, dtype=torch.float32)
                self.tilt = dsp.db_to_amplitude(proc.tilt_db_per_octave * torch.log2(k)) if proc.tilt_db_per_octave \
                    else torch.ones(self.n_harmonics)
                self.normalize_nyquist = bool(proc.normalize_below_nyquist)
                self.w_a, self.w_b = _segment_weights(proc.amp_resample_method, hop, torch.float32, None)
            elif isinstance(proc, FilteredNoise) and not self.has_noise:
                self.has_noise, sources[name] = True, "noise"
                self.mags_at = control(inputs[0])
                if proc.scale_fn not in (None, dsp.exp_sigmoid):
                    raise _unsupported(f"the FilteredNoise node {name!r} scales by {proc.scale_fn}")
                self.noise_scaled, self.noise_bias = proc.scale_fn is not None, float(proc.initial_bias)
                stream = synth.random_processors().index(proc)
                self.noise_key = PositionalNoise(seed, stream).key()
                # the filter design is linear in the magnitudes: its spectrum is a [bands, bins] matrix
                design = dsp.frequency_impulse_response(torch.eye(self.mags_at[1], dtype=torch.float64)[None],
                                                        proc.window_size)[0]
                ir_size = design.shape[-1]
                self.noise_fft = fast_fft_size(hop + ir_size - 1)
                spectrum = torch.fft.rfft(design, n=self.noise_fft)
                self.noise_re, self.noise_im = spectrum.real.float(), spectrum.imag.float()
                self.noise_delay = dsp.delay_compensation_samples(ir_size)
                self.noise_r = -(-self.noise_fft // hop)
                self.noise_tail_size = self.latency - self.noise_delay + (self.n_frames + self.noise_r - 1) * hop
            elif isinstance(proc, Add) and not self.has_reverb and set(sources.get(i) for i in inputs) == \
                    {"harmonic", "noise"}:
                sources[name] = "add"
            elif isinstance(proc, Reverb) and proc.trainable and not self.has_reverb and len(inputs) == 1 and \
                    inputs[0] in sources and name == synth.output:
                self.has_reverb, self.add_dry, sources[name] = True, bool(proc.add_dry), "reverb"
                with torch.no_grad(), synth.noise_from(PositionalNoise(seed)):  # a drawn IR: StreamingModel's draw
                    ir = proc._mask_dry_ir(proc.get_controls(torch.zeros(1, self.block_size))["ir"]).float()[0]
                b = self.block_size
                self.n_partitions = -(-ir.shape[-1] // b)
                parts = torch.nn.functional.pad(ir, (0, self.n_partitions * b - ir.shape[-1])).reshape(-1, b)
                self.ir_spectra = torch.view_as_real(torch.fft.rfft(parts, n=2 * b)).contiguous()  # [P, b + 1, 2]
            else:
                raise _unsupported(f"node {name!r} ({kind} on {list(inputs)}) cannot be exported")
        if synth.output not in sources or (self.has_harmonic and self.has_noise and "add" not in sources.values()):
            raise _unsupported(f"the stack's output {synth.output!r} is not a supported combination of its nodes")

    @staticmethod
    def z_size(model) -> int:
        """Channels of z the model's decoder reads (0 without z)."""
        dec = model.decoder
        return int(dict(zip(dec.input_keys, [s[0].in_features for s in dec.input_stacks])).get("z", 0))

    # -- state ------------------------------------------------------------------------------------
    def initial_state(self) -> List[Tensor]:
        """The state of a fresh stream, in STATE_NAMES order (placeholders of one element where a
        part is absent)."""
        b, p = self.block_size, self.n_partitions
        return [torch.zeros(1, 1, self.rnn_channels), torch.zeros(1, dtype=torch.float64),
                torch.zeros(1, dtype=torch.int64), torch.zeros(1, self.lookahead, 1 + self.n_harmonics),
                torch.zeros(1, self.noise_tail_size),
                torch.zeros(1, p if self.has_reverb else 1, b + 1 if self.has_reverb else 1, 2),
                torch.zeros(1, b if self.has_reverb else 1)]

    # -- the step ---------------------------------------------------------------------------------
    def decode(self, controls: Tensor, rnn_state: Tensor) -> Tuple[Tensor, Tensor]:
        """controls [1, F, 2 (+ z)] -> the decoder's output [1, F, outputs] and the GRU state."""
        f0 = controls[:, :, 0:1]
        midi = 12.0 * (dsp.logb(f0, 2.0) - math.log(440.0) / math.log(2.0)) + 69.0
        f0_scaled = torch.where(f0 <= 0.0, torch.zeros_like(midi), midi) / 127.0
        ld_scaled = controls[:, :, 1:2] / 80.0 + 1.0
        hidden: List[Tensor] = []
        for i, stack in enumerate(self.input_stacks):
            code = self.input_codes[i]
            x = f0_scaled if code == 0 else ld_scaled if code == 1 else controls[:, :, 2:]
            hidden.append(stack(x))
        if self.rnn is not None:
            out, rnn_state = self.rnn(torch.cat(hidden, dim=-1), rnn_state)
            hidden.append(out)
        return self.dense_out(self.out_stack(torch.cat(hidden, dim=-1))), rnn_state

    def harmonic(self, raw: Tensor, f0: Tensor, phase: Tensor, frames_in: Tensor,
                 pending: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The harmonic part of frames [kF - L, kF - L + F): (audio [1, B], phase, pending)."""
        a0, na = self.amps_at
        d0, nd = self.dist_at
        amps, dist = raw[:, :, a0:a0 + na], raw[:, :, d0:d0 + nd]
        if self.harmonic_scaled:
            amps, dist = dsp.exp_sigmoid(amps), dsp.exp_sigmoid(dist)
        dist = dist * self.tilt
        if self.normalize_nyquist:
            dist = dsp.normalize_harmonics(dist, f0, float(self.sample_rate))
        else:
            dist = dsp.normalize_harmonics(dist)
        frames = torch.cat([pending, torch.cat([f0, amps * dist], dim=-1)], dim=1)  # [1, L + F, 1 + n_h]
        f_ext = frames[:, :self.n_frames + 1, 0]  # the rendered frames and the one after them
        a_ext = frames[:, :self.n_frames + 1, 1:]
        first = frames_in - self.lookahead  # the absolute index of the first rendered frame
        index = first + torch.arange(self.n_frames, dtype=torch.int64, device=raw.device)
        totals = segment_phase_totals(f_ext[..., None], float(self.sample_rate), self.hop)[..., 0]
        virtual = (index < 0).to(totals.dtype)[None]  # frames before the signal: phase 0 at its start
        start = phase - (totals * virtual).sum(1)
        sample_phase = segment_phase(f_ext, float(self.sample_rate), self.hop, start)
        m = torch.arange(self.hop, device=raw.device, dtype=f_ext.dtype) / self.hop
        f_sample = f_ext[:, :-1, None] + (f_ext[:, 1:, None] - f_ext[:, :-1, None]) * m
        audio = _harmonic_chunk(sample_phase, f_sample, a_ext[:, :-1], a_ext[:, 1:], self.w_a, self.w_b,
                                self.sample_rate / 2.0).reshape(1, self.block_size)
        phase = segment_end_phase(f_ext, float(self.sample_rate), self.hop, start)
        return audio, phase, frames[:, self.n_frames:]

    def noise(self, raw: Tensor, frames_in: Tensor, tail: Tensor) -> Tuple[Tensor, Tensor]:
        """The filtered noise: the block's frames filtered into the tail; (audio [1, B], tail)."""
        m0, nm = self.mags_at
        mags = raw[:, :, m0:m0 + nm]
        if self.noise_scaled:
            mags = dsp.exp_sigmoid(mags + self.noise_bias)
        f, hop, n = self.n_frames, self.hop, self.noise_fft
        positions = frames_in * hop + torch.arange(f * hop, dtype=torch.int64, device=raw.device)
        white = uniform_at(self.noise_key, positions, 1).to(mags.dtype).reshape(1, f, hop)
        spec = torch.view_as_real(torch.fft.rfft(white, n=n))
        h_re, h_im = torch.matmul(mags, self.noise_re), torch.matmul(mags, self.noise_im)
        y_re = spec[..., 0] * h_re - spec[..., 1] * h_im
        y_im = spec[..., 0] * h_im + spec[..., 1] * h_re
        blocks = torch.fft.irfft(torch.view_as_complex(torch.stack([y_re, y_im], dim=-1)), n=n)
        r = self.noise_r
        parts = torch.nn.functional.pad(blocks, (0, r * hop - n)).reshape(1, f, r, hop)
        ola = torch.zeros(1, f + r - 1, hop, dtype=blocks.dtype, device=blocks.device)
        for i in range(r):
            ola = ola + torch.nn.functional.pad(parts[:, :, i], (0, 0, i, r - 1 - i))
        offset = self.latency - self.noise_delay
        tail = tail + torch.nn.functional.pad(ola.reshape(1, -1), (offset, 0))
        out = tail[:, :self.block_size]
        return out, torch.nn.functional.pad(tail[:, self.block_size:], (0, self.block_size))

    def reverb(self, dry: Tensor, spectra: Tensor, previous: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Uniformly partitioned overlap-save with partitions of one block: (audio, spectra, previous)."""
        b = self.block_size
        x = torch.view_as_real(torch.fft.rfft(torch.cat([previous, dry], dim=-1)))  # [1, b + 1, 2]
        spectra = torch.cat([x[:, None], spectra[:, :-1]], dim=1)  # the last P input spectra, newest first
        s_re, s_im, h_re, h_im = spectra[..., 0], spectra[..., 1], self.ir_spectra[..., 0], self.ir_spectra[..., 1]
        y_re = (s_re * h_re - s_im * h_im).sum(1)
        y_im = (s_re * h_im + s_im * h_re).sum(1)
        wet = torch.fft.irfft(torch.view_as_complex(torch.stack([y_re, y_im], dim=-1)), n=2 * b)[:, b:]
        return (wet + dry if self.add_dry else wet), spectra, dry

    def step(self, controls: Tensor, rnn_state: Tensor, phase: Tensor, frames_in: Tensor, pending: Tensor,
             noise_tail: Tensor, reverb_spectra: Tensor,
             reverb_previous: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """One block: controls [1, F, 2 (+ z)] (f0 Hz, loudness dB[, z]) and the state (STATE_NAMES)
        -> (audio [1, block_size], the next state)."""
        raw, rnn_state = self.decode(controls, rnn_state)
        audio = torch.zeros(1, self.block_size, dtype=raw.dtype, device=raw.device)
        if self.has_harmonic:
            harmonic, phase, pending = self.harmonic(raw, controls[:, :, 0:1], phase, frames_in, pending)
            audio = audio + harmonic
        if self.has_noise:
            noise, noise_tail = self.noise(raw, frames_in, noise_tail)
            audio = audio + noise
        first = (frames_in - self.lookahead) * self.hop  # the absolute sample of the block's first output
        index = first + torch.arange(self.block_size, dtype=torch.int64, device=raw.device)
        started = index[None] >= 0
        audio = torch.where(started, audio, torch.zeros_like(audio))
        if self.has_reverb:  # (masked again after it: the FFT's rounding spreads across the block)
            audio, reverb_spectra, reverb_previous = self.reverb(audio, reverb_spectra, reverb_previous)
            audio = torch.where(started, audio, torch.zeros_like(audio))
        return (audio, rnn_state, phase, frames_in + self.n_frames, pending, noise_tail, reverb_spectra,
                reverb_previous)

    def forward(self, controls: Tensor, rnn_state: Tensor, phase: Tensor, frames_in: Tensor, pending: Tensor,
                noise_tail: Tensor, reverb_spectra: Tensor,
                reverb_previous: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        return self.step(controls, rnn_state, phase, frames_in, pending, noise_tail, reverb_spectra, reverb_previous)


class ScriptedStream(nn.Module):
    """The engine with its state in registered buffers, in the plugin hosts' convention:
    forward(x [1, channels, block_size]) -> [1, 1, block_size], the channels f0 (Hz), loudness (dB)
    [, z ...] as audio-rate signals read at each frame's first sample (StreamingModel.audio_rate).
    `reset()` starts a new signal. Compiles with torch.jit.script."""

    def __init__(self, engine: BlockEngine):
        super().__init__()
        self.engine = engine
        self.block_size, self.hop, self.sample_rate = engine.block_size, engine.hop, engine.sample_rate
        self.latency, self.channels = engine.latency, 2 + engine.z_dims
        for name, value in zip(STATE_NAMES, engine.initial_state()):
            self.register_buffer(name, value)

    @torch.jit.export
    def reset(self) -> None:
        """Forget the performance: the next block starts a new signal."""
        self.rnn_state.zero_()
        self.phase.zero_()
        self.frames_in.zero_()
        self.pending.zero_()
        self.noise_tail.zero_()
        self.reverb_spectra.zero_()
        self.reverb_previous.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[0] != 1 or x.shape[1] != self.channels or x.shape[2] != self.block_size:
            raise ValueError("x must be [1, " + str(self.channels) + ", " + str(self.block_size) + "] (f0 Hz, "
                             "loudness dB[, z]) at " + str(self.sample_rate) + " Hz, got " + str(list(x.shape)))
        controls = x[:, :, ::self.hop].transpose(1, 2).float()
        audio, rnn_state, phase, frames_in, pending, noise_tail, spectra, previous = self.engine.step(
            controls, self.rnn_state, self.phase, self.frames_in, self.pending, self.noise_tail,
            self.reverb_spectra, self.reverb_previous)
        self.rnn_state.copy_(rnn_state)
        self.phase.copy_(phase)
        self.frames_in.copy_(frames_in)
        self.pending.copy_(pending)
        self.noise_tail.copy_(noise_tail)
        self.reverb_spectra.copy_(spectra)
        self.reverb_previous.copy_(previous)
        return audio[:, None]
