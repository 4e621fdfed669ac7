"""The DRAGAN penalty (Kodali et al. 2017, "On Convergence and Stability of GANs"): the gradient
penalty (||grad D(x_hat)||_2 - 1)^2 at points x_hat near the real data, not between real and fake.

How x_hat is drawn follows the official code (kodalinaveen3/DRAGAN, ``DRAGAN.ipynb``,
``get_perturbed_batch`` and the penalty below it): the perturbed batch is
``real + c * std(real) * u`` with u ~ U[0, 1) per element (uniform and non-negative, not
normal) and std the one standard deviation of all the batch's elements (numpy's ``.std()``,
population), and the penalty is taken on ``real + alpha * (perturbed - real)``, alpha ~ U[0, 1]
per sample. PyTorch-StudioGAN's ``cal_dra_penalty`` draws the same points.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ganlab.distributed import batch_std
from ganlab.errors import require
from ganlab.objectives.constraints import Penalty, PenaltyConfig, Tensor
from ganlab.objectives.gradients import input_gradient_norm, refuse_batch_norm, uncompiled
from ganlab.precision import Precision


def perturbed_reals(real: Tensor, c: float, generator: torch.Generator | None = None) -> Tensor:
    """x_hat = real + alpha * c * std(real) * u: u ~ U[0, 1) with ``real``'s shape (n, ...), alpha ~
    U[0, 1) one per sample, std over every element of the batch (population). Drawn from
    ``generator``, or the global RNG when None (the training step's penalty); u is drawn first."""
    u = torch.rand(real.shape, device=real.device, dtype=real.dtype, generator=generator)
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype, generator=generator)
    std = batch_std(real.detach())  # the whole batch's, over every rank of a distributed run
    return real + alpha * (c * std * u)


class DRAGAN(Penalty):
    """weight * E[(||grad D(x_hat)||_2 - 1)^2] at perturbed reals x_hat (:func:`perturbed_reals`);
    ``c`` sets the perturbation's size in units of the batch's standard deviation (the official
    README's "c", which "decides the size of local regions"). Reported as ``Penalty/dragan`` (weighted).

    Raises:
        OptionError: ``c`` <= 0.
        ConfigError: a critic with batch norm (the penalty is a per-sample gradient).
    """

    def __init__(self, *, weight: float, every: int, c: float):
        super().__init__(weight=weight, every=every)
        require(c > 0, "c", c, "the perturbation size c (in standard deviations of the real batch) must be > 0")
        self.c = c

    def attach(self, D: nn.Module) -> None:
        refuse_batch_norm(D, "the DRAGAN penalty (objective/constraints=dragan)")

    def term(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision) -> Tensor:
        norm = input_gradient_norm(uncompiled(D), perturbed_reals(real, self.c), precision, create_graph=True)
        return ((norm - 1) ** 2).mean()  # float32, outside autocast


@dataclass
class DRAGANConfig(PenaltyConfig):
    _target_: str = "ganlab.objectives.constraints.dragan.DRAGAN"
    c: float = 0.5  # perturbation size in stds of the real batch: DRAGAN.ipynb, get_perturbed_batch (0.5 * minibatch.std())
