"""ProcessorGroup: a DAG of processors over a dict of named tensors, defined as a list in YAML.

    _target_: ddsp_lab.processors.ProcessorGroup
    nodes:
      - {processor: {_target_: ddsp_lab.processors.Harmonic, n_samples: 64000},
         inputs: [amps, harmonic_distribution, f0_hz], name: harmonic}
      - {processor: {_target_: ddsp_lab.processors.FilteredNoise, n_samples: 64000},
         inputs: [noise_magnitudes], name: noise}
      - {processor: {_target_: ddsp_lab.processors.Add}, inputs: [harmonic, noise], name: audio_synth}

Each node reads the named entries (batch features, decoder outputs or earlier nodes' signals),
adds its signal under `name` and its scaled controls under `name/<control>`. The group's output is
the last node's signal (or `output`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from .base import Processor


class ProcessorGroup(nn.Module):
    """A DAG of processors evaluated in list order.

    Args:
        nodes: list of {processor: Processor, inputs: [keys], name: str} (dicts or tuples
            (processor, inputs[, name])). Hydra instantiates the processors recursively.
        output: key returned by forward (default: the last node's name).
    """

    def __init__(self, nodes: Sequence[Any], output: str | None = None):
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
        self._check_consistent("sample_rate")
        self._check_consistent("n_samples")
        self.output = output or self.names[-1]
        if self.output not in produced:
            raise ValueError(f"ProcessorGroup output {self.output!r} is not a node name {self.names}")

    def _check_consistent(self, attr: str) -> None:
        """Processors that declare `attr` (sample_rate, n_samples) must agree: a stack mixing a
        16 kHz synth with a 48 kHz effect is a config error, caught at construction."""
        values = {name: getattr(p, attr) for p, name in zip(self.processors, self.names)
                  if getattr(p, attr, None) is not None}
        if len(set(values.values())) > 1:
            raise ValueError(f"ProcessorGroup: processors disagree on {attr}: {values}")

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
                and isinstance(getattr(m, "generator", False), (torch.Generator, type(None)))]

    @contextmanager
    def noise_from(self, generator: torch.Generator | None) -> Iterator[None]:
        """Within the block every random processor draws from `generator` (None: leave them as they
        are); their own generators are put back after."""
        procs = self.random_processors() if generator is not None else []
        saved = [p.generator for p in procs]
        try:
            for p in procs:
                p.generator = generator
            yield
        finally:
            for p, g in zip(reversed(procs), reversed(saved)):
                p.generator = g

    def run(self, features: Mapping[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Evaluate every node; returns a new dict: the inputs plus every signal and control.
        generator: if given, every random processor draws its noise from it for this call."""
        with self.noise_from(generator):
            return self._run(features)

    def _run(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        out = dict(features)
        for proc, inputs, name in zip(self.processors, self.inputs, self.names):
            missing = [k for k in inputs if k not in out]
            if missing:
                raise ValueError(f"ProcessorGroup node {name!r} needs {missing}, which are not among "
                                 f"the available keys {sorted(out)}")
            signal, controls = proc.forward_with_controls(*(out[k] for k in inputs))
            out[name] = signal
            for key, value in controls.items():
                out[f"{name}/{key}"] = value
        return out

    def forward(self, features: Mapping[str, Tensor]) -> Tensor:
        return self.run(features)[self.output]
