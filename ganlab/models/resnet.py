"""The CIFAR-10 ResNet generator and critic of WGAN-GP and SN-GAN, for 32 x 32 images.

These are the standard benchmark networks of Gulrajani et al. 2017 (appendix; the
``gan_cifar_resnet.py`` script) and Miyato et al. 2018 (Table 4, the "standard" SN-GAN CIFAR-10
ResNet), with one ``width`` for every block (WGAN-GP: 128 in both; SN-GAN: 256 in G, 128 in D):

* G: Linear(z -> 4 x 4 x w), three up-sampling residual blocks (BN, ReLU, nearest up-sample x2,
  conv3x3, BN, ReLU, conv3x3; shortcut: up-sample, conv1x1) to 32 x 32, then BN, ReLU, conv3x3 to
  the image channels and Tanh (the data's range, :mod:`ganlab.models.output`).
* D: an "optimised" first block (conv3x3, ReLU, conv3x3, average-pool; shortcut: average-pool,
  conv1x1), one down-sampling block (to 8 x 8), two blocks at 8 x 8 with identity shortcuts, then
  ReLU, a sum over the positions (SN-GAN; WGAN-GP's script takes the mean, the same up to a
  factor 64 absorbed by the last layer) and Linear -> 1. ``critic_norm`` (none in both papers;
  WGAN-GP's script offers layer norm) goes before each ReLU of the residual branches of the
  blocks after the first, as in that script; see :mod:`ganlab.models.norms`.

Initialisation "sngan" follows the SN-GAN code: Glorot-uniform weights with gain sqrt(2) in the
residual branches and gain 1 on the shortcuts, the first and the last layers; zero biases. The
networks hold no loss and no constraint; D returns unbounded scores. The options have no defaults
here: the schema (``ganlab.config.ResNetConfig``) holds them, with their sources.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganlab.models.activations import ReLU, relu
from ganlab.models.norms import critic_norm, option
from ganlab.models.output import output_layer

RESOLUTION = 32  # the CIFAR-10 networks: three 2x stages between 4 x 4 and 32 x 32
INITS = ("sngan", "default")


def _check_shape(data_shape: tuple[int, ...]) -> None:
    if len(data_shape) != 3:
        raise ValueError(f"model resnet needs images of shape (C, H, W), got data of shape {tuple(data_shape)}; "
                         "use model=mlp for vector data")
    _, height, width = data_shape
    if (height, width) != (RESOLUTION, RESOLUTION):
        raise ValueError(f"model resnet takes 32 x 32 px images only, got {height}x{width}; "
                         "set dataset.resolution=32, or use model=dcgan (e.g. 16, 28 or 64 px) or model=mlp (any size)")


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, 1, 1)


class UpBlock(nn.Module):
    """Generator block: BN, ReLU, up-sample, conv3x3, BN, ReLU, conv3x3; shortcut up-sample, conv1x1."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            _conv3x3(in_channels, out_channels),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            _conv3x3(out_channels, out_channels),
        )
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class FirstDownBlock(nn.Module):
    """The critic's "optimised" first block: conv3x3, ReLU, conv3x3, pool; shortcut pool, conv1x1.

    It has no ReLU (and no normalisation) on its input, which is the image itself.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.residual = nn.Sequential(
            _conv3x3(in_channels, out_channels),
            ReLU(),
            _conv3x3(out_channels, out_channels),
            nn.AvgPool2d(2),
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class DownBlock(nn.Module):
    """Critic block: norm, ReLU, conv3x3, norm, ReLU, conv3x3 [, pool]; shortcut conv1x1 [, pool] or identity."""

    def __init__(self, in_channels: int, out_channels: int, size: int, downsample: bool, norm: str):
        super().__init__()
        layers: list[nn.Module] = [
            critic_norm(norm, in_channels, (size, size)),
            ReLU(),  # not in place: the shortcut still reads the block's input
            _conv3x3(in_channels, out_channels),
            critic_norm(norm, out_channels, (size, size)),
            ReLU(),
            _conv3x3(out_channels, out_channels),
        ]
        shortcut: list[nn.Module] = []
        if downsample or in_channels != out_channels:
            shortcut.append(nn.Conv2d(in_channels, out_channels, 1))
        if downsample:
            layers.append(nn.AvgPool2d(2))
            shortcut.append(nn.AvgPool2d(2))
        self.residual = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(*shortcut)  # empty: identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class ResNetGenerator(nn.Module):
    """z of size ``z_dim`` -> 4 x 4 x ``width`` -> three up-sampling blocks -> image bounded to ``value_range``."""

    def __init__(self, z_dim: int, out_shape: tuple[int, int, int], value_range: tuple[float, float] | None, width: int):
        super().__init__()
        _check_shape(out_shape)
        self.z_dim = z_dim
        self.out_shape = tuple(out_shape)
        self.width = width
        self.linear = nn.Linear(z_dim, 4 * 4 * width)
        self.blocks = nn.Sequential(UpBlock(width, width), UpBlock(width, width), UpBlock(width, width))
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), _conv3x3(width, out_shape[0]))
        bound = output_layer(value_range)
        if bound is not None:
            self.out.append(bound)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.linear(z).view(z.shape[0], self.width, 4, 4)
        return self.out(self.blocks(x))


class ResNetCritic(nn.Module):
    """Image -> first block (16 x 16) -> down block (8 x 8) -> two blocks -> ReLU, sum -> Linear."""

    def __init__(self, in_shape: tuple[int, int, int], width: int, norm: str):
        super().__init__()
        _check_shape(in_shape)
        self.blocks = nn.Sequential(
            FirstDownBlock(in_shape[0], width),
            DownBlock(width, width, size=16, downsample=True, norm=norm),
            DownBlock(width, width, size=8, downsample=False, norm=norm),
            DownBlock(width, width, size=8, downsample=False, norm=norm),
        )
        self.linear = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling (SN-GAN)
        return self.linear(h).squeeze(1)


def _initialise(net: nn.Module, init: str) -> None:
    if init == "default":
        return
    for layer in net.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight, gain=1.0)  # shortcuts, first and last layers
            nn.init.zeros_(layer.bias)
    for block in net.modules():
        if isinstance(block, (UpBlock, FirstDownBlock, DownBlock)):
            for layer in block.residual.modules():
                if isinstance(layer, nn.Conv2d):
                    nn.init.xavier_uniform_(layer.weight, gain=math.sqrt(2))  # ReLU branches


def build_resnet(
    data_shape: tuple[int, ...],
    value_range: tuple[float, float] | None,
    *,
    z_dim: int,
    width: int,
    critic_norm: str,
    init: str,
) -> tuple[ResNetGenerator, ResNetCritic]:
    """Build the generator ``G`` and critic ``D`` for 32 x 32 images of ``data_shape`` = (C, 32, 32) with values in ``value_range``.

    ``width``: channels of every residual block. Raises ValueError for another image size, vector
    data or an unknown option.
    """
    init = option(init)
    if init not in INITS:
        raise ValueError(f"model resnet init must be one of {', '.join(INITS)}, got {init!r}")
    G = ResNetGenerator(z_dim, tuple(data_shape), value_range, width)
    D = ResNetCritic(tuple(data_shape), width, critic_norm)
    _initialise(G, init)
    _initialise(D, init)
    return G, D
