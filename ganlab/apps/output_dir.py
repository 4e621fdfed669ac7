"""Checking that the output directory can be written before anything runs.

Hydra creates the run directory (``hydra.run.dir``) or the sweep directory (``hydra.sweep.dir``)
itself, before the task function starts, so a path that cannot be created (a parent that is a
file, a read-only file system, ``/proc``) would fail inside Hydra with a traceback and exit
status 1. This Hydra callback, registered in ``conf/train.yaml`` under ``hydra.callbacks``,
runs just before that: it creates the directory and writes a probe file into it, and on failure
prints one line naming the path and exits with status 2.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ganlab.errors import EXIT_USAGE, cannot_write, full_error_requested


def check_writable(config: DictConfig, key: str) -> None:
    """Create the directory that ``key`` names and write a probe file in it; exit 2 with one line if that fails."""
    if full_error_requested():  # let Hydra fail with its traceback
        return
    try:
        value = OmegaConf.select(config, key)  # resolves ${now:...}; Hydra caches it, so Hydra gets the same path
    except Exception:  # an interpolation that fails is Hydra's to report, with its own message
        return
    path = Path(str(value))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # err.filename is the part of the path that could not be made, e.g. /proc/x
        _refuse(key, path, err)
    try:
        with tempfile.TemporaryFile(dir=path):  # the directory may exist on a read-only file system
            pass
    except OSError as err:
        err.filename = str(path)  # rather than the probe's random name
        _refuse(key, path, err)


def _refuse(key: str, path: Path, err: OSError) -> NoReturn:
    print(f"error: {cannot_write(f'{key}={path}', err, f'pass a writable {key}=<directory>')}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)  # SystemExit passes through Hydra's callback runner, which catches only Exception


class WritableOutputDir(Callback):
    """Refuses an unwritable run or sweep directory with one line, before Hydra tries to use it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.sweep.dir")
