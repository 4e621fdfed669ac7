"""The hinge loss of SN-GAN (Miyato et al. 2018, Eq. 16-17; Lim & Ye 2017)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ganlab.objectives.losses import Loss, LossConfig, Tensor
from ganlab.objectives.losses.wasserstein import wasserstein_generator


def hinge_critic(real: Tensor, fake: Tensor) -> Tensor:
    """E[relu(1 - D(real))] + E[relu(1 + D(fake))]."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


class Hinge(Loss):
    """Hinge critic loss; the generator maximises D(fake), as in WGAN (SN-GAN, Eq. 17)."""

    critic = staticmethod(hinge_critic)
    generator = staticmethod(wasserstein_generator)


@dataclass
class HingeConfig(LossConfig):
    _target_: str = "ganlab.objectives.losses.hinge.Hinge"
