"""A sweep's directory and its jobs' names, fixed once, before any job starts, in Hydra's own record.

Two things go wrong with Hydra's defaults when sweeps run side by side or on other machines:

* **Two sweeps started in the same second share a directory** (Hydra issue #1607): the default
  ``hydra.sweep.dir`` is ``outputs/multirun/<date>/<time>``, to the second, and the second sweep's
  jobs land among the first's. :func:`claim_sweep_dir` takes the directory with an exclusive lock
  (``.sweep.lock``, held until the sweep's process exits). A sweep on the default directory that
  finds it taken, or holding an earlier sweep's runs, takes ``<time>_2``, ``<time>_3``, ...; a
  sweep on a directory the user named (``hydra.sweep.dir=...``) is refused with one line while
  another sweep runs in it.
* **Job directory names depend on the process's command line**: ganlab names a job by the
  overrides of the keys the sweep sweeps (:func:`ganlab.config.job_dirname`), and the default
  ``hydra.sweep.subdir`` finds those keys in ``sys.argv``, which a joblib or submitit worker does not
  have. :func:`record_swept_keys` reads them from Hydra's record of the sweep
  (``hydra.overrides.task``, and ``hydra.sweeper.params`` for a sweeper that searches) and writes
  them into the subdir's interpolation.

Both decisions go into ``hydra.overrides.hydra``, the overrides from which Hydra composes every
job's config (``ConfigLoader.load_sweep_config``), in this process or another, so every job,
under every launcher, sees the same directory and names.
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path
from typing import Any, IO

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ganlab.config import swept_keys
from ganlab.errors import EXIT_USAGE, full_error_requested

LOCK_FILE = ".sweep.lock"
_held: list[IO[str]] = []  # the locks this process holds: released when its sweep ends, or when it exits


def _user_set(config: DictConfig, key: str) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in config.hydra.overrides.hydra)


def _add_hydra_override(config: DictConfig, key: str, value: str) -> None:
    """Set ``key`` in ``config`` and record it as a Hydra override (``value`` as the override
    grammar writes it), so that every job's config has it."""
    parsed = OverridesParser.create().parse_override(f"{key}={value}").value()
    with read_write(config), open_dict(config):
        OmegaConf.update(config, key, parsed, merge=False)
        # Hydra reads this list unresolved (ConfigLoader.load_sweep_config), so an interpolation in
        # it reaches each job as written and is resolved in the job's own config.
        config.hydra.overrides.hydra.append(f"{key}={value}")


def _lock(directory: Path) -> IO[str] | None:
    """An exclusive lock on ``directory``'s lock file, or None if another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILE, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def claim_sweep_dir(config: DictConfig, holds_earlier_runs: Any) -> None:
    """Take the sweep directory for this sweep alone (module docstring).

    ``holds_earlier_runs(path)`` says whether a directory holds runs of an earlier sweep that this
    one would overwrite (:func:`ganlab.apps.output_dir.earlier_sweep_runs`); on the default directory
    such a one is skipped, on a named one the caller refuses it. Exits with status 2 and one line
    when a named directory is in use by another running sweep.
    """
    base = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
    if _user_set(config, "hydra.sweep.dir"):
        handle = _lock(base)
        if handle is None:
            print(f"error: hydra.sweep.dir={base} is in use by another sweep that is running now; wait for it, or choose another hydra.sweep.dir",
                  file=sys.stderr, flush=True)
            sys.exit(EXIT_USAGE)
        _held.append(handle)
        return
    resuming = bool(OmegaConf.select(config, "resume", default=None))
    for n in range(1, 1000):
        candidate = base if n == 1 else base.with_name(f"{base.name}_{n}")
        if candidate.exists() and not resuming and holds_earlier_runs(candidate):
            continue  # an earlier sweep of the same second, finished
        handle = _lock(candidate)
        if handle is None:
            continue  # a sweep started in the same second, running
        _held.append(handle)
        if candidate != base:
            _add_hydra_override(config, "hydra.sweep.dir", str(candidate))
        return
    raise RuntimeError(f"no free sweep directory next to {base}")


def release_sweep_dirs() -> None:
    """Let go of the sweep directories this process claimed: its sweep has ended."""
    while _held:
        _held.pop().close()  # closing the file drops its flock


def record_swept_keys(config: DictConfig) -> None:
    """Name every job of this sweep by the keys Hydra's record says it sweeps (module docstring);
    a ``hydra.sweep.subdir`` the user set is left alone."""
    if _user_set(config, "hydra.sweep.subdir"):
        return
    keys = set(swept_keys(list(config.hydra.overrides.task)))
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    if params:
        keys |= {str(k) for k in params.keys()}
    listed = ",".join(f"'{k}'" for k in sorted(keys))
    _add_hydra_override(config, "hydra.sweep.subdir", f'"${{job_dirname:${{hydra.overrides.task}},[{listed}]}}"')  # quoted: Hydra's override grammar


def prepare_sweep(config: DictConfig, holds_earlier_runs: Any) -> None:
    """Both of the above, at the start of a multirun (``WritableOutputDir.on_multirun_start``)."""
    if full_error_requested():
        return
    claim_sweep_dir(config, holds_earlier_runs)
    record_swept_keys(config)
