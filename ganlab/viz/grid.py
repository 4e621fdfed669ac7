"""Sample grids: generated images in [-1, 1] laid out as one uint8 RGB picture."""

from __future__ import annotations

import math

import torch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to uint8 0..255 (values outside are clamped)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> torch.Tensor:
    """(N, C, H, W) images in [-1, 1] -> a uint8 (3, H', W') grid; grayscale becomes RGB."""
    # Imported here, not at the top: importing torchvision pulls in torch._dynamo, which adds
    # about 1.5 s to the start of every ganlab command, also those that stop at a bad option.
    from torchvision.utils import make_grid

    images = images.detach().float().cpu()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    nrow = nrow or max(1, math.isqrt(images.shape[0] - 1) + 1)  # as square as possible
    grid = make_grid(images, nrow=nrow, padding=padding, value_range=(-1, 1), normalize=True, pad_value=1.0)
    return (grid * 255).round().to(torch.uint8)
