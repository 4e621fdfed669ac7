"""Saved configs from before the objective components: read into today's layout.

Until issue 11 the ``objective`` node was flat: ``loss: wasserstein``, ``constraint: gp``,
``saturating``, ``clip_value``, ``gp_weight``, ``gp_every``, ``sn_power_iterations``. Today the loss
family and each constraint are config nodes of their own (``objective.loss``,
``objective.constraints.<name>``) with a ``_target_``. :func:`migrate_config` rewrites a flat
objective into that layout, with the same values, so that ``ganlab train resume=`` continues a run
written before the change exactly as it would have gone on. ``ganlab sample`` and ``ganlab eval``
need no migration: they read only the dataset and the model, whose layout did not change.

The targets come from the component schemas, so they are ganlab's own and pass
:func:`ganlab.apps.saved_config.check_saved_config`. Run :func:`migrate_config` after that check:
the old file itself must hold no ``_target_`` in its objective.
"""

from __future__ import annotations

import copy
from typing import Any

from ganlab.errors import ConfigError
from ganlab.objectives.components import component_schemas

# The flat layout's names -> (component module, {old key: new key}); frozen with that layout.
OLD_LOSSES = {"js": "js", "wasserstein": "wasserstein", "hinge": "hinge", "least_squares": "least_squares"}
OLD_CONSTRAINTS = {
    "clip": ("weight_clip", {"clip_value": "c"}),
    "gp": ("gradient_penalty", {"gp_weight": "weight", "gp_every": "every"}),
    "sn": ("spectral_norm", {"sn_power_iterations": "power_iterations"}),
}
OLD_KEYS = {"loss", "saturating", "constraint", "clip_value", "gp_weight", "gp_every", "sn_power_iterations"}

# What a user typed before -> what to type now (objective.loss=X is answered by the component builder).
RENAMED_OVERRIDES = {
    "objective.constraint": "objective/constraints=<name> (e.g. objective/constraints=gp, 'objective/constraints=[]' for none)",
    "objective.saturating": "objective.loss.saturating (with objective=js or objective/loss=js)",
    "objective.clip_value": "objective.constraints.clip.c",
    "objective.gp_weight": "objective.constraints.gp.weight",
    "objective.gp_every": "objective.constraints.gp.every",
    "objective.sn_power_iterations": "objective.constraints.sn.power_iterations",
}


def renamed_override(override: str) -> str | None:
    """A one-line hint when a command-line override uses a key of the flat layout, else None.

    ``override`` is one word of the command line (``objective.gp_weight=1``, ``+objective.constraint=gp``).
    """
    key = override.split("=", 1)[0].lstrip("+~")
    if "=" not in override or key not in RENAMED_OVERRIDES:
        return None
    return f"{key} was renamed when the objective became components: use {RENAMED_OVERRIDES[key]}"


def _target(module: str) -> str:
    return component_schemas()[f"{module}_schema"]._target_


def is_flat(config: Any) -> bool:
    """Whether ``config`` (a saved train config, plain data) has the objective layout from before the components."""
    objective = config.get("objective") if isinstance(config, dict) else None
    return isinstance(objective, dict) and isinstance(objective.get("loss"), str)


def migrate_config(config: dict[str, Any], source: str) -> dict[str, Any]:
    """``config`` in today's layout (a copy; ``config`` itself when it already is).

    Raises:
        ConfigError: a flat objective whose loss or constraint name ganlab never had, named with ``source``.
    """
    if not is_flat(config):
        return config
    config = copy.deepcopy(config)
    old = config["objective"]
    name, constraint = old["loss"], old.get("constraint", "none")
    if name not in OLD_LOSSES or (constraint != "none" and constraint not in OLD_CONSTRAINTS):
        raise ConfigError(
            f"{source}: objective.loss={name}, objective.constraint={constraint} is not an objective ganlab had; "
            "it was not written by ganlab train, or was edited"
        )
    loss: dict[str, Any] = {"_target_": _target(OLD_LOSSES[name])}
    if name == "js":
        loss["saturating"] = bool(old.get("saturating", False))
    constraints: dict[str, Any] = {}
    if constraint != "none":
        module, keys = OLD_CONSTRAINTS[constraint]
        constraints[constraint] = {"_target_": _target(module), **{new: old[key] for key, new in keys.items() if key in old}}
    new = {key: value for key, value in old.items() if key not in OLD_KEYS}
    config["objective"] = {**new, "loss": loss, "constraints": constraints}
    return config
