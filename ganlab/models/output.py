"""The generator's last step, which maps its raw output into the range of the data it imitates.

Every builder receives the data's ``value_range`` (:func:`ganlab.data.value_range`) and ends its
generator with :func:`output_layer`: a Tanh for images, which lie in [-1, 1] (as in DCGAN, the
WGAN-GP and SN-GAN ResNets and PyTorch-GAN's MLPs), nothing for the unbounded 2-D points (as in
``gan_toy.py``). A generator without a bound on images spends its first steps learning where the
pixels stop, and its samples leave the range the critic and the metrics ever see from data.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ScaledTanh(nn.Module):
    """``tanh`` stretched onto (``low``, ``high``): ``low + (high - low) * (tanh(x) + 1) / 2``."""

    def __init__(self, low: float, high: float):
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x).add(1.0).mul((self.high - self.low) / 2).add(self.low)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


def output_layer(value_range: tuple[float, float] | None) -> nn.Module | None:
    """The module that bounds G's output to ``value_range``, or None when the data is unbounded.

    ``(-1, 1)`` gives ``nn.Tanh`` itself; any other finite ``(low, high)`` with ``low < high`` a
    :class:`ScaledTanh`. Raises ValueError for anything else.
    """
    if value_range is None:
        return None
    low, high = (float(v) for v in value_range)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"value_range must be None (unbounded) or finite (low, high) with low < high, got {tuple(value_range)}")
    return nn.Tanh() if (low, high) == (-1.0, 1.0) else ScaledTanh(low, high)
