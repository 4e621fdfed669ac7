"""From config nodes to objects: the one place where the apps turn config into data, networks,
objective and optimizers, so that train, sample and eval build them the same way."""

from __future__ import annotations

from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganlab.data import value_range
from ganlab.errors import ConfigError
from ganlab.objectives import Objective, build_objective
from ganlab.train.optim import build_optimizers


def plain(node: Any) -> Any:
    """A config node as plain data (enums as their names): what builders and checkpoints take."""
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True) if isinstance(node, DictConfig) else node


def build_data(dataset: Any, device: torch.device, seed: int) -> Any:
    return instantiate(plain(dataset), device=device, seed=seed)


def build_networks(model: Any, data_shape: tuple[int, ...], device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """G and D of the ``model`` config node for data of ``data_shape``, on ``device``.

    The builder also gets the data's value range (:func:`ganlab.data.value_range`: [-1, 1] for
    images, None for points), so that G's output can reach all of the data and nothing else.
    Only the shape is needed, which checkpoints keep: ``sample`` and ``eval`` rebuild the same G.
    Raises ConfigError (one line) when the architecture cannot take the data, e.g. its size.
    """
    try:
        G, D = instantiate(plain(model), data_shape=tuple(data_shape), value_range=value_range(tuple(data_shape)))
    except InstantiationException as err:  # instantiate wraps what the builder raised
        if not isinstance(err.__cause__, ValueError):
            raise
        # e.g. an architecture that does not support the data's resolution
        raise ConfigError(str(err.__cause__).splitlines()[0]) from err
    return G.to(device), D.to(device)


def build_objective_from(objective: Any) -> Objective:
    o = plain(objective)
    return build_objective(
        o["loss"], o["constraint"], n_critic=o["n_critic"], saturating=o["saturating"],
        clip_value=o["clip_value"], gp_weight=o["gp_weight"], gp_every=o["gp_every"], sn_power_iterations=o["sn_power_iterations"],
    )


def build_optimizers_from(objective: Any, G: torch.nn.Module, D: torch.nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    opt = plain(objective)["optimizer"]
    return build_optimizers(G, D, opt["name"], opt["lr_G"], opt["lr_D"], opt["betas"], opt["alpha"])
