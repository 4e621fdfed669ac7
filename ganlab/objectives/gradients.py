"""The critic's gradient with respect to its input: what the gradient penalties act on and what
the diagnostics report.

Shared by the penalties (:mod:`ganlab.objectives.constraints`) and the per-interval diagnostics
(:mod:`ganlab.train.diagnostics`); neither imports the other. ``D`` is used only as a callable.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.precision import Precision

Tensor = torch.Tensor


def interpolates(real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """x_hat = eps * real + (1 - eps) * fake, one eps ~ U[0, 1] per sample (WGAN-GP, Alg. 1).

    ``real`` and ``fake`` have the same shape (n, ...); eps is drawn from ``generator``, or from the
    global RNG when None (the training step's penalty, whose draws are part of the trajectory).
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype, generator=generator)
    return eps * real + (1 - eps) * fake


def input_gradient_norm(D: nn.Module, x: Tensor, precision: Precision | None = None, create_graph: bool = False) -> Tensor:
    """Per-sample L2 norm of dD(x)/dx, in float32.

    With a GradScaler this follows PyTorch's AMP gradient-penalty recipe: differentiate the
    *scaled* output so that small float16 gradients do not flush to zero, then divide the
    gradient by the scale before taking its norm. A gradient that overflowed stays inf, so the
    step that uses it is skipped by the scaler rather than applied.
    """
    x = x.detach().requires_grad_(True)
    autocast = precision.autocast() if precision is not None else torch.autocast(x.device.type, enabled=False)
    with autocast:
        out = D(x)
    scale = precision.loss_scale() if precision is not None else None
    total = out.float().sum()
    if scale is not None:
        total = total * scale
    (grad,) = torch.autograd.grad(total, x, create_graph=create_graph)
    grad = grad.float()
    if scale is not None:
        grad = grad / scale
    return grad.flatten(1).norm(2, dim=1)


def uncompiled(D: nn.Module) -> nn.Module:
    """The eager module behind a ``torch.compile`` wrapper (``D`` itself if it is not one).

    AOTAutograd cannot differentiate a compiled graph twice ("torch.compile with aot_autograd does
    not currently support double backward", torch 2.14), so the penalty runs the eager critic.
    """
    return getattr(D, "_orig_mod", D)


def refuse_batch_norm(D: nn.Module, penalty: str) -> None:
    """Refuse a critic with batch norm for a penalty on per-sample input gradients (``penalty`` names it).

    The penalty is an expectation over samples of each sample's own input gradient; batch norm makes
    D(x_i) depend on the other samples, so that gradient is not the one penalised (WGAN-GP, Sec. 4).

    Raises:
        ConfigError: ``D`` has a batch norm layer.
    """
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules()):
        raise ConfigError(
            f"model.critic_norm=batch is not allowed with {penalty}: batch norm mixes the samples the penalty "
            "treats one by one; use model.critic_norm=layer, instance or none"
        )
