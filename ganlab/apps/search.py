"""Hyperparameter search: what a ``ganlab train`` job returns to a sweeper, and ganlab's Optuna sweeper.

A run returns its dict of final metrics. Hydra's basic sweeper only collects it; a sweeper that
optimises (hydra-optuna-sweeper, ``hydra/sweeper=optuna``) needs a float, or a list of floats for
several objectives. :func:`task_result` gives it the metric that the config key
``optimized_metric`` names (``auto``: ``Metrics/w1_ratio`` on 2-D data, ``Metrics/fcd`` on images).

:func:`run_study` is the sweep of ``hydra/sweeper=search`` (the class is
``hydra_plugins.ganlab_sweeper.optuna_search.OptunaSearch``, since Hydra instantiates sweepers only
from the ``hydra_plugins`` namespace), which the presets in ``conf/hparams_search/`` use: the Optuna
plugin's sweep with what the plugin cannot do:

- jobs numbered by trial. The plugin restarts ``hydra.job.num`` at 0 in every invocation, while a
  stored study (``hydra.sweeper.storage=sqlite:///...`` with a ``study_name``) that is continued
  numbers its trials across invocations; here ``hydra.job.num`` is the trial's number, and each job
  directory is named ``trial=<n>,<swept overrides>``, so a continued study (two trials can draw the
  same values) never writes into an earlier trial's directory;
- a continued study's sampler seeded with its seed plus the trials so far, so that it does not
  draw its first invocation's values again;
- one line instead of a traceback when every trial failed (``No trials are completed yet``; the
  failed jobs are then listed by ganlab's sweep report) or when a continued study's categorical
  choices differ from the stored ones;
- the best trial (or, with several objectives, each Pareto-optimal trial) printed as a
  ``ganlab train ...`` command to copy.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from ganlab.errors import EXIT_USAGE
from ganlab.metrics import named_metric

log = logging.getLogger("ganlab")

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
SEARCH_SWEEPER = "hydra_plugins.ganlab_sweeper.optuna_search.OptunaSearch"  # hydra/sweeper=search
OPTUNA_SWEEPERS = {"hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", SEARCH_SWEEPER}  # batches of n_jobs trials
TRIAL_DIR = re.compile(r"^trial=(\d+)(,|$)")


def optimized_tags(optimized_metric: Any, metrics: dict[str, float]) -> str | list[str]:
    """The tag (or list of tags) that ``optimized_metric`` names for a run that reported ``metrics``."""
    if isinstance(optimized_metric, (list, tuple, ListConfig)):
        return [optimized_tags(m, metrics) for m in optimized_metric]
    return named_metric("optimized_metric", optimized_metric, sorted(metrics))


def sweeper_optimises() -> bool:
    """Whether this job runs under a sweeper that optimises its return value (any sweeper but Hydra's basic one)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    target = HydraConfig.get().sweeper.get("_target_")
    return bool(target) and target != BASIC_SWEEPER


def task_result(cfg: DictConfig, metrics: dict[str, float], optimising: bool | None = None) -> dict[str, float] | float | list[float]:
    """What ``ganlab train``'s task function returns: the dict of metrics, or the optimised metric(s) for a sweeper that optimises."""
    if not (sweeper_optimises() if optimising is None else optimising):
        return metrics
    tags = optimized_tags(cfg.optimized_metric, metrics)
    if isinstance(tags, list):
        return [float(metrics[t]) for t in tags]
    return float(metrics[tags])


def best_command(trial: Any) -> str:
    """The ``ganlab train`` command that reruns an Optuna trial of a Hydra sweep as a single run.

    The Optuna sweeper stores each trial's searched values as its params and the sweep's fixed
    overrides as its user attributes, and ran the job with ``key=value`` of both.
    """
    overrides = {**trial.params, **trial.user_attrs}
    return "ganlab train " + " ".join(shlex.quote(f"{key}={value}") for key, value in overrides.items())


def report_best(study: Any) -> list[str]:
    """Lines that give the study's best trial (or Pareto-optimal trials) as commands."""
    if len(study.directions) == 1:
        best = study.best_trial
        return [f"best trial {best.number} of {len(study.trials)} (value {best.value:.6g}); to run it again:", f"  {best_command(best)}"]
    lines = [f"Pareto-optimal trials: {len(study.best_trials)} of {len(study.trials)}; to run one again:"]
    for trial in study.best_trials:
        lines += [f"  # trial {trial.number}, values {', '.join(f'{v:.6g}' for v in trial.values)}", f"  {best_command(trial)}"]
    return lines


def run_study(impl: Any, arguments: list[str]) -> None:
    """Run the Optuna sweeper's ``sweep`` (``impl``: its ``OptunaSweeperImpl``) with ganlab's additions (module docstring)."""
    import optuna

    if impl.storage is None:  # in memory, but a storage object that the study can be read back from
        impl.storage = optuna.storages.InMemoryStorage()
    done = _existing_trials(impl.study_name, impl.storage)
    # The plugin launches batch after batch with initial_job_idx=job_idx, asking Optuna for one
    # trial per job: starting at the study's trial count keeps hydra.job.num == the trial's number.
    impl.job_idx = done
    if done:
        reseed_for_continuation(impl, done)
    number_job_dirs(impl.config)
    check_trial_dirs_free(Path(str(impl.config.hydra.sweep.dir)), done)
    if done:
        log.info("continuing study %s, which has %d trials: this invocation's trials are numbered from %d", impl.study_name, done, done)
    try:
        impl.sweep(arguments)
    except ValueError as err:
        if "dynamic value space" in str(err):  # Optuna: a categorical parameter's choices differ from the stored study's
            print(f"error: {str(err).rstrip('.')}: a stored study keeps each categorical parameter's choices; continue {impl.study_name} with the same "
                  f"choices, or start another study (hydra.sweeper.study_name=...)", file=sys.stderr, flush=True)
            sys.exit(EXIT_USAGE)
        if "No trials are completed yet" not in str(err):
            raise
        print("no trial of the study completed (each one failed or diverged), so there is no best trial", flush=True)
        return
    print("\n".join(report_best(_load_study(impl.study_name, impl.storage))), flush=True)


def reseed_for_continuation(impl: Any, done: int) -> None:
    """Seed a continued study's sampler with its seed plus the trials so far.

    The plugin builds the sampler afresh in each invocation: with the preset's fixed seed, a
    continued study would draw the same values as its first invocation (TPE's start-up trials are
    random draws), repeating those trials. Seeding with ``seed + done`` keeps the study
    reproducible for the same sequence of commands and makes each continuation draw new values.
    """
    from hydra.utils import instantiate

    sampler_cfg = impl.config.hydra.sweeper.sampler
    if sampler_cfg.get("seed") is None or sampler_cfg.get("_partial_"):  # unseeded, or a grid: nothing repeats by seed
        return
    impl.sampler = instantiate(sampler_cfg, seed=int(sampler_cfg.seed) + done)


def number_job_dirs(config: DictConfig) -> None:
    """Put each trial's number first in its job directory's name: ``trial=3,objective.optimizer.lr_D=...``.

    Two trials can draw the same values, and a continued study's trials must not land in an earlier
    invocation's directories. The launcher composes every job from the sweep config's
    ``hydra.overrides.hydra`` (``ConfigLoader.load_sweep_config``), so the name is recorded there,
    after any ``hydra.sweep.subdir`` set before (the later override wins).
    """
    subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"]
    if str(subdir).startswith("trial="):
        return
    numbered = f"trial=${{hydra.job.num}},{subdir}" if subdir else "trial=${hydra.job.num}"
    if '"' in numbered:  # cannot be written as one quoted override; keep the names as they are
        log.warning("hydra.sweep.subdir=%s holds a double quote: job directories are not numbered by trial", subdir)
        return
    with read_write(config), open_dict(config):
        config.hydra.sweep.subdir = numbered
        config.hydra.overrides.hydra.append(f'hydra.sweep.subdir="{numbered}"')


def trial_number(job_dir: Path) -> int | None:
    """The trial number in a job directory's name (``trial=12,seed=0`` -> 12), or None."""
    found = TRIAL_DIR.match(job_dir.name)
    return int(found.group(1)) if found else None


def check_trial_dirs_free(sweep_dir: Path, first: int) -> None:
    """Refuse (one line, exit 2) when the sweep directory holds a job of a trial number this invocation will use.

    That happens when a stored study was deleted, or another study was stored under another name,
    while its jobs are still in the sweep directory: trials would be numbered from 0 again.
    """
    taken = sorted(n for p in sweep_dir.glob("trial=*") if (n := trial_number(p)) is not None and n >= first) if sweep_dir.is_dir() else []
    if taken:
        print(f"error: hydra.sweep.dir={sweep_dir} holds the job of trial {taken[0]}, but this study's next trial is number {first}: "
              f"its jobs would be written over; choose a new hydra.sweep.dir, or the study (hydra.sweeper.storage, study_name) that wrote them",
              file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)


def continues_study(config: DictConfig, jobs: list[Path]) -> bool:
    """Whether a sweep into a directory that holds the job directories ``jobs`` only adds trials of a stored study.

    True for ``hydra/sweeper=search`` with a stored, named study when every job there is one of
    that study's trials (``trial=<n>,...`` with n below its trial count): new trials are numbered
    after those, so their job directories are new. ganlab's check against writing over an earlier
    sweep (:func:`ganlab.apps.output_dir.check_not_an_earlier_sweep`) lets such a sweep through.
    """
    sweeper = OmegaConf.select(config, "hydra.sweeper", default=None)
    if sweeper is None or sweeper.get("_target_") != SEARCH_SWEEPER or not sweeper.get("storage") or not sweeper.get("study_name"):
        return False
    done = _existing_trials(sweeper.study_name, sweeper.storage)
    return all((n := trial_number(job)) is not None and n < done for job in jobs)


def _load_study(name: str | None, storage: Any) -> Any:
    import optuna

    if name is None:  # the plugin let Optuna name it: the storage's newest study
        name = optuna.get_all_study_summaries(storage)[-1].study_name
    return optuna.load_study(study_name=name, storage=storage)


def _existing_trials(name: str | None, storage: Any) -> int:
    """How many trials the stored study already has (0 for a new or unnamed study: Optuna then creates a new one)."""
    if name is None:
        return 0
    import optuna

    try:
        return len(optuna.load_study(study_name=name, storage=storage).trials)
    except KeyError:  # no such study yet
        return 0



def register_sweeper() -> None:
    """Make ``hydra/sweeper=search`` instantiable however ganlab is installed.

    Hydra instantiates only plugins it found by scanning the ``hydra_plugins`` namespace with
    ``pkgutil``, and an editable install (``pip install -e .``) maps ``hydra_plugins.ganlab_sweeper``
    with an import hook that ``pkgutil`` cannot list: the scan misses it although it imports. Hydra's
    ``Plugins.register`` adds it by hand. Called when ``ganlab train`` is imported, before Hydra starts.
    """
    try:
        from hydra_plugins.ganlab_sweeper.optuna_search import OptunaSearch
    except ImportError:  # the sweeps extra is not installed: hydra/sweeper=search then names it (ganlab.cli)
        return
    from hydra.core.plugins import Plugins

    Plugins.instance().register(OptunaSearch)


register_sweeper()
