"""The per-block step of a trained model as one static, exportable computation.

`BlockEngine(model, block_size)` turns a DDSP model into `step(controls, *state) -> (audio,
*state)`: one block of frame-rate controls (f0 Hz, loudness dB[, z]) and the carried state in,
one block of audio and the next state out, with no Python objects or data-dependent shapes in
its signature. TorchScript records it (`ScriptedStream`, the state in the module) and ONNX exports
it (the state as explicit inputs and outputs).

It composes the model's own parts and does no arithmetic of its own: the preprocessor and the
decoder (the GRU state carried), then each node of the synth stack through its `block`
(processors/base.py), the one implementation of that processor's streamed arithmetic, which
ProcessorGroup.stream (chunked renders, StreamingModel) also runs. What streams exports: Harmonic,
FilteredNoise, Wavetable, Sinusoidal, Add, Mix, ModDelay and a Reverb with a fixed IR (trainable, or
drawn: ExpDecayReverb / FilteredNoiseReverb with trainable=True). tests/test_export.py checks every
such stack against the eager StreamingModel and the offline render.

How the block is laid out. The stack needs `lookahead` (L) frames past those it renders (the
oscillators interpolate towards the next frame; the filtered noise's centred filters look half
their length ahead), so block k renders frames [kF - L, kF - L + F) of the F = block / hop frames
received so far, and its audio is the offline render's samples [k B - L hop, (k + 1) B - L hop):
the latency is L hop samples. The first block's L frames before the signal are virtual: every
node's output is masked to zero there, and the processors start their state so that frame 0
renders as offline (BlockPlan.first < 0). A Reverb convolves with partitions of one block: one FFT
pair per block and a multiply-add per partition, whatever the IR's length.
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor, nn

from ..processors import PositionalNoise, Reverb
from ..processors.base import BlockPlan

CORE_STATE = ("rnn_state", "frames_in", "pending")


def _unsupported(msg: str) -> ValueError:
    return ValueError(f"export: {msg}; exported models run synth stacks of processors that stream (Harmonic, "
                      f"FilteredNoise, Wavetable, Sinusoidal, Add, Mix, ModDelay, a Reverb with a fixed IR) under the "
                      f"F0LoudnessPreprocessor and an RNN-FC or MLP decoder")


class BlockEngine(nn.Module):
    """One block of a trained DDSP model, static and exportable (see the module docstring).

    Args:
        model: a DDSP whose stack streams (else a ValueError naming the node that does not).
        block_size: samples per block, a whole number of hops (StreamingModel's rule).
        seed: the random processors' positional noise (StreamingModel's seed; an int).

    `step(controls [1, F, 2 (+ z_dims)], *state)` -> (audio [1, block_size], *state), the
    controls f0 (Hz), loudness (dB)[, z] per frame; `initial_state()` the state of a fresh stream,
    named by `state_names`.
    """

    def __init__(self, model, block_size: int, seed: int = 0):
        super().__init__()
        from ..models.traits import check_model, predicts_f0
        from ..networks import F0LoudnessPreprocessor
        from ..networks.decoders import _FcDecoder
        from .streaming import check_block_size

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
        self.z_dims = self.z_size(model)
        self.model = model
        self.noise = PositionalNoise(seed)
        self.rnn_shape = (dec.rnn.num_layers, 1, dec.rnn.hidden_size) if dec.rnn is not None else (1, 1, 1)
        for proc, inputs, name in zip(synth.processors, synth.inputs, synth.names):
            if name in synth._bypassed:
                raise _unsupported(f"node {name!r} is bypassed")
            if not proc.streams:
                raise _unsupported(f"node {name!r} ({type(proc).__name__} on {list(inputs)}) does not stream")
            if isinstance(proc, Reverb) and not proc.trainable:
                raise _unsupported(f"node {name!r} ({type(proc).__name__}) takes its IR as a control; only a "
                                   f"fixed (trained) IR is exported")
        # the frame-rate controls the stack reads, as one [1, frames, channels] tensor (pending)
        controls = self._decode(torch.zeros(1, self.n_frames, 2 + self.z_dims), self._rnn_zeros())[0]
        self.keys = sorted(k for k in synth.external_inputs() if k in controls)
        missing = sorted(set(synth.external_inputs()) - set(self.keys))
        if missing:
            raise _unsupported(f"the stack reads {missing}, which the decoder does not give")
        self.widths = [int(controls[k].shape[-1]) for k in self.keys]
        # each node's constants (buffers) and initial state, from a first block of zeros
        self.node_state: List[List[str]] = []
        self.constant_names: List[List[str]] = []
        self._initial: List[Tensor] = []
        self.state_names: List[str] = list(CORE_STATE)
        window = {k: torch.zeros(1, self.lookahead + self.n_frames, w) for k, w in zip(self.keys, self.widths)}
        with torch.no_grad(), synth.noise_from(self.noise):
            outputs: dict[str, Tensor] = {}
            for i, (proc, inputs, name) in enumerate(zip(synth.processors, synth.inputs, synth.names)):
                args = [outputs[k] if k in outputs else window[k] for k in inputs]
                constants, state = proc.block_init(args, hop, self.lookahead, partition=self.block_size)
                self.constant_names.append(sorted(constants))
                for key in sorted(constants):
                    self.register_buffer(f"_node{i}_{key}", constants[key].float().contiguous())
                self.node_state.append(sorted(state))
                self.state_names += [f"{name}.{key}" for key in sorted(state)]
                self._initial += [state[key] for key in sorted(state)]
                outputs[name] = torch.zeros(1, self.block_size)

    @staticmethod
    def z_size(model) -> int:
        """Channels of z the model's decoder reads (0 without z)."""
        dec = model.decoder
        return int(dict(zip(dec.input_keys, [s[0].in_features for s in dec.input_stacks])).get("z", 0))

    # -- state ------------------------------------------------------------------------------------
    def _rnn_zeros(self) -> Tensor:
        return torch.zeros(*self.rnn_shape)

    def initial_state(self) -> List[Tensor]:
        """The state of a fresh stream, in `state_names` order: the decoder's GRU state (a
        placeholder without one), the frames received, the last L frames of controls, then each
        node's state."""
        pending = torch.zeros(1, self.lookahead, sum(self.widths))
        return [self._rnn_zeros(), torch.zeros(1, dtype=torch.int64), pending] + [s.clone() for s in self._initial]

    # -- the step ---------------------------------------------------------------------------------
    def _decode(self, controls: Tensor, rnn_state: Tensor) -> tuple[dict, Tensor]:
        """controls [1, F, 2 (+ z)] -> the decoder's outputs (and the features) and the GRU state."""
        features = {"f0_hz": controls[:, :, 0:1], "loudness_db": controls[:, :, 1:2]}
        encoded = self.model.preprocessor(features)
        if self.z_dims:
            encoded["z"] = controls[:, :, 2:]
        state = {"rnn": rnn_state}
        out = self.model.decode(encoded, state)
        return out, (state["rnn"] if self.model.decoder.rnn is not None else rnn_state)

    def step(self, controls: Tensor, *state: Tensor):
        """One block: controls [1, F, 2 (+ z)] (f0 Hz, loudness dB[, z]) and the state
        (state_names) -> (audio [1, block_size], the next state)."""
        rnn_state, frames_in, pending = state[0], state[1], state[2]
        decoded, rnn_state = self._decode(controls, rnn_state)
        window = torch.cat([pending, torch.cat([decoded[k] for k in self.keys], dim=-1)], dim=1)  # [1, L + F, C]
        signals = dict(zip(self.keys, torch.split(window, self.widths, dim=-1)))
        plan = BlockPlan(frames_in[0] - self.lookahead, self.n_frames, self.n_frames, self.hop)
        index = plan.first * self.hop + torch.arange(self.block_size, dtype=torch.int64, device=controls.device)
        started = index[None] >= 0  # samples of the signal (the first block's virtual frames are not)
        synth, at, next_state = self.model.synth, 3, []
        with synth.noise_from(self.noise):
            for i, (proc, inputs, name) in enumerate(zip(synth.processors, synth.inputs, synth.names)):
                args = [signals[k] for k in inputs]
                keys = self.node_state[i]
                node_state = dict(zip(keys, state[at:at + len(keys)]))
                constants = {k: getattr(self, f"_node{i}_{k}") for k in self.constant_names[i]}
                audio, node_state = proc.block(args, plan, constants, node_state)
                # masked: before the signal, and after a convolution (its rounding spreads over the block)
                signals[name] = torch.where(started, audio, torch.zeros_like(audio))
                next_state += [node_state[k] for k in keys]
                at += len(keys)
        return (signals[synth.output], rnn_state, frames_in + self.n_frames, window[:, self.n_frames:], *next_state)

    def forward(self, controls: Tensor, *state: Tensor):
        return self.step(controls, *state)


class _ListStep(nn.Module):
    """The engine's step with its state as one list (what a TorchScript wrapper can carry)."""

    def __init__(self, engine: BlockEngine):
        super().__init__()
        self.engine = engine

    def forward(self, controls: Tensor, state: List[Tensor]):
        audio, *state = self.engine.step(controls, *state)
        return audio, state


class ScriptedStream(nn.Module):
    """The engine with its state inside, in the plugin hosts' convention:
    forward(x [1, channels, block_size]) -> [1, 1, block_size], the channels f0 (Hz), loudness (dB)
    [, z ...] as audio-rate signals read at each frame's first sample (StreamingModel.audio_rate).
    `reset()` starts a new signal. `ScriptedStream.compile(engine)` records the engine's step
    (torch.jit.trace: static shapes, one block size) and scripts this wrapper around it."""

    def __init__(self, step: nn.Module, engine: BlockEngine):
        super().__init__()
        self.step = step
        self.block_size, self.hop, self.sample_rate = engine.block_size, engine.hop, engine.sample_rate
        self.latency, self.channels = engine.latency, 2 + engine.z_dims
        self.initial: List[Tensor] = engine.initial_state()
        self.state: List[Tensor] = [s.clone() for s in self.initial]

    @staticmethod
    def compile(engine: BlockEngine) -> torch.jit.ScriptModule:
        """The engine as TorchScript: its step traced, this wrapper scripted. The tracer warns at
        every shape check of the processors (shapes are static here, one block size); a decision
        read from a tensor's values would be frozen into the graph, so the code a block runs makes
        none (dsp.tracing() turns the harmonic synth's host shortcut off): tests/test_export.py
        compares the file with the eager stream over many blocks."""
        import warnings

        controls = torch.zeros(1, engine.n_frames, 2 + engine.z_dims)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
            traced = torch.jit.trace(_ListStep(engine), (controls, engine.initial_state()), check_trace=False,
                                     strict=False)
            return torch.jit.script(ScriptedStream(traced, engine))

    @torch.jit.export
    def reset(self) -> None:
        """Forget the performance: the next block starts a new signal."""
        self.state = [s.clone() for s in self.initial]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[0] != 1 or x.shape[1] != self.channels or x.shape[2] != self.block_size:
            raise ValueError("x must be [1, " + str(self.channels) + ", " + str(self.block_size) + "] (f0 Hz, "
                             "loudness dB[, z]) at " + str(self.sample_rate) + " Hz, got " + str(list(x.shape)))
        controls = x[:, :, ::self.hop].transpose(1, 2).float()
        audio, state = self.step(controls, self.state)
        self.state = state
        return audio[:, None]
