"""The original GAN loss (Goodfellow et al. 2014): binary cross-entropy on the critic's logits,
with one-sided label smoothing as an option (Salimans et al. 2016, Sec. 3.4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ganlab.errors import require
from ganlab.objectives.losses import Loss, LossConfig, Tensor


def js_critic(real: Tensor, fake: Tensor, real_label: float = 1.0) -> Tensor:
    """-log sigmoid(D(real)) - log(1 - sigmoid(D(fake))), averaged: the discriminator's BCE (Goodfellow 2014, Eq. 1).

    With ``real_label`` t < 1 (one-sided label smoothing, Salimans et al. 2016, Sec. 3.4: t = 0.9),
    the real term is the BCE against the target t, -t log sigmoid(D(real)) - (1 - t) log(1 - sigmoid(D(real))),
    i.e. t softplus(-D(real)) + (1 - t) softplus(D(real)); the fakes keep the target 0. Scores: shape (n,).
    """
    if real_label == 1.0:
        real_term = F.softplus(-real)  # the unsmoothed loss, computed exactly as it always was
    else:
        real_term = real_label * F.softplus(-real) + (1 - real_label) * F.softplus(real)
    return real_term.mean() + F.softplus(fake).mean()


def js_generator(fake: Tensor) -> Tensor:
    """Non-saturating generator loss -log sigmoid(D(fake)) (Goodfellow 2014, Sec. 3)."""
    return F.softplus(-fake).mean()


def js_generator_saturating(fake: Tensor) -> Tensor:
    """The minimax generator loss log(1 - sigmoid(D(fake))): its gradient vanishes when D wins
    (Goodfellow 2014, Sec. 3; Arjovsky & Bottou 2017, Sec. 2.2)."""
    return -F.softplus(fake).mean()


class JS(Loss):
    """The JS GAN loss; ``saturating`` switches the generator to the minimax form; ``real_label`` < 1
    smooths the critic's real target (one-sided: the fakes' target stays 0, the generator's loss is unchanged).

    Raises:
        OptionError: ``real_label`` outside (0.5, 1].
    """

    def __init__(self, *, saturating: bool, real_label: float = 1.0):
        require(0.5 < real_label <= 1.0, "real_label", real_label, "must be in (0.5, 1]: 1.0 is no smoothing, Salimans et al. 2016 use 0.9")
        self.saturating = saturating
        self.real_label = real_label

    def critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return js_critic(real, fake, self.real_label)

    def generator(self, fake: Tensor) -> Tensor:
        return js_generator_saturating(fake) if self.saturating else js_generator(fake)


@dataclass
class JSConfig(LossConfig):
    _target_: str = "ganlab.objectives.losses.js.JS"
    saturating: bool = False  # true: the minimax log(1 - D(G(z))) generator loss, to watch its gradients vanish
    real_label: float = 1.0  # the critic's target for real samples: 1.0 no smoothing; 0.9 one-sided label smoothing (Salimans 2016, Sec. 3.4)
