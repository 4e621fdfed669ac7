"""What makes a training step fast on its device, in one place: backend flags, memory format, compile.

``ganlab train`` calls :func:`configure` and :func:`prepare_networks` once before training; the
loop wraps ``G`` and ``D`` with :func:`compiled` when ``compile=true``. The optimizers' fused
kernels are chosen in :mod:`ganlab.train.optim`; mixed precision lives in :mod:`ganlab.precision`.
"""

from __future__ import annotations

import torch
from torch import nn


def configure(device: torch.device) -> None:
    """Backend flags for ``device``: cuDNN autotuning on CUDA (the shapes of a GAN step never change).

    TF32 matmuls stay off, so precision=fp32 means float32 arithmetic; bf16 is the fast path.
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def has_convolutions(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def prepare_networks(G: nn.Module, D: nn.Module, device: torch.device) -> None:
    """Convolutional nets go channels_last (NHWC): the layout tensor cores and oneDNN want.

    cuDNN and oneDNN pick NHWC kernels when the weights are channels_last, so the inputs need no
    conversion. On this project's 2-core CPU, a DCGAN-32 training step ran 1.07x faster (WGAN-GP,
    fp32 and bf16) and 1.17x (JS, bf16), measured in one process against the default layout.
    """
    for net in (G, D):
        if has_convolutions(net):
            net.to(memory_format=torch.channels_last)


def compiled(module: nn.Module) -> nn.Module:
    """``module`` through ``torch.compile``: a view that shares its parameters and buffers.

    Shapes are static in a GAN step (batch, 2 x batch for the critic's real+fake pass), so
    ``dynamic=False`` keeps one specialised graph per shape. AOTAutograd cannot differentiate a
    compiled graph twice, so the gradient penalty's double backward runs the eager module
    (:func:`ganlab.objectives.gradients.uncompiled`).
    """
    return torch.compile(module, dynamic=False)
