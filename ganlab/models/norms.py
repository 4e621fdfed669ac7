"""Normalisation layers for critics, shared by every architecture (``model.critic_norm``).

``critic_norm(kind, channels, spatial)`` returns the layer that goes between a critic's linear or
convolutional layer and its nonlinearity:

==========  ===============================================  ===========  ========================
kind        conv feature maps (``spatial=(H, W)``)           vectors      statistics over
==========  ===============================================  ===========  ========================
none        ``nn.Identity``                                  same         nothing
layer       ``nn.GroupNorm(1, C)``                           LayerNorm    one sample (C, H, W)
instance    ``nn.InstanceNorm2d(C, affine=True)``            refused      one sample, one channel
batch       ``nn.BatchNorm2d(C)``                            BatchNorm1d  the whole batch
==========  ===============================================  ===========  ========================

Why batch norm and the gradient penalty do not mix (Gulrajani 2017, Sec. 4, "No critic batch
normalization"): the penalty constrains ``||grad_x D(x)[i]||`` for each sample ``i`` on its own,
which assumes the critic is a function of one input. Batch norm makes ``D(x)[i]`` depend on every
sample of the batch through the batch mean and variance, so the critic is a function of the whole
batch and the per-sample gradient norm is not the quantity the penalty is meant to bound. Layer
and instance norm compute their statistics inside one sample and keep the critic per sample; the
objective refuses ``critic_norm=batch`` together with ``constraint=gp`` for that reason. Batch norm
is still the DCGAN paper's choice for the JS objective, where no per-sample constraint exists.

Every normalisation here carries its own affine parameters (scale and shift per channel); they are
not linear or conv weights, so spectral norm leaves them alone, as SN-GAN does.
"""

from __future__ import annotations

from typing import Any

from torch import nn

CRITIC_NORMS = ("none", "layer", "instance", "batch")


def option(value: Any) -> Any:
    """A config choice as its plain name: Hydra's ``instantiate`` passes schema enums as members."""
    return getattr(value, "value", value)


def critic_norm(kind: str, channels: int, spatial: tuple[int, int] | None) -> nn.Module:
    """The normalisation ``kind`` for ``channels`` features of size ``spatial`` (None: vectors)."""
    kind = option(kind)
    if kind not in CRITIC_NORMS:
        raise ValueError(f"critic_norm must be one of {', '.join(CRITIC_NORMS)}, got {kind!r}")
    if kind == "none":
        return nn.Identity()
    if spatial is None:  # (n, channels) vectors
        if kind == "layer":
            return nn.LayerNorm(channels)
        if kind == "batch":
            return nn.BatchNorm1d(channels)
        # InstanceNorm1d on (n, C) would read it as one unbatched (C, L) sample and mix the batch.
        raise ValueError("critic_norm 'instance' normalises each channel over its H x W positions; "
                         "a critic on vectors has none: use critic_norm=layer (per sample) instead")
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # LayerNorm over (C, H, W), with a per-channel affine
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)  # no running stats: train and eval agree
    return nn.BatchNorm2d(channels)
