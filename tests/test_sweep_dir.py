"""A sweep's own directory and its jobs' names (ganlab/apps/sweep_dir.py), the TensorBoard line at
the end of a sweep, and the one-line error for a sweep plugin that is not installed."""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from ganlab import cli
from ganlab.apps import sweep_dir
from ganlab.apps.output_dir import earlier_sweep_runs
from ganlab.config import swept_overrides

from conftest import TINY, compose_train_with_hydra, ganlab_command


@pytest.fixture
def release_locks():
    yield
    while sweep_dir._held:
        sweep_dir._held.pop().close()


def sweep_config(overrides: list[str], hydra_overrides: list[str], sweep: Path):
    """The master config of ``ganlab train -m <overrides> <hydra_overrides>``, sweeping into ``sweep``."""
    cfg = compose_train_with_hydra([*hydra_overrides, f"hydra.sweep.dir={sweep}"])  # the sweep's values are its jobs' to compose
    with open_dict(cfg.hydra):
        cfg.hydra.overrides.task = list(overrides)
        cfg.hydra.overrides.hydra = [*hydra_overrides]  # hydra.sweep.dir left as if defaulted (not typed by the user)
    return cfg


def test_two_sweeps_of_the_same_second_get_their_own_directories(tmp_path, release_locks):
    first, second = (sweep_config(["seed=0,1"], [], tmp_path / "22-38-13") for _ in range(2))
    sweep_dir.prepare_sweep(first, earlier_sweep_runs)
    sweep_dir.prepare_sweep(second, earlier_sweep_runs)  # the first still runs: it holds its lock
    assert Path(first.hydra.sweep.dir) == tmp_path / "22-38-13"
    assert Path(second.hydra.sweep.dir) == tmp_path / "22-38-13_2"
    assert f"hydra.sweep.dir={tmp_path / '22-38-13_2'}" in second.hydra.overrides.hydra  # every job of the second sweep composes with it


def test_a_default_directory_holding_a_finished_sweep_is_skipped_not_reused(tmp_path, release_locks):
    finished = tmp_path / "22-38-13" / "seed=0"
    finished.mkdir(parents=True)
    (finished / "metrics.json").write_text("{}")
    cfg = sweep_config(["seed=0,1"], [], tmp_path / "22-38-13")
    sweep_dir.prepare_sweep(cfg, earlier_sweep_runs)
    assert Path(cfg.hydra.sweep.dir) == tmp_path / "22-38-13_2"


def test_a_named_directory_in_use_by_a_running_sweep_is_refused_in_one_line(tmp_path, release_locks, capsys):
    named = [f"hydra.sweep.dir={tmp_path / 'mine'}"]
    sweep_dir.prepare_sweep(sweep_config(["seed=0,1"], named, tmp_path / "mine"), earlier_sweep_runs)
    with pytest.raises(SystemExit) as stop:
        sweep_dir.prepare_sweep(sweep_config(["seed=0,1"], named, tmp_path / "mine"), earlier_sweep_runs)
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"error: hydra.sweep.dir={tmp_path / 'mine'} is in use by another sweep that is running now; wait for it, or choose another hydra.sweep.dir\n"


@pytest.mark.parametrize("task,params,job,expected", [
    (["seed=0,1", "steps=5"], None, ["seed=1", "steps=5"], "seed=1"),
    (["objective=js,wgan_gp", "seed=0,1", "steps=5"], None, ["objective=wgan_gp", "seed=1", "steps=5"], "objective=wgan_gp,seed=1"),
    (["objective/constraints=[gp],[sn]", "steps=5"], None, ["objective/constraints=[sn]", "steps=5"], "objective_constraints=[sn]"),
    (["steps=5"], {"objective.optimizer.lr_D": "interval(0.0001,0.001)"}, ["objective.optimizer.lr_D=0.0005", "steps=5"], "objective.optimizer.lr_D=0.0005"),
])
def test_jobs_are_named_by_hydras_record_of_the_sweep_not_by_the_process_command_line(tmp_path, monkeypatch, task, params, job, expected):
    cfg = sweep_config(task, [], tmp_path / "sweep")
    if params:
        with open_dict(cfg.hydra):
            cfg.hydra.sweeper.params = params
    sweep_dir.record_swept_keys(cfg)
    # A job composed in a worker: its own overrides, and a command line that is not ganlab's.
    monkeypatch.setattr(sys, "argv", ["/usr/bin/python", "-m", "loky.worker", "--pipe", "7"])
    override = OmegaConf.to_container(cfg.hydra.overrides.hydra)[-1]  # unresolved, as Hydra's load_sweep_config reads it
    job_cfg = compose_train_with_hydra([*job, override])
    with open_dict(job_cfg.hydra):
        job_cfg.hydra.overrides.task = job
    name = OmegaConf.select(job_cfg, "hydra.sweep.subdir")
    assert name.split("~")[0] == expected
    if not params:  # the same name the command line gives in the sweep's own process (which cannot see a sweeper's params)
        assert name == swept_overrides(job, ["-m", *task])


def test_a_sweep_plugin_that_is_not_installed_is_one_line_naming_the_extra(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("hydra_plugins.") else real(name, *a))
    for args, plugin in ((["-m", "hydra/launcher=joblib", "seed=0,1"], "hydra-joblib-launcher"),
                         (["-m", "hydra/sweeper=optuna"], "hydra-optuna-sweeper"),
                         (["-m", "hparams_search=wgan_gp_gaussians25"], "hydra-optuna-sweeper"),
                         (["-m", "hydra/launcher=submitit_local"], "hydra-submitit-launcher")):
        assert cli.main(["train", *args]) == 2
        assert capsys.readouterr().err == f"error: {args[1]} needs Hydra's {plugin} plugin, which is not installed: pip install 'ganlab[sweeps]'\n"
    assert cli.missing_plugin(["hydra/launcher=basic", "seed=0,1"]) is None


def test_two_sweeps_started_together_write_apart_and_each_ends_with_its_tensorboard_and_compare_lines(workdir):
    """End to end: the same command twice at once (default directories, which may share a second)."""
    args = ["train", "-m", *TINY, "steps=2", "eval_every=2", "sample_every=2", "seed=0,1"]
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    runs = [subprocess.Popen(ganlab_command() + args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    sweeps = set()
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0, out[-2000:] + err[-2000:]
        tensorboard, compare = out.strip().splitlines()[-2:]
        assert tensorboard.startswith("TensorBoard: tensorboard --logdir ")
        sweep = Path(shlex.split(tensorboard)[-1])
        assert compare == f"Compare over seeds: ganlab compare {shlex.quote(str(sweep))}"
        assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["seed=0", "seed=1"]
        sweeps.add(sweep)
    assert len(sweeps) == 2  # never merged into one directory
