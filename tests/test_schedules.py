"""Schedules (ganlab/schedules.py): their closed-form values, their one-line config errors, what a
run logs and sets with them, and that a resume or a rollback keeps them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganlab.checkpoint import latest_checkpoint, load_checkpoint
from ganlab.config import validate_train
from ganlab.data.toy import Gaussians25
from ganlab.errors import ConfigError, OptionError
from ganlab.schedules import Schedule, Scheduled, Schedules

from conftest import TINY, compose_train
from inprocess import final_networks, train_in_process

LR = 1e-4  # lr_G and lr_D of the wgan_gp preset (the default objective)
BETA2 = 0.9  # its betas[1]
GP_WEIGHT = 0.1  # its penalty weight on the toy data (conf/tuning/toy.yaml)
SCHEDULE = "objective.optimizer.schedule"


def logged(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar the run wrote to TensorBoard, as (step, value) pairs."""
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_follows(series: list[tuple[int, float]], schedule: Schedule, steps: list[int], factor: float = 1.0) -> None:
    """``series`` is logged at ``steps`` with the schedule's values (TensorBoard stores float32)."""
    assert [s for s, _ in series] == steps
    assert [v for _, v in series] == pytest.approx([schedule(s) * factor for s in steps], rel=1e-6, abs=1e-12)


# ------------------------------------------------------------------------ closed-form values


def test_a_constant_schedule_keeps_its_value():
    schedule = Schedule(0.3)
    assert [schedule(step) for step in (1, 2, 1000)] == [0.3, 0.3, 0.3]
    assert schedule.constant


def test_linear_goes_from_start_to_end_over_its_steps_then_stays():
    schedule = Schedule(1.0, "linear", end=0.0, steps=5)
    assert [schedule(step) for step in range(1, 9)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0, 0.0, 0.0, 0.0], abs=1e-15)
    assert not schedule.constant


def test_cosine_is_halfway_at_the_middle_and_ends_at_end():
    schedule = Schedule(3.0, "cosine", end=1.0, steps=5)  # t = (step - 1) / 4: the middle is step 3
    assert schedule(1) == pytest.approx(3.0, abs=1e-15)
    assert schedule(2) == pytest.approx(1.0 + 2.0 * (1 + math.cos(math.pi / 4)) / 2, abs=1e-15)  # 2.7071...
    assert schedule(3) == pytest.approx((3.0 + 1.0) / 2, abs=1e-15)
    assert schedule(5) == pytest.approx(1.0, abs=1e-15)
    assert schedule(50) == pytest.approx(1.0, abs=1e-15)


def test_a_cosine_can_rise():
    """beta2 in R3GAN goes up (0.9 -> 0.99): end above start is allowed."""
    schedule = Schedule(0.9, "cosine", end=0.99, steps=3)
    assert [schedule(step) for step in (1, 2, 3, 4)] == pytest.approx([0.9, 0.945, 0.99, 0.99], abs=1e-15)


def test_warmup_ramps_from_zero_then_decays():
    # Steps 1..4 ramp to 2.0; the decay runs over steps 5..8, t = (step - 5) / 3.
    schedule = Schedule(2.0, "linear", end=0.5, warmup=4, steps=8)
    expected = [0.5, 1.0, 1.5, 2.0, 2.0, 1.5, 1.0, 0.5, 0.5]
    assert [schedule(step) for step in range(1, 10)] == pytest.approx(expected, abs=1e-15)


def test_a_constant_schedule_with_warmup_ramps_then_stays():
    schedule = Schedule(2.0, warmup=4)
    assert [schedule(step) for step in range(1, 7)] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0], abs=1e-15)
    assert not schedule.constant  # it is logged: its value changes


def test_a_schedule_is_at_end_after_its_steps_even_when_the_warmup_fills_them():
    schedule = Schedule(1.0, "linear", end=0.0, warmup=4, steps=4)
    assert [schedule(step) for step in range(1, 8)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 0.0, 0.0, 0.0], abs=1e-15)


def test_a_schedule_without_steps_takes_the_run_length():
    schedule = Schedule(1.0, "linear", end=0.0)
    with pytest.raises(ValueError, match="unresolved"):
        schedule(2)
    resolved = schedule.with_length(5)
    assert resolved.steps == 5 and resolved(3) == pytest.approx(0.5, abs=1e-15)
    kept = Schedule(1.0, "linear", end=0.0, steps=3)
    assert kept.with_length(5) is kept


@pytest.mark.parametrize("options,message", [
    ({"shape": "cosine"}, "end=None is not allowed: a cosine schedule needs the value it ends at"),
    ({"warmup": -1}, "warmup=-1 is not allowed: must be >= 0"),
    ({"steps": 0}, "steps=0 is not allowed: must be >= 1"),
    ({"warmup": 6, "steps": 5}, "warmup=6 is not allowed: must not be longer than the schedule's steps (5)"),
])
def test_a_schedule_checks_its_options(options, message):
    with pytest.raises(OptionError) as info:
        Schedule(1.0, **options)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_schedules_scale_only_the_learning_rates_and_show_the_changing_values():
    set_to: dict[str, float] = {}
    schedules = Schedules([
        Scheduled("LR/G", Schedule(1.0, "linear", end=0.0, steps=5), lambda v: set_to.__setitem__("LR/G", v), learning_rate=True),
        Scheduled("LR/D", Schedule(2.0), lambda v: set_to.__setitem__("LR/D", v), learning_rate=True),
        Scheduled("Optimizer/beta2", Schedule(0.9), lambda v: set_to.__setitem__("Optimizer/beta2", v)),
        Scheduled("Penalty/gp/weight", Schedule(4.0, "linear", end=0.0, steps=5), lambda v: set_to.__setitem__("Penalty/gp/weight", v)),
    ])
    schedules.lr_scale = 0.5
    schedules.apply(2)
    assert set_to == pytest.approx({"LR/G": 0.375, "LR/D": 1.0, "Optimizer/beta2": 0.9, "Penalty/gp/weight": 3.0}, abs=1e-15)
    # The learning rates always, the other scalars only when they change along the run.
    assert schedules.values() == pytest.approx({"LR/G": 0.375, "LR/D": 1.0, "Penalty/gp/weight": 3.0}, abs=1e-15)
    assert schedules.state_dict() == {"lr_scale": 0.5}


# ------------------------------------------------------------------------- config errors


@pytest.mark.parametrize("overrides,message", [
    ([f"{SCHEDULE}.lr_G.shape=cosine"], f"{SCHEDULE}.lr_G.end=None is not allowed: a cosine schedule needs the value it ends at"),
    ([f"{SCHEDULE}.lr_D.warmup=-1"], f"{SCHEDULE}.lr_D.warmup=-1 is not allowed: must be >= 0"),
    ([f"{SCHEDULE}.beta2.shape=linear", f"{SCHEDULE}.beta2.end=0.99", f"{SCHEDULE}.beta2.steps=0"],
     f"{SCHEDULE}.beta2.steps=0 is not allowed: must be >= 1"),
    ([f"{SCHEDULE}.lr_G.warmup=10", f"{SCHEDULE}.lr_G.steps=5"], f"{SCHEDULE}.lr_G.warmup=10 is not allowed: must not be longer than the schedule's steps (5)"),
    (["objective.constraints.gp.schedule.weight.shape=linear"], "objective.constraints.gp.schedule.weight.end=None is not allowed: a linear schedule"),
    (["objective=wgan_clip", f"{SCHEDULE}.beta2.shape=linear", f"{SCHEDULE}.beta2.end=0.99"],
     f"{SCHEDULE}.beta2 is not allowed with objective.optimizer.name=rmsprop: only Adam has beta2"),
    (["objective=wgan_clip", f"{SCHEDULE}.beta2.warmup=2"], f"{SCHEDULE}.beta2 is not allowed with objective.optimizer.name=rmsprop"),
])
def test_a_bad_schedule_is_one_line_naming_its_full_key(overrides, message):
    cfg = compose_train(TINY + overrides)
    with pytest.raises(ConfigError) as info:
        validate_train(cfg)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_warmup_longer_than_the_run_names_its_full_key(tmp_path):
    with pytest.raises(OptionError, match=rf"^{SCHEDULE}\.lr_G\.warmup=20 is not allowed"):
        train_in_process(TINY + ["steps=2", f"{SCHEDULE}.lr_G.warmup=20"], tmp_path)


# --------------------------------------------------------------------------- in a run


def test_a_run_sets_and_logs_the_scheduled_values(tmp_path):
    overrides = [
        f"{SCHEDULE}.lr_G.shape=linear", f"{SCHEDULE}.lr_G.end=0",  # over the run's 12 steps
        "objective.constraints.gp.schedule.weight.shape=cosine", "objective.constraints.gp.schedule.weight.end=0.02",
        "objective.constraints.gp.schedule.weight.warmup=2", "objective.constraints.gp.schedule.weight.steps=8",
    ]
    train_in_process(TINY + ["log_every=1", *overrides], tmp_path)
    scalars, steps = logged(tmp_path), list(range(1, 13))
    assert_follows(scalars["LR/G"], Schedule(LR, "linear", end=0.0, steps=12), steps)
    assert_follows(scalars["LR/D"], Schedule(LR), steps)  # logged though constant
    assert_follows(scalars["Penalty/gp/weight"], Schedule(GP_WEIGHT, "cosine", end=0.02, warmup=2, steps=8), steps)
    assert "Optimizer/beta2" not in scalars  # constant: not logged
    # The schedule was applied, not only logged: step 12 ran with lr_G = 0.
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["opt_G"]["param_groups"][0]["lr"] == 0.0
    assert state["opt_D"]["param_groups"][0]["lr"] == pytest.approx(LR, rel=1e-12)
    # The run's length went into the saved config, so that a resume keeps it.
    assert state["config"]["objective"]["optimizer"]["schedule"]["lr_G"]["steps"] == 12
    assert state["config"]["objective"]["constraints"]["gp"]["schedule"]["weight"]["steps"] == 8


def test_a_beta2_schedule_sets_both_optimizers(tmp_path):
    train_in_process(TINY + ["log_every=2", f"{SCHEDULE}.beta2.shape=linear", f"{SCHEDULE}.beta2.end=0.99", f"{SCHEDULE}.beta2.steps=7"], tmp_path)
    assert_follows(logged(tmp_path)["Optimizer/beta2"], Schedule(BETA2, "linear", end=0.99, steps=7), [2, 4, 6, 8, 10, 12])
    state = load_checkpoint(latest_checkpoint(tmp_path))
    for opt in ("opt_G", "opt_D"):
        assert state[opt]["param_groups"][0]["betas"] == pytest.approx((0.5, 0.99), abs=1e-15)


# ---------------------------------------------------------------- resume and rollback

# Every kind of scheduled scalar, with warm-ups, both shapes and a schedule of the run's length.
SCHEDULED = [
    f"{SCHEDULE}.lr_G.shape=linear", f"{SCHEDULE}.lr_G.end=0",
    f"{SCHEDULE}.lr_D.shape=cosine", f"{SCHEDULE}.lr_D.end=1e-5", f"{SCHEDULE}.lr_D.warmup=3", f"{SCHEDULE}.lr_D.steps=12",
    f"{SCHEDULE}.beta2.shape=linear", f"{SCHEDULE}.beta2.end=0.99", f"{SCHEDULE}.beta2.steps=10",
    "objective.constraints.gp.schedule.weight.shape=cosine", "objective.constraints.gp.schedule.weight.end=0",
    "objective.constraints.gp.schedule.weight.steps=12",
]
EVERY_2 = ["log_every=2", "sample_every=6", "eval_every=6"]  # a run cut at step 6 has the same records as one that was not


def assert_same_networks(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            torch.testing.assert_close(a[net][key], b[net][key], rtol=0, atol=0, msg=f"{net}.{key}")


def test_a_scheduled_run_resumes_bit_exact(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train_in_process(TINY + EVERY_2 + SCHEDULED, whole)
    # lr_G's length is the run's: the first part must be told the whole run's 12 steps.
    train_in_process(TINY + EVERY_2 + SCHEDULED + ["steps=6", f"{SCHEDULE}.lr_G.steps=12"], cut)
    train_in_process([f"resume={cut}", "steps=12"], cut)

    assert_same_networks(final_networks(whole), final_networks(cut))
    logged_whole, logged_cut = logged(whole), logged(cut)
    for tag in ("LR/G", "LR/D", "Optimizer/beta2", "Penalty/gp/weight"):
        assert logged_cut[tag] == logged_whole[tag], tag


def test_a_schedule_of_the_run_length_keeps_the_first_length_on_resume(tmp_path):
    """A resume with more steps continues the schedule the run started with: it has ended, so lr_G stays at end."""
    end = 2e-5
    train_in_process(TINY + EVERY_2 + ["steps=6", f"{SCHEDULE}.lr_G.shape=linear", f"{SCHEDULE}.lr_G.end={end}"], tmp_path)
    assert load_checkpoint(latest_checkpoint(tmp_path))["config"]["objective"]["optimizer"]["schedule"]["lr_G"]["steps"] == 6
    train_in_process([f"resume={tmp_path}", "steps=12"], tmp_path)

    assert_follows(logged(tmp_path)["LR/G"], Schedule(LR, "linear", end=end, steps=6), [2, 4, 6, 8, 10, 12])
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 12 and state["opt_G"]["param_groups"][0]["lr"] == pytest.approx(end, rel=1e-12)
    assert state["config"]["objective"]["optimizer"]["schedule"]["lr_G"]["steps"] == 6
    assert OmegaConf.load(tmp_path / ".hydra" / "resume_1" / "config.yaml").objective.optimizer.schedule.lr_G.steps == 6


def test_a_rollback_lowers_the_scheduled_learning_rates(tmp_path, monkeypatch):
    """The 7th training batch is NaN: the check at step 8 goes back to the checkpoint of step 4,
    and from there on the learning rates are their schedule's values times rollback_lr_factor."""
    sample, calls = Gaussians25.sample, {"n": 0}

    def poisoned(self, n, generator=None):
        batch = sample(self, n, generator)
        if generator is None:  # a training batch, not a held-out draw of the evaluator
            calls["n"] += 1
            if calls["n"] == 7:  # step 7 with n_critic=1
                batch = batch * float("nan")
        return batch

    monkeypatch.setattr(Gaussians25, "sample", poisoned)
    end = 2e-5
    train_in_process(TINY + [
        "log_every=2", "checkpoint_every=4", "objective.n_critic=1", "on_nonfinite=rollback", "rollback_lr_factor=0.5",
        f"{SCHEDULE}.lr_G.shape=linear", f"{SCHEDULE}.lr_G.end={end}",
    ], tmp_path)

    scalars = logged(tmp_path)
    assert scalars["Health/rollbacks"] == [(4, 1.0)]
    lr_G = Schedule(LR, "linear", end=end, steps=12)
    assert_follows(scalars["LR/G"][:2], lr_G, [2, 4])  # before the rollback
    assert_follows(scalars["LR/G"][2:], lr_G, [6, 8, 10, 12], factor=0.5)  # what was logged at 6 before it is gone
    assert_follows(scalars["LR/D"][2:], Schedule(LR), [6, 8, 10, 12], factor=0.5)
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["step"] == 12 and state["schedules"] == {"lr_scale": 0.5}
    assert state["opt_G"]["param_groups"][0]["lr"] == pytest.approx(end * 0.5, rel=1e-12)
    assert state["opt_D"]["param_groups"][0]["lr"] == pytest.approx(LR * 0.5, rel=1e-12)
