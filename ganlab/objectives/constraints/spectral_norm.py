"""Spectral normalisation of the critic (SN-GAN, Miyato et al. 2018): each layer's weight divided
by its largest singular value, W reshaped to (out, in * k * k) as the paper does."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ganlab.errors import require
from ganlab.objectives.constraints import Constraint, ConstraintConfig, Tensor


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
    """Normalise the weight of every Linear and Conv layer of the critic by its largest singular
    value, estimated by ``power_iterations`` power iterations per forward pass (SN-GAN, Alg. 1).

    Reports ``SpectralNorm/sigma/<layer>``: each layer's current estimate of sigma(W).

    Raises:
        OptionError: ``power_iterations`` < 1.
    """

    layer_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)

    def __init__(self, *, power_iterations: int):
        require(power_iterations >= 1, "power_iterations", power_iterations, "must be >= 1")
        self.power_iterations = power_iterations

    def attach(self, D: nn.Module) -> None:
        for module in D.modules():
            if isinstance(module, self.layer_types) and not parametrize.is_parametrized(module, "weight"):
                parametrize.register_parametrization(module, "weight", _SpectralNormWeight(module.weight, self.power_iterations))

    @staticmethod
    def layers(D: nn.Module) -> list[tuple[str, nn.Module]]:
        return [(name, m) for name, m in D.named_modules() if parametrize.is_parametrized(m, "weight")]

    def diagnostics(self, D: nn.Module) -> dict[str, Tensor]:
        out = {}
        for name, module in self.layers(D):
            sn = module.parametrizations.weight[0]
            out[f"SpectralNorm/sigma/{name or 'layer'}"] = sn.sigma(module.parametrizations.weight.original)
        return out


@dataclass
class SpectralNormConfig(ConstraintConfig):
    _target_: str = "ganlab.objectives.constraints.spectral_norm.SpectralNorm"
    power_iterations: int = 1  # per critic forward pass: SN-GAN, Alg. 1 ("one power iteration is enough")
