"""Packing (PacGAN, Lin, Khetan, Fanti & Oh 2018): the critic judges m samples at once.

A packed critic sees m samples of one kind (all real or all generated) concatenated into one
input and returns one score for the pack; seeing m samples together lets it notice a generator
that repeats itself, which is how PacGAN cures mode collapse (Sec. 3). Concatenation as in the
official code (github.com/fjxmlzn/PacGAN):

* 2-D points and any vector data: coordinates side by side, (n, d) -> (n/m, m*d)
  (``synthetic_data_experiments/PacGAN/pacgan/bricks.py``: ``tensor.concatenate(x_tildes, axis=1)``);
* images: along the channels, (n, C, H, W) -> (n/m, m*C, H, W)
  (``stacked_MNIST_experiments/VEEGAN_experiment/model.py``: ``tf.concat(self.G_sep, 3)``, NHWC).

Member j of pack g is sample g*m + j: consecutive samples of a batch form a pack.

:class:`Packed` wraps a critic built for packed inputs (:func:`packed_shape`) so that it takes
per-sample batches, as every objective, loss and penalty hands them, and returns one score per
pack: ``D(x)`` of an (n, ...) batch is (n/m,). Nothing else changes:

* the losses average over packs instead of samples;
* a penalty differentiates D with respect to its per-sample inputs: the gradient penalty draws one
  eps per sample and takes each sample's own gradient norm ||d D(pack)/d x_i||, so it pushes every
  member's gradient norm to 1 (a packed critic with that constraint is 1-Lipschitz in the sum of the
  members' distances, so ``Wasserstein/estimate`` estimates m * W1 at best). CTGAN (sdv-dev/CTGAN,
  ``Discriminator.calc_gradient_penalty``) instead draws one eps per pack and takes the norm over the
  whole pack (1-Lipschitz on the concatenation);
* weight clipping and spectral normalisation find the critic's parameters and layers through
  ``Packed.critic`` (``D.parameters()``, ``D.modules()``);
* the checkpoint's ``D`` keys start with ``critic.`` for a packed run; an unpacked run (m = 1) has no
  wrapper, so its keys and its trajectory are those of a run without this option.
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor


def packed_shape(data_shape: tuple[int, ...], pack: int) -> tuple[int, ...]:
    """The shape of one pack of ``pack`` samples of ``data_shape``: (d,) -> (pack*d,), (C, H, W) -> (pack*C, H, W)."""
    return (pack * data_shape[0], *data_shape[1:])


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """(n, d0, ...) -> (n/pack, pack*d0, ...): each run of ``pack`` consecutive samples concatenated along dim 1.

    Raises:
        ValueError: n is not a multiple of ``pack``.
    """
    n = x.shape[0]
    if n % pack:
        raise ValueError(f"a packed critic takes batches of a multiple of {pack} samples, got {n}")
    return x.reshape(n // pack, pack * x.shape[1], *x.shape[2:])


class Packed(nn.Module):
    """A critic that scores packs of ``pack`` samples, called on per-sample batches.

    ``critic`` takes inputs of :func:`packed_shape`; ``Packed(critic, m)(x)`` of an (n, ...) batch
    is ``critic(pack_samples(x, m))``, of shape (n/m,). Raises ValueError when n is not a multiple
    of m.
    """

    def __init__(self, critic: nn.Module, pack: int):
        super().__init__()
        if pack < 1:
            raise ValueError(f"pack must be >= 1, got {pack}")
        self.critic = critic
        self.pack = pack

    def forward(self, x: Tensor) -> Tensor:
        return self.critic(pack_samples(x, self.pack))

    def extra_repr(self) -> str:
        return f"pack={self.pack}"


def on_copies(D: nn.Module, x: Tensor) -> Tensor:
    """D's score of each sample of ``x`` (n, ...) as a pack of m copies of itself: (n,).

    For an unpacked critic (no ``pack`` attribute, or pack 1) this is ``D(x)``. What the critic
    picture of a packed critic shows: the value of a pack whose m members all sit at x.
    """
    pack = getattr(D, "pack", 1)
    return D(x.repeat_interleave(pack, dim=0) if pack > 1 else x)
