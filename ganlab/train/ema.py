"""Exponential moving average of the generator's weights (``G_ema``), used for samples and metrics.

Averaging G over the last ~1/(1 - decay) steps smooths the oscillations of adversarial training;
Karras et al. (ProGAN, StyleGAN) and Yazici et al. (2019) report better samples and FID from it.
Buffers (BatchNorm running statistics) are copied, not averaged. The decay ramps up as
min(decay, (1 + t) / (10 + t)) after t updates (as TensorFlow's ExponentialMovingAverage with
``num_updates``): otherwise G_ema would keep 0.999^t of the random initial weights, 22% after
1500 steps, and look blurred in short runs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, G: nn.Module, decay: float):
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, list(G.parameters()), 1.0 - decay)  # one fused launch per step
        for ema_buffer, buffer in zip(self.G_ema.buffers(), G.buffers()):
            ema_buffer.copy_(buffer)
