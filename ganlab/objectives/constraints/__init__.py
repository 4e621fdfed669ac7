"""What acts on the critic besides its loss: penalties, weight clipping, spectral normalisation.

Each constraint is one module in this package holding its class and its typed config schema
(a dataclass with ``_target_``, holding only its own keys), selected by
``conf/objective/constraints/<name>.yaml``. An objective carries any number of them
(``objective/constraints=[gp,sn]``), under their config names. A constraint has four hooks, all
optional:

* ``attach(D)`` changes the critic once, before its optimizer is built (spectral norm);
* ``penalty(D, real, fake, precision, critic_step)`` returns a term added to the critic loss, or
  None on the critic steps it skips (the penalties: :class:`Penalty`);
* ``after_critic_step(D)`` runs after each critic optimizer step (weight clipping);
* ``diagnostics(D)`` returns device tensors to log under the constraint's own tags, once per log
  interval.

:class:`Penalty` holds what every penalty shares: its ``weight`` (which may follow a schedule) and
lazy regularisation, ``every`` k critic steps with weight k (StyleGAN2, Karras et al. 2020,
Sec. 3.1). A new penalty implements only :meth:`Penalty.term`. Adding one is one module here plus
one YAML in ``conf/objective/constraints/``; :mod:`ganlab.objectives.components` finds its schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from omegaconf import MISSING
from torch import nn

from ganlab.errors import require
from ganlab.precision import Precision
from ganlab.schedules import ScheduleConfig

Tensor = torch.Tensor


class Constraint:
    """A constraint whose hooks do nothing: the base class."""

    def attach(self, D: nn.Module) -> None:
        pass

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision, critic_step: int = 0) -> Tensor | None:
        return None

    def after_critic_step(self, D: nn.Module) -> None:
        pass

    def diagnostics(self, D: nn.Module) -> dict[str, Tensor]:
        return {}


class Penalty(Constraint):
    """A regulariser ``weight * term`` added to the critic loss, optionally lazy.

    With ``every`` = k > 1 the penalty is computed on one critic step in k (``critic_step`` % k
    == 0, counting from 0) with its weight multiplied by k, so that its average pull is unchanged
    while k - 1 of k critic steps skip its cost (StyleGAN2, Karras et al. 2020, Sec. 3.1).
    ``weight`` is an attribute that a schedule may change between steps
    (:mod:`ganlab.schedules`).

    Raises:
        OptionError: ``weight`` < 0 or ``every`` < 1 (keys relative to the penalty's node).
    """

    def __init__(self, *, weight: float, every: int):
        require(weight >= 0, "weight", weight, "the penalty weight must be >= 0")
        require(every >= 1, "every", every, "must be >= 1: 1 applies the penalty on every critic step, k on one in k with weight k")
        self.weight = weight
        self.every = every

    def term(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision) -> Tensor:
        """The unweighted penalty on one batch: a float32 scalar with a graph to D's parameters.

        ``real`` and ``fake`` are (n, ...) batches; ``D`` is the eager critic (a double backward
        cannot go through a compiled graph).
        """
        raise NotImplementedError

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision, critic_step: int = 0) -> Tensor | None:
        if critic_step % self.every:
            return None
        return self.every * self.weight * self.term(D, real, fake, precision)


@dataclass
class ConstraintConfig:
    """The base of every constraint's schema."""

    _target_: str = MISSING


@dataclass
class PenaltySchedules:
    weight: ScheduleConfig = field(default_factory=ScheduleConfig)  # e.g. R3GAN decays its gamma


@dataclass
class PenaltyConfig(ConstraintConfig):
    """What every penalty's schema holds besides its own keys."""

    weight: float = MISSING  # each penalty's YAML sets its paper's value
    every: int = 1  # k > 1: lazy, on one critic step in k with weight k * weight (StyleGAN2, Sec. 3.1)
    schedule: PenaltySchedules = field(default_factory=PenaltySchedules)
