"""Writing and reading checkpoints safely.

A checkpoint is a dict of tensors, numbers and strings, written atomically (temporary file in
the same folder, flush, fsync, rename) so that a crash never leaves a half-written file under
the final name, and loaded with ``weights_only=True`` so that loading never runs code.
"""

from __future__ import annotations

import os
import re
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from ganlab.errors import ConfigError
from ganlab.filenames import numbered


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; any problem is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
        first = next((line for line in lines if "Unsupported global" in line), lines[0] if lines else type(err).__name__)
        raise ConfigError(f"checkpoint {path} was refused: it holds objects other than tensors and plain data, and loading it could run code ({first})") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise ConfigError(f"checkpoint {path} is unreadable (truncated or not a ganlab checkpoint): {str(err).splitlines()[0] if str(err) else type(err).__name__}") from err


# ------------------------------------------------------------------ a run's checkpoints

CHECKPOINT_DIR = "checkpoints"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:07d}.pt"  # 7 digits for listings; code orders by the number


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints ``step_<step>.pt``, oldest (smallest step) first.

    Ordered by the step as a number: from step 10,000,000 on the names have more digits and text
    order would put them first. Temporary files of an interrupted write are ignored.
    """
    return [path for _, path in numbered(Path(run_dir) / CHECKPOINT_DIR, "step_", ".pt")]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (after a new one was written whole)."""
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def resume_target(resume: str, run_dir: str | Path) -> Path | None:
    """The checkpoint that ``resume=<value>`` names: ``auto`` (the newest in ``run_dir``, or None
    to start afresh), a checkpoint file, or a run directory (its newest checkpoint)."""
    if resume == "auto":
        return latest_checkpoint(run_dir)
    target = Path(resume)
    if target.is_file():
        return target
    if target.is_dir():
        newest = latest_checkpoint(target)
        if newest is None:
            raise ConfigError(f"resume={resume}: the run directory has no checkpoints under {target / CHECKPOINT_DIR} (use resume=auto to start afresh when there are none)")
        return newest
    raise ConfigError(f"resume={resume}: no such run directory or checkpoint file")


def resume_run_dir(resume: str | None, default: str) -> str:
    """Hydra's run directory: the resumed run's own directory (training continues in place), else ``default``."""
    if resume in (None, "", "auto", "None", "null"):
        return default
    target = Path(resume)
    if not target.exists():
        return default  # the task then reports the bad path; a typo must not create that directory
    if target.is_file():
        return str(target.parent.parent)  # <run>/checkpoints/step_*.pt
    return str(target)
