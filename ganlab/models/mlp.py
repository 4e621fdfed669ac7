"""Multilayer-perceptron generator and critic, for the toy data and for images of any size (flattened).

The networks hold no loss and no constraint: objectives act on the critic from outside
(spectral norm wraps its layers, clipping runs after the optimizer step). G's last linear layer
is followed by the data's output bound (:mod:`ganlab.models.output`): Tanh for images, nothing
for the 2-D points. ``critic_norm`` (:mod:`ganlab.models.norms`) goes after each hidden layer of
the critic: none, layer or batch; instance norm needs feature maps and is refused. The options
have no defaults here: the schema (``ganlab.config.MLPConfig``) holds them, with their sources.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ganlab.models import activations
from ganlab.models.norms import critic_norm, option
from ganlab.models.output import output_layer

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}
# The critic's piecewise-linear activations skip the penalty's dead double-backward path (activations.py).
CRITIC_ACTIVATIONS = {**ACTIVATIONS, "relu": activations.ReLU, "leaky_relu": lambda: activations.LeakyReLU(0.2)}


def _layers(in_dim: int, out_dim: int, width: int, depth: int, activation: str, norm: str,
            activations: dict[str, Callable[[], nn.Module]] = ACTIVATIONS) -> nn.Sequential:
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(depth):
        layers.append(nn.Linear(dim, width))
        if option(norm) != "none":  # none adds no module, so its state_dict keys stay as they were
            layers.append(critic_norm(norm, width, spatial=None))
        layers.append(activations[option(activation)]())
        dim = width
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def _initialise(net: nn.Module, init: str, activation: str) -> None:
    init, activation = option(init), option(activation)
    if init == "default":
        return
    for layer in net.modules():
        if isinstance(layer, nn.Linear):
            if init == "he_uniform":
                nonlinearity = "leaky_relu" if activation == "leaky_relu" else "relu"
                nn.init.kaiming_uniform_(layer.weight, a=0.2 if activation == "leaky_relu" else 0, nonlinearity=nonlinearity)
            else:
                nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


class MLPGenerator(nn.Module):
    """Maps z ~ N(0, I) of size ``z_dim`` to a sample of ``out_shape`` with values in ``value_range`` (None: unbounded)."""

    def __init__(self, z_dim: int, out_shape: tuple[int, ...], value_range: tuple[float, float] | None,
                 width: int, depth: int, activation: str):
        super().__init__()
        self.z_dim = z_dim
        self.out_shape = tuple(out_shape)
        self.net = _layers(z_dim, math.prod(self.out_shape), width, depth, activation, norm="none")
        bound = output_layer(value_range)
        if bound is not None:  # unbounded data adds no module: the toy G keeps its layout
            self.net.append(bound)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class MLPCritic(nn.Module):
    """Maps a sample of ``in_shape`` to one unbounded score (a logit for the JS loss)."""

    def __init__(self, in_shape: tuple[int, ...], width: int, depth: int, activation: str, norm: str):
        super().__init__()
        self.net = _layers(math.prod(in_shape), 1, width, depth, activation, norm, CRITIC_ACTIVATIONS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)


def build_mlp(
    data_shape: tuple[int, ...],
    value_range: tuple[float, float] | None,
    *,
    z_dim: int,
    width: int,
    depth: int,
    activation: str,
    init: str,
    critic_norm: str,
) -> tuple[MLPGenerator, MLPCritic]:
    """Build the generator ``G`` and critic ``D`` for samples of ``data_shape`` whose values lie in ``value_range``.

    ``value_range``: (low, high) bounds G's output with a Tanh onto them; None leaves it unbounded
    (see :func:`ganlab.data.value_range`). ``depth`` hidden layers of ``width`` units in each
    network. Raises ValueError for an unknown option or a critic norm that needs feature maps.
    """
    G = MLPGenerator(z_dim, tuple(data_shape), value_range, width, depth, activation)
    D = MLPCritic(tuple(data_shape), width, depth, activation, critic_norm)
    _initialise(G, init, activation)
    _initialise(D, init, activation)
    return G, D
