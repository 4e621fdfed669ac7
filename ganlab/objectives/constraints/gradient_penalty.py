"""The gradient penalty of WGAN-GP (Gulrajani et al. 2017, Alg. 1): (||grad D(x_hat)||_2 - 1)^2 on
real-fake interpolates x_hat."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ganlab.errors import ConfigError
from ganlab.objectives.constraints import Penalty, PenaltyConfig, Tensor
from ganlab.objectives.gradients import input_gradient_norm, interpolates, uncompiled
from ganlab.precision import Precision


class GradientPenalty(Penalty):
    """weight * E[(||grad D(x_hat)||_2 - 1)^2], x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1]
    per sample (WGAN-GP, Alg. 1, lines 6-7). Reported as ``Penalty/gp`` (weighted)."""

    def attach(self, D: nn.Module) -> None:
        # The penalty is an expectation over samples of each sample's own input gradient; batch
        # norm makes D(x_i) depend on the other samples, so that gradient is not the one penalised
        # (WGAN-GP, Sec. 4, "No critic batch normalization").
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules()):
            raise ConfigError(
                "model.critic_norm=batch is not allowed with the gradient penalty (objective/constraints=gp): "
                "batch norm mixes the samples the penalty treats one by one; use model.critic_norm=layer, instance or none"
            )

    def term(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision) -> Tensor:
        norm = input_gradient_norm(uncompiled(D), interpolates(real, fake), precision, create_graph=True)
        return ((norm - 1) ** 2).mean()  # float32, outside autocast


@dataclass
class GradientPenaltyConfig(PenaltyConfig):
    _target_: str = "ganlab.objectives.constraints.gradient_penalty.GradientPenalty"
