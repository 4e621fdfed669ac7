"""R2 (Mescheder et al. 2018, Eq. 10): the zero-centred gradient penalty on generated data,
weight * 1/2 * E ||grad D(fake)||^2, ``weight`` = gamma as for R1 (:mod:`.r1`)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ganlab.objectives.constraints import Penalty, PenaltyConfig, Tensor
from ganlab.objectives.constraints.r1 import zero_centered
from ganlab.objectives.gradients import refuse_batch_norm
from ganlab.precision import Precision


class R2(Penalty):
    """weight * 1/2 * E_fake ||grad D(fake)||^2, ``weight`` = gamma (Mescheder et al. 2018, Eq. 10;
    R3GAN, Huang et al. 2024, pairs it with R1). Reported as ``Penalty/r2`` (weighted).

    Raises:
        ConfigError: a critic with batch norm (the penalty is a per-sample gradient).
    """

    def attach(self, D: nn.Module) -> None:
        refuse_batch_norm(D, "R2 (objective/constraints=r2)")

    def term(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision) -> Tensor:
        return zero_centered(D, fake, precision)


@dataclass
class R2Config(PenaltyConfig):
    _target_: str = "ganlab.objectives.constraints.r2.R2"
