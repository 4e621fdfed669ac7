"""The least-squares loss of LSGAN (Mao et al. 2017, Eq. 9, with a = 0, b = c = 1)."""

from __future__ import annotations

from dataclasses import dataclass

from ganlab.objectives.losses import Loss, LossConfig, Tensor


def least_squares_critic(real: Tensor, fake: Tensor) -> Tensor:
    """0.5 E[(D(real) - 1)^2] + 0.5 E[D(fake)^2]: targets real = 1, fake = 0."""
    return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()


def least_squares_generator(fake: Tensor) -> Tensor:
    """0.5 E[(D(fake) - 1)^2]: the generator aims its samples at the real target."""
    return 0.5 * ((fake - 1) ** 2).mean()


class LeastSquares(Loss):
    """LSGAN: least squares to the targets real = 1, fake = 0 for the critic, fake = 1 for the generator."""

    critic = staticmethod(least_squares_critic)
    generator = staticmethod(least_squares_generator)


@dataclass
class LeastSquaresConfig(LossConfig):
    _target_: str = "ganlab.objectives.losses.least_squares.LeastSquares"
