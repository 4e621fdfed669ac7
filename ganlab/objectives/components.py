"""Finds the loss families and constraints, and builds them from their config nodes.

Every module in :mod:`ganlab.objectives.losses` and :mod:`ganlab.objectives.constraints` that
defines a schema (a dataclass derived from :class:`~ganlab.objectives.losses.LossConfig` or
:class:`~ganlab.objectives.constraints.ConstraintConfig`) is a component. Its schema goes into
Hydra's ConfigStore as ``<module>_schema`` (e.g. ``gradient_penalty_schema``), which its YAML
places under its config name (``conf/objective/constraints/gp.yaml``:
``defaults: [/gradient_penalty_schema@gp, _self_]``). So a new component needs no registry
entry, enum member or builder code: one module and one YAML.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from ganlab.errors import ConfigError, OptionError
from ganlab.objectives import constraints, losses


@functools.cache
def component_schemas() -> dict[str, type]:
    """``{"<module>_schema": schema dataclass}`` for every loss family and constraint module."""
    found: dict[str, type] = {}
    for package, base in ((losses, losses.LossConfig), (constraints, constraints.ConstraintConfig)):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            schemas = [
                value for value in vars(module).values()
                if isinstance(value, type) and dataclasses.is_dataclass(value) and issubclass(value, base) and value.__module__ == module.__name__
            ]
            if len(schemas) != 1:
                raise RuntimeError(f"{module.__name__} must define one config schema derived from {base.__name__}, not {len(schemas)}")
            name = f"{info.name}_schema"
            if name in found:
                raise RuntimeError(f"two components are named {info.name}: rename one module")
            found[name] = schemas[0]
    return found


def build_component(node: dict[str, Any], path: str, group: str) -> Any:
    """Instantiate the component config ``node`` (plain data with ``_target_``) found at ``path``,
    an option of the config group ``group`` (e.g. ``objective/constraints``).

    Its ``schedule`` node, if any, is left out: :func:`ganlab.apps.build.build_schedules` reads it.

    Raises:
        ConfigError: one line naming ``path``: an option out of range (the component's own check,
            e.g. ``objective.constraints.gp.every=0 is not allowed: ...``); a plain value where a
            component belongs (``objective.loss=hinge`` typed with a dot instead of the group's
            slash); or values set under a component that its group does not select.
    """
    if not isinstance(node, dict):
        raise ConfigError(f"{path}={node} is not allowed: a component is chosen with its config group, with a slash: {group}={node}")
    if "_target_" not in node:
        raise ConfigError(
            f"{path} names no component (it has no _target_): its values were set, but {group} does not select it; "
            f"select it on the command line ({group}=<option>, {group}=[a,b] for several) or drop its values"
        )
    options = {key: value for key, value in node.items() if key != "schedule"}  # read by the schedules' builder
    try:
        return instantiate(options, _recursive_=False, _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, OptionError):
            raise cause.at(path) from err
        if isinstance(cause, ConfigError):
            raise ConfigError(str(cause)) from err
        raise
