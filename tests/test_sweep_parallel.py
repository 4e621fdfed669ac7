"""Jobs side by side (hydra-joblib-launcher): each job's share of the cores and its own GPU.

The rule (:mod:`ganlab.apps.parallel`) is tested in process on the real composed config with
Hydra's runtime set as a launcher sets it, with a faked core count and a faked GPU count; two
real joblib sweeps (the installed ``ganlab`` command in a subprocess, tiny settings) check that
the jobs run in joblib's worker processes with the threads the rule gives, and that a failing
job there is recorded and reported as under the basic launcher; two more that a sweep whose process
is killed, or that gets Ctrl-C, stops every running job with its checkpoint and leaves no process
behind. scripts/bench_sweep.py is run once on tiny settings for the format of its lines (no
timing asserted).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from ganlab.apps import parallel
from ganlab.apps.parallel import available_cores, effective_n_jobs, share_machine

from conftest import compose_train_with_hydra, ganlab_command, run_ganlab

pytestmark = pytest.mark.cli

JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
# Tiny jobs; threads is left at 0 so that the rule chooses.
SMALL = ["steps=6", "batch_size=32", "log_every=3", "sample_every=6", "eval_every=6", "eval_samples=64", "model.width=8"]


@contextmanager
def hydra_job(overrides: list[str], sweep_dir: Path, job_num: int = 0, mode: RunMode = RunMode.MULTIRUN):
    """Hydra's runtime as a launcher sets it for job ``job_num`` of a sweep in ``sweep_dir``."""
    cfg = compose_train_with_hydra(overrides)
    with open_dict(cfg.hydra):
        cfg.hydra.mode = mode
        cfg.hydra.job.num = job_num
        cfg.hydra.sweep.dir = str(sweep_dir)
    HydraConfig.instance().set_config(cfg)
    try:
        yield cfg
    finally:
        HydraConfig.instance().cfg = None


def write_multirun_yaml(sweep_dir: Path, task_overrides: list[str]) -> None:
    """What Hydra's basic sweeper writes before it launches: the sweep's own overrides."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    cfg = compose_train_with_hydra(JOBLIB)
    with open_dict(cfg.hydra):
        cfg.hydra.overrides.task = task_overrides
    OmegaConf.save(cfg, sweep_dir / "multirun.yaml")


@pytest.fixture(autouse=True)
def not_tied_to_the_parent(monkeypatch):
    """In process, share_machine must not ask Linux to stop pytest when pytest's parent ends."""
    monkeypatch.setattr(parallel, "stop_with_the_sweep", lambda sweep_dir: None)


@pytest.fixture
def torch_threads():
    """Torch's thread count is process-wide: put it back after the test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cores(monkeypatch):
    """A machine with 8 cores, whatever this one has."""
    monkeypatch.setattr(parallel, "available_cores", lambda: 8)
    return 8


def test_effective_n_jobs_follows_joblib():
    assert [effective_n_jobs(n, cores=8) for n in (1, 2, 16, -1, -2, -8, -20, None)] == [1, 2, 16, 8, 7, 1, 1, 1]


def test_a_joblib_job_gets_the_cores_divided_by_the_jobs_running_at_once(tmp_path, cores, torch_threads):
    write_multirun_yaml(tmp_path, ["seed=0,1,2", "objective=js,wgan_gp"])  # 6 jobs
    with hydra_job([*JOBLIB, "hydra.launcher.n_jobs=4"], tmp_path):
        assert share_machine(0, "cpu") == "cpu"
        assert torch.get_num_threads() == 2  # 8 cores // 4 jobs at once


def test_n_jobs_minus_1_is_every_core_and_a_smaller_sweep_gets_more_threads_each(tmp_path, cores, torch_threads):
    write_multirun_yaml(tmp_path, ["seed=0,1"])
    with hydra_job([*JOBLIB, "hydra.launcher.n_jobs=-1"], tmp_path):  # 8 workers, but the sweep has 2 jobs
        share_machine(0, "cpu")
        assert torch.get_num_threads() == 4
    with hydra_job([*JOBLIB, "hydra.launcher.n_jobs=-1"], tmp_path / "unknown"):  # no multirun.yaml: 8 at once
        share_machine(0, "cpu")
        assert torch.get_num_threads() == 1


@pytest.mark.parametrize("sweeper", ["optuna", "search"])  # ganlab's search sweeper batches its trials as Optuna's does
def test_an_optuna_study_runs_its_sweepers_n_jobs_trials_at_once(tmp_path, cores, torch_threads, sweeper):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    with hydra_job([*JOBLIB, "hydra.launcher.n_jobs=-1", f"hydra/sweeper={sweeper}", "hydra.sweeper.n_jobs=3"], tmp_path):
        share_machine(0, "cpu")
        assert torch.get_num_threads() == 2  # 8 cores // 3 trials per batch


def test_the_users_threads_win_and_the_basic_launcher_is_unchanged(tmp_path, cores, torch_threads):
    write_multirun_yaml(tmp_path, ["seed=0,1"])
    with hydra_job(JOBLIB, tmp_path):
        share_machine(3, "cpu")
        assert torch.get_num_threads() == 3
    torch.set_num_threads(3)
    with hydra_job([], tmp_path):  # the basic launcher runs one job at a time: torch's default stays
        assert share_machine(0, "auto") == "auto"
        assert torch.get_num_threads() == 3
    with hydra_job(JOBLIB, tmp_path, mode=RunMode.RUN):  # a single run names no sweep
        share_machine(0, "cpu")
        assert torch.get_num_threads() == 3


def test_each_parallel_job_gets_its_own_gpu_by_job_number(tmp_path, monkeypatch, cores, torch_threads):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    write_multirun_yaml(tmp_path, ["seed=0,1,2,3,4,5"])
    chosen = []
    for num in range(5):
        with hydra_job(JOBLIB, tmp_path, job_num=num):
            chosen.append(share_machine(0, "auto"))
    assert chosen == ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    with hydra_job(JOBLIB, tmp_path, job_num=4):
        assert share_machine(0, "cuda:0") == "cuda:0"  # a device the user named stays
        assert share_machine(0, "cpu") == "cpu"
    with hydra_job([], tmp_path, job_num=4):  # one job at a time: auto as before (the first GPU)
        assert share_machine(0, "auto") == "auto"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with hydra_job(JOBLIB, tmp_path, job_num=4):
        assert share_machine(0, "auto") == "auto"


def test_a_joblib_sweep_runs_each_job_with_its_share_of_the_cores(workdir: Path) -> None:
    cores = available_cores()
    # Every core in the environment's thread variables, which joblib keeps: without ganlab's rule
    # each job's torch would take them all.
    env = {"OMP_NUM_THREADS": str(cores), "MKL_NUM_THREADS": str(cores)}
    result = run_ganlab(["train", "-m", *JOBLIB, *SMALL, "seed=0,1", "hydra.sweep.dir=sweep"], cwd=workdir, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "all 2 jobs succeeded" in result.stdout
    assert sorted(p.name for p in (workdir / "sweep").iterdir() if p.is_dir()) == ["seed=0", "seed=1"]
    for job in ("seed=0", "seed=1"):
        assert (workdir / "sweep" / job / "metrics.json").is_file(), output[-3000:]
        info = json.loads((workdir / "sweep" / job / "run_info.json").read_text())
        assert info["torch_threads"] == max(1, cores // 2)
    assert "Joblib.Parallel(n_jobs=2" in output  # the jobs did run in joblib's workers


def test_a_failing_job_under_joblib_leaves_failed_json_and_the_sweep_exits_1(workdir: Path) -> None:
    result = run_ganlab(["train", "-m", *JOBLIB, *SMALL, "threads=1", "objective.n_critic=1,0", "hydra.sweep.dir=sweep"], cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    sweep = workdir / "sweep"
    assert (sweep / "objective.n_critic=1" / "metrics.json").is_file(), output[-3000:]
    assert not (sweep / "objective.n_critic=1" / "failed.json").exists()
    record = json.loads((sweep / "objective.n_critic=0" / "failed.json").read_text())
    assert record["error"] == "ConfigError" and record["message"].startswith("objective.n_critic=0 is not allowed")
    report = result.stdout[result.stdout.index("1 of 2 jobs failed"):]
    assert "objective.n_critic=0" in report and "ConfigError" in report and "objective.n_critic=1" not in report
    assert "Traceback" not in output


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_ending_the_sweeps_process_stops_its_running_jobs_with_a_checkpoint(workdir: Path) -> None:
    # The launching process is killed outright (kill -9, the OOM killer): the jobs in joblib's
    # workers must not train on without it, but stop as on SIGTERM, with a checkpoint.
    args = [*JOBLIB, *SMALL, "steps=100000", "log_every=1000", "sample_every=100000", "eval_every=100000", "threads=1", "seed=0,1"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    sweep = workdir / "sweep"
    sweep_process = subprocess.Popen([*ganlab_command(), "train", "-m", *args, f"hydra.sweep.dir={sweep}"], cwd=workdir, env={**env, "OMP_NUM_THREADS": "1"},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    jobs = [sweep / "seed=0", sweep / "seed=1"]
    try:
        wait_for(lambda: all((job / "run_info.json").exists() for job in jobs), sweep_process)  # written just before the loop starts
        time.sleep(1)
        sweep_process.kill()
        sweep_process.wait()
        wait_for(lambda: all((job / "failed.json").exists() for job in jobs), pgid=sweep_process.pid)
        for job in jobs:
            record = json.loads((job / "failed.json").read_text())
            assert record["error"] == "Interrupted" and record["message"].startswith("SIGTERM: stopped at step"), record
            assert len(list((job / "checkpoints").glob("step_*.pt"))) == 1
        wait_for(lambda: not group_alive(sweep_process.pid), pgid=sweep_process.pid)  # the workers end too (loky would keep idle ones for 5 minutes)
    finally:
        if group_alive(sweep_process.pid):
            os.killpg(sweep_process.pid, signal.SIGKILL)  # a failed test leaves no job training


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sweep's signal handling is tested on Linux")
def test_ctrl_c_stops_every_running_job_with_a_checkpoint_and_the_sweep_exits_130(workdir: Path) -> None:
    # Ctrl-C: a terminal sends SIGINT to the whole foreground process group, the sweep's process
    # and joblib's workers alike. The sweep is started in its own session (a group of its own), with
    # SIGINT's default action (a background process may inherit SIGINT ignored). Three workers for
    # two jobs: the idle one gets the SIGINT too, which must not break joblib's pool.
    args = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=3", *SMALL, "steps=100000", "log_every=1000", "sample_every=100000", "eval_every=100000", "threads=1", "seed=0,1"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    sweep = workdir / "sweep"
    sweep_process = subprocess.Popen([*ganlab_command(), "train", "-m", *args, f"hydra.sweep.dir={sweep}"], cwd=workdir,
                                     env={**env, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    jobs = [sweep / "seed=0", sweep / "seed=1"]
    try:
        wait_for(lambda: all((job / "run_info.json").exists() for job in jobs), sweep_process)  # written just before the loop starts
        time.sleep(1)
        os.killpg(sweep_process.pid, signal.SIGINT)
        output, _ = sweep_process.communicate(timeout=120)
        assert sweep_process.returncode == 130, output[-3000:]
        for job in jobs:
            record = json.loads((job / "failed.json").read_text())
            assert record["error"] == "Interrupted" and record["message"].startswith("SIGINT: stopped at step"), record
            assert len(list((job / "checkpoints").glob("step_*.pt"))) == 1
        assert "2 of 2 jobs failed" in output, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        wait_for(lambda: not group_alive(sweep_process.pid), timeout=30, pgid=sweep_process.pid)
    finally:
        if group_alive(sweep_process.pid):
            os.killpg(sweep_process.pid, signal.SIGKILL)  # a failed test leaves no job training


def wait_for(condition, process: subprocess.Popen | None = None, timeout: float = 120, pgid: int | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, f"the sweep ended early (exit {process.returncode})"
        assert time.monotonic() < deadline, "timed out" + (f"; the group's processes: {group_processes(pgid)}" if pgid else "")
        time.sleep(0.2)


def group_processes(pgid: int) -> list[str]:
    """The processes of group ``pgid`` that still run, as ``pid state ppid cmdline`` (zombies that no init has reaped yet do not count)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, pgrp, ...
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        found.append(f"{stat.parent.name} {fields[0]} {fields[1]} {cmdline[:200]}")
    return found


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies do not count)."""
    return bool(group_processes(pgid))


BENCH = Path(__file__).resolve().parent.parent / "scripts" / "bench_sweep.py"
ROUND = re.compile(r"^round=1 order=sequential,parallel sequential_s=(?P<seq>[0-9.]+) parallel_s=(?P<par>[0-9.]+) ratio=(?P<ratio>[0-9.]+) "
                   r"threads_sequential=(?P<seq_threads>\S+) threads_parallel=(?P<par_threads>\S+) ")


def test_bench_sweep_prints_each_round_and_the_median_ratio(tmp_path: Path) -> None:
    tiny = ["batch_size=32", "log_every=2", "eval_samples=64", "model.width=8"]
    result = subprocess.run([sys.executable, str(BENCH), "--rounds", "1", "--jobs", "2", "--steps", "4", *(f"--set={o}" for o in tiny)],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    match = ROUND.match(result.stdout.splitlines()[1])
    assert match, result.stdout
    assert float(match["ratio"]) == pytest.approx(float(match["par"]) / float(match["seq"]), rel=0.03)  # printed rounded
    assert match["par_threads"] == ",".join([str(max(1, available_cores() // 2))] * 2)
    default_env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True, text=True, env=default_env)
    assert match["seq_threads"] == ",".join([default.stdout.strip()] * 2)  # torch's default: the bench removes OMP_NUM_THREADS
    assert result.stdout.splitlines()[-1].startswith(f"median_ratio={match['ratio']} ")
