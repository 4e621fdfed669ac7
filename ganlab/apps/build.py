"""From config nodes to objects: the one place where the apps turn config into data, networks,
objective and optimizers, so that train, sample and eval build them the same way."""

from __future__ import annotations

from typing import Any, Callable

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganlab.data import value_range
from ganlab.errors import ConfigError, OptionError
from ganlab.models.packing import Packed, packed_shape
from ganlab.objectives import Objective, build_objective
from ganlab.objectives.constraints import Penalty
from ganlab.schedules import Schedule, Scheduled, Schedules, param_group_setter, schedule_of
from ganlab.train.ema import EMA, half_life_schedule
from ganlab.train.optim import build_optimizers


def plain(node: Any) -> Any:
    """A config node as plain data (enums as their names): what builders and checkpoints take."""
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True) if isinstance(node, DictConfig) else node


def build_data(dataset: Any, device: torch.device, seed: int) -> Any:
    return instantiate(plain(dataset), device=device, seed=seed)


def build_networks(model: Any, data_shape: tuple[int, ...], device: torch.device, pack: int = 1) -> tuple[torch.nn.Module, torch.nn.Module]:
    """G and D of the ``model`` config node for data of ``data_shape``, on ``device``.

    The builder also gets the data's value range (:func:`ganlab.data.value_range`: [-1, 1] for
    images, None for points), so that G's output can reach all of the data and nothing else.
    Only the shape is needed, which checkpoints keep: ``sample`` and ``eval`` rebuild the same G.
    With ``pack`` = m > 1, D is the builder's critic for packs of m samples
    (:func:`ganlab.models.packing.packed_shape`) in :class:`~ganlab.models.packing.Packed`; G is the
    one an unpacked run of the same seed starts from.
    Raises ConfigError (one line) when the architecture cannot take the data, e.g. its size.
    """
    G, D = _build(model, tuple(data_shape))
    if pack > 1:  # the builders make G and D for one shape: D for packs comes from a second build, its G dropped
        D = Packed(_build(model, packed_shape(tuple(data_shape), pack))[1], pack)
    return G.to(device), D.to(device)


def _build(model: Any, data_shape: tuple[int, ...]) -> tuple[torch.nn.Module, torch.nn.Module]:
    try:
        return instantiate(plain(model), data_shape=data_shape, value_range=value_range(data_shape))
    except InstantiationException as err:  # instantiate wraps what the builder raised
        if not isinstance(err.__cause__, ValueError):
            raise
        # e.g. an architecture that does not support the data's resolution
        raise ConfigError(str(err.__cause__).splitlines()[0]) from err


def build_objective_from(objective: Any) -> Objective:
    """The objective of the ``objective`` config node: its loss family and constraints, each
    instantiated from its own node (:func:`ganlab.objectives.build_objective`)."""
    return build_objective(plain(objective), "objective")


def build_optimizers_from(objective: Any, G: torch.nn.Module, D: torch.nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    opt = plain(objective)["optimizer"]
    return build_optimizers(G, D, opt["name"], opt["lr_G"], opt["lr_D"], opt["betas"], opt["alpha"])


def _scalars(objective: dict[str, Any], built: Objective) -> list[tuple[str, str, float, dict | None]]:
    """Every scalar of the objective that may follow a schedule: (config path of its schedule,
    TensorBoard tag, configured value, schedule node). ``built`` is the objective of the node."""
    opt, path = objective["optimizer"], "objective.optimizer.schedule"
    schedules = opt.get("schedule") or {}
    found = [
        (f"{path}.lr_G", "LR/G", opt["lr_G"], schedules.get("lr_G")),
        (f"{path}.lr_D", "LR/D", opt["lr_D"], schedules.get("lr_D")),
    ]
    if opt["name"] == "adam":
        found.append((f"{path}.beta2", "Optimizer/beta2", opt["betas"][1], schedules.get("beta2")))
    for name, constraint in built.constraints.items():
        if isinstance(constraint, Penalty):
            node = objective["constraints"][name]
            found.append((f"objective.constraints.{name}.schedule.weight", f"Penalty/{name}/weight", node["weight"], (node.get("schedule") or {}).get("weight")))
    return found


def _schedule(path: str, start: float, node: dict | None, steps: int | None) -> Schedule:
    try:
        schedule = schedule_of(start, node)
        return schedule.with_length(steps) if steps is not None else schedule
    except OptionError as err:
        raise err.at(path) from None


def _ema_half_life(objective: dict[str, Any], steps: int) -> Schedule | None:
    """The schedule of G_ema's half-life of the ``objective.ema`` node, None without one."""
    if objective.get("ema") is None:
        return None
    try:
        return half_life_schedule(objective["ema"], steps)
    except OptionError as err:
        raise err.at("objective.ema") from None


def check_objective(objective: Any, steps: int) -> None:
    """Check every option of the objective's components and its schedules in a run of ``steps``
    generator steps (one-line ConfigError naming the key)."""
    o = plain(objective)
    built = build_objective(o, "objective")
    for path, _, start, node in _scalars(o, built):
        _schedule(path, start, node, steps)
    _ema_half_life(o, steps)
    beta2 = ((o["optimizer"].get("schedule") or {}).get("beta2") or {})
    if o["optimizer"]["name"] != "adam" and (beta2.get("shape", "constant") != "constant" or beta2.get("warmup", 0)):
        raise ConfigError(f"objective.optimizer.schedule.beta2 is not allowed with objective.optimizer.name={o['optimizer']['name']}: only Adam has beta2")


def build_schedules(
    objective_cfg: Any, objective: Objective, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer, steps: int, ema: EMA | None = None,
) -> Schedules:
    """The run's :class:`~ganlab.schedules.Schedules`: the learning rates, Adam's beta2, each
    penalty's weight and, with an ``objective.ema`` node, G_ema's half-life (``EMA/half_life``),
    each set from its schedule at every generator step (a constant schedule sets the configured
    value). A schedule without ``steps`` runs over the run's ``steps``."""
    o = plain(objective_cfg)

    def weight(penalty: Penalty) -> Callable[[float], None]:
        return lambda value: setattr(penalty, "weight", value)

    targets = {
        "LR/G": (param_group_setter((opt_G,), "lr"), True),
        "LR/D": (param_group_setter((opt_D,), "lr"), True),
        "Optimizer/beta2": (param_group_setter((opt_G, opt_D), "beta2"), False),
    }
    targets.update({f"Penalty/{name}/weight": (weight(c), False) for name, c in objective.constraints.items() if isinstance(c, Penalty)})
    scheduled = []
    for path, tag, start, node in _scalars(o, objective):
        set_value, is_lr = targets[tag]
        scheduled.append(Scheduled(tag, _schedule(path, start, node, steps), set_value, learning_rate=is_lr))
    half_life = _ema_half_life(o, steps)
    if half_life is not None and ema is not None:
        scheduled.append(Scheduled("EMA/half_life", half_life, ema.set_half_life))
    return Schedules(scheduled)


def resolve_schedule_lengths(cfg: DictConfig) -> None:
    """Write the run's ``steps`` into every schedule that has none, so that the checkpoint's config
    keeps the length the run started with: a resume with another ``steps`` continues the same schedule."""
    o = plain(cfg.objective)
    for path, _, _, node in _scalars(o, build_objective(o, "objective")):
        if node is not None and node.get("steps") is None and (node.get("shape", "constant") != "constant"):
            OmegaConf.update(cfg, f"{path}.steps", cfg.steps, merge=False)
    if o.get("ema") is not None and o["ema"].get("steps") is None:
        OmegaConf.update(cfg, "objective.ema.steps", cfg.steps, merge=False)
