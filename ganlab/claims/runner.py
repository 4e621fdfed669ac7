"""Run the chosen claims: their training sweeps first (once each, in parallel, resumable), then each
claim's measurement, then the report.

Layout of ``out``::

    sweeps/<name>/            each training sweep (ganlab train -m ... resume=auto), its log in sweeps/<name>.log
    <NN>_<slug>/result.json   a claim's Outcome, with the mode and settings it was measured at
    <NN>_<slug>/*.png         its figures
    report.md                 every claim of out that has a result, in claim order (ganlab.claims.report)

Resuming: a sweep is rerun with ``resume=auto`` (finished runs keep their metrics, interrupted ones
continue from their checkpoint), and a claim whose ``result.json`` has the same mode and settings is
not measured again (``rerun=true`` measures it again).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Callable

from ganlab.claims import claim_modules
from ganlab.claims.base import MODES, Context, Outcome, Sweep
from ganlab.errors import ConfigError, TrainingFailed, cannot_write
from ganlab.train.signals import EXIT_STATUS

RESULT_FILE = "result.json"


def select(numbers: list[int] | None) -> list[ModuleType]:
    """The claim modules numbered ``numbers`` (None: all), in claim order.

    Raises:
        ConfigError: a number that is no claim's.
    """
    modules = claim_modules()
    known = {m.NUMBER: m for m in modules}
    if numbers is None:
        return modules
    unknown = [n for n in numbers if n not in known]
    if unknown:
        raise ConfigError(f"claims={numbers}: there is no claim {unknown[0]}; the claims are numbered {min(known)}-{max(known)} (ganlab claims --help lists them)")
    return [known[n] for n in sorted(set(numbers))]


def folder(module: ModuleType) -> str:
    """A claim's folder name in ``out``: ``03_progress_curve``."""
    return f"{module.NUMBER:02d}_{module.SLUG}"


def needed_sweeps(modules: list[ModuleType], mode: str) -> list[Sweep]:
    """The sweeps the claims read, each once, in the order the claims name them.

    Raises:
        ValueError: two claims name one sweep with different overrides (a defect in the claims).
    """
    found: dict[str, Sweep] = {}
    for module in modules:
        for sweep in module.sweeps(mode):
            if sweep.name in found and found[sweep.name] != sweep:
                raise ValueError(f"claims disagree on sweep {sweep.name!r}: {found[sweep.name].overrides} vs {sweep.overrides}")
            found.setdefault(sweep.name, sweep)
    return list(found.values())


def jobs_in(sweep: Sweep) -> int:
    """How many runs a sweep has: the product of its sweep overrides' lengths, as Hydra's basic
    sweeper parses them (``a,b``, ``range(3)``, ``[0.5,0.9],[0,0.9]``: a sweep over lists)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    count = 1
    for override in OverridesParser.create().parse_overrides(list(sweep.overrides)):
        if override.is_sweep_override():
            count *= len(list(override.sweep_iterator()))
    return count


def launcher_overrides(n_jobs: int, jobs: int) -> list[str]:
    """The joblib launcher with ``min(n_jobs, jobs)`` jobs at once when that is more than one and the
    plugin is installed; otherwise Hydra's basic launcher (one job at a time)."""
    import importlib.util

    at_once = min(n_jobs, jobs)
    if at_once <= 1 or importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None:
        return []
    return ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={at_once}"]


def sweep_command(sweep: Sweep, sweep_dir: Path, n_jobs: int) -> list[str]:
    """The ``ganlab train -m`` command line of ``sweep`` (as a user would type it)."""
    return [*sweep.command(sweep_dir), *launcher_overrides(n_jobs, jobs_in(sweep))]


def finished_runs(sweep_dir: Path) -> int:
    """How many runs below ``sweep_dir`` have their final metrics (cheap: reads metrics.json files)."""
    done = 0
    for metrics in sweep_dir.glob("*/metrics.json"):
        try:
            done += bool(json.loads(metrics.read_text()).get("final"))
        except (OSError, ValueError):
            pass
    return done


def run_sweep(command: list[str], sweep_dir: Path, log_file: Path, on_progress: Callable[[int], None]) -> None:
    """Run one sweep's command (``ganlab`` replaced by this Python's ``-m ganlab``), its output into
    ``log_file``, calling ``on_progress(finished runs)`` every 2 s.

    Raises:
        ConfigError: the sweep exited with an error (the log file's last line says which).
        TrainingFailed: Ctrl-C (exit status 130), said in one line with how to resume.
    """
    sweep_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ganlab", *command[1:]]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    with open(log_file, "a") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            while process.poll() is None:
                on_progress(finished_runs(sweep_dir))
                time.sleep(2)
        except KeyboardInterrupt:  # the sweep got the terminal's SIGINT too: it checkpoints and stops
            process.wait()
            raise TrainingFailed(f"stopped during sweep {sweep_dir.name}; its finished runs and checkpoints are kept: "
                                 "run the same ganlab claims command again to resume", exit_status=EXIT_STATUS[signal.SIGINT]) from None
    on_progress(finished_runs(sweep_dir))
    if process.returncode != 0:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
        raise ConfigError(f"sweep {sweep_dir.name} exited with status {process.returncode} ({lines[-1][:200] if lines else 'no output'}); "
                          f"its log: {log_file}; run ganlab claims again to resume it")


def stored_outcome(claim_dir: Path, mode: str, settings: dict) -> Outcome | None:
    """The claim's stored Outcome when it was measured at this mode and these settings, else None."""
    path = claim_dir / RESULT_FILE
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if body.get("mode") != mode or body.get("settings") != json.loads(json.dumps(settings)):
        return None
    try:
        return Outcome.from_json(body["outcome"])
    except (KeyError, TypeError):
        return None


def write_outcome(claim_dir: Path, module: ModuleType, mode: str, settings: dict, outcome: Outcome, seconds: float) -> None:
    body = {"claim": module.NUMBER, "title": module.TITLE, "mode": mode, "settings": settings, "seconds": round(seconds, 1),
            "outcome": outcome.to_json()}
    tmp = claim_dir / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(body, indent=2, allow_nan=True, default=_json_default))
    tmp.replace(claim_dir / RESULT_FILE)  # atomic: an interrupted write never leaves half a result


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def measured_seconds(claim_dir: Path) -> float:
    try:
        return float(json.loads((claim_dir / RESULT_FILE).read_text()).get("seconds", math.nan))
    except (OSError, ValueError):
        return math.nan


def run_claims(
    modules: list[ModuleType], mode: str, out: Path, n_jobs: int, device: str, seed: int = 0, rerun: bool = False,
    status: Callable[[str], None] = print, sweep_progress: Callable[[str, int, int], None] | None = None,
) -> dict[int, Outcome]:
    """Run the sweeps of ``modules`` at ``mode``, then measure each claim (or reuse its stored result).

    Args:
        modules: claim modules (:func:`select`).
        mode: quick | full | gpu.
        out: the claims' folder (see the module docstring).
        n_jobs: training jobs at once in a sweep.
        device: torch device of the critic protocols (``cpu``, ``cuda``).
        seed: base seed of the critic protocols.
        rerun: measure every claim again, even where its result is stored.
        status: one line of what runs now.
        sweep_progress: ``(sweep name, finished runs, runs)`` while a sweep runs.

    Returns:
        Each claim's Outcome by number, its ``commands`` filled in.

    Raises:
        ConfigError: an unknown mode, an unwritable ``out``, or a sweep that exited with an error.
    """
    if mode not in MODES:
        raise ConfigError(f"mode={mode} is not allowed: one of {', '.join(MODES)}")
    try:
        (out / "sweeps").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cannot_write(f"out={out}", err, "choose a writable out=") from err
    sweep_dirs, commands = {}, {}
    for sweep in needed_sweeps(modules, mode):
        sweep_dir = out / "sweeps" / sweep.name
        sweep_dirs[sweep.name] = sweep_dir
        commands[sweep.name] = shlex.join(sweep_command(sweep, sweep_dir, n_jobs))
        total = jobs_in(sweep)
        if finished_runs(sweep_dir) >= total:
            status(f"sweep {sweep.name}: its {total} runs are finished")
            continue
        status(f"sweep {sweep.name}: {total} runs ({commands[sweep.name]})")
        run_sweep(sweep_command(sweep, sweep_dir, n_jobs), sweep_dir, out / "sweeps" / f"{sweep.name}.log",
                  lambda done, name=sweep.name, total=total: sweep_progress and sweep_progress(name, done, total))
    outcomes = {}
    for module in modules:
        claim_dir = out / folder(module)
        claim_dir.mkdir(parents=True, exist_ok=True)
        settings = module.settings(mode)
        outcome = None if rerun else stored_outcome(claim_dir, mode, settings)
        if outcome is not None:
            status(f"claim {module.NUMBER}: measured before at these settings ({claim_dir / RESULT_FILE}; rerun=true measures again)")
        else:
            status(f"claim {module.NUMBER}: {module.TITLE}")
            started = time.perf_counter()
            ctx = Context(mode=mode, out=claim_dir, device=device, sweep_dirs=sweep_dirs, seed=seed,
                          progress=lambda message, n=module.NUMBER: status(f"claim {n}: {message}"))
            outcome = module.measure(ctx)
            own = shlex.join(["ganlab", "claims", f"claims=[{module.NUMBER}]", f"mode={mode}", f"out={out}"])
            outcome.commands = [commands[s.name] for s in module.sweeps(mode)] + [own]
            write_outcome(claim_dir, module, mode, settings, outcome, time.perf_counter() - started)
        outcomes[module.NUMBER] = outcome
        status(f"claim {module.NUMBER}: {outcome.verdict.value} ({outcome.because()})")
    return outcomes
