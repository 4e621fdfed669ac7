"""Finding the training runs below some directories, and what each one ran and reached.

A run is a directory that ``ganlab train`` wrote: ``.hydra/config.yaml`` (the resolved config),
``.hydra/hydra.yaml`` with job name ``train`` (it holds the config-group choices, e.g.
``objective: wgan_gp``) and ``.hydra/overrides.yaml``. Its state:

- **finished**: ``metrics.json`` has ``final`` (written when the run completed its steps);
- **diverged**: a sweep job's ``failed.json`` says it stopped on non-finite values (``Diverged``,
  ``on_nonfinite=stop``): it is a seed of its group whose every metric counts as non-finite, so
  that a comparison does not keep only the seeds that survived;
- **failed**: any other ``failed.json`` (ganlab.errors) says why;
- **unfinished**: neither: still running, stopped, preempted or killed.

Final metrics come from ``metrics.json``, not from TensorBoard: a resumed run's event files hold
points that TensorBoard purges, and metrics.json is rewritten in step with the checkpoints.
Every file is read with ``yaml.safe_load`` / ``json``: a run directory may come from anyone.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganlab.errors import FAILED_FILE, ConfigError

FINISHED, DIVERGED, FAILED, UNFINISHED = "finished", "diverged", "failed", "unfinished"
SKIP_DIRS = {".hydra", "checkpoints", "samples", "tensorboard"}  # inside a run, or a comparison's own output


@dataclass
class Run:
    """One training run directory: its config (plain, nested), its config-group choices (without
    ``hydra/*``), its command-line overrides, its state and its final metrics (NaN where the run
    recorded null, i.e. a non-finite value)."""

    path: Path
    config: dict[str, Any]
    choices: dict[str, Any]
    overrides: list[str]
    status: str
    reason: str = ""
    final: dict[str, float] = field(default_factory=dict)
    step: int = 0  # the step of its last evaluation (the final one when finished)

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def dataset(self) -> str:
        """The stratum of the bootstrap: the dataset choice (e.g. ``gaussians25``)."""
        return str(self.choices.get("dataset") or (self.config.get("dataset") or {}).get("_target_", ""))


def find_runs(directories: list[str | Path]) -> list[Run]:
    """Every training run at or below ``directories``, in path order, each once.

    Raises:
        ConfigError: a directory does not exist, or none of them holds a training run.
    """
    found: dict[Path, Run] = {}
    for directory in directories:
        directory = Path(directory)
        if directory.is_file():
            raise ConfigError(f"{directory} is a file: pass sweep or run directories written by ganlab train, e.g. outputs/multirun/<date>/<time>")
        if not directory.is_dir():
            raise ConfigError(f"{directory}: no such directory (pass sweep or run directories written by ganlab train, e.g. outputs/multirun/<date>/<time>)")
        for root, dirs, _ in os.walk(directory):
            root = Path(root)
            if is_run(root):
                found.setdefault(root.resolve(), read_run(root))
                dirs.clear()  # a run's sub-folders (superseded_<n>/, ...) are not runs
            else:
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
    if not found:
        raise ConfigError(f"no training runs below {', '.join(map(str, directories))} (a run directory has .hydra/config.yaml, written by ganlab train)")
    return sorted(found.values(), key=lambda run: str(run.path))


def is_run(directory: Path) -> bool:
    hydra_file = directory / ".hydra" / "hydra.yaml"
    if not (directory / ".hydra" / "config.yaml").is_file() or not hydra_file.is_file():
        return False
    try:
        job = (_yaml(hydra_file).get("hydra") or {}).get("job") or {}
    except ConfigError:
        return True  # a damaged record of a run is still a run: read_run says what is wrong
    return job.get("name") == "train"


def read_run(path: Path) -> Run:
    """The :class:`Run` in ``path``; an unreadable record makes it a failed run that says which file."""
    try:
        config = _yaml(path / ".hydra" / "config.yaml")
        hydra = _yaml(path / ".hydra" / "hydra.yaml").get("hydra") or {}
        overrides_file = path / ".hydra" / "overrides.yaml"
        overrides = [str(o) for o in (_yaml(overrides_file) if overrides_file.is_file() else None) or []]
    except ConfigError as err:
        return Run(path, {}, {}, [], FAILED, str(err))
    choices = {k: v for k, v in ((hydra.get("runtime") or {}).get("choices") or {}).items() if not k.startswith("hydra/") and v is not None}
    run = Run(path, config, choices, overrides, UNFINISHED)
    metrics = path / "metrics.json"
    try:
        body = json.loads(metrics.read_text()) if metrics.is_file() else {}
    except (OSError, ValueError) as err:
        run.status, run.reason = FAILED, f"{metrics} is unreadable ({err})"
        return run
    history = body.get("history") or []
    run.step = int(history[-1]["step"]) if history else 0
    failed = path / FAILED_FILE
    if failed.is_file():
        kind, run.reason = _failure(failed)
        run.status = DIVERGED if kind == "Diverged" else FAILED
        return run
    if isinstance(body.get("final"), dict) and body["final"]:
        run.status = FINISHED
        run.final = {k: math.nan if v is None else float(v) for k, v in body["final"].items()}
    else:
        last = f"last evaluation at step {run.step}" if history else "no evaluation yet"
        run.reason = f"no final metrics ({last} of {config.get('steps', '?')} steps)"
    return run


def _failure(path: Path) -> tuple[str, str]:
    """(the error's kind, a line saying what failed) from a failed.json."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return "", f"{FAILED_FILE} is unreadable"
    if not isinstance(record, dict):
        return "", str(record)
    return str(record.get("error", "")), ": ".join(str(record[k]) for k in ("error", "message") if record.get(k)) or str(record)


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path} is unreadable: {str(err).splitlines()[0]}") from err
