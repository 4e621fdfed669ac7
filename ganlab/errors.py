"""The exception types for a user's mistake and for a run that could not finish, and how the
command line reports them.

A :class:`ConfigError` carries a one-line message that names the bad key or file, the bad value
and what would be accepted; a :class:`TrainingFailed` (e.g. losses that went non-finite) carries
a one-line message and its own exit status. :func:`report_user_errors` wraps each Hydra task
function:

- in a single run, it prints ``error: <message>`` on stderr, without a traceback, and exits with
  status 2 (ConfigError) or the error's own status (TrainingFailed, 3 by default); other
  exceptions go on to Hydra, which prints them and exits 1;
- in a multirun, a failing job (any exception) must not end the sweep: the job logs one error
  line, records ``<job dir>/failed.json`` and returns ``{"failed": <message>}``, and
  :mod:`ganlab.apps.sweep_report` lists the failed jobs when the sweep ends. Only a stop by a
  signal (Ctrl-C, SIGTERM) ends the whole sweep, with that signal's exit status.

``HYDRA_FULL_ERROR=1`` shows the traceback instead of the one line, as for Hydra's own errors.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, TypeVar

from hydra.errors import InstantiationException

log = logging.getLogger("ganlab")

EXIT_USAGE = 2  # the conventional exit status for bad input (argparse, Hydra overrides)
EXIT_TRAINING_FAILED = 3  # training started but could not finish (non-finite losses, ...)
EXIT_SWEEP_FAILED = 1  # a multirun in which at least one job failed
EXIT_LOST_PEER = 5  # a process of a distributed run saw another one end (torchrun names it)
FAILED_FILE = "failed.json"  # written into a multirun job's directory when the job failed

T = TypeVar("T")


class ConfigError(Exception):
    """Bad configuration, file or command-line input, reported as one line."""


class OptionError(ConfigError):
    """An option outside its range: ``<key>=<value> is not allowed: <allowed>``.

    A component (a loss, a constraint, a schedule) checks its own options and knows only its own
    keys; whoever builds it from the config tree names the whole path with :meth:`at`.
    """

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(f"{key}={value} is not allowed: {allowed}")
        self.key, self.value, self.allowed = key, value, allowed

    def at(self, path: str) -> OptionError:
        """The same error with ``key`` prefixed by the config path of its node, e.g. ``objective.constraints.gp``."""
        return OptionError(f"{path}.{self.key}" if path else self.key, self.value, self.allowed)


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`OptionError` (``key=value is not allowed: allowed``) unless ``ok``."""
    if not ok:
        raise OptionError(key, value, allowed)


class TrainingFailed(Exception):
    """Training started but could not finish; reported as one line with ``exit_status``."""

    def __init__(self, message: str, exit_status: int = EXIT_TRAINING_FAILED):
        super().__init__(message)
        self.exit_status = exit_status

    @property
    def ends_sweep(self) -> bool:
        """True for a stop by a signal (status 128 + N, as shells report it): Ctrl-C or a
        preemption notice is meant for the whole sweep, not for the one job that was running."""
        return self.exit_status > 128


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def cannot_write(what: str, err: OSError, fix: str) -> ConfigError:
    """A one-line ConfigError for an output that cannot be written, e.g. ``out=/proc/x.npy``."""
    # mkdir(exist_ok=True) raises FileExistsError only for a path that exists as a file
    reason = "a file is in the way of a folder" if isinstance(err, FileExistsError) else err.strerror or type(err).__name__
    return ConfigError(f"{what}: cannot write there ({reason}: {err.filename or '?'}); {fix}")


def full_error_requested() -> bool:
    """``HYDRA_FULL_ERROR=1``: the user asked for tracebacks rather than one-line messages."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def user_error(err: BaseException) -> BaseException:
    """The error to report for ``err``: what a ``_target_`` raised, rather than Hydra's wrapper.

    Hydra's ``instantiate`` wraps whatever a ``_target_`` raises (a dataset that finds no files
    raises a ConfigError) in an InstantiationException with a multi-line message; the wrapped
    error is its ``__cause__``.
    """
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


def _hydra_job() -> Any | None:
    """The running job's Hydra config when this is a multirun job, else None (a single run, or no Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return hydra_cfg if hydra_cfg.mode == RunMode.MULTIRUN else None


def record_failure(err: BaseException, job_dir: Path, overrides: list[str]) -> dict[str, str]:
    """Write ``job_dir/failed.json`` for a failed multirun job and log one line; return the task's result."""
    message = first_line(err)
    kind = "ConfigError" if isinstance(err, ConfigError) else type(err).__name__  # an OptionError is a ConfigError to the user
    record: dict[str, Any] = {"overrides": overrides, "error": kind, "message": message}
    if not isinstance(err, (ConfigError, TrainingFailed)):
        # Not a user's mistake but an unexpected error (a bug): keep the traceback for the report,
        # since the console shows only one line per failed job.
        record["traceback"] = "".join(traceback.format_exception(err))
    job_dir.mkdir(parents=True, exist_ok=True)
    tmp = job_dir / f".{FAILED_FILE}.tmp"  # atomic: the sweep report never reads half a file
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(job_dir / FAILED_FILE)
    log.error("job failed (%s): %s", kind, message)
    return {"failed": message}


def report_user_errors(fn: Callable[..., T]) -> Callable[..., T | dict[str, str]]:
    """Make ``fn`` (a Hydra task function) report its errors as described in the module docstring."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as raised:
            err = user_error(raised)
            job = _hydra_job()
            if job is not None:  # a multirun job: record it and let the sweep go on
                if full_error_requested():
                    log.exception("job failed")
                result = record_failure(err, Path(job.runtime.output_dir), list(job.overrides.task))
                from ganlab.apps.parallel import parallel_launch  # a joblib worker's job returns its stop: the sweep's process ends the sweep

                if isinstance(err, TrainingFailed) and err.ends_sweep and not parallel_launch(job):
                    # SystemExit passes through Hydra's launcher and sweeper, which catch only Exception.
                    sys.exit(err.exit_status)
                return result
            if full_error_requested() or not isinstance(err, (ConfigError, TrainingFailed)):
                raise  # the original exception, so that the traceback shows where it came from
            print(f"error: {first_line(err)}", file=sys.stderr, flush=True)
            sys.exit(err.exit_status if isinstance(err, TrainingFailed) else EXIT_USAGE)

    return wrapper
