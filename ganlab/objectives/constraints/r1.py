"""R1 (Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?", Eq. 9): the
zero-centred gradient penalty on real data, weight * 1/2 * E ||grad D(real)||^2.

``weight`` is the paper's gamma: the term is 1/2 E||grad D||^2, so ``objective.constraints.r1.weight=10``
is gamma = 10 (Eq. 9; StyleGAN2's ``r1_gamma`` means the same). The official code
(LMescheder/GAN_stability, ``gan_training/train.py``) multiplies its ``reg_param`` with E||grad D||^2
without the 1/2, so its ``reg_param: 10`` (``configs/default.yaml``) is gamma = 20 here.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ganlab.objectives.constraints import Penalty, PenaltyConfig, Tensor
from ganlab.objectives.gradients import input_gradient_norm, refuse_batch_norm, uncompiled
from ganlab.precision import Precision


def zero_centered(D: nn.Module, x: Tensor, precision: Precision | None = None) -> Tensor:
    """1/2 E ||grad_x D(x)||_2^2 over the (n, ...) batch ``x``: a float32 scalar with a graph to D's
    parameters (R1 on reals, R2 on fakes; Mescheder et al. 2018, Eq. 9 and 10, without gamma)."""
    norm = input_gradient_norm(uncompiled(D), x, precision, create_graph=True)
    return 0.5 * (norm**2).mean()  # float32, outside autocast


class R1(Penalty):
    """weight * 1/2 * E_real ||grad D(real)||^2, ``weight`` = gamma (Mescheder et al. 2018, Eq. 9).
    Reported as ``Penalty/r1`` (weighted). Lazy with ``every`` = k: StyleGAN2's lazy R1 (k = 16).

    Raises:
        ConfigError: a critic with batch norm (the penalty is a per-sample gradient).
    """

    def attach(self, D: nn.Module) -> None:
        refuse_batch_norm(D, "R1 (objective/constraints=r1)")

    def term(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision) -> Tensor:
        return zero_centered(D, real, precision)


@dataclass
class R1Config(PenaltyConfig):
    _target_: str = "ganlab.objectives.constraints.r1.R1"
