"""DCGAN generator and critic (Radford, Metz & Chintala 2016), for 16, 32 and 64 px images.

The paper's architecture guidelines (Sec. 3), which this module follows:

* G: z is projected to a 4 x 4 map (here a 4 x 4 transposed convolution of z seen as a 1 x 1
  map, the same as a linear layer), then stride-2 ``ConvTranspose2d(4, 2, 1)`` blocks with
  BatchNorm and ReLU double the resolution while the channels halve; the last transposed
  convolution gives the image channels, without BatchNorm, through Tanh. At 64 px the channels
  are 8w, 4w, 2w, w (the paper's LSUN generator with w = 128; the PyTorch example uses 64).
* D: the mirror image: stride-2 ``Conv2d(4, 2, 1)`` blocks with LeakyReLU(0.2), channels
  doubling from w, no normalisation on the first block, then a 4 x 4 convolution to one score.
  The paper puts BatchNorm in the other blocks; ``critic_norm`` chooses (see
  :mod:`ganlab.models.norms`: a WGAN-GP critic must not use batch norm).
* No pooling, no fully connected hidden layers; weights from N(0, 0.02).

Depth follows from the resolution: one up/down-sampling stage per doubling from 4 px. A
convolution directly followed by a normalisation has no bias (the norm's shift replaces it).
The networks hold no loss and no constraint; D returns unbounded scores (logits for the JS loss).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganlab.models.activations import LeakyReLU
from ganlab.models.norms import critic_norm, option

RESOLUTIONS = (16, 32, 64)  # 32: CIFAR-10 / MNIST padded; 64: the paper's LSUN / faces; 16: CPU demos
INITS = ("dcgan", "default")
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)


def _stages(data_shape: tuple[int, ...]) -> int:
    """Number of stride-2 stages between 4 px and the image size; refuses other shapes."""
    if len(data_shape) != 3:
        raise ValueError(f"model dcgan needs images of shape (C, H, W), got data of shape {tuple(data_shape)}; "
                         "use model=mlp for vector data")
    _, height, width = data_shape
    if height != width or height not in RESOLUTIONS:
        raise ValueError(f"model dcgan supports 16, 32 or 64 px images, got {height}x{width}; "
                         "set dataset.resolution to 16, 32 or 64")
    return int(math.log2(height // 4))


class DCGANGenerator(nn.Module):
    """z of size ``z_dim`` -> 4 x 4 map -> stride-2 transposed convolutions -> Tanh image."""

    def __init__(self, z_dim: int, out_shape: tuple[int, int, int], width: int):
        super().__init__()
        self.z_dim = z_dim
        self.out_shape = tuple(out_shape)
        stages = _stages(self.out_shape)
        channels = width * 2 ** (stages - 1)  # 8w at 64 px, 4w at 32 px, 2w at 16 px
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, channels, 4, 1, 0, bias=False),  # 1 x 1 -> 4 x 4
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, self.out_shape[0], 4, 2, 1), nn.Tanh()]  # no BN on the output
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class DCGANCritic(nn.Module):
    """Image -> stride-2 convolutions with LeakyReLU(0.2) -> 4 x 4 convolution -> one score."""

    def __init__(self, in_shape: tuple[int, int, int], width: int, norm: str):
        super().__init__()
        stages = _stages(in_shape)
        size = in_shape[1] // 2
        layers: list[nn.Module] = [nn.Conv2d(in_shape[0], width, 4, 2, 1), LeakyReLU(0.2)]  # no norm on the input block
        channels = width
        for _ in range(stages - 1):
            size //= 2
            layers += [
                nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=option(norm) == "none"),
                critic_norm(norm, channels * 2, (size, size)),
                LeakyReLU(0.2),
            ]
            channels *= 2
        layers.append(nn.Conv2d(channels, 1, 4, 1, 0))  # 4 x 4 -> 1 x 1: the score
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def _initialise(net: nn.Module, init: str) -> None:
    if init == "default":
        return
    for layer in net.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)  # DCGAN paper, Sec. 4
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, NORM_LAYERS) and layer.weight is not None:
            nn.init.normal_(layer.weight, 1.0, 0.02)  # the PyTorch DCGAN example's BatchNorm init
            nn.init.zeros_(layer.bias)


def build_dcgan(
    data_shape: tuple[int, ...],
    z_dim: int = 100,  # DCGAN paper, Fig. 1 (uniform there; ganlab draws z ~ N(0, I))
    width: int = 64,  # channels of D's first block / G's last block: the PyTorch DCGAN example (the paper: 128)
    critic_norm: str = "batch",  # the paper's discriminator; use none or layer with the gradient penalty
    init: str = "dcgan",  # N(0, 0.02) weights, BatchNorm scales N(1, 0.02), zero biases; "default": PyTorch's
) -> tuple[DCGANGenerator, DCGANCritic]:
    """Build the generator ``G`` and critic ``D`` for images of ``data_shape`` = (C, H, W)."""
    init = option(init)
    if init not in INITS:
        raise ValueError(f"model dcgan init must be one of {', '.join(INITS)}, got {init!r}")
    G = DCGANGenerator(z_dim, tuple(data_shape), width)
    D = DCGANCritic(tuple(data_shape), width, critic_norm)
    _initialise(G, init)
    _initialise(D, init)
    return G, D
