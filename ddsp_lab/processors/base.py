"""Processor base: raw controls -> scaled controls (get_controls) -> signal (get_signal).

Each processor owns its scaling, so networks stay interchangeable and synthesis is testable with
hand-made controls (call get_signal directly). Scale functions are named by strings in configs.
"""
from __future__ import annotations

import inspect
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from .. import dsp

SCALE_FNS: dict[str, Callable[[Tensor], Tensor]] = {
    "exp_sigmoid": dsp.exp_sigmoid,
    "sigmoid": torch.sigmoid,
    "softplus": nn.functional.softplus,
    "frequencies_sigmoid": dsp.frequencies_sigmoid,
    "frequencies_softmax": dsp.frequencies_softmax,
    "identity": lambda x: x,
}


def get_scale_fn(scale_fn: str | Callable | None) -> Callable[[Tensor], Tensor] | None:
    """None | a name in SCALE_FNS | a callable -> callable or None."""
    if scale_fn is None or callable(scale_fn):
        return scale_fn
    if scale_fn not in SCALE_FNS:
        raise ValueError(f"scale_fn must be None, a callable or one of {sorted(SCALE_FNS)}, got {scale_fn!r}")
    return SCALE_FNS[scale_fn]


class BlockPlan(NamedTuple):
    """Where a block sits in its signal (see Processor.block).

    first: int64 tensor [], the absolute index of the block's first rendered frame; negative for
        frames before the signal (the exported engine's first blocks), whose output is masked and
        whose state the processor starts so that frame 0 renders as in one shot.
    n_frames: frames rendered (the block's audio is n_frames * hop samples).
    n_new: frames at the end of the frame-rate windows that no earlier block was given.
    hop: samples per frame.
    """
    first: Tensor
    n_frames: int
    n_new: int
    hop: int


class Processor(nn.Module):
    """Base class. Subclasses implement get_controls(*raw) -> dict and get_signal(**controls).

    forward(*raw_controls) returns the signal; `forward_with_controls` also returns the controls.
    `control_sizes` maps each raw input name to its channel count (None: any / not a control),
    used to check that a decoder's outputs fit a synth stack.

    Length: a processor that turns frame-rate controls into audio declares an `n_samples` keyword
    on get_signal (`takes_n_samples` is then True) and resolves it with `resolve_n_samples`: the
    per-call value, else the one given at construction, else a ValueError. forward and
    forward_with_controls pass `n_samples=` through to it, so `proc(..., n_samples=n)` works by
    hand and ProcessorGroup.run passes it to exactly these processors. Processors that take audio
    (effects, Add, Mix, Crop) take their length from it and have no n_samples.
    """

    takes_n_samples: bool = False  # set per subclass from get_signal's signature

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.takes_n_samples = "n_samples" in inspect.signature(cls.get_signal).parameters

    def get_controls(self, *args, **kwargs) -> dict[str, Tensor]:
        raise NotImplementedError

    def get_signal(self, *args, **kwargs) -> Tensor:
        raise NotImplementedError

    def forward_with_controls(self, *args, n_samples: int | None = None,
                              **kwargs) -> tuple[Tensor, dict[str, Tensor]]:
        controls = self.get_controls(*args, **kwargs)
        return self.get_signal(**controls, **self._length_kwargs(n_samples)), controls

    def forward(self, *args, **kwargs) -> Tensor:
        return self.forward_with_controls(*args, **kwargs)[0]

    def _length_kwargs(self, n_samples: int | None) -> dict[str, int | None]:
        """{'n_samples': n_samples} for a processor that takes one, {} for one whose length comes
        from its audio input (where a given n_samples is an error, not silently ignored)."""
        if self.takes_n_samples:
            return {"n_samples": n_samples}
        if n_samples is not None:
            raise ValueError(f"{type(self).__name__} takes its length from its audio input; "
                             f"n_samples must be None, got {n_samples!r}")
        return {}

    def resolve_n_samples(self, n_samples: int | None) -> int:
        """The output length: the per-call n_samples, else the constructor's, else ValueError."""
        n = n_samples if n_samples is not None else getattr(self, "n_samples", None)
        if n is None:
            raise ValueError(f"{type(self).__name__} needs n_samples (the output length): pass it per call "
                             f"(proc(..., n_samples=n), get_signal(..., n_samples=n), group.run(batch, "
                             f"n_samples=n)) or at construction; got neither")
        return check_n_samples(n)

    # Rendering block by block (long renders, streaming, the exported engine): see ProcessorGroup.stream
    # and ddsp_lab.realtime.BlockEngine. A processor that streams implements block_init and block; its
    # block is the one implementation of its streamed arithmetic (the one-shot get_signal and the
    # block share their dsp functions), written with shapes only in Python so that torch.jit.trace
    # and torch.export record it whole.
    def stream_lookahead(self, hop: int) -> int:
        """Frames of frame-rate controls past a chunk that the chunk's samples depend on (a
        synth interpolating towards the next frame: 1); ProcessorGroup.stream gives them."""
        return 0

    @property
    def streams(self) -> bool:
        """Whether this processor renders block by block (implements `block`)."""
        return type(self).block is not Processor.block

    def block_init(self, inputs: Sequence[Tensor], hop: int, lookahead: int,
                   partition: int | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(constants, state) of a fresh block-by-block rendering, from the first block's inputs.

        inputs: as `block` gets them; hop: samples per frame; lookahead: the frames past the
        rendered ones in each block's frame-rate windows (the caller's, at least stream_lookahead);
        partition: a convolution's partition in samples (the exported engine: its block size).
        constants: tensors fixed for the stream (an IR's spectra; the engine holds them as buffers);
        state: the tensors carried from block to block (the engine's state inputs and outputs)."""
        return {}, {}

    def block(self, inputs: Sequence[Tensor], plan: BlockPlan, constants: dict[str, Tensor],
              state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One block: raw controls as forward takes them, frame-rate ones [b, n_frames + l, c] (the
        block's frames from plan.first, then l lookahead frames, fewer where the signal ends) and
        audio ones [b, n_frames * hop] -> (audio [b, n_frames * hop], the next state)."""
        raise NotImplementedError(f"{type(self).__name__} does not render in chunks yet: render it in one "
                                  f"piece (chunk_seconds=None)")

    def stream(self, *inputs: Tensor, n_samples: int, hop: int, state: dict) -> Tensor:
        """The next n_samples of this processor's signal, continuing the previous calls.

        inputs: as forward's; frame-rate controls [b, n_samples // hop + l, c] hold the chunk's
        frames then l <= stream_lookahead(hop) frames after it (fewer: the signal ends within
        them); audio inputs [b, n_samples] are the chunk's samples. state: this processor's dict
        (empty at the first chunk), kept by the caller between chunks. Chunks rendered in order
        equal one forward over the whole signal (with PositionalNoise for random processors).
        Renders with `block`."""
        if not self.streams:
            self.block(inputs, None, {}, {})  # raises, naming the processor
        if n_samples % hop:
            raise ValueError(f"{type(self).__name__}.stream: chunks must be whole hops ({hop}), got {n_samples}")
        n = n_samples // hop
        window = max((x.shape[1] for x in inputs if x.dim() == 3), default=n)
        if "block" not in state:
            state["constants"], state["block"] = self.block_init(inputs, hop, self.stream_lookahead(hop))
            state["first"] = state["seen"] = 0
            state["first_index"] = torch.zeros((), dtype=torch.int64, device=inputs[0].device)  # kept on the device
        first, end = state["first"], state["first"] + window
        plan = BlockPlan(state["first_index"], n, max(0, end - state["seen"]), hop)
        audio, state["block"] = self.block(inputs, plan, state["constants"], state["block"])
        state["first"], state["seen"] = first + n, max(state["seen"], end)
        state["first_index"] = state["first_index"] + n  # advanced on the device: no copy from the host per chunk
        return audio

    @property
    def input_names(self) -> tuple[str, ...]:
        params = inspect.signature(self.get_controls).parameters.values()
        return tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))

    @property
    def required_inputs(self) -> tuple[str, ...]:
        params = inspect.signature(self.get_controls).parameters.values()
        return tuple(p.name for p in params if p.default is inspect.Parameter.empty
                     and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))

    def control_sizes(self) -> dict[str, int | None]:
        return {name: None for name in self.input_names}


def check_n_samples(n_samples: int | None) -> int | None:
    """None or a positive int (a SymInt under torch.export too); returns it."""
    if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, (int, torch.SymInt))
                                  or n_samples < 1):
        raise ValueError(f"n_samples must be None or a positive int, got {n_samples!r}")
    return n_samples


def check_audio(name: str, audio: Tensor) -> None:
    if audio.dim() != 2:
        raise ValueError(f"{name} must be [batch, n_samples], got shape {tuple(audio.shape)}")


def check_controls(name: str, x: Tensor, n_channels: int | None = None) -> None:
    if x.dim() != 3 or (n_channels is not None and x.shape[-1] != n_channels):
        want = f"[batch, n_frames, {n_channels if n_channels is not None else 'channels'}]"
        raise ValueError(f"{name} must be {want}, got shape {tuple(x.shape)}")
