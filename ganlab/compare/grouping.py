"""Grouping runs into experiments: runs that differ only in the seed (and the schedule) are one group.

A run is described by its **attributes**: the config-group choices Hydra recorded (``objective:
wgan_gp``, ``objective/loss: js``, ``dataset: gaussians25``) and every leaf of its resolved config
(``objective.optimizer.lr_D: 0.0002``). By default the groups are formed by the attributes whose
values differ between the runs compared, leaving out :data:`ganlab.config.NOT_GROUPING_KEYS` (the
seed, ``steps``, the intervals, ``resume``, ``threads``): jobs added to a sweep later, or resumed
with more steps, join their group. ``group_by=[objective]`` names the attributes instead.

A group's label lists its differing choices, and only the leaves that no differing choice already
explains: a sweep over ``objective=js,wgan_gp`` gives ``objective=js`` and ``objective=wgan_gp``,
not every key of the two presets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ganlab.compare.runs import Run
from ganlab.config import NOT_GROUPING_KEYS
from ganlab.errors import ConfigError

MISSING = "<unset>"  # an attribute that one run has and another has not (e.g. a constraint's key)


@dataclass
class Group:
    """Runs of one experiment: ``label`` names it (``objective=js``), ``key`` holds its attribute values."""

    label: str
    key: tuple[tuple[str, str], ...]
    runs: list[Run] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        return sorted({run.dataset for run in self.runs})


def attributes(run: Run) -> dict[str, str]:
    """A run's choices and config leaves, as text (``"0.0002"``, ``"[0.5, 0.999]"``), without the
    keys that do not make another experiment."""
    found = {name: _text(value) for name, value in run.choices.items()}
    found.update(_leaves(run.config))
    return {k: v for k, v in found.items() if k not in NOT_GROUPING_KEYS}


def group_runs(runs: Sequence[Run], group_by: Sequence[str] | None = None) -> list[Group]:
    """The groups of ``runs``, in order of first appearance.

    Args:
        runs: the runs to group (usually the finished ones); attributes are compared over all of them.
        group_by: attribute names (choices such as ``objective``, or config keys such as
            ``objective.optimizer.lr_D``); None: the attributes that differ between ``runs``.

    Raises:
        ConfigError: a ``group_by`` name is no attribute of any run (the message lists them).
    """
    described = [attributes(run) for run in runs]
    names = set().union(*described) if described else set()
    choices = {c for run in runs for c in run.choices}
    if group_by is None:
        keys = sorted(k for k in names if len({d.get(k, MISSING) for d in described}) > 1)
        overridden = {o.split("=", 1)[0].lstrip("+~") for run in runs for o in run.overrides}
        shown = label_keys(keys, choices, overridden)
    else:
        keys = shown = list(group_by)
        averaged = [k for k in keys if k in NOT_GROUPING_KEYS]
        if averaged:
            raise ConfigError(f"group_by: {', '.join(averaged)} is what the runs of a group may differ in ({', '.join(sorted(NOT_GROUPING_KEYS))}); it cannot be a group key")
        unknown = [k for k in keys if k not in names]
        if unknown:
            raise ConfigError(f"group_by: {', '.join(unknown)} is not a key of these runs; use a config group ({', '.join(sorted(choices))}) or a config key such as objective.optimizer.lr_D")
    groups: dict[tuple, Group] = {}
    for run, described_run in zip(runs, described):
        key = tuple((k, described_run.get(k, MISSING)) for k in keys)
        if key not in groups:
            values = dict(key)
            label = ",".join(f"{k}={values[k]}" for k in shown) if shown else _default_label(run)
            groups[key] = Group(label, key)
        groups[key].runs.append(run)
    found = list(groups.values())
    labels = [g.label for g in found]
    for group in found:
        if labels.count(group.label) > 1:  # the shown keys do not tell these apart: name every key
            group.label = ",".join(f"{k}={v}" for k, v in group.key)
    return found


def label_keys(keys: list[str], choices: set[str], overridden: set[str]) -> list[str]:
    """The differing attributes that a label shows: the choices, less those under another differing
    choice (``objective/loss`` under ``objective``), then the config leaves, less those under a
    differing choice that no command line set (``objective.loss._target_`` comes with ``objective``;
    ``objective.optimizer.lr_D`` swept beside it is shown)."""
    differing = [k for k in keys if k in choices]
    shown = [c for c in differing if not any(c.startswith(f"{other}/") for other in differing)]
    prefixes = tuple(f"{c.replace('/', '.')}." for c in differing)
    return shown + [k for k in keys if k not in choices and (k in overridden or not k.startswith(prefixes))]


def _default_label(run: Run) -> str:
    """A single group: what it ran, e.g. ``objective=wgan_gp,dataset=gaussians25,model=mlp``."""
    parts = [f"{name}={run.choices[name]}" for name in ("objective", "dataset", "model") if name in run.choices]
    return ",".join(parts) or "all runs"


def _leaves(tree: Any, prefix: str = "") -> dict[str, str]:
    if not isinstance(tree, dict):
        return {prefix[:-1]: _text(tree)} if prefix else {}
    leaves: dict[str, str] = {}
    for name, value in tree.items():
        if isinstance(value, dict) and value:
            leaves.update(_leaves(value, f"{prefix}{name}."))
        else:
            leaves[f"{prefix}{name}"] = _text(value)
    return leaves


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(_text, value)) + "]"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return "null" if value is None else str(value)
