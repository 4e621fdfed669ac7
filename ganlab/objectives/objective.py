"""An objective: a loss family, the constraints on the critic, and the critic steps per generator step.

The training loop knows objectives only through this class: ``critic_loss`` and
``generator_loss`` return the losses to minimise and report what is worth logging into a
:class:`~ganlab.logger.stats.Stats`; ``attach``, ``after_critic_step`` and ``diagnostics`` pass
through to every constraint. Each penalty reports itself as ``Penalty/<its config name>``; the
other constraints report their own diagnostics. The networks are used only as callables ``D(x)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganlab.logger.stats import Stats
from ganlab.objectives.components import build_component
from ganlab.objectives.constraints import Constraint
from ganlab.objectives.losses import Loss
from ganlab.precision import Precision

Tensor = torch.Tensor


def split_scores(scores: Tensor, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """D's scores of ``torch.cat([real, fake])`` split into the real and the fake part, in proportion:
    a packed critic (``pack`` = m, :mod:`ganlab.models.packing`) gives one score per m samples."""
    n_real = scores.shape[0] * real.shape[0] // (real.shape[0] + fake.shape[0])
    return scores[:n_real], scores[n_real:]


class Objective:
    """``loss`` with ``constraints`` (by config name, applied in order) and ``n_critic`` >= 1."""

    def __init__(self, loss: Loss, constraints: dict[str, Constraint] | None = None, n_critic: int = 1):
        self.loss = loss
        self.constraints = dict(constraints or {})
        self.n_critic = n_critic

    def attach(self, D: nn.Module) -> None:
        """Let the constraints change the critic; call before building the critic's optimizer."""
        for constraint in self.constraints.values():
            constraint.attach(D)

    def critic_loss(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision, stats: Stats, critic_step: int = 0) -> Tensor:
        """The critic's loss on one batch; ``critic_step`` (from 0) lets a lazy penalty skip steps."""
        # One forward pass over real and fake together: half the kernel launches, and spectral
        # norm's power iteration runs once per critic step instead of twice.
        with precision.autocast():
            scores = D(torch.cat([real, fake])).float()
        d_real, d_fake = split_scores(scores, real, fake)
        loss_D = self.loss.critic(d_real, d_fake)
        stats.report("Loss/D_main", loss_D)
        stats.report("Wasserstein/estimate", d_real.mean() - d_fake.mean())
        stats.report("Critic/D_real", d_real.mean())
        stats.report("Critic/D_fake", d_fake.mean())
        penalty = self.penalty(D, real, fake, precision, stats, critic_step)
        if penalty is not None:
            loss_D = loss_D + penalty
        stats.report("Loss/D", loss_D)
        return loss_D

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision, stats: Stats, critic_step: int = 0) -> Tensor | None:
        """The sum of the penalties due at ``critic_step`` (None when none is), each reported as ``Penalty/<name>``."""
        total = None
        for name, constraint in self.constraints.items():
            value = constraint.penalty(D, real, fake, precision, critic_step)
            if value is not None:
                stats.report(f"Penalty/{name}", value)
                total = value if total is None else total + value
        return total

    def generator_loss(self, D: nn.Module, fake: Tensor, precision: Precision, stats: Stats, real: Tensor | None = None) -> Tensor:
        """The generator's loss on ``fake`` (with a graph to G). A loss that ``needs_real`` also gets
        D(``real``): the loop passes the real batch of the last critic step (no new draw, so the data
        stream is every objective's; the official RSGAN and R3GAN code draw a fresh batch here).

        Raises:
            ValueError: the loss needs ``real`` and none was given.
        """
        with precision.autocast():
            d_fake = D(fake).float()
        if not self.loss.needs_real:
            loss_G = self.loss.generator(d_fake)  # no extra forward pass: every other loss runs as before
        else:
            if real is None:
                raise ValueError(f"{type(self.loss).__name__} needs the real batch in the generator step: generator_loss(..., real=real)")
            # D(real) depends on no parameter of G, so G's gradient flows through D(fake) alone and
            # no graph is needed here (D's parameters get no gradient in the G step either).
            # This is a training-mode forward, after D(fake): spectral norm's power iteration
            # advances once more (D(fake) used the same sigma as without it; the next critic step
            # starts one iteration further on), and batch norm's running statistics see the reals.
            with torch.no_grad(), precision.autocast():
                d_real = D(real).float()
            loss_G = self.loss.generator(d_fake, d_real)
        stats.report("Loss/G", loss_G)
        return loss_G

    def after_critic_step(self, D: nn.Module) -> None:
        for constraint in self.constraints.values():
            constraint.after_critic_step(D)

    def diagnostics(self, D: nn.Module) -> dict[str, Tensor]:
        return {tag: value for constraint in self.constraints.values() for tag, value in constraint.diagnostics(D).items()}


def build_objective(config: dict[str, Any], path: str = "objective") -> Objective:
    """The objective of a config node (plain data: ``loss``, ``constraints``, ``n_critic``, ...).

    Raises:
        ConfigError: a component's option out of range, named by its full path.
    """
    group = path.replace(".", "/")
    loss = build_component(config["loss"], f"{path}.loss", f"{group}/loss")
    constraints = {
        name: build_component(node, f"{path}.constraints.{name}", f"{group}/constraints") for name, node in (config.get("constraints") or {}).items()
    }
    return Objective(loss, constraints, config["n_critic"])
