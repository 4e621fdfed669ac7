"""Training as a submitit job (``hydra/launcher=slurm`` or ``submitit_local``): a job that is
preempted or reaches its time limit writes its checkpoint, is requeued, and continues from it.

SLURM warns a job before it ends it: submitit's requeue signal (``SIGUSR2``, or
``$SUBMITIT_PREEMPT_SIGNAL``) comes ``signal_delay_s`` before the time limit, and on preemption where
the cluster sends it; elsewhere a preempted job gets only ``SIGTERM``. In each job process submitit
handles its requeue signal (it calls the launcher's ``checkpoint()``, which resubmits the job with
the same overrides, requeues it and exits inside the handler) and ignores ``SIGTERM``. That
resubmits the job but knows nothing of training, so ganlab adds the two parts only it can do:

* **write the checkpoint before the job exits.** In a submitit job, ganlab's
  :class:`~ganlab.train.signals.StopOnSignal` also takes the requeue signal, so that the loop
  finishes its step and writes a checkpoint; :func:`hand_over` then calls submitit's handler,
  which requeues the job and exits (exit status 144 under the local executor, whose controller then
  starts the job again; ``scontrol requeue`` on SLURM). ``SIGTERM`` is handed over the same way,
  so a job preempted without the user signal is requeued with a fresh checkpoint rather than
  ending the sweep (a job that submitit will not requeue, e.g. after ``max_num_timeout`` time limits,
  is recorded as failed, with its checkpoint, and the sweep goes on). ``SIGINT`` still stops
  the job and the sweep.
* **continue from that checkpoint.** The requeued job runs with the same overrides in the same job
  directory, where it would otherwise train again from step 0. Each job writes its submitit
  job id into ``submitit_job.json`` in its directory (SLURM keeps the id across a requeue, the local
  executor its controller's); a job that finds its own id there with a checkpoint beside it is
  that job requeued, and continues as with ``resume=auto`` (:func:`continue_if_requeued`), also when
  SLURM requeued it without a warning (node failure, preemption without a grace time). A sweep
  started again in the same directory has other job ids and is left to ``resume`` as before.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ganlab.checkpoint import latest_checkpoint
from ganlab.errors import TrainingFailed
from ganlab.train.signals import EXIT_STATUS, StopOnSignal

log = logging.getLogger("ganlab")

JOB_FILE = "submitit_job.json"  # in the job directory: the submitit job that last ran there


def _is_submitits(handler: Any) -> bool:
    """Whether ``handler`` is one of the signal handlers that submitit installs in a job's process."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return False
    try:  # submitit is an extra: imported only in a submitit job
        from submitit.core.job_environment import SignalHandler
    except ImportError:
        return False
    return isinstance(getattr(handler, "__self__", None), SignalHandler)


def _submitit() -> tuple[Any, signal.Signals] | None:
    """``(job environment, requeue signal)`` when this process runs a submitit job whose handlers
    are installed, else None (e.g. ganlab started by a shell command inside a submitit job)."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    try:
        from submitit import JobEnvironment

        env = JobEnvironment()
        requeue_signal = signal.Signals(env._usr_sig())  # what submitit listens to, after $SUBMITIT_PREEMPT_SIGNAL
    except Exception:  # no submitit, an executor it does not know, or a bad $SUBMITIT_PREEMPT_SIGNAL
        return None
    return (env, requeue_signal) if _is_submitits(signal.getsignal(requeue_signal)) else None


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals on which training stops after its step with a checkpoint: SIGINT and SIGTERM, and
    in a submitit job submitit's requeue signal."""
    job = _submitit()
    return tuple(EXIT_STATUS) + ((job[1],) if job is not None and job[1] not in EXIT_STATUS else ())


def continue_if_requeued(cfg: DictConfig, run_dir: Path) -> None:
    """In a submitit job: set ``resume=auto`` when this is the job requeued into its own directory
    (its id in ``submitit_job.json`` and a checkpoint there), then record this job's id."""
    job = _submitit()
    if job is None:
        return
    job_id = str(job[0].job_id)
    record = run_dir / JOB_FILE
    try:
        earlier = json.loads(record.read_text()).get("job_id")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier == job_id and not cfg.resume and latest_checkpoint(run_dir) is not None:
        log.info("submitit job %s was requeued: it continues from its newest checkpoint in %s (resume=auto)", job_id, run_dir)
        cfg.resume = "auto"
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{JOB_FILE}.tmp")  # atomic: a requeue never finds half a record
    tmp.write_text(json.dumps({"job_id": job_id, "host": socket.gethostname(), "pid": os.getpid()}, indent=2) + "\n")
    tmp.replace(record)


def hand_over(stop: StopOnSignal) -> None:
    """After a stop by ``stop.received`` with its checkpoint written: in a submitit job, let submitit
    requeue the job (its handler exits the process); otherwise, or on SIGINT, return."""
    if stop.received is None or stop.received == signal.SIGINT:
        return
    # submitit's handler of its requeue signal, as StopOnSignal found it (SIGTERM's only logs)
    requeue = [(sig, handler) for sig, handler in stop.previous.items() if sig != signal.SIGTERM and _is_submitits(handler)]
    if not requeue:
        return
    requeue_signal, handler = requeue[0]
    stop.__exit__(None, None, None)  # submitit's handlers back: SLURM follows a requeue with SIGTERM, which submitit's ignores
    log.warning("%s: the checkpoint is written; submitit requeues the job, which continues from it", stop.received.name)
    try:
        handler(stop.received, None)  # SignalHandler.checkpoint_and_try_requeue: requeues and exits (SystemExit)
    except Exception as err:  # submitit's "Job not requeued because: timed-out too many times.", or scontrol failing
        raise TrainingFailed(f"{stop.received.name}: this job was not requeued ({str(err).strip()}); its checkpoint is saved: "
                             f"continue it with resume=auto") from None
    sys.exit(128 + requeue_signal)  # a task other than the first: submitit neither requeues nor exits there
