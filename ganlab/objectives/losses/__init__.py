"""Loss families: one module each, holding its pure loss functions, its class and its config schema.

A loss family says what the critic and the generator minimise, given the critic's raw scores
D(x) (one per sample, unbounded: logits for the JS loss). Each module in this package defines

* pure functions ``<family>_critic(real, fake)`` and ``<family>_generator(fake)`` (easy to test
  against hand-computed values; ``<family>_generator(fake, real)`` for a family with ``needs_real``);
* a :class:`Loss` subclass whose ``critic`` and ``generator`` are those functions
  (``critic = staticmethod(hinge_critic)``) or methods that choose between them;
* a :class:`LossConfig` dataclass: the family's typed schema, holding only its own keys, with
  ``_target_`` naming the class. :mod:`ganlab.objectives.components` registers it in Hydra's
  ConfigStore, and ``conf/objective/loss/<name>.yaml`` selects it (``objective/loss=<name>``).

Adding a family is one module here plus one YAML there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor


class Loss:
    """A loss family: ``critic(real, fake)`` and ``generator(fake)`` on critic scores of shape (n,).

    Both return a scalar that its player minimises (float32: the scores are cast before). A family
    whose generator loss also needs the real samples' scores (the relativistic losses) sets
    ``needs_real = True``; it is then called as ``generator(fake, real)``, else as ``generator(fake)``.
    """

    needs_real: bool = False  # True: generator(fake, real) needs D(real) too (an extra critic forward pass in the G step)

    def critic(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def generator(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        raise NotImplementedError


@dataclass
class LossConfig:
    """The base of every loss family's schema: a family has only its own keys besides ``_target_``."""

    _target_: str = "???"
