"""Building blocks shared by encoders and decoders, with the reference's numerics as options."""
from __future__ import annotations

import torch
from torch import Tensor, nn

# The reference (Keras) values: LayerNormalization epsilon 1e-3, leaky_relu slope 0.2.
REFERENCE_LAYER_NORM_EPS = 1e-3
REFERENCE_LEAKY_SLOPE = 0.2


class FcStack(nn.Sequential):
    """n_layers x (Linear -> LayerNorm -> leaky ReLU)."""

    def __init__(self, in_features: int, channels: int = 512, n_layers: int = 3,
                 layer_norm_eps: float = REFERENCE_LAYER_NORM_EPS, leaky_slope: float = REFERENCE_LEAKY_SLOPE):
        layers = []
        for i in range(n_layers):
            layers += [nn.Linear(in_features if i == 0 else channels, channels),
                       nn.LayerNorm(channels, eps=layer_norm_eps), nn.LeakyReLU(leaky_slope)]
        super().__init__(*layers)


def load_keras_gru(gru: nn.GRU, kernel: Tensor, recurrent_kernel: Tensor, bias: Tensor) -> None:
    """Copy Keras GRU weights (reset_after=True; gates z, r, h; kernel [in, 3u], recurrent
    [u, 3u], bias [2, 3u] = input and recurrent biases) into a one-layer torch GRU (gates r, z, n;
    weights [3u, in]). The two cells compute the same function."""
    u = gru.hidden_size

    def reorder(w: Tensor) -> Tensor:  # [..., 3u] z|r|h -> r|z|n
        return torch.cat([w[..., u:2 * u], w[..., :u], w[..., 2 * u:]], dim=-1)

    with torch.no_grad():
        gru.weight_ih_l0.copy_(reorder(kernel).T)
        gru.weight_hh_l0.copy_(reorder(recurrent_kernel).T)
        gru.bias_ih_l0.copy_(reorder(bias[0]))
        gru.bias_hh_l0.copy_(reorder(bias[1]))


def load_keras_dense(linear: nn.Linear, kernel: Tensor, bias: Tensor) -> None:
    """Keras Dense kernel [in, out] -> torch Linear weight [out, in]."""
    with torch.no_grad():
        linear.weight.copy_(kernel.T)
        linear.bias.copy_(bias)
