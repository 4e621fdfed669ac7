"""Lipschitz constraints on the critic, each acting on it from outside the network.

A constraint has four hooks, all optional:

* ``attach(D)`` changes the critic once, before its optimizer is built (spectral norm);
* ``penalty(D, real, fake, precision, critic_step)`` returns a regulariser added to the critic loss
  (gradient penalty), or None on the critic steps it skips;
* ``after_critic_step(D)`` runs after each critic optimizer step (weight clipping);
* ``diagnostics(D)`` returns device tensors to log, called once per log interval.

:data:`CONSTRAINTS` maps the config names to factories.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ganlab.errors import ConfigError
from ganlab.objectives.gradients import input_gradient_norm, interpolates, uncompiled
from ganlab.precision import Precision

Tensor = torch.Tensor


class Constraint:
    """No constraint: the base class whose hooks do nothing."""

    def attach(self, D: nn.Module) -> None:
        pass

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision, critic_step: int = 0) -> Tensor | None:
        return None

    def after_critic_step(self, D: nn.Module) -> None:
        pass

    def diagnostics(self, D: nn.Module) -> dict[str, Tensor]:
        return {}


class WeightClip(Constraint):
    """WGAN (Arjovsky 2017, Alg. 1): clamp every critic parameter to [-c, c] after each step."""

    def __init__(self, clip_value: float):
        self.clip_value = clip_value

    @torch.no_grad()
    def after_critic_step(self, D: nn.Module) -> None:
        # Under mixed precision the parameters stay fp32 (autocast casts copies), so this clips
        # the master weights, never a half-precision copy.
        for p in D.parameters():
            p.clamp_(-self.clip_value, self.clip_value)

    @torch.no_grad()
    def diagnostics(self, D: nn.Module) -> dict[str, Tensor]:
        params = [p.flatten() for p in D.parameters()]
        flat = torch.cat(params)
        at_bound = (flat.abs() >= self.clip_value * (1 - 1e-6)).float().mean()
        return {"Clip/fraction_at_bound": at_bound}


class GradientPenalty(Constraint):
    """WGAN-GP (Gulrajani 2017): weight * E[(||grad D(x_hat)||_2 - 1)^2] on real-fake interpolates.

    With ``every`` = k > 1 the penalty is lazy (StyleGAN2, Karras 2020, Sec. 3.1): it is computed on
    one critic step in k, with its weight multiplied by k, so its average pull is unchanged while
    k - 1 of k critic steps skip the double backward.
    """

    def __init__(self, weight: float, every: int = 1):
        if every < 1:
            raise ValueError(f"gp_every must be at least 1, got {every}")
        self.weight = weight
        self.every = every

    def attach(self, D: nn.Module) -> None:
        # The penalty is an expectation over samples of each sample's own input gradient; batch
        # norm makes D(x_i) depend on the other samples, so that gradient is not the one penalised.
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules()):
            raise ConfigError(
                "model.critic_norm=batch is not allowed with the gradient penalty (objective.constraint=gp): "
                "batch norm mixes the samples the penalty treats one by one; use model.critic_norm=layer, instance or none"
            )

    def penalty(self, D: nn.Module, real: Tensor, fake: Tensor, precision: Precision, critic_step: int = 0) -> Tensor | None:
        if critic_step % self.every:
            return None
        norm = input_gradient_norm(uncompiled(D), interpolates(real, fake), precision, create_graph=True)
        return self.every * self.weight * ((norm - 1) ** 2).mean()  # float32, outside autocast


class _SpectralNormWeight(nn.Module):
    """Parametrisation W -> W / sigma(W), sigma by power iteration (Miyato 2018, Alg. 1).

    Unlike ``torch.nn.utils.parametrizations.spectral_norm`` it runs the power iteration and the
    division in float32 with autocast off, so a bf16/fp16 forward pass does not degrade the
    estimate; the normalised weight is then cast by autocast like any other weight.
    """

    def __init__(self, weight: Tensor, n_power_iterations: int, eps: float = 1e-12):
        super().__init__()
        matrix = weight.detach().flatten(1)
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        self.register_buffer("u", F.normalize(torch.randn(matrix.shape[0], device=weight.device), dim=0, eps=eps))
        self.register_buffer("v", F.normalize(torch.randn(matrix.shape[1], device=weight.device), dim=0, eps=eps))
        self._power_iteration(matrix.float(), 15)  # start from a converged estimate, as torch does

    @torch.no_grad()
    def _power_iteration(self, matrix: Tensor, iterations: int) -> None:
        for _ in range(iterations):
            self.v.copy_(F.normalize(matrix.t() @ self.u, dim=0, eps=self.eps))
            self.u.copy_(F.normalize(matrix @ self.v, dim=0, eps=self.eps))

    def forward(self, weight: Tensor) -> Tensor:
        with torch.autocast(weight.device.type, enabled=False):
            matrix = weight.float().flatten(1)
            if self.training:
                self._power_iteration(matrix.detach(), self.n_power_iterations)
            # Clones: u and v change in place at the next forward, which must not corrupt the
            # graph of this one (the gradient penalty runs the critic twice before backward).
            sigma = torch.dot(self.u.clone(), matrix @ self.v.clone())
            return (weight.float() / sigma).to(weight.dtype)

    @torch.no_grad()
    def sigma(self, weight: Tensor) -> Tensor:
        """The current estimate of the largest singular value of ``weight``."""
        return torch.dot(self.u, weight.float().flatten(1) @ self.v)


class SpectralNorm(Constraint):
    """SN-GAN: normalise the weight of every Linear and Conv layer of the critic by its spectral norm."""

    layer_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)

    def __init__(self, n_power_iterations: int = 1):
        self.n_power_iterations = n_power_iterations

    def attach(self, D: nn.Module) -> None:
        for module in D.modules():
            if isinstance(module, self.layer_types) and not parametrize.is_parametrized(module, "weight"):
                parametrize.register_parametrization(module, "weight", _SpectralNormWeight(module.weight, self.n_power_iterations))

    @staticmethod
    def layers(D: nn.Module) -> list[tuple[str, nn.Module]]:
        return [(name, m) for name, m in D.named_modules() if parametrize.is_parametrized(m, "weight")]

    def diagnostics(self, D: nn.Module) -> dict[str, Tensor]:
        out = {}
        for name, module in self.layers(D):
            sn = module.parametrizations.weight[0]
            out[f"SpectralNorm/sigma/{name or 'layer'}"] = sn.sigma(module.parametrizations.weight.original)
        return out


# Config name -> factory taking the objective's options (clip_value, gp_weight, gp_every, sn_power_iterations).
CONSTRAINTS: dict[str, Callable[..., Constraint]] = {
    "none": lambda **options: Constraint(),
    "clip": lambda clip_value, **options: WeightClip(clip_value),
    "gp": lambda gp_weight, gp_every, **options: GradientPenalty(gp_weight, gp_every),
    "sn": lambda sn_power_iterations, **options: SpectralNorm(sn_power_iterations),
}
