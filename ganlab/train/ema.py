"""Exponential moving average of the generator's weights (``G_ema``), used for samples and metrics.

Averaging G over the last ~1/(1 - decay) steps smooths the oscillations of adversarial training;
Karras et al. (ProGAN, StyleGAN) and Yazici et al. (2019) report better samples and FID from it.
Buffers (BatchNorm running statistics) are copied, not averaged.

Two ways to set the decay:

- a constant ``decay`` (the run's ``ema_decay``), ramped up as min(decay, (1 + t) / (10 + t))
  after t updates (as TensorFlow's ExponentialMovingAverage with ``num_updates``): otherwise
  G_ema would keep 0.999^t of the random initial weights, 22% after 1500 steps, and look blurred
  in short runs;
- a half-life h in generator steps that follows a schedule (R3GAN, Huang et al. 2024: the half-life
  grows from 0 along a cosine, ``objective.ema``): decay = 0.5 ** (1 / h), so that after h steps a
  weight's share in G_ema has halved (StyleGAN2-ADA's ``ema_kimg``; R3GAN's training_loop.py line
  351, ``beta = 0.5 ** (batch / cur_ema_nimg)``, in steps rather than images). h = 0 copies G.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ganlab.errors import require
from ganlab.schedules import Schedule


class EMA:
    """G_ema, updated after every generator step by :meth:`update`.

    Args:
        G: the generator; G_ema starts as its copy.
        decay: the constant decay in [0, 1) (ramped as the module docstring says).

    ``half_life`` (generator steps), when set (by :class:`~ganlab.schedules.Schedules` through
    :meth:`set_half_life`), replaces ``decay`` and its ramp.

    Raises:
        ValueError: ``decay`` outside [0, 1).
    """

    def __init__(self, G: nn.Module, decay: float):
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.half_life: float | None = None
        self.updates = 0
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)

    def set_half_life(self, steps: float) -> None:
        self.half_life = steps

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        if self.half_life is not None:
            return 0.5 ** (1.0 / self.half_life) if self.half_life > 0 else 0.0
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        ema_params = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_params, list(G.parameters()), 1.0 - decay)  # one fused launch per step
        for ema_buffer, buffer in zip(self.G_ema.buffers(), G.buffers()):
            ema_buffer.copy_(buffer)


def half_life_schedule(node: dict[str, Any], run_steps: int) -> Schedule:
    """G_ema's half-life (generator steps) at each step, from an ``objective.ema`` node
    (:class:`ganlab.config.EMAHalfLifeConfig`): from 0 along ``shape`` to ``half_life`` x the
    ramp's steps, reached at the ramp's last step (``steps``, or ``run_steps`` when null), then kept
    (``shape: constant``: that final half-life throughout).

    R3GAN's ``ema_scheduler`` (train.py lines 189-192: cosine_decay_with_warmup from 0 to
    ema_nimg = 5M images over decay_nimg = 2e7 images) is ``half_life: 0.25, shape: cosine`` with
    the ramp over the run. Its first step has h = 0 (G_ema = G), as R3GAN's iteration 0.

    Raises:
        OptionError: a ``half_life`` <= 0 or ``steps`` < 1 (keys relative to the node).
    """
    steps = run_steps if node.get("steps") is None else node["steps"]
    half_life = node.get("half_life", 0.25)
    require(half_life > 0, "half_life", half_life, "must be > 0: a share of the ramp's steps, e.g. 0.25 (R3GAN)")
    require(steps >= 1, "steps", steps, "must be >= 1 generator step, or null for the whole run")
    shape = node.get("shape", "cosine")
    shape = shape if isinstance(shape, str) else shape.value
    if shape == "constant":  # the final half-life from the first step
        return Schedule(half_life * steps)
    return Schedule(0.0, shape, end=half_life * steps, steps=steps)
