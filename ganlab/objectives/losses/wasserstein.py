"""The Wasserstein loss (Arjovsky et al. 2017): the critic estimates W1 by the Kantorovich-Rubinstein duality."""

from __future__ import annotations

from dataclasses import dataclass

from ganlab.objectives.losses import Loss, LossConfig, Tensor


def wasserstein_critic(real: Tensor, fake: Tensor) -> Tensor:
    """E[D(fake)] - E[D(real)]: minus the critic's estimate of the W1 distance (WGAN, Alg. 1)."""
    return fake.mean() - real.mean()


def wasserstein_generator(fake: Tensor) -> Tensor:
    """-E[D(fake)]: the generator raises the critic's score of its samples (WGAN, Alg. 1)."""
    return -fake.mean()


class Wasserstein(Loss):
    """The WGAN loss; it needs a Lipschitz constraint on the critic (clip, gp or sn) to mean W1."""

    critic = staticmethod(wasserstein_critic)
    generator = staticmethod(wasserstein_generator)


@dataclass
class WassersteinConfig(LossConfig):
    _target_: str = "ganlab.objectives.losses.wasserstein.Wasserstein"
