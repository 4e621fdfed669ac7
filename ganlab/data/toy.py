"""The 2-D toy distributions of the WGAN-GP paper's ``gan_toy.py``, sampled on the training device.

Each dataset draws batches straight on the device with its own seeded ``torch.Generator``, so
sampling costs no host-device copies and does not disturb the global RNG that drives the noise
``z``. ``centers`` and ``std`` (after the final rescaling) describe the mixture's modes for the
mode-coverage metrics; they are ``None`` for the Swiss roll, which has no modes.
"""

from __future__ import annotations

import math

import torch


class ToyData:
    """A 2-D point distribution; ``sample(n)`` returns an (n, 2) float32 tensor on ``device``."""

    shape: tuple[int, ...] = (2,)
    centers: torch.Tensor | None = None
    std: float | None = None

    def __init__(self, device: torch.device | str = "cpu", seed: int = 0):
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` points with the dataset's own generator (or ``generator``, for held-out sets)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device})"


class _GaussianMixture(ToyData):
    """Equal-weight isotropic Gaussians at ``raw_centers`` with ``raw_std``, all divided by ``divisor``."""

    raw_centers: list[tuple[float, float]]
    raw_std: float
    divisor: float

    def __init__(self, device: torch.device | str = "cpu", seed: int = 0):
        super().__init__(device, seed)
        raw = torch.tensor(self.raw_centers, dtype=torch.float32, device=self.device)
        self._raw_centers = raw
        self.centers = raw / self.divisor
        self.std = self.raw_std / self.divisor

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        generator = generator or self.generator
        idx = torch.randint(len(self._raw_centers), (n,), device=self.device, generator=generator)
        noise = torch.randn(n, 2, device=self.device, generator=generator)
        return (self._raw_centers[idx] + self.raw_std * noise) / self.divisor


class Gaussians8(_GaussianMixture):
    """8 modes on a circle of radius 2 (the 4 axis points and 4 diagonals), std 0.02, scaled by 1/1.414."""

    _r = 1.0 / math.sqrt(2.0)
    raw_centers = [
        (2 * x, 2 * y)
        for x, y in [(1, 0), (-1, 0), (0, 1), (0, -1), (_r, _r), (_r, -_r), (-_r, _r), (-_r, -_r)]
    ]
    raw_std = 0.02  # gan_toy.py
    divisor = 1.414  # gan_toy.py


class Gaussians25(_GaussianMixture):
    """25 modes on the grid (2x, 2y), x, y in -2..2, std 0.05, scaled by 1/2.828."""

    raw_centers = [(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)]
    raw_std = 0.05  # gan_toy.py
    divisor = 2.828  # gan_toy.py


class SwissRoll(ToyData):
    """scikit-learn's ``make_swiss_roll(noise=0.25)``, columns (0, 2), scaled by 1/7.5."""

    noise = 0.25  # gan_toy.py
    divisor = 7.5  # gan_toy.py

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        generator = generator or self.generator
        u = torch.rand(n, device=self.device, generator=generator)
        t = 1.5 * math.pi * (1 + 2 * u)  # as in sklearn.datasets.make_swiss_roll
        roll = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
        noise = torch.randn(n, 2, device=self.device, generator=generator)
        return (roll + self.noise * noise) / self.divisor
