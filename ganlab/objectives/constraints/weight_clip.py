"""Weight clipping (WGAN, Arjovsky et al. 2017, Alg. 1): every critic parameter in [-c, c] after each step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganlab.errors import require
from ganlab.objectives.constraints import Constraint, ConstraintConfig, Tensor


class WeightClip(Constraint):
    """Clamp every critic parameter to [-c, c] after each critic step.

    Reports ``Clip/fraction_at_bound``: the share of parameters at ±c (the WGAN-GP paper, Fig. 1b,
    shows clipped weights piling up there).

    Raises:
        OptionError: ``c`` <= 0.
    """

    def __init__(self, *, c: float):
        require(c > 0, "c", c, "the clip bound c must be > 0")
        self.c = c

    @torch.no_grad()
    def after_critic_step(self, D: nn.Module) -> None:
        # Under mixed precision the parameters stay fp32 (autocast casts copies), so this clips
        # the master weights, never a half-precision copy.
        for p in D.parameters():
            p.clamp_(-self.c, self.c)

    @torch.no_grad()
    def diagnostics(self, D: nn.Module) -> dict[str, Tensor]:
        flat = torch.cat([p.flatten() for p in D.parameters()])
        at_bound = (flat.abs() >= self.c * (1 - 1e-6)).float().mean()
        return {"Clip/fraction_at_bound": at_bound}


@dataclass
class WeightClipConfig(ConstraintConfig):
    _target_: str = "ganlab.objectives.constraints.weight_clip.WeightClip"
    c: float = 0.01  # the clipping bound c, WGAN Alg. 1
