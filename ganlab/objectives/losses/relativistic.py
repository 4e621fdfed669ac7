"""The relativistic losses (Jolicoeur-Martineau 2018): the critic judges how much more real a real
sample looks than a fake one, and the generator's loss needs D(real) too.

Two forms, one family (``objective/loss=relativistic``, ``objective.loss.average=false|true``):

* **relativistic standard, the pairing loss** (RSGAN, the paper's "relativistic standard GAN"; RpGAN,
  the "relativistic pairing GAN" of R3GAN, Huang et al. 2024): each real sample is paired with the fake of the same index,

      critic:    E[softplus(-(D(real_i) - D(fake_i)))]
      generator: E[softplus(-(D(fake_i) - D(real_i)))]

  (official code: AlexiaJM/RelativisticGAN ``code/GAN_losses_iter.py``, ``loss_D == 5``:
  ``BCE_stable(y_pred - y_pred_fake, 1)`` and ``BCE_stable(y_pred_fake - y_pred, 1)``;
  brownvc/R3GAN ``R3GAN/Trainer.py``: ``softplus(-(RealLogits - FakeLogits))`` and
  ``softplus(-(FakeLogits - RealLogits))``);
* **relativistic average** (RaSGAN, the paper's "relativistic average GAN"): each sample is compared
  with the mean score of the other side, and both terms are in both players' losses,

      critic:    ( E[softplus(-(D(real) - mean D(fake)))] + E[softplus(D(fake) - mean D(real))] ) / 2
      generator: ( E[softplus(D(real) - mean D(fake))] + E[softplus(-(D(fake) - mean D(real)))] ) / 2

  (official code ``loss_D == 6``: ``(BCE_stable(y_pred - mean(y_pred_fake), 1) +
  BCE_stable(y_pred_fake - mean(y_pred), 0)) / 2`` and the labels swapped for G). The paper writes
  the sum of the two terms; ganlab follows the official code's average of the two: Adam does not
  see the factor 2, a penalty added to the critic's loss does (its weight counts twice as much
  against the averaged loss as against the sum).

One family with an ``average`` switch, not two loss YAMLs: the two forms share the pairing idea,
the interface (the generator needs D(real)) and the paper; the switch reads like the JS loss's
``saturating``. The presets ``rsgan`` and ``ragan`` set it.

In a distributed run the means are over the whole batch of every rank (:func:`ganlab.distributed.batch_mean`).

The generator's loss depends on G only through D(fake): D(real) is a constant for G's
parameters, so :class:`~ganlab.objectives.Objective` scores the real batch without a graph
(``needs_real``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ganlab.distributed import batch_mean
from ganlab.objectives.losses import Loss, LossConfig, Tensor


def _paired(real: Tensor, fake: Tensor) -> None:
    if real.shape != fake.shape:
        raise ValueError(f"the pairing loss pairs real and fake scores one to one: shapes {tuple(real.shape)} and {tuple(fake.shape)} differ")


def relativistic_critic(real: Tensor, fake: Tensor) -> Tensor:
    """E[softplus(-(D(real_i) - D(fake_i)))]: real_i should look more real than fake_i (RSGAN; RpGAN).

    Args: ``real``, ``fake``: critic scores of shape (n,), paired by index.
    Raises: ValueError: the shapes differ.
    """
    _paired(real, fake)
    return F.softplus(fake - real).mean()


def relativistic_generator(fake: Tensor, real: Tensor) -> Tensor:
    """E[softplus(-(D(fake_i) - D(real_i)))]: fake_i should look more real than real_i (RSGAN; RpGAN).

    Raises: ValueError: the shapes differ.
    """
    _paired(real, fake)
    return F.softplus(real - fake).mean()


def relativistic_average_critic(real: Tensor, fake: Tensor) -> Tensor:
    """The mean of E[softplus(-(D(real) - mean D(fake)))] and E[softplus(D(fake) - mean D(real))] (RaSGAN).

    ``real`` (n,) and ``fake`` (m,) need not pair: each side is compared with the other's mean.
    """
    return (F.softplus(batch_mean(fake) - real).mean() + F.softplus(fake - batch_mean(real)).mean()) / 2


def relativistic_average_generator(fake: Tensor, real: Tensor) -> Tensor:
    """The mean of E[softplus(D(real) - mean D(fake))] and E[softplus(-(D(fake) - mean D(real)))] (RaSGAN):
    the critic's targets swapped, so G also pushes the real samples' relative score down."""
    return (F.softplus(real - batch_mean(fake)).mean() + F.softplus(batch_mean(real) - fake).mean()) / 2


class Relativistic(Loss):
    """The relativistic pairing loss (RSGAN/RpGAN), or with ``average`` the relativistic average loss (RaSGAN).

    ``generator(fake, real)`` takes D(real) as well (``needs_real``).
    """

    needs_real = True

    def __init__(self, *, average: bool):
        self.average = average

    def critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return relativistic_average_critic(real, fake) if self.average else relativistic_critic(real, fake)

    def generator(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        if real is None:
            raise ValueError("the relativistic generator loss needs D(real): call it through Objective.generator_loss with the real batch")
        return relativistic_average_generator(fake, real) if self.average else relativistic_generator(fake, real)


@dataclass
class RelativisticConfig(LossConfig):
    _target_: str = "ganlab.objectives.losses.relativistic.Relativistic"
    average: bool = False  # false: the pairing loss (RSGAN, RpGAN); true: the relativistic average loss (RaSGAN)
