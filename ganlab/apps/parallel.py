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

Stopping a parallel sweep (Ctrl-C, SIGTERM) is ganlab's too, because joblib's own handling loses
the checkpoints: the parent gets KeyboardInterrupt inside ``Parallel``, which SIGKILLs the workers at
once; a worker that waits for its next job dies of KeyboardInterrupt in loky's loop, which marks
the pool broken (every worker SIGKILLed); and a job's ``sys.exit(130)`` reaches the parent as an
error after which joblib kills the other workers. :class:`ParallelLaunch` (a Hydra callback in
``conf/train.yaml``) therefore, in the sweep's process, takes SIGINT and SIGTERM away from the main
thread for the whole launch (blocked there, taken by a thread of its own, and handled without raising),
so the workers loky starts begin with both blocked too; a job takes them back when it starts (:func:`stop_with_the_sweep`),
stops after its step with a checkpoint, returns its failure record (``ganlab.errors``), and gives
them up again when it ends. On the first stop signal the sweep's process writes ``STOP_FILE`` into
the sweep directory (a job that starts after it does not train) and, for SIGTERM, forwards it to the
workers (a terminal's Ctrl-C reaches them itself; a second SIGINT would make a job quit at once).
The sweep then ends as usual, with its report, and exits 128 + the signal's number
(:func:`stopped_by`, read by ``ganlab.apps.sweep_report``).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ganlab.apps.search import BASIC_SWEEPER, OPTUNA_SWEEPERS

log = logging.getLogger("ganlab")

# Launchers that run several jobs of a sweep at once on this machine.
PARALLEL_LAUNCHERS = {"hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}


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
    if target in OPTUNA_SWEEPERS:  # it asks n_jobs trials per batch
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


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
STOP_FILE = ".stopped"  # in the sweep directory: the signal's name, written when the sweep was told to stop
_PR_SET_PDEATHSIG = 1


def _parent_death_signal(sig: int) -> None:
    """Have Linux send this process ``sig`` when its parent ends (``PR_SET_PDEATHSIG``); elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this libc: keep loky's behaviour
        pass


class _Worker:
    """What :func:`stop_with_the_sweep` keeps about the worker process's sweep between its jobs."""

    parent: int | None = None  # the sweep's process, as this worker's job found it


def _stop_before_training(signum: int, frame: Any) -> None:
    """A stop signal while the job builds its run, before training's own handler takes over."""
    from ganlab.errors import TrainingFailed

    name = signal.Signals(signum).name
    raise TrainingFailed(f"{name}: the sweep was stopped before this job started training", 128 + signum)


def stop_with_the_sweep(sweep_dir: Path) -> None:
    """Prepare a worker's job to stop with the sweep; raise if the sweep was stopped already.

    joblib's workers are the children of the ``ganlab train -m`` process; when that process alone
    is ended (``kill <pid>``, ``timeout``, the OOM killer), nothing stops them: the running jobs
    train on to their last step with nobody waiting for them, and the idle workers linger for
    loky's idle timeout. With ``PR_SET_PDEATHSIG`` the job gets the SIGTERM that ganlab's signal
    handling turns into a checkpoint and a ``failed.json`` saying how to resume; :meth:`ParallelLaunch.on_job_end`
    then ends the worker (loky's worker would wait for its next job forever: the other workers
    hold its queue open). The worker was started with SIGINT and SIGTERM blocked (see the module
    docstring): the job takes them back here, discarding any that came while the worker was idle.
    """
    _Worker.parent = os.getppid()
    _parent_death_signal(signal.SIGTERM)
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)  # discards a pending one
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _stop_before_training)  # training's StopOnSignal takes over from this
    stopped = stopped_sweep_signal(sweep_dir)
    if stopped is not None:
        _stop_before_training(stopped, None)


def job_ended() -> None:
    """In a worker after its job: stop signals ignored again until the next job, and the worker ends
    if the sweep's process has (an idle worker has nothing to save: SIGKILL when the parent dies)."""
    if _Worker.parent is None:
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _parent_death_signal(signal.SIGKILL)
    if os.getppid() != _Worker.parent:  # the parent is gone (this worker was reparented)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signal.SIGTERM)  # not sys.exit: loky's worker loop catches SystemExit


def stopped_sweep_signal(sweep_dir: Path) -> int | None:
    """The signal that stopped the sweep in ``sweep_dir`` (its ``STOP_FILE``), or None."""
    try:
        return int(signal.Signals[(Path(sweep_dir) / STOP_FILE).read_text().strip()])
    except (OSError, KeyError):
        return None


class _Sweep:
    """The sweep process's state during a parallel launch (one at a time per process)."""

    received: signal.Signals | None = None
    sweep_dir: Path | None = None
    receiver: threading.Thread | None = None
    done = threading.Event()
    mask: set | None = None
    handlers: dict = {}


def stopped_by() -> signal.Signals | None:
    """The stop signal the running (or just ended) parallel sweep received, or None."""
    return _Sweep.received


def _receive() -> None:
    """A thread that takes the sweep's stop signals for the main thread, which blocks them."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _Sweep.done.wait()


def _stop_the_sweep(signum: int, frame: Any) -> None:
    """The sweep process's handler of SIGINT and SIGTERM: it does not raise (see the module docstring)."""
    if _Sweep.received is not None:
        return  # stopping already
    _Sweep.received = signal.Signals(signum)
    log.warning("%s received: each running job stops after its step with a checkpoint; no further job starts", _Sweep.received.name)
    try:
        tmp = _Sweep.sweep_dir / f".{STOP_FILE}.tmp"
        tmp.write_text(_Sweep.received.name + "\n")
        tmp.replace(_Sweep.sweep_dir / STOP_FILE)
    except OSError as err:
        log.error("cannot write %s (%s): jobs not started yet will run", _Sweep.sweep_dir / STOP_FILE, err)
    if signum == signal.SIGTERM:  # a terminal's Ctrl-C reaches the workers itself, a kill of this process does not
        for worker in multiprocessing.active_children():
            try:
                os.kill(worker.pid, signal.SIGTERM)
            except (OSError, TypeError):
                pass


def _start_resource_trackers() -> None:
    """Start loky's and multiprocessing's resource trackers now: starting one unblocks SIGINT and
    SIGTERM in the thread that starts it (``SIG_UNBLOCK``, not the mask it found), which would undo
    the block below for the workers started after it."""
    try:
        from joblib.externals.loky.backend import resource_tracker as loky_tracker
        from multiprocessing import resource_tracker

        loky_tracker.ensure_running()
        resource_tracker.ensure_running()
    except Exception as err:  # another joblib: the workers may then die of a Ctrl-C while they wait
        log.debug("could not start the resource trackers first: %s", err)


class ParallelLaunch(Callback):
    """Stops a parallel launch's jobs with their checkpoints on SIGINT/SIGTERM (see the module docstring)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _Sweep.received = None
        if (OmegaConf.select(config, "hydra.launcher._target_", default=None) not in PARALLEL_LAUNCHERS
                or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask")):
            return
        _Sweep.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        _Sweep.sweep_dir.mkdir(parents=True, exist_ok=True)
        (_Sweep.sweep_dir / STOP_FILE).unlink(missing_ok=True)  # from an earlier sweep into this directory
        _Sweep.handlers = {sig: signal.signal(sig, _stop_the_sweep) for sig in STOP_SIGNALS}
        _start_resource_trackers()
        # Blocked in the main thread before loky starts its workers, which inherit the mask; the
        # receiver thread takes the signals instead and Python runs the handler in the main thread.
        _Sweep.mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        _Sweep.done.clear()
        _Sweep.receiver = threading.Thread(target=_receive, name="ganlab-sweep-signals", daemon=True)
        _Sweep.receiver.start()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if _Sweep.receiver is None:
            return
        _Sweep.done.set()
        _Sweep.receiver.join(timeout=5)
        _Sweep.receiver = None
        signal.pthread_sigmask(signal.SIG_SETMASK, _Sweep.mask)
        for sig, handler in _Sweep.handlers.items():
            signal.signal(sig, handler)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        job_ended()  # in a worker process: nothing in the sweep's own


def share_machine(threads: int, device: str) -> str:
    """Set torch's CPU threads for this job and return the device it runs on (see the module docstring)."""
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    if hydra_cfg is not None and parallel_launch(hydra_cfg):
        stop_with_the_sweep(Path(str(hydra_cfg.sweep.dir)))
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
