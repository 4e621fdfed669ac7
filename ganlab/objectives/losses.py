"""Loss families: one pure function per (family, player), on the critic's raw outputs.

``real`` and ``fake`` are the critic's scores D(x), one per sample, unbounded (logits for the
JS loss). Every critic loss is minimised by the critic, every generator loss by the generator.
A family is a pair of such functions; :data:`LOSSES` names them for the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def js_critic(real: Tensor, fake: Tensor) -> Tensor:
    """Binary cross-entropy with logits: -log sigmoid(D(real)) - log(1 - sigmoid(D(fake)))."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def js_generator(fake: Tensor) -> Tensor:
    """Non-saturating generator loss -log sigmoid(D(fake)) (Goodfellow 2014, section 3)."""
    return F.softplus(-fake).mean()


def js_generator_saturating(fake: Tensor) -> Tensor:
    """The minimax generator loss log(1 - sigmoid(D(fake))): its gradient vanishes when D wins."""
    return -F.softplus(fake).mean()


def wasserstein_critic(real: Tensor, fake: Tensor) -> Tensor:
    """E[D(fake)] - E[D(real)]: minus the critic's estimate of the W1 distance."""
    return fake.mean() - real.mean()


def wasserstein_generator(fake: Tensor) -> Tensor:
    return -fake.mean()


def hinge_critic(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def least_squares_critic(real: Tensor, fake: Tensor) -> Tensor:
    """LSGAN with targets real = 1, fake = 0."""
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def least_squares_generator(fake: Tensor) -> Tensor:
    return 0.5 * ((fake - 1) ** 2).mean()


@dataclass(frozen=True)
class LossFamily:
    critic: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]


LOSSES: dict[str, LossFamily] = {
    "js": LossFamily(js_critic, js_generator),
    "js_saturating": LossFamily(js_critic, js_generator_saturating),
    "wasserstein": LossFamily(wasserstein_critic, wasserstein_generator),
    "hinge": LossFamily(hinge_critic, wasserstein_generator),  # SN-GAN: G maximises D(fake)
    "least_squares": LossFamily(least_squares_critic, least_squares_generator),
}
