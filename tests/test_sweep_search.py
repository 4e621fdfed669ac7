"""Hyperparameter search (ganlab.apps.search): what a job returns to a sweeper, the presets in
conf/hparams_search/, and real Optuna studies through the installed ``ganlab`` command.

The CLI tests run hydra-optuna-sweeper for real on tiny settings: the issue's command with
``hydra/sweeper=optuna``; a preset whose study is stored in SQLite and continued, with a failing
trial in the middle; a study in which every trial fails.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, UniformDistribution
from optuna.trial import TrialState

from ganlab.apps import CONFIG_DIR
from ganlab.apps.search import SEARCH_SWEEPER, best_command, optimized_tags, sweeper_optimises, task_result
from ganlab.errors import ConfigError

from conftest import compose_train, compose_train_with_hydra, run_ganlab, tree_digest

# A whole trial in about a second: 3 steps, one evaluation at the end.
TINY = ["steps=3", "log_every=3", "sample_every=3", "eval_every=3", "eval_samples=64", "model.width=8", "threads=1"]
TOY_METRICS = {"Metrics/w1": 1.8, "Metrics/w1_real_baseline": 0.4, "Metrics/w1_ratio": 4.5, "Metrics/modes_covered": 3.0}
IMAGE_METRICS = {"Metrics/fcd": 12.5, "Metrics/classes_covered": 9.0, "Metrics/class_kl": 0.1}
PRESETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "hparams_search").glob("*.yaml"))


# ------------------------------------------------------------------ what a job returns

def test_a_run_returns_its_metrics_unless_a_sweeper_optimises() -> None:
    cfg = compose_train()
    assert task_result(cfg, TOY_METRICS, optimising=False) is TOY_METRICS
    assert task_result(cfg, TOY_METRICS, optimising=True) == 4.5
    assert task_result(cfg, IMAGE_METRICS, optimising=True) == 12.5  # auto: Metrics/fcd on images


def test_a_named_metric_and_several_metrics() -> None:
    one = compose_train(["optimized_metric=Metrics/modes_covered"])
    assert task_result(one, TOY_METRICS, optimising=True) == 3.0
    several = compose_train(["optimized_metric=[Metrics/w1_ratio,Metrics/modes_covered]"])
    assert task_result(several, TOY_METRICS, optimising=True) == [4.5, 3.0]
    assert optimized_tags(["auto", "Metrics/w1"], TOY_METRICS) == ["Metrics/w1_ratio", "Metrics/w1"]


def test_a_metric_the_run_does_not_report_is_a_config_error_that_names_the_ones_it_does() -> None:
    with pytest.raises(ConfigError, match=r"^optimized_metric=Metrics/fid is not a metric this run reports; reported: Metrics/class_kl, Metrics/classes_covered, Metrics/fcd$"):
        optimized_tags("Metrics/fid", IMAGE_METRICS)
    with pytest.raises(ConfigError, match=r"^optimized_metric=auto: this run reports none of Metrics/w1_ratio, Metrics/fcd, Metrics/fid"):
        optimized_tags("auto", {"Metrics/class_kl": 0.1})


@pytest.mark.parametrize(("overrides", "optimises"), [([], False), (["hydra/sweeper=optuna"], True), (["hydra/sweeper=search"], True)])
def test_the_sweeper_in_hydras_config_decides(overrides: list[str], optimises: bool) -> None:
    assert sweeper_optimises() is False  # no Hydra run: a plain call
    HydraConfig.instance().set_config(compose_train_with_hydra(overrides))
    try:
        assert sweeper_optimises() is optimises
        assert task_result(compose_train(), TOY_METRICS) == (4.5 if optimises else TOY_METRICS)
    finally:
        HydraConfig.instance().cfg = None


def test_the_best_command_quotes_what_the_shell_would_split() -> None:
    trial = optuna.trial.create_trial(
        params={"objective.optimizer.lr_D": 0.0003, "objective.optimizer.betas": "[0.0,0.9]"},
        distributions={"objective.optimizer.lr_D": UniformDistribution(1e-5, 1e-3), "objective.optimizer.betas": CategoricalDistribution(["[0.0,0.9]", "[0.5,0.9]"])},
        user_attrs={"steps": "3", "hparams_search": "wgan_gp_gaussians25"},
        value=1.5,
    )
    command = best_command(trial)
    assert command == "ganlab train objective.optimizer.lr_D=0.0003 'objective.optimizer.betas=[0.0,0.9]' steps=3 hparams_search=wgan_gp_gaussians25"
    assert shlex.split(command)[2:] == ["objective.optimizer.lr_D=0.0003", "objective.optimizer.betas=[0.0,0.9]", "steps=3", "hparams_search=wgan_gp_gaussians25"]


# ------------------------------------------------------------------ presets

@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_is_a_seeded_tolerant_search_over_keys_that_exist(preset: str) -> None:
    cfg = compose_train_with_hydra([f"hparams_search={preset}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == SEARCH_SWEEPER
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert sweeper.max_failure_rate == 1.0 and sweeper.study_name == preset
    space, fixed = create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])  # as the plugin reads them
    assert fixed == {} and len(space) >= 4 and all(isinstance(d, BaseDistribution) for d in space.values())
    for key in space:
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key
    assert cfg.optimized_metric == {"wgan_gp_gaussians25": "Metrics/w1_ratio", "digits_dcgan": "Metrics/fcd"}[preset]


def test_the_presets_train_what_their_names_say() -> None:
    toy = compose_train(["hparams_search=wgan_gp_gaussians25"])
    assert toy.objective.name == "wgan_gp" and toy.dataset._target_.endswith("Gaussians25")
    digits = compose_train(["hparams_search=digits_dcgan"])
    assert digits.objective.name == "js" and digits.steps == 1500 and digits.model.width == 32  # experiment=digits_dcgan


# ------------------------------------------------------------------ real studies (subprocess)

def _job_dirs(sweep: Path) -> list[Path]:
    return sorted(p.parent.parent for p in sweep.glob("*/.hydra/config.yaml"))


@pytest.mark.cli
def test_the_issues_command_optimises_w1_ratio(workdir: Path) -> None:
    result = run_ganlab(["train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", "objective.optimizer.lr_D=interval(0.00001,0.001)",
                         *TINY, "hydra.sweep.dir=sweep"], cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "float-castable" not in output
    jobs = _job_dirs(workdir / "sweep")
    assert len(jobs) == 2
    found = []
    for job in jobs:
        lr_D = next(o for o in yaml.safe_load((job / ".hydra/overrides.yaml").read_text()) if o.startswith("objective.optimizer.lr_D="))
        found.append((json.loads((job / "metrics.json").read_text())["final"]["Metrics/w1_ratio"], float(lr_D.split("=")[1])))
    best = yaml.safe_load((workdir / "sweep" / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(found)[0], rel=1e-12)  # the float each job returned is its w1_ratio
    assert best["best_params"]["objective.optimizer.lr_D"] == pytest.approx(min(found)[1], rel=1e-12)


@pytest.mark.cli
def test_a_stored_study_continues_into_new_job_directories_past_a_failed_trial(workdir: Path) -> None:
    preset = ["train", "-m", "hparams_search=wgan_gp_gaussians25", "hydra.sweeper.n_trials=2", *TINY,
              "hydra.sweep.dir=sweep", "hydra.sweeper.storage=sqlite:///study.db"]
    first = run_ganlab([*preset, "batch_size=32"], cwd=workdir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    sweep = workdir / "sweep"
    before = {job.name: tree_digest(job) for job in _job_dirs(sweep)}
    assert sorted(name.split(",")[0] for name in before) == ["trial=0", "trial=1"]

    # The second invocation also searches batch_size, whose choice 0 is refused: with the preset's
    # seed (continued as seed + 2) its first trial draws 0 and fails, its second draws 32.
    second = run_ganlab([*preset, "batch_size=choice(32,0)"], cwd=workdir)
    output = second.stdout + second.stderr
    assert second.returncode == 1, output[-3000:]  # the sweep report: a job failed
    assert "continuing study wgan_gp_gaussians25, which has 2 trials" in output
    study = optuna.load_study(study_name="wgan_gp_gaussians25", storage=f"sqlite:///{workdir / 'study.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[2].params["batch_size"] == 0 and study.trials[3].params["batch_size"] == 32

    jobs = {job.name.split(",")[0]: job for job in _job_dirs(sweep)}
    assert sorted(jobs) == ["trial=0", "trial=1", "trial=2", "trial=3"]
    assert {job.name: tree_digest(job) for job in _job_dirs(sweep) if job.name in before} == before  # the first invocation's jobs untouched
    failure = json.loads((jobs["trial=2"] / "failed.json").read_text())
    assert failure["error"] == "ConfigError" and failure["message"] == "batch_size=0 is not allowed: must be >= 1"
    assert not (jobs["trial=2"] / "metrics.json").exists()
    for number in (0, 1, 3):  # each trial's value is its job's w1_ratio
        assert study.trials[number].value == pytest.approx(json.loads((jobs[f"trial={number}"] / "metrics.json").read_text())["final"]["Metrics/w1_ratio"], rel=1e-12)

    best = study.best_trial
    lines = second.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith(f"best trial {best.number} of 4 (value "))
    command = shlex.split(lines[header + 1])
    assert command[:2] == ["ganlab", "train"]
    assert sorted(command[2:]) == sorted(f"{k}={v}" for k, v in {**best.params, **best.user_attrs}.items())
    assert "hparams_search=wgan_gp_gaussians25" in command


@pytest.mark.cli
def test_a_study_in_which_every_trial_fails_ends_with_one_line_and_the_report(workdir: Path) -> None:
    result = run_ganlab(["train", "-m", "hydra/sweeper=search", "hydra.sweeper.n_trials=2", "objective.optimizer.lr_D=interval(0.00001,0.001)",
                         "objective.n_critic=0", *TINY, "hydra.sweep.dir=sweep"], cwd=workdir)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "no trial of the study completed (each one failed or diverged), so there is no best trial" in result.stdout
    assert "2 of 2 jobs failed" in result.stdout
    assert "Traceback" not in output
    jobs = _job_dirs(workdir / "sweep")
    assert sorted(job.name.split(",")[0] for job in jobs) == ["trial=0", "trial=1"]
    for job in jobs:
        assert json.loads((job / "failed.json").read_text())["error"] == "ConfigError"
