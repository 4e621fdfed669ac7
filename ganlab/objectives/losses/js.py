"""The original GAN loss (Goodfellow et al. 2014): binary cross-entropy on the critic's logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ganlab.objectives.losses import Loss, LossConfig, Tensor


def js_critic(real: Tensor, fake: Tensor) -> Tensor:
    """-log sigmoid(D(real)) - log(1 - sigmoid(D(fake))), averaged: the discriminator's BCE (Goodfellow 2014, Eq. 1)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def js_generator(fake: Tensor) -> Tensor:
    """Non-saturating generator loss -log sigmoid(D(fake)) (Goodfellow 2014, Sec. 3)."""
    return F.softplus(-fake).mean()


def js_generator_saturating(fake: Tensor) -> Tensor:
    """The minimax generator loss log(1 - sigmoid(D(fake))): its gradient vanishes when D wins
    (Goodfellow 2014, Sec. 3; Arjovsky & Bottou 2017, Sec. 2.2)."""
    return -F.softplus(fake).mean()


class JS(Loss):
    """The JS GAN loss; ``saturating`` switches the generator to the minimax form."""

    def __init__(self, *, saturating: bool):
        self.saturating = saturating

    def critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return js_critic(real, fake)

    def generator(self, fake: Tensor) -> Tensor:
        return js_generator_saturating(fake) if self.saturating else js_generator(fake)


@dataclass
class JSConfig(LossConfig):
    _target_: str = "ganlab.objectives.losses.js.JS"
    saturating: bool = False  # true: the minimax log(1 - D(G(z))) generator loss, to watch its gradients vanish
