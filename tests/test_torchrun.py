"""``torchrun --nproc_per_node=2 $(which ganlab) train`` end to end on the CPU (Gloo): one run
directory, one events file, one checkpoint series; a bit-exact resume; SIGTERM to torchrun stops
both ranks at one step with one checkpoint; a killed rank ends the run within seconds with a clear
message; a checkpoint of 2 processes refuses to resume in 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.types import RunMode
from omegaconf import OmegaConf

import ganlab.apps.train as train_app

from ganlab.checkpoint import latest_checkpoint, load_checkpoint
from ganlab.compare.scalars import event_files
from ganlab.distributed import World

from conftest import ganlab_command
from test_distributed import free_port

TINY = ["batch_size=32", "model.width=16", "log_every=10", "sample_every=20", "eval_every=20", "eval_samples=200", "checkpoint_every=20"]


def torchrun(args: list[str], cwd: Path) -> list[str]:
    """``torchrun --nproc_per_node=2 $(which ganlab) <args>`` (``-m ganlab`` without the console script)."""
    command = ganlab_command()
    target = command if len(command) == 1 else ["-m", "ganlab"]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}", *target, *args]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(OMP_NUM_THREADS="1", COLUMNS="200")
    return env


def run(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun(args, cwd), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment())


def test_two_processes_write_one_run_and_resume_bit_exactly(tmp_path):
    whole = run(["train", "steps=40", *TINY, f"hydra.run.dir={tmp_path / 'whole'}"], tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["whole"]  # rank 1 wrote nothing of its own
    assert len(event_files(tmp_path / "whole")) == 1
    assert sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir()) == ["step_0000020.pt", "step_0000040.pt"]
    first = run(["train", "steps=20", *TINY, f"hydra.run.dir={tmp_path / 'cut'}"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run(["train", f"resume={tmp_path / 'cut'}", "steps=40"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_checkpoint(latest_checkpoint(tmp_path / "whole")), load_checkpoint(latest_checkpoint(tmp_path / "cut"))
    assert a["step"] == b["step"] == 40 and a["world_size"] == 2 and len(a["ranks"]) == 2
    assert not torch.equal(a["ranks"][0]["rng"]["torch"], a["ranks"][1]["rng"]["torch"])  # each rank its own noise
    for net in ("G", "D"):
        for key in a[net]:
            torch.testing.assert_close(a[net][key], b[net][key], rtol=0, atol=0, msg=f"{net}.{key}")


def test_a_two_process_checkpoint_does_not_resume_in_one(tmp_path):
    done = run(["train", "steps=20", *TINY, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    alone = subprocess.run([*ganlab_command(), "train", f"resume={tmp_path / 'run'}", "steps=40"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=240, env=environment())
    assert alone.returncode == 2
    assert "written by 2 processes and this run has 1: resume it with 2 (torchrun --nproc_per_node=2)" in alone.stderr


def start(args: list[str], cwd: Path) -> tuple[subprocess.Popen, Path]:
    log = cwd / "torchrun.log"
    process = subprocess.Popen(torchrun(args, cwd), cwd=cwd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=environment(),
                               start_new_session=True)
    return process, log


def wait_for_training(run_dir: Path, process: subprocess.Popen, timeout: float = 120, size: int = 2000) -> None:
    """Until rank 0's events file has grown past ``size`` bytes (2000: its first scalars; 0: it
    exists, so the ranks have joined, and rank 1 may still be setting up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = event_files(run_dir) if run_dir.is_dir() else []
        if files and files[0].stat().st_size > size:
            return
        assert process.poll() is None, "torchrun ended before training"
        time.sleep(0.02)
    pytest.fail("training did not start")


def worker_of_rank(process: subprocess.Popen, rank: int) -> int:
    """The pid of torchrun's worker process of ``rank`` (from its environment's RANK)."""
    out = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout
    for pid in map(int, out.split()):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return pid
    pytest.fail(f"no worker of rank {rank} among {out.split()}")


def test_sigterm_to_torchrun_stops_both_ranks_at_one_step_with_one_checkpoint(tmp_path):
    # The signal comes as soon as rank 0 writes its events file: rank 1 may still be building its
    # networks and optimizers (it died of the SIGTERM there, leaving rank 0 a lost peer, until every
    # rank took the stop signals from the moment it joined the process group).
    process, log = start(["train", "steps=100000", *TINY, "checkpoint_every=100000", "log_every=5", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    wait_for_training(tmp_path / "run", process, size=0)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    text = log.read_text()
    assert "SIGTERM: stopped at step" in text and "torchrun --nproc_per_node=2" in text, text[-3000:]
    checkpoints = list((tmp_path / "run" / "checkpoints").iterdir())
    assert len(checkpoints) == 1
    state = load_checkpoint(checkpoints[0])
    assert state["world_size"] == 2 and int(text.split("stopped at step ")[1].split()[0]) == state["step"]


def test_a_killed_rank_ends_the_run_within_seconds_with_a_clear_message(tmp_path):
    process, log = start(["train", "steps=100000", *TINY, "log_every=5", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    wait_for_training(tmp_path / "run", process)
    os.kill(worker_of_rank(process, 1), signal.SIGKILL)
    killed = time.monotonic()
    process.wait(timeout=60)
    assert time.monotonic() - killed < 20 and process.returncode != 0
    text = log.read_text()
    assert "another process of this run ended" in text or "Signal 9 (SIGKILL)" in text, text[-3000:]
    assert "Root Cause" in text and "exitcode  : -9" in text  # torchrun names the rank that died


@pytest.mark.parametrize("world", [World(rank=1, size=2), World()], ids=["rank 1 of 2", "one process"])
def test_a_rank_takes_the_stop_signals_from_the_moment_it_joins(monkeypatch, world):
    """A distributed rank handles SIGTERM while it still sets up (its networks, optimizers, metrics),
    so torchrun's SIGTERM then stops every rank after a step rather than killing one of them and
    leaving the others a lost peer; one process keeps Python's handlers until it trains."""
    seen = {}

    def setting_up(cfg, hydra_cfg, joined, stop):
        seen["handler"] = signal.getsignal(signal.SIGTERM)
        seen["stop"] = stop
        return {}

    monkeypatch.setattr(train_app, "validate_train", lambda cfg: None)
    monkeypatch.setattr(train_app.HydraConfig, "get", staticmethod(lambda: SimpleNamespace(mode=RunMode.RUN)))
    monkeypatch.setattr(train_app, "join_world", lambda cfg, multirun: world)
    monkeypatch.setattr(train_app, "_train_run", setting_up)
    before = signal.getsignal(signal.SIGTERM)
    train_app.run_training(OmegaConf.create({}))
    assert (seen["handler"] == seen["stop"]._handle) is world.distributed
    assert signal.getsignal(signal.SIGTERM) == before  # put back after the run
