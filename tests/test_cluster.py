"""Sweeps through hydra-submitit-launcher: the SLURM preset reaches sbatch, and submitit's local
executor (``hydra/launcher=submitit_local``, the same launcher code and job process as on SLURM)
runs a sweep, and requeues jobs that get the cluster's warning signal or a preemption's SIGTERM;
they continue from the checkpoint written on the signal (:mod:`ganlab.apps.cluster`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from unittest import mock

import pytest
import submitit
from submitit.core.job_environment import SignalHandler
from submitit.core.utils import DelayedSubmission, JobPaths
import torch
from hydra.utils import instantiate

from ganlab.apps import cluster
from ganlab.errors import TrainingFailed
from ganlab.train.signals import StopOnSignal

from conftest import compose_train_with_hydra, ganlab_command
from inprocess import final_networks

pytestmark = pytest.mark.cli

SMALL = ["batch_size=32", "log_every=100", "eval_samples=64", "model.width=8", "threads=1"]


def run_sweep(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(OMP_NUM_THREADS="1", COLUMNS="200")
    # A session of its own, so that a failed test can stop the sweep with its job processes.
    return subprocess.Popen(ganlab_command() + ["train", "-m", "hydra/launcher=submitit_local", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(sweep: subprocess.Popen, timeout: float) -> str:
    try:
        return sweep.communicate(timeout=timeout)[0]
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)


def test_the_slurm_preset_reaches_sbatch(tmp_path):
    cfg = compose_train_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}"])
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    submitted = {}

    def map_array(executor, fn, *args):  # what the launcher would submit, instead of submitting it
        submitted["sbatch"] = executor._executor._make_submission_file_text("COMMAND", "uid")
        submitted["max_num_timeout"] = executor._executor.max_num_timeout
        return []

    with mock.patch.object(submitit.AutoExecutor, "map_array", map_array), \
            mock.patch.object(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1)):  # no srun here
        launcher.launch([["seed=0"]], initial_job_idx=0)
    sbatch = {line.split()[1] for line in submitted["sbatch"].splitlines() if line.startswith("#SBATCH")}
    assert {"--partition=gpu", "--time=240", "--gpus-per-node=1", "--cpus-per-task=4", "--mem=16GB", "--signal=USR2@120"} <= sbatch
    assert submitted["max_num_timeout"] == 20


def test_a_sweep_runs_through_submitit(workdir):
    sweep = run_sweep([*SMALL, "steps=6", "sample_every=6", "eval_every=6", "seed=0,1", "hydra.sweep.dir=sweep"], cwd=workdir)
    output = finish(sweep, timeout=240)
    assert sweep.returncode == 0, output[-3000:]
    assert "all 2 jobs succeeded" in output
    jobs = workdir / "sweep"
    assert {p.parent.name for p in jobs.glob("*/metrics.json")} == {"seed=0", "seed=1"}  # named as under Hydra's basic launcher


def test_jobs_warned_or_preempted_are_requeued_and_end_bit_identical(workdir):
    # keep_checkpoints does not change the trajectory: three copies of one run, two of which are
    # interrupted after their first checkpoint, the way SLURM does, and requeued.
    signals = {"keep_checkpoints=3": signal.SIGUSR2, "keep_checkpoints=4": signal.SIGTERM}  # SLURM's warning; a preemption
    sweep = run_sweep([*SMALL, "steps=400", "sample_every=400", "eval_every=400", "checkpoint_every=50",
                       "keep_checkpoints=3,4,5", "hydra.sweep.dir=sweep"], cwd=workdir)
    jobs = workdir / "sweep"
    try:
        waiting, deadline = dict(signals), time.monotonic() + 180
        while waiting and time.monotonic() < deadline and sweep.poll() is None:
            for job, sig in list(waiting.items()):
                if any((jobs / job / "checkpoints").glob("step_*.pt")):  # it trains: stop it in the middle
                    os.kill(json.loads((jobs / job / "submitit_job.json").read_text())["pid"], sig)
                    del waiting[job]
            time.sleep(0.005)
        assert not waiting, f"no checkpoint appeared in {list(waiting)}"
    finally:
        output = finish(sweep, timeout=240)
    assert sweep.returncode == 0, output[-3000:]
    assert "all 3 jobs succeeded" in output

    whole = final_networks(jobs / "keep_checkpoints=5")
    assert whole["step"] == 400
    for job, sig in signals.items():
        resumed = [int(p.stem.rsplit("_", 1)[1]) for p in (jobs / job).glob("run_info_resume_*.json")]
        assert len(resumed) == 1 and 50 <= resumed[0] < 400, (job, resumed)  # stopped, requeued once, continued from that step
        log = (jobs / job / "train.log").read_text()
        assert f"{sig.name}: the checkpoint is written" in log and "was requeued" in log, log[-2000:]
        cut = final_networks(jobs / job)
        assert cut["step"] == 400
        for net in ("G", "D"):
            assert cut[net].keys() == whole[net].keys()
            for key in whole[net]:
                torch.testing.assert_close(cut[net][key], whole[net][key], rtol=0, atol=0, msg=f"{job}: {net}.{key}")


class Task:
    def __call__(self) -> None:
        pass

    def checkpoint(self) -> DelayedSubmission:
        return DelayedSubmission(self)


def test_a_job_that_submitit_will_not_requeue_again_fails_and_keeps_its_checkpoint(tmp_path, monkeypatch):
    """After max_num_timeout time limits submitit refuses the requeue: the job is recorded as failed
    (the sweep goes on) with a message saying how to continue it."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")  # this process is a job of submitit's local executor
    delayed = DelayedSubmission(Task())
    delayed.set_timeout(0, 0)  # no time limits left: this one is the last
    handler = SignalHandler(submitit.JobEnvironment(), JobPaths(tmp_path, job_id="1", task_id=0), delayed)
    before = signal.signal(signal.SIGUSR2, handler.checkpoint_and_try_requeue)  # as submitit installs it
    try:
        with StopOnSignal(cluster.stop_signals()) as stop:
            os.kill(os.getpid(), signal.SIGUSR2)  # taken by ganlab: the loop would now write its checkpoint
            assert stop.received == signal.SIGUSR2
            with pytest.raises(TrainingFailed, match=r"^SIGUSR2: this job was not requeued \(Job not requeued because: timed-out too many times.\); "
                                                     r"its checkpoint is saved: continue it with resume=auto$") as failed:
                cluster.hand_over(stop)
        assert failed.value.exit_status == 3 and not failed.value.ends_sweep
    finally:
        signal.signal(signal.SIGUSR2, before)
