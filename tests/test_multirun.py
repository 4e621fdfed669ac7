"""Multiruns: one job fails and the other jobs still run, the sweep ends with a report; the same
sweep run again neither overwrites the finished jobs nor stops them from being continued.

The installed ``ganlab`` command in a subprocess, on tiny settings (Hydra's basic launcher runs
the jobs one after the other in one process).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY, run_ganlab, tree_digest

pytestmark = pytest.mark.cli


def test_a_failing_job_does_not_stop_the_sweep_and_is_reported(workdir: Path) -> None:
    result = run_ganlab(["train", "-m", *TINY, "objective.n_critic=1,0,2", "hydra.sweep.dir=sweep"], cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    sweep = workdir / "sweep"
    for good in ("objective.n_critic=1", "objective.n_critic=2"):  # the job after the failure ran too
        assert (sweep / good / "metrics.json").is_file(), output[-3000:]
        assert not (sweep / good / "failed.json").exists()
    bad = sweep / "objective.n_critic=0"
    assert not (bad / "metrics.json").exists()
    record = json.loads((bad / "failed.json").read_text())
    assert "objective.n_critic=0" in record["overrides"]
    assert record["error"] == "ConfigError"
    assert record["message"].startswith("objective.n_critic=0 is not allowed")
    assert "traceback" not in record  # a user's mistake, not a bug: the message says it all

    report = result.stdout[result.stdout.index("1 of 3 jobs failed"):]  # the table at the end
    assert "objective.n_critic=0" in report and "ConfigError" in report and "objective.n_critic=1" not in report
    assert "Traceback" not in output


def test_diverged_jobs_are_reported_and_a_later_good_sweep_exits_0(workdir: Path) -> None:
    # Every job diverges (learning rates of 1e30); then the same job directories succeed: the
    # second report must describe the second sweep, not the failure records the first one left.
    diverging = ["objective=wgan_clip", "objective.optimizer.lr_D=1e30", "objective.optimizer.lr_G=1e30"]
    first = run_ganlab(["train", "-m", *TINY, *diverging, "seed=0,1", "hydra.sweep.dir=sweep"], cwd=workdir)
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr[-2000:]
    report = first.stdout[first.stdout.index("2 of 2 jobs failed"):]
    assert "seed=0" in report and "seed=1" in report and "Diverged" in report
    record = json.loads((workdir / "sweep" / "seed=1" / "failed.json").read_text())
    assert record["error"] == "Diverged" and "diverged" in record["message"]

    again = run_ganlab(["train", "-m", *TINY, "steps=4", "eval_every=4", "sample_every=4", "seed=0,1", "hydra.sweep.dir=sweep"], cwd=workdir)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "all 2 jobs succeeded" in again.stdout
    for job in ("seed=0", "seed=1"):
        assert (workdir / "sweep" / job / "metrics.json").is_file()
        assert not (workdir / "sweep" / job / "failed.json").exists()


def test_a_sweep_run_again_keeps_its_finished_jobs_and_resume_auto_continues_and_extends_it(workdir: Path) -> None:
    sweep = ["train", "-m", *TINY, "hydra.sweep.dir=sweep"]
    first = run_ganlab([*sweep, "seed=0,1"], cwd=workdir)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    finished = tree_digest(workdir / "sweep")

    again = run_ganlab([*sweep, "seed=0,1"], cwd=workdir)  # e.g. the same command from the shell history
    assert again.returncode == 2, again.stdout[-2000:] + again.stderr[-2000:]
    assert again.stderr.startswith("error: hydra.sweep.dir=sweep already holds 2 training run(s)"), again.stderr
    assert again.stderr.strip().count("\n") == 0 and "resume=auto" in again.stderr
    assert tree_digest(workdir / "sweep") == finished  # not a byte changed, .hydra included

    more = run_ganlab([*sweep, "seed=0,1,2", "steps=16", "resume=auto"], cwd=workdir)  # train longer, and add a seed
    assert more.returncode == 0, more.stdout[-2000:] + more.stderr[-2000:]
    for job in ("seed=0", "seed=1", "seed=2"):
        assert json.loads((workdir / "sweep" / job / "metrics.json").read_text())["history"][-1]["step"] == 16
    now = tree_digest(workdir / "sweep")
    assert now["seed=0/.hydra/config.yaml"] == finished["seed=0/.hydra/config.yaml"]  # the first sweep's record stays
