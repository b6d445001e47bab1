"""Decoders: network-range features -> named synth controls."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .layers import REFERENCE_LAYER_NORM_EPS, REFERENCE_LEAKY_SLOPE, FcStack, load_keras_dense, load_keras_gru


def _splits(output_splits) -> list[tuple[str, int]]:
    out = [(str(k), int(n)) for k, n in (output_splits.items() if hasattr(output_splits, "items") else output_splits)]
    if not out or any(n < 1 for _, n in out):
        raise ValueError(f"output_splits must name at least one output of size >= 1, got {output_splits}")
    return out


def _input_sizes(input_keys, input_sizes) -> tuple[int, ...]:
    sizes = tuple(input_sizes) if input_sizes is not None else (1,) * len(input_keys)
    if len(sizes) != len(input_keys):
        raise ValueError(f"input_sizes {sizes} must give one size per input key {tuple(input_keys)}")
    return sizes


class _FcDecoder(nn.Module):
    """An MLP per input -> [optional GRU] -> MLP over [inputs(, GRU output)] -> dense, split by name."""

    def __init__(self, ch: int, layers_per_stack: int, input_keys: Sequence[str], input_sizes: Sequence[int] | None,
                 output_splits, layer_norm_eps: float, leaky_slope: float, rnn_channels: int = 0):
        super().__init__()
        self.input_keys, self.ch = tuple(input_keys), ch
        sizes = _input_sizes(self.input_keys, input_sizes)
        stack = lambda n_in: FcStack(n_in, ch, layers_per_stack, layer_norm_eps, leaky_slope)  # noqa: E731
        self.input_stacks = nn.ModuleList(stack(n) for n in sizes)
        self.rnn = nn.GRU(ch * len(sizes), rnn_channels, batch_first=True) if rnn_channels else None
        self.out_stack = stack(ch * len(sizes) + rnn_channels)
        self.output_splits: list[tuple[str, int]] | None = None
        self.dense_out: nn.Linear | None = None
        if output_splits is not None:
            self.set_output_splits(output_splits)

    def set_output_splits(self, output_splits) -> None:
        """Build the output layer for ((name, size), ...): what a decoder made with
        output_splits=None gets from the synth stack it feeds (DDSP derives them)."""
        self.output_splits = _splits(output_splits)
        self.dense_out = nn.Linear(self.ch, sum(n for _, n in self.output_splits))

    def forward(self, features: dict[str, Tensor], state: dict | None = None) -> dict[str, Tensor]:
        """features -> features + the named controls, frame for frame. state: a dict carried
        between the chunks of one signal (the GRU's hidden state under 'rnn'; empty at the start):
        chunks decoded in order equal one call over the whole signal (the decoder is causal)."""
        if self.dense_out is None:
            raise ValueError(f"{type(self).__name__} has no outputs yet: give output_splits, or build it into a "
                             f"DDSP model, which derives them from its synth stack")
        missing = [k for k in self.input_keys if k not in features]
        if missing:
            raise ValueError(f"{type(self).__name__} needs {missing} among the features {sorted(features)}")
        hidden = [s(features[k]) for s, k in zip(self.input_stacks, self.input_keys)]
        if self.rnn is not None:
            h0 = state.get("rnn") if state is not None else None
            out, h = self.rnn(torch.cat(hidden, dim=-1), h0)
            hidden.append(out)
            if state is not None:
                state["rnn"] = h
        x = self.dense_out(self.out_stack(torch.cat(hidden, dim=-1)))
        outputs = dict(features)
        for (name, _), value in zip(self.output_splits, torch.split(x, [n for _, n in self.output_splits], -1)):
            outputs[name] = value
        return outputs


class RnnFcDecoder(_FcDecoder):
    """The paper's decoder: an MLP per input -> GRU -> MLP over [inputs, GRU output] -> dense, split
    by name into the synth stack's controls.

    Args:
        rnn_channels: GRU size (paper 512). ch, layers_per_stack: the MLPs (paper 512 x 3).
        input_keys: features read (e.g. ('ld_scaled', 'f0_scaled'[, 'z'])), each [b, t, c].
        input_sizes: channels of each input (default 1 each; z: its size).
        output_splits: ((name, size), ...) e.g. (('amps', 1), ('harmonic_distribution', 60),
            ('noise_magnitudes', 65)); None: derived from the synth stack by the DDSP model that
            holds the decoder (the synth's inputs that are not features, with their sizes).
        layer_norm_eps, leaky_slope: the reference's (1e-3, 0.2) by default; torch's own defaults
            (1e-5, 0.01) are one argument away.
    """

    def __init__(self, rnn_channels: int = 512, ch: int = 512, layers_per_stack: int = 3,
                 input_keys: Sequence[str] = ("ld_scaled", "f0_scaled"), input_sizes: Sequence[int] | None = None,
                 output_splits=None,
                 layer_norm_eps: float = REFERENCE_LAYER_NORM_EPS, leaky_slope: float = REFERENCE_LEAKY_SLOPE):
        if rnn_channels < 1:
            raise ValueError(f"rnn_channels must be >= 1 (decoder=mlp has no GRU), got {rnn_channels}")
        super().__init__(ch, layers_per_stack, input_keys, input_sizes, output_splits, layer_norm_eps, leaky_slope,
                         rnn_channels)

    def load_reference_weights(self, weights: dict[str, Tensor]) -> None:
        """Load the reference's (Keras) weights by structural name: in{i}_fc{j}_dense_kernel/_bias,
        in{i}_fc{j}_ln_gamma/_beta, gru_kernel/_recurrent_kernel/_bias, out_fc{j}_..., dense_out_..."""
        def load_stack(stack: FcStack, prefix: str) -> None:
            for j in range(len(stack) // 3):
                load_keras_dense(stack[3 * j], weights[f"{prefix}_fc{j}_dense_kernel"], weights[f"{prefix}_fc{j}_dense_bias"])
                with torch.no_grad():
                    stack[3 * j + 1].weight.copy_(weights[f"{prefix}_fc{j}_ln_gamma"])
                    stack[3 * j + 1].bias.copy_(weights[f"{prefix}_fc{j}_ln_beta"])

        for i, s in enumerate(self.input_stacks):
            load_stack(s, f"in{i}")
        load_keras_gru(self.rnn, weights["gru_kernel"], weights["gru_recurrent_kernel"], weights["gru_bias"])
        load_stack(self.out_stack, "out")
        load_keras_dense(self.dense_out, weights["dense_out_kernel"], weights["dense_out_bias"])


class MlpDecoder(_FcDecoder):
    """Feed-forward only (no recurrence): an MLP per input -> MLP over their concatenation -> dense,
    split by name into the synth stack's controls. Every frame is decoded independently: cheaper
    than RnnFcDecoder and streamable frame by frame, at the cost of temporal context.

    Args: as RnnFcDecoder, without rnn_channels.
    """

    def __init__(self, ch: int = 512, layers_per_stack: int = 3,
                 input_keys: Sequence[str] = ("ld_scaled", "f0_scaled"), input_sizes: Sequence[int] | None = None,
                 output_splits=None,
                 layer_norm_eps: float = REFERENCE_LAYER_NORM_EPS, leaky_slope: float = REFERENCE_LEAKY_SLOPE):
        super().__init__(ch, layers_per_stack, input_keys, input_sizes, output_splits, layer_norm_eps, leaky_slope)
