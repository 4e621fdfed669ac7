"""The Lipschitz penalty of WGAN-LP (Petzka et al. 2018, "On the regularization of Wasserstein GANs",
ICLR 2018): the one-sided max(0, ||grad D(x_hat)||_2 - 1)^2 on the real-fake interpolates of WGAN-GP.

The paper argues that the critic's constraint is ||grad D|| <= 1, not = 1, so gradients smaller
than 1 are not penalised; on interpolates it samples x_hat as WGAN-GP does (Gulrajani 2017, Alg. 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ganlab.objectives.constraints import Penalty, PenaltyConfig, Tensor
from ganlab.objectives.gradients import input_gradient_norm, interpolates, refuse_batch_norm, uncompiled
from ganlab.precision import Precision


class LipschitzPenalty(Penalty):
    """weight * E[max(0, ||grad D(x_hat)||_2 - 1)^2], x_hat = eps * real + (1 - eps) * fake, eps ~
    U[0, 1] per sample (Petzka et al. 2018). Reported as ``Penalty/lp`` (weighted).

    Raises:
        ConfigError: a critic with batch norm (the penalty is a per-sample gradient).
    """

    def attach(self, D: nn.Module) -> None:
        refuse_batch_norm(D, "the Lipschitz penalty (objective/constraints=lp)")

    def term(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision) -> Tensor:
        norm = input_gradient_norm(uncompiled(D), interpolates(real, fake), precision, create_graph=True)
        return ((norm - 1).clamp(min=0) ** 2).mean()  # float32, outside autocast


@dataclass
class LipschitzPenaltyConfig(PenaltyConfig):
    _target_: str = "ganlab.objectives.constraints.lipschitz_penalty.LipschitzPenalty"
