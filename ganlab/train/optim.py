"""Optimizers by config name, with the objective's learning rates and betas.

Each uses its fastest implementation: Adam the fused kernel (one launch for all parameters, CPU and
CUDA; with a GradScaler it also skips an overflowed step on the device, without a host sync),
RMSProp the multi-tensor ``foreach`` one (it has no fused kernel).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

Params = Iterable[torch.nn.Parameter]

# Config name -> factory(params, lr, betas, alpha).
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, lr, betas, alpha: torch.optim.Adam(params, lr=lr, betas=tuple(betas), fused=True),
    # WGAN (Arjovsky 2017) uses RMSProp because momentum made weight-clipped critics unstable.
    "rmsprop": lambda params, lr, betas, alpha: torch.optim.RMSprop(params, lr=lr, alpha=alpha, foreach=True),
}


def build_optimizers(G: torch.nn.Module, D: torch.nn.Module, name: str, lr_G: float, lr_D: float, betas: list[float], alpha: float) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """One optimizer for G and one for D; build D's after the objective has attached to D."""
    make = OPTIMIZERS[name]
    return make(G.parameters(), lr_G, betas, alpha), make(D.parameters(), lr_D, betas, alpha)
