"""ProcessorGroup: a DAG of processors over a dict of named tensors, defined as a list in YAML.

    _target_: ddsp_lab.processors.ProcessorGroup
    frame_rate: 250          # optional: lets run() derive the length from the controls' frames
    nodes:
      - {processor: {_target_: ddsp_lab.processors.Harmonic, sample_rate: 16000},
         inputs: [amps, harmonic_distribution, f0_hz], name: harmonic}
      - {processor: {_target_: ddsp_lab.processors.FilteredNoise},
         inputs: [noise_magnitudes], name: noise}
      - {processor: {_target_: ddsp_lab.processors.Add}, inputs: [harmonic, noise], name: audio_synth}

Each node reads the named entries (batch features, decoder outputs or earlier nodes' signals),
adds its signal under `name` and its scaled controls under `name/<control>`. The group's output is
the last node's signal (or `output`). The output length comes from the call (see ProcessorGroup).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from .. import dsp
from .base import Processor, check_n_samples
from .noise import PositionalNoise


class ProcessorGroup(nn.Module):
    """A DAG of processors evaluated in list order.

    Args:
        nodes: list of {processor: Processor, inputs: [keys], name: str} (dicts or tuples
            (processor, inputs[, name])). Hydra instantiates the processors recursively.
        output: key returned by forward (default: the last node's name).
        frame_rate: the controls' frame rate (Hz), for the length rule below (None: not used).
        sample_rate: the group's sample rate (default: the one its processors declare; they must
            agree, and with it).

    Length: run(batch, n_samples=n) passes n to every processor that takes a length (synths:
    `Processor.takes_n_samples`); effects, Add, Mix, Crop take theirs from their audio input.
    With n_samples=None, processors given a fixed n_samples at construction keep it; for those
    without one the group decides a single length for the whole call, in this order:
      1. the fixed n_samples of its other processors (they must agree on it; None, the default,
         agrees with anything),
      2. the batch's 'audio' [batch, n_samples] (a training batch: render as long as the target),
      3. n_frames * hop with hop = sample_rate // frame_rate (if the group has a frame_rate),
         n_frames from the first frame-rate control [batch, n_frames, channels] of the first
         node that needs a length,
      4. else ValueError naming n_samples.
    """

    def __init__(self, nodes: Sequence[Any], output: str | None = None, frame_rate: int | None = None,
                 sample_rate: int | None = None):
        super().__init__()
        self.processors = nn.ModuleList()
        self.inputs: list[tuple[str, ...]] = []
        self.names: list[str] = []
        produced: set[str] = set()
        for i, node in enumerate(nodes):
            proc, inputs, name = self._parse(node, i)
            if name in produced:
                raise ValueError(f"ProcessorGroup: node name {name!r} is used twice")
            n_required = len(proc.required_inputs)
            if not n_required <= len(inputs) <= len(proc.input_names):
                raise ValueError(f"ProcessorGroup node {name!r} ({type(proc).__name__}) takes inputs "
                                 f"{list(proc.input_names)} ({n_required} required), got {list(inputs)}")
            self.processors.append(proc)
            self.inputs.append(tuple(inputs))
            self.names.append(name)
            produced.add(name)
        if not self.names:
            raise ValueError("ProcessorGroup needs at least one node, got an empty list")
        self.sample_rate = self._check_consistent("sample_rate", sample_rate)
        self.n_samples = self._check_consistent("n_samples")
        self.frame_rate, self.hop_size = frame_rate, self._hop(frame_rate, self.sample_rate)
        self.output = output or self.names[-1]
        self._bypassed: frozenset[str] = frozenset()
        if self.output not in produced:
            raise ValueError(f"ProcessorGroup output {self.output!r} is not a node name {self.names}")

    def _check_consistent(self, attr: str, own: Any = None) -> Any:
        """Processors that declare `attr` (sample_rate, n_samples) must agree (with the group's
        own value too, if given): a stack mixing a 16 kHz synth with a 48 kHz effect is a config
        error, caught at construction. Returns the agreed value (None if none declares one)."""
        values = {name: getattr(p, attr) for p, name in zip(self.processors, self.names)
                  if getattr(p, attr, None) is not None}
        if own is not None:
            values["<group>"] = own
        if len(set(values.values())) > 1:
            raise ValueError(f"ProcessorGroup: processors disagree on {attr}: {values}")
        return next(iter(values.values()), None)

    @staticmethod
    def _hop(frame_rate: int | None, sample_rate: int | None) -> int | None:
        if frame_rate is None:
            return None
        if sample_rate is None:
            raise ValueError(f"ProcessorGroup(frame_rate={frame_rate}) needs a sample_rate: give the group "
                             f"one or use a processor that declares it")
        if isinstance(frame_rate, bool) or not isinstance(frame_rate, int) or frame_rate < 1 \
                or sample_rate % frame_rate:
            raise ValueError(f"frame_rate must be a positive int dividing the sample rate ({sample_rate}), "
                             f"got {frame_rate!r}")
        return dsp.hop_size(int(sample_rate), frame_rate)

    @staticmethod
    def _parse(node: Any, i: int) -> tuple[Processor, Sequence[str], str]:
        if isinstance(node, Mapping):
            proc, inputs = node.get("processor"), node.get("inputs", ())
            name = node.get("name") or f"{type(proc).__name__.lower()}_{i}"
        else:
            proc, inputs, *rest = node
            name = rest[0] if rest else f"{type(proc).__name__.lower()}_{i}"
        if not isinstance(proc, Processor):
            raise ValueError(f"ProcessorGroup node {i}: 'processor' must be a Processor, got {type(proc).__name__}")
        return proc, [str(k) for k in inputs], str(name)

    def external_inputs(self) -> dict[str, int | None]:
        """Keys the group needs from outside (features, decoder outputs) and their channel counts."""
        produced: set[str] = set()
        needed: dict[str, int | None] = {}
        for proc, inputs, name in zip(self.processors, self.inputs, self.names):
            sizes = proc.control_sizes()
            for arg, key in zip(proc.input_names, inputs):
                if key not in produced and key not in needed:
                    needed[key] = sizes.get(arg)
            produced.add(name)
        return needed

    def random_processors(self) -> list[Processor]:
        """The processors (nested ones too) that draw noise: FilteredNoise, ExpDecayReverb,
        FilteredNoiseReverb, any with a `generator` attribute (None or a torch.Generator)."""
        return [m for m in self.modules() if isinstance(m, Processor)
                and isinstance(getattr(m, "generator", False), (torch.Generator, PositionalNoise, type(None)))]

    @contextmanager
    def noise_from(self, generator: torch.Generator | PositionalNoise | None) -> Iterator[None]:
        """Within the block every random processor draws from `generator` (None: leave them as they
        are; a PositionalNoise: processor i draws from its stream i); their own generators are put
        back after."""
        procs = self.random_processors() if generator is not None else []
        saved = [p.generator for p in procs]
        try:
            for i, p in enumerate(procs):
                p.generator = generator.stream(i) if isinstance(generator, PositionalNoise) else generator
            yield
        finally:
            for p, g in zip(reversed(procs), reversed(saved)):
                p.generator = g

    def effect_nodes(self, kind: type | tuple[type, ...] | None = None) -> list[str]:
        """Names of the nodes whose processor is an effect on an audio input (its first input is
        `audio`): those `bypass` can take out; `kind` narrows them to processors of a type (e.g.
        processors.Reverb)."""
        return [name for proc, name in zip(self.processors, self.names)
                if proc.input_names[:1] == ("audio",) and (kind is None or isinstance(proc, kind))]

    @contextmanager
    def bypass(self, names: Sequence[str]) -> Iterator[None]:
        """Within the block the named effect nodes pass their audio input through unchanged (their
        signal is their input's): dereverberation renders the dry signal the model learned."""
        names = [names] if isinstance(names, str) else list(names)
        effects = self.effect_nodes()
        wrong = [n for n in names if n not in effects]
        if wrong:
            raise ValueError(f"ProcessorGroup.bypass: {wrong} are not effect nodes of this stack (effects: "
                             f"{effects}; nodes: {self.names})")
        saved, self._bypassed = self._bypassed, self._bypassed | frozenset(names)
        try:
            yield
        finally:
            self._bypassed = saved

    def run(self, features: Mapping[str, Tensor], generator: torch.Generator | None = None,
            n_samples: int | None = None) -> dict[str, Tensor]:
        """Evaluate every node; returns a new dict: the inputs plus every signal and control.
        generator: if given, every random processor draws its noise from it for this call.
        n_samples: the output length of every processor that takes one (None: the rule in the
        class docstring)."""
        with self.noise_from(generator):
            return self._run(features, check_n_samples(n_samples))

    def _run(self, features: Mapping[str, Tensor], n_samples: int | None) -> dict[str, Tensor]:
        out = dict(features)
        default: int | None = None  # the call's length for processors without a fixed one
        for proc, inputs, name in zip(self.processors, self.inputs, self.names):
            missing = [k for k in inputs if k not in out]
            if missing:
                raise ValueError(f"ProcessorGroup node {name!r} needs {missing}, which are not among "
                                 f"the available keys {sorted(out)}")
            args = [out[k] for k in inputs]
            if name in self._bypassed:
                out[name] = args[0]
                continue
            length = {}
            if proc.takes_n_samples:
                length = {"n_samples": n_samples}
                if n_samples is None and getattr(proc, "n_samples", None) is None:
                    default = default or self._default_n_samples(features, args, name)
                    length = {"n_samples": default}
            signal, controls = proc.forward_with_controls(*args, **length)
            out[name] = signal
            for key, value in controls.items():
                out[f"{name}/{key}"] = value
        return out

    def _default_n_samples(self, features: Mapping[str, Tensor], args: Sequence[Tensor], name: str) -> int:
        """The length of a call without n_samples (rules 1-4 of the class docstring)."""
        if self.n_samples is not None:
            return self.n_samples
        audio = features.get("audio")
        if torch.is_tensor(audio) and audio.dim() >= 1:
            return int(audio.shape[-1])
        frames = [a for a in args if torch.is_tensor(a) and a.dim() == 3]
        if self.hop_size is not None and frames:
            return int(frames[0].shape[1]) * self.hop_size
        raise ValueError(f"ProcessorGroup node {name!r} needs n_samples: pass group.run(batch, n_samples=n), "
                         f"give the batch an 'audio' entry, or give the group a frame_rate (got "
                         f"frame_rate={self.frame_rate}, and no 'audio' among {sorted(features)})")

    def stream_lookahead(self) -> int:
        """Frames of controls past a chunk that `stream` needs to render the chunk (the largest
        of its processors')."""
        return max(p.stream_lookahead(self._stream_hop()) for p in self.processors)

    def _stream_hop(self) -> int:
        if self.hop_size is None:
            raise ValueError("ProcessorGroup.stream needs the group's frame_rate (ProcessorGroup(frame_rate=...))")
        return self.hop_size

    def stream(self, controls: Mapping[str, Tensor], n_samples: int, state: dict,
               generator: torch.Generator | PositionalNoise | None = None) -> Tensor:
        """The next n_samples of the output, continuing the previous calls (chunked rendering of
        long signals; real-time blocks).

        controls: the group's external inputs; frame-rate ones [b, n_samples // hop + l, c] hold
            the chunk's frames, then l = stream_lookahead() frames after it (fewer only where the
            signal ends); others (an IR, a gain [b, 1]) are passed whole.
        state: a dict kept by the caller between calls (empty at the start): each node's state
            (oscillator phase, filter and reverb tails) under its name.
        generator: as in run; with a PositionalNoise (the same seed) the chunks together equal
            one `run` over the whole signal, within float rounding.
        """
        hop = self._stream_hop()
        if check_n_samples(n_samples) % hop:
            raise ValueError(f"ProcessorGroup.stream: n_samples must be a multiple of the hop ({hop}), got {n_samples}")
        n_frames = n_samples // hop
        out: dict[str, Tensor] = {}
        with self.noise_from(generator):
            for proc, inputs, name in zip(self.processors, self.inputs, self.names):
                missing = [k for k in inputs if k not in out and k not in controls]
                if missing:
                    raise ValueError(f"ProcessorGroup node {name!r} needs {missing}, not among {sorted(controls)}")
                keep = n_frames + proc.stream_lookahead(hop)
                args = [out[k] if k in out else controls[k][:, :keep] if controls[k].dim() == 3 else controls[k]
                        for k in inputs]
                out[name] = args[0] if name in self._bypassed else \
                    proc.stream(*args, n_samples=n_samples, hop=hop, state=state.setdefault(name, {}))
        return out[self.output]

    def forward(self, features: Mapping[str, Tensor], n_samples: int | None = None) -> Tensor:
        return self.run(features, n_samples=n_samples)[self.output]
