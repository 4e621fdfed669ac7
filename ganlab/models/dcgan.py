"""DCGAN generator and critic (Radford, Metz & Chintala 2016), for square images of 8 px and more (28, 32, 64, ...).

The paper's architecture guidelines (Sec. 3), which this module follows:

* G: z is projected to a 4 x 4 map (here a 4 x 4 transposed convolution of z seen as a 1 x 1
  map, the same as a linear layer), then stride-2 ``ConvTranspose2d(4, 2, 1)`` blocks with
  BatchNorm and ReLU double the resolution while the channels halve; the last transposed
  convolution gives the image channels, without BatchNorm, through Tanh (the data's range,
  :mod:`ganlab.models.output`). At 64 px the channels are 8w, 4w, 2w, w (the paper's LSUN
  generator with w = 128; the PyTorch example uses 64).
* D: the mirror image: stride-2 ``Conv2d(4, 2, 1)`` blocks with LeakyReLU(0.2), channels
  doubling from w, no normalisation on the first block, then a 4 x 4 convolution to one score.
  The paper puts BatchNorm in the other blocks; ``critic_norm`` chooses (see
  :mod:`ganlab.models.norms`: a WGAN-GP critic must not use batch norm).
* No pooling, no fully connected hidden layers; weights from N(0, 0.02).

Depth follows from the resolution: one up/down-sampling stage per doubling from the first map.
That map is 4 x 4 for the paper's sizes (16, 32, 64 px); a side that halves down to 5, 6 or 7 px
instead starts there (28 px, MNIST's own size: 7 -> 14 -> 28, as in the common MNIST DCGANs),
with a 7 x 7 kernel in G's first and D's last layer. A convolution directly followed by a
normalisation has no bias (the norm's shift replaces it). The networks hold no loss and no
constraint; D returns unbounded scores (logits for the JS loss). The options have no defaults
here: the schema (``ganlab.config.DCGANConfig``) holds them, with their sources.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.models.activations import LeakyReLU
from ganlab.models.norms import critic_norm, option
from ganlab.models.output import output_layer

BASE_SIDES = range(4, 8)  # side of G's first map: 4 (the paper) up to 7 (MNIST's 28 = 7 x 2 x 2)
SIZES = sorted(base << stages for base in BASE_SIDES for stages in range(1, 6))  # 8, 10, ..., 224 (and on, x2)
INITS = ("dcgan", "default")
NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)


def layout(data_shape: tuple[int, ...]) -> tuple[int, int]:
    """(base, stages) for images of ``data_shape`` = (C, H, W): G's first map is base x base
    (4..7 px) and ``stages`` stride-2 layers double it to H = base * 2**stages, stages >= 1.

    Raises ValueError, naming the sizes the model takes, for vectors, non-square images and
    sides that do not halve down to 4..7 px (e.g. 18 or 30).
    """
    if len(data_shape) != 3:
        raise ValueError(f"model dcgan needs images of shape (C, H, W), got data of shape {tuple(data_shape)}; "
                         "use model=mlp for vector data")
    _, height, width = data_shape
    base, stages = height, 0
    while base % 2 == 0 and base // 2 >= BASE_SIDES.start:
        base //= 2
        stages += 1
    if height != width or stages == 0 or base not in BASE_SIDES:
        shown = ", ".join(str(size) for size in SIZES if size <= 128)
        raise ValueError(f"model dcgan takes square images of {shown}, ... px (4 to 7 px doubled at least once), "
                         f"got {height}x{width}; set dataset.resolution to one of them, or use model=mlp (any size)")
    return base, stages


class DCGANGenerator(nn.Module):
    """z of size ``z_dim`` -> base x base map -> stride-2 transposed convolutions -> image bounded to ``value_range``."""

    def __init__(self, z_dim: int, out_shape: tuple[int, int, int], value_range: tuple[float, float] | None, width: int):
        super().__init__()
        self.z_dim = z_dim
        self.out_shape = tuple(out_shape)
        base, stages = layout(self.out_shape)
        channels = width * 2 ** (stages - 1)  # 8w at 64 px, 4w at 32 px, 2w at 16 and 28 px
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, channels, base, 1, 0, bias=False),  # 1 x 1 -> base x base
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
        layers.append(nn.ConvTranspose2d(channels, self.out_shape[0], 4, 2, 1))  # no BN on the output
        bound = output_layer(value_range)
        if bound is not None:
            layers.append(bound)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))


class DCGANCritic(nn.Module):
    """Image -> stride-2 convolutions with LeakyReLU(0.2) down to base x base -> a base x base convolution -> one score."""

    def __init__(self, in_shape: tuple[int, int, int], width: int, norm: str):
        super().__init__()
        base, stages = layout(in_shape)
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
        layers.append(nn.Conv2d(channels, 1, base, 1, 0))  # base x base -> 1 x 1: the score
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
    value_range: tuple[float, float] | None,
    *,
    z_dim: int,
    width: int,
    critic_norm: str,
    init: str,
) -> tuple[DCGANGenerator, DCGANCritic]:
    """Build the generator ``G`` and critic ``D`` for images of ``data_shape`` = (C, H, W) with values in ``value_range``.

    ``width``: channels of D's first block and G's last. Raises ValueError for a size the
    architecture cannot take (see :func:`layout`) or an unknown option.
    """
    init = option(init)
    if init not in INITS:
        raise ValueError(f"model dcgan init must be one of {', '.join(INITS)}, got {init!r}")
    G = DCGANGenerator(z_dim, tuple(data_shape), value_range, width)
    D = DCGANCritic(tuple(data_shape), width, critic_norm)
    _initialise(G, init)
    _initialise(D, init)
    return G, D
