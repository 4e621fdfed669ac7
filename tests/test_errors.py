"""How a task function's errors become exit statuses and failure records (in-process, no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import OmegaConf

from ganlab.errors import ConfigError, TrainingFailed, report_user_errors


def failing(err: Exception):
    @report_user_errors
    def task() -> dict[str, float]:
        raise err

    return task


def wrapped_by_hydra(err: Exception) -> InstantiationException:
    """What ``instantiate`` raises when a ``_target_`` raises ``err``."""
    try:
        try:
            raise err
        except Exception as inner:
            raise InstantiationException(f"Error in call to target 'x':\n{inner!r}") from inner
    except InstantiationException as outer:
        return outer


@pytest.fixture
def multirun_job(tmp_path: Path):
    """Hydra's config of a running multirun job whose directory is ``tmp_path / 'job'``."""
    job_dir = tmp_path / "job"
    hydra = OmegaConf.structured(HydraConf)
    hydra.mode, hydra.runtime.output_dir, hydra.overrides.task = RunMode.MULTIRUN, str(job_dir), ["seed=1", "steps=9"]
    HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra}))
    yield job_dir
    HydraConfig.instance().cfg = None


@pytest.fixture(autouse=True)
def no_full_error(monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)


@pytest.mark.parametrize(
    "err,status,message",
    [
        (ConfigError("steps=0 is not allowed"), 2, "steps=0 is not allowed"),
        (TrainingFailed("losses became NaN at step 7"), 3, "losses became NaN at step 7"),
        (TrainingFailed("could not write the checkpoint", exit_status=4), 4, "could not write the checkpoint"),
        (wrapped_by_hydra(ConfigError("dataset mnist: no MNIST files")), 2, "dataset mnist: no MNIST files"),
    ],
)
def test_a_single_run_prints_one_line_and_exits_with_the_error_status(capsys, err, status, message):
    with pytest.raises(SystemExit) as exit_:
        failing(err)()
    assert exit_.value.code == status
    assert capsys.readouterr().err == f"error: {message}\n"


def test_a_single_run_leaves_other_errors_and_full_error_mode_to_hydra(monkeypatch):
    with pytest.raises(ZeroDivisionError):
        failing(ZeroDivisionError("a bug"))()
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError):
        failing(ConfigError("steps=0 is not allowed"))()


def test_a_multirun_job_records_its_failure_and_returns(multirun_job):
    assert failing(TrainingFailed("losses became NaN at step 7"))() == {"failed": "losses became NaN at step 7"}
    record = json.loads((multirun_job / "failed.json").read_text())
    assert record == {"overrides": ["seed=1", "steps=9"], "error": "TrainingFailed", "message": "losses became NaN at step 7"}


def test_a_multirun_job_keeps_the_traceback_of_an_unexpected_error(multirun_job):
    result = failing(wrapped_by_hydra(ValueError("first line\nsecond line")))()
    assert result == {"failed": "first line"}
    record = json.loads((multirun_job / "failed.json").read_text())
    assert record["error"] == "ValueError" and record["message"] == "first line"
    assert "Traceback" in record["traceback"] and "second line" in record["traceback"]


def test_a_signal_ends_the_whole_sweep(multirun_job):
    with pytest.raises(SystemExit) as exit_:
        failing(TrainingFailed("SIGINT: stopped at step 5", exit_status=130))()
    assert exit_.value.code == 130
    assert json.loads((multirun_job / "failed.json").read_text())["message"] == "SIGINT: stopped at step 5"
