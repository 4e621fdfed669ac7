"""Networks and objectives as the app builds them, for unit tests that need no config tree.

:func:`build_model` builds G and D from the model schema's defaults; :func:`objective` builds an
:class:`~ganlab.objectives.Objective` directly from the component classes, with the values their
YAMLs give (tests/test_config.py checks that these agree with ``conf/objective/``).
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from ganlab.apps.build import build_networks
from ganlab.config import DCGANConfig, MLPConfig, ResNetConfig
from ganlab.objectives import Objective
from ganlab.objectives.constraints.dragan import DRAGAN
from ganlab.objectives.constraints.gradient_penalty import GradientPenalty
from ganlab.objectives.constraints.lipschitz_penalty import LipschitzPenalty
from ganlab.objectives.constraints.r1 import R1
from ganlab.objectives.constraints.r2 import R2
from ganlab.objectives.constraints.spectral_norm import SpectralNorm
from ganlab.objectives.constraints.weight_clip import WeightClip
from ganlab.objectives.losses.hinge import Hinge
from ganlab.objectives.losses.js import JS
from ganlab.objectives.losses.least_squares import LeastSquares
from ganlab.objectives.losses.relativistic import Relativistic
from ganlab.objectives.losses.wasserstein import Wasserstein

SCHEMAS = {"mlp": MLPConfig, "dcgan": DCGANConfig, "resnet": ResNetConfig}

# Config name -> (class, the options conf/objective/{loss,constraints}/<name>.yaml gives it off the toy data).
LOSSES: dict[str, tuple[type, dict[str, Any]]] = {
    "js": (JS, {"saturating": False, "real_label": 1.0}),
    "wasserstein": (Wasserstein, {}),
    "hinge": (Hinge, {}),
    "least_squares": (LeastSquares, {}),
    "relativistic": (Relativistic, {"average": False}),
}
CONSTRAINTS: dict[str, tuple[type, dict[str, Any]]] = {
    "gp": (GradientPenalty, {"weight": 10.0, "every": 1}),
    "r1": (R1, {"weight": 10.0, "every": 1}),
    "r2": (R2, {"weight": 10.0, "every": 1}),
    "dragan": (DRAGAN, {"weight": 10.0, "every": 1, "c": 0.5}),
    "lp": (LipschitzPenalty, {"weight": 10.0, "every": 1}),
    "clip": (WeightClip, {"c": 0.01}),
    "sn": (SpectralNorm, {"power_iterations": 1}),
}


def build_model(model: str, data_shape: tuple[int, ...], **options) -> tuple[nn.Module, nn.Module]:
    """G and D of ``model`` (mlp, dcgan, resnet) for data of ``data_shape``, on the CPU, through
    ``build_networks``: the schema holds every default, so a test names only what it changes."""
    return build_networks(OmegaConf.structured(SCHEMAS[model](**options)), data_shape, torch.device("cpu"))


def objective(loss: str, *constraints: str, n_critic: int = 1, **options: dict[str, Any]) -> Objective:
    """The objective of loss family ``loss`` with ``constraints`` (config names), e.g.
    ``objective("wasserstein", "gp", gp={"weight": 0.1})``: ``options`` maps a component's name
    to the options that differ from its YAML's."""
    unknown = set(options) - {loss, *constraints}
    if unknown:
        raise TypeError(f"options for components that are not selected: {sorted(unknown)}")

    def build(table: dict[str, tuple[type, dict[str, Any]]], name: str) -> Any:
        cls, defaults = table[name]
        return cls(**{**defaults, **options.get(name, {})})

    return Objective(build(LOSSES, loss), {name: build(CONSTRAINTS, name) for name in constraints}, n_critic)
