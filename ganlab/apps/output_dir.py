"""Checking the output directory before anything runs: that it can be written, and that it
does not hold an earlier run that a new one would overwrite.

Hydra creates the run directory (``hydra.run.dir``) or the sweep directory (``hydra.sweep.dir``)
itself, before the task function starts, so a path that cannot be created (a parent that is a
file, a read-only file system, ``/proc``) would fail inside Hydra with a traceback and exit
status 1. This Hydra callback, registered in ``conf/train.yaml`` under ``hydra.callbacks``,
runs just before that: it creates the directory and writes a probe file into it, and on failure
prints one line naming the path and exits with status 2. It also refuses, the same way, to start
a new run in the directory of an earlier run, or a sweep in a sweep directory that holds earlier
runs, unless the command resumes them.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ganlab.apps import search
from ganlab.apps.sweep_dir import prepare_sweep, release_sweep_dirs
from ganlab.errors import EXIT_USAGE, FAILED_FILE, cannot_write, full_error_requested
from ganlab.filenames import sorted_by_number


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


RESULTS = ("metrics.json", "checkpoints", "events.out.tfevents.*")  # what a training run writes into its directory


def earlier_results(run_dir: Path) -> list[str]:
    """What an earlier training run left in ``run_dir`` that a new run there would overwrite."""
    return [p.name for pattern in RESULTS for p in sorted(run_dir.glob(pattern))[:1]]


def resuming(config: DictConfig) -> bool | None:
    """Whether the command continues earlier runs (``resume`` set); None if Hydra must report a broken config."""
    try:
        return bool(OmegaConf.select(config, "resume", default=None))
    except Exception:  # Hydra reports a broken interpolation itself
        return None


def check_not_an_earlier_run(config: DictConfig) -> None:
    """Refuse to start a new run in the directory of an earlier one, unless ``resume`` is set.

    Hydra writes ``.hydra/config.yaml`` before the task starts and training then rewrites
    ``metrics.json`` and the checkpoints: a new run (even one that then stops at a bad option)
    would replace what the earlier run recorded. A folder with only ``.hydra`` and ``train.log``
    (a run that stopped at a bad option) may be reused.
    """
    # With resume, the command continues that run (resume=auto, which starts afresh where there is no checkpoint, asks for this directory too).
    if full_error_requested() or resuming(config) is not False:
        return
    try:
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))
    except Exception:  # Hydra reports a broken interpolation itself
        return
    found = earlier_results(run_dir)
    if found:
        print(f"error: hydra.run.dir={run_dir} already holds a training run ({', '.join(found)}) that a new run would overwrite; "
              f"choose a new directory, or continue that run with resume={run_dir}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


def earlier_sweep_runs(sweep_dir: Path) -> list[Path]:
    """The job directories under ``sweep_dir`` that hold a training run a new sweep would overwrite
    (a failed job, its ``failed.json``, may be retried in place)."""
    found = {p.parent for pattern in RESULTS for p in sweep_dir.rglob(pattern)} if sweep_dir.is_dir() else set()
    return sorted_by_number(job for job in found if not (job / FAILED_FILE).exists())


def check_not_an_earlier_sweep(config: DictConfig) -> None:
    """Refuse to start a sweep in a sweep directory that holds earlier runs, unless ``resume`` is set.

    Jobs are named by their swept overrides, so the same sweep command with the same
    ``hydra.sweep.dir`` would write over every finished job: Hydra rewrites its ``.hydra`` before the
    job starts, and training then its metrics, checkpoints and TensorBoard log. With ``resume=auto``
    each job continues its own run instead (and one without a checkpoint starts afresh), which is
    also how to add jobs to a sweep. A job that failed (its ``failed.json``) may be rerun in place:
    that is how a sweep is retried once the cause is fixed.
    """
    if full_error_requested() or resuming(config) is not False:
        return
    try:
        sweep_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
    except Exception:
        return
    jobs = earlier_sweep_runs(sweep_dir)
    if jobs and not search.continues_study(config, jobs):  # a stored study's new trials get new, numbered job directories
        example = jobs[0].relative_to(sweep_dir)
        print(f"error: hydra.sweep.dir={sweep_dir} already holds {len(jobs)} training run(s) of an earlier sweep (e.g. {example}) that this sweep "
              f"would overwrite; choose a new hydra.sweep.dir, or continue them (and add new jobs) with resume=auto", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


class WritableOutputDir(Callback):
    """Refuses an unwritable run or sweep directory, or one that holds earlier runs, with one line,
    before Hydra writes into it."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_not_an_earlier_run(config)
        check_writable(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_writable(config, "hydra.sweep.dir")
        prepare_sweep(config, earlier_sweep_runs)  # this sweep's own directory (another may start the same second), its job names
        check_not_an_earlier_sweep(config)
        check_writable(config, "hydra.sweep.dir")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        release_sweep_dirs()  # a later sweep in this process (ganlab.cli.main called again) may extend it
