"""An objective = a loss family + a constraint + the number of critic steps per generator step.

The training loop knows objectives only through this class: ``critic_loss`` and
``generator_loss`` return the losses to minimise and report what is worth logging into a
:class:`~ganlab.logger.stats.Stats`; ``after_critic_step`` and ``diagnostics`` pass through to
the constraint. The networks are used only as callables ``D(x)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.logger.stats import Stats
from ganlab.objectives.constraints import CONSTRAINTS, Constraint
from ganlab.objectives.losses import LOSSES, LossFamily
from ganlab.precision import Precision

Tensor = torch.Tensor


class Objective:
    def __init__(self, loss: LossFamily, constraint: Constraint, n_critic: int = 1):
        self.loss = loss
        self.constraint = constraint
        self.n_critic = n_critic

    def attach(self, D: nn.Module) -> None:
        """Let the constraint change the critic; call before building the critic's optimizer."""
        self.constraint.attach(D)

    def critic_loss(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision, stats: Stats, critic_step: int = 0) -> Tensor:
        """The critic's loss on one batch; ``critic_step`` (from 0) lets a lazy penalty skip steps."""
        # One forward pass over real and fake together: half the kernel launches, and spectral
        # norm's power iteration runs once per critic step instead of twice.
        with precision.autocast():
            scores = D(torch.cat([real, fake])).float()
        d_real, d_fake = scores.split([real.shape[0], fake.shape[0]])
        loss_D = self.loss.critic(d_real, d_fake)
        stats.report("Loss/D_main", loss_D)
        stats.report("Wasserstein/estimate", d_real.mean() - d_fake.mean())
        stats.report("Critic/D_real", d_real.mean())
        stats.report("Critic/D_fake", d_fake.mean())
        penalty = self.constraint.penalty(D, real, fake, precision, critic_step)
        if penalty is not None:
            stats.report("Penalty/gp", penalty)
            loss_D = loss_D + penalty
        stats.report("Loss/D", loss_D)
        return loss_D

    def generator_loss(self, D: nn.Module, fake: Tensor, precision: Precision, stats: Stats) -> Tensor:
        with precision.autocast():
            d_fake = D(fake).float()
        loss_G = self.loss.generator(d_fake)
        stats.report("Loss/G", loss_G)
        return loss_G

    def after_critic_step(self, D: nn.Module) -> None:
        self.constraint.after_critic_step(D)

    def diagnostics(self, D: nn.Module) -> dict[str, Tensor]:
        return self.constraint.diagnostics(D)


def build_objective(
    loss: str,
    constraint: str = "none",
    n_critic: int = 1,
    saturating: bool = False,
    clip_value: float = 0.01,
    gp_weight: float = 10.0,
    gp_every: int = 1,
    sn_power_iterations: int = 1,
) -> Objective:
    """Compose an objective from config names, e.g. ``build_objective("hinge", "gp", n_critic=5)``."""
    family = LOSSES["js_saturating" if saturating else loss]
    options = dict(clip_value=clip_value, gp_weight=gp_weight, gp_every=gp_every, sn_power_iterations=sn_power_iterations)
    return Objective(family, CONSTRAINTS[constraint](**options), n_critic)
