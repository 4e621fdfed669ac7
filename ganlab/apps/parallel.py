"""Jobs side by side on one machine: torch's CPU threads and a GPU for each job of a parallel launch.

``ganlab train -m hydra/launcher=joblib hydra.launcher.n_jobs=N ...`` runs N jobs at once, each
in its own process (joblib's loky workers). A torch process takes every core by default, and N of
them oversubscribe the CPU: on 2 cores, two such jobs each ran a critic step 5-10x slower than one
alone, while two 1-thread jobs ran at 1.3x the combined throughput of one 2-thread job. So
:func:`share_machine`, called by ``run_training`` before anything is built, gives a job of a
parallel launch ``max(1, cores // jobs at once)`` torch threads, where *jobs at once* is the
launcher's ``n_jobs`` (joblib's meaning: -1 all cores, -2 all but one, ...) or the number of jobs
in the sweep, whichever is smaller. ``threads=N`` on the command line wins. With several GPUs and
``device=auto``, job ``hydra.job.num`` runs on ``cuda:<num % GPU count>``. The thread count a job
ran with is ``torch_threads`` in its ``run_info.json``: it changes float results, so runs are
bit-reproducible only for the same thread count.

Why ganlab does this rather than leave it to the launcher: joblib's loky backend does cap the
BLAS/OpenMP threads of its workers (it sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ... to
``cpu_count // n_jobs``, which torch reads at import), but it divides by ``n_jobs``, not by the
jobs that actually run: with the launcher's default ``n_jobs=-1``, a sweep of 4 jobs on 16 cores
gets 1 thread per job and leaves 12 cores idle. It also keeps any of those variables already set
in the user's environment, and neither Hydra nor joblib knows anything of GPUs. Nor does anything
stop a worker's job when the sweep's own process is ended: :func:`stop_with_the_sweep`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("ganlab")

# Launchers that run several jobs of a sweep at once on this machine.
PARALLEL_LAUNCHERS = {"hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask: a cluster job's share, not the whole machine)."""
    if hasattr(os, "sched_getaffinity"):  # Linux; not on macOS or Windows
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def effective_n_jobs(n_jobs: int | None, cores: int) -> int:
    """How many workers joblib starts for ``n_jobs``: None is 1, -1 all cores, -2 all but one, ..."""
    if n_jobs is None or n_jobs == 0:  # joblib refuses 0; the launch fails there, not here
        return 1
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return n_jobs


def jobs_in_sweep(hydra_cfg: DictConfig) -> int | None:
    """How many jobs the sweeper hands the launcher at once (one batch), or None where that is not known.

    A job's own config holds only its own overrides; the sweep's are in ``multirun.yaml``, which
    Hydra's basic sweeper writes into the sweep directory before it launches any job.
    """
    sweeper = OmegaConf.select(hydra_cfg, "sweeper", default=None) or {}
    target = sweeper.get("_target_")
    if target == OPTUNA_SWEEPER:  # it asks n_jobs trials per batch
        return max(1, min(sweeper.get("n_jobs") or 1, sweeper.get("n_trials") or 1))
    if target != BASIC_SWEEPER:
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        master = OmegaConf.load(Path(str(hydra_cfg.sweep.dir)) / "multirun.yaml").hydra
        params = [f"{k}={v}" for k, v in (OmegaConf.select(master, "sweeper.params") or {}).items()]
        overrides = OverridesParser.create().parse_overrides(params + list(master.overrides.task))
        batches = BasicSweeper.split_arguments(overrides, OmegaConf.select(master, "sweeper.max_batch_size"))
    except Exception:  # no multirun.yaml, or a sweep (glob over a group) that needs Hydra's config loader
        return None
    return max(1, len(batches[0]))


def parallel_launch(hydra_cfg: DictConfig) -> bool:
    """Whether this job is one of a sweep whose launcher runs jobs side by side in worker processes."""
    return (OmegaConf.select(hydra_cfg, "mode", default=None) == RunMode.MULTIRUN
            and OmegaConf.select(hydra_cfg, "launcher._target_", default=None) in PARALLEL_LAUNCHERS)


def jobs_at_once(hydra_cfg: DictConfig, cores: int) -> int:
    """How many jobs of this sweep run at the same time on this machine (1 under a sequential launcher)."""
    if not parallel_launch(hydra_cfg):
        return 1
    workers = effective_n_jobs(OmegaConf.select(hydra_cfg, "launcher.n_jobs", default=None), cores)
    in_sweep = jobs_in_sweep(hydra_cfg)
    return min(workers, in_sweep) if in_sweep else workers


def threads_for_job(threads: int, jobs: int, cores: int) -> int:
    """The torch threads a job runs with: the user's ``threads``, else its share of the cores when
    several jobs run at once, else 0 (torch's default)."""
    if threads:
        return threads
    return max(1, cores // jobs) if jobs > 1 else 0


def device_for_job(device: str, jobs: int, job_num: int) -> str:
    """``device=auto`` in a parallel launch on several GPUs: ``cuda:<job_num % GPU count>``; else ``device`` as given."""
    if device != "auto" or jobs < 2 or not torch.cuda.is_available():
        return device
    count = torch.cuda.device_count()
    return f"cuda:{job_num % count}" if count > 1 else device


def stop_with_the_sweep() -> None:
    """Have Linux send this worker SIGTERM when the process that launched the sweep ends.

    joblib's workers are the children of the ``ganlab train -m`` process; when that process alone
    is ended (``kill <pid>``, ``timeout``, the OOM killer), nothing stops them: the running jobs
    train on to their last step with nobody waiting for them, and the idle workers linger for
    loky's idle timeout. With ``PR_SET_PDEATHSIG`` the job gets the SIGTERM that ganlab's signal
    handling turns into a checkpoint and a ``failed.json`` saying how to resume, and an idle
    worker ends. Elsewhere than on Linux this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl in this libc: keep loky's behaviour
        pass


def share_machine(threads: int, device: str) -> str:
    """Set torch's CPU threads for this job and return the device it runs on (see the module docstring)."""
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    if hydra_cfg is not None and parallel_launch(hydra_cfg):
        stop_with_the_sweep()
    cores = available_cores()
    jobs = jobs_at_once(hydra_cfg, cores) if hydra_cfg is not None else 1
    chosen = threads_for_job(threads, jobs, cores)
    if chosen:
        torch.set_num_threads(chosen)
    if jobs > 1:
        how = "threads on the command line" if threads else "the cores divided among them; threads=N to choose"
        log.info("%d jobs at once on %d cores: %d torch thread(s) for this job (%s)", jobs, cores, chosen, how)
        return device_for_job(device, jobs, int(OmegaConf.select(hydra_cfg, "job.num", default=0) or 0))
    return device
