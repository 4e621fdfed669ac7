"""The r3gan preset (conf/objective/r3gan.yaml): R3GAN (Huang et al. 2024) = the relativistic pairing
loss + R1 + R2, with the official code's cosine schedules of the learning rate, Adam's beta2 and
gamma (github.com/brownvc/R3GAN train.py, CIFAR10 preset; training/training_loop.py
cosine_decay_with_warmup), and its G_ema whose half-life grows along the same cosine. It composes with
those values, each schedule hits R3GAN's curve at the first, middle and last step, it trains on the toy
data and on digits, and a resume mid-schedule is bit-exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ganlab.apps.build import build_objective_from, build_schedules
from ganlab.checkpoint import latest_checkpoint, load_checkpoint
from ganlab.objectives.constraints.r1 import R1
from ganlab.objectives.constraints.r2 import R2
from ganlab.errors import ConfigError
from ganlab.objectives.losses.relativistic import Relativistic
from ganlab.train.ema import EMA

from conftest import TINY, compose_train
from inprocess import final_networks, train_in_process

# train.py, CIFAR10 preset: (base_value, final_value) of each scheduler, over total_nimg = 2e7 images.
LR = (2e-4, 5e-5)
BETA2 = (0.9, 0.99)
GAMMA = (0.05, 0.005)
TAGS = {"LR/G": LR, "LR/D": LR, "Optimizer/beta2": BETA2, "Penalty/r1/weight": GAMMA, "Penalty/r2/weight": GAMMA}
SCHEDULES = ["objective.optimizer.schedule.lr_G", "objective.optimizer.schedule.lr_D", "objective.optimizer.schedule.beta2",
             "objective.constraints.r1.schedule.weight", "objective.constraints.r2.schedule.weight", "objective.ema"]


def r3gan_cosine(cur_nimg: float, base_value: float, final_value: float, total_nimg: float) -> float:
    """R3GAN's cosine_decay_with_warmup without warm-up or hold (training/training_loop.py lines 29-38)."""
    decay = 0.5 * (1 + np.cos(np.pi * cur_nimg / total_nimg))
    value = base_value + (1 - decay) * (final_value - base_value)
    return float(final_value if cur_nimg > total_nimg else value)


def test_the_preset_composes_with_r3gans_values():
    obj = compose_train(["objective=r3gan"]).objective
    assert obj.name == "r3gan" and obj.n_critic == 1 and not obj.loss.average
    assert set(obj.constraints) == {"r1", "r2"}
    assert (obj.optimizer.name.value, obj.optimizer.lr_G, obj.optimizer.lr_D) == ("adam", 2e-4, 2e-4)
    assert list(obj.optimizer.betas) == [0.0, 0.9]
    for name in ("r1", "r2"):
        assert obj.constraints[name].weight == 0.05 and obj.constraints[name].every == 1
    built = build_objective_from(obj)
    assert type(built.loss) is Relativistic and built.loss.average is False
    assert type(built.constraints["r1"]) is R1 and type(built.constraints["r2"]) is R2
    # The toy data's tuning (conf/tuning/toy.yaml) does not touch R1/R2: the same on digits.
    assert compose_train(["objective=r3gan", "dataset=digits", "model=dcgan"]).objective.constraints == obj.constraints


@pytest.mark.parametrize("steps", [101, 5000])
def test_every_schedule_follows_r3gans_cosine_over_the_run(steps):
    """Step s (1-based) of a run of ``steps`` is R3GAN's iteration s - 1 with the decay's end at the last step."""
    obj = compose_train(["objective=r3gan", f"steps={steps}"]).objective
    built = build_objective_from(obj)
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    opt_G, opt_D = (torch.optim.Adam(m.parameters(), lr=1.0, betas=(0.0, 0.5)) for m in (G, D))
    schedules = build_schedules(obj, built, opt_G, opt_D, steps)
    assert {item.tag for item in schedules.scheduled} == set(TAGS)

    batch = 512  # R3GAN's CIFAR-10 batch: the mapping does not depend on it
    for step in (1, (steps + 1) // 2, steps // 4, steps, steps + 7):
        schedules.apply(step)
        for tag, (base, final) in TAGS.items():
            expected = r3gan_cosine((step - 1) * batch, base, final, total_nimg=(steps - 1) * batch)
            assert schedules.current[tag] == pytest.approx(expected, rel=1e-12), (tag, step)
        # ... and the optimizers and penalties hold them.
        assert opt_G.param_groups[0]["lr"] == opt_D.param_groups[0]["lr"] == schedules.current["LR/G"]
        assert opt_G.param_groups[0]["betas"] == opt_D.param_groups[0]["betas"] == (0.0, schedules.current["Optimizer/beta2"])
        assert built.constraints["r1"].weight == built.constraints["r2"].weight == schedules.current["Penalty/r1/weight"]


def test_hand_computed_values_at_the_first_middle_and_last_step():
    """101 steps: t = (step - 1) / 100, so step 51 is the cosine's middle (the mean of both ends)."""
    obj = compose_train(["objective=r3gan", "steps=101"]).objective
    built = build_objective_from(obj)
    opt_G, opt_D = (torch.optim.Adam(nn.Linear(2, 1).parameters(), betas=(0.0, 0.5)) for _ in range(2))
    schedules = build_schedules(obj, built, opt_G, opt_D, 101)
    hand = {
        1: {"LR/G": 2e-4, "Optimizer/beta2": 0.9, "Penalty/r1/weight": 0.05},
        51: {"LR/G": 1.25e-4, "Optimizer/beta2": 0.945, "Penalty/r1/weight": 0.0275},
        # t = 1/4: (1 - cos(pi/4)) / 2 = 0.146447 of the way
        26: {"LR/G": 2e-4 - 0.1464466094 * 1.5e-4, "Optimizer/beta2": 0.9 + 0.1464466094 * 0.09, "Penalty/r1/weight": 0.05 - 0.1464466094 * 0.045},
        101: {"LR/G": 5e-5, "Optimizer/beta2": 0.99, "Penalty/r1/weight": 0.005},
    }
    for step, values in hand.items():
        schedules.apply(step)
        for tag, value in values.items():
            assert schedules.current[tag] == pytest.approx(value, rel=1e-9), (tag, step)
        assert schedules.current["LR/D"] == schedules.current["LR/G"]
        assert schedules.current["Penalty/r2/weight"] == schedules.current["Penalty/r1/weight"]


@pytest.mark.parametrize("steps", [101, 5000])
def test_g_emas_half_life_grows_along_r3gans_cosine(steps):
    """R3GAN's ema_scheduler: cur_ema_nimg from 0 to ema_nimg along the cosine over total_nimg, and
    beta = 0.5 ** (batch / cur_ema_nimg) (training_loop.py line 351). Here ema_nimg is a quarter of the
    run's images (R3GAN: 5M of 20M), the half-life is in steps, and the first step copies G."""
    obj = compose_train(["objective=r3gan", f"steps={steps}"]).objective
    G, D = nn.Linear(2, 2), nn.Linear(2, 1)
    opt_G, opt_D = (torch.optim.Adam(m.parameters(), betas=(0.0, 0.5)) for m in (G, D))
    ema = EMA(G, 0.0)
    schedules = build_schedules(obj, build_objective_from(obj), opt_G, opt_D, steps, ema=ema)
    batch = 512
    for step in (1, 2, steps // 4, (steps + 1) // 2, steps, steps + 7):
        schedules.apply(step)
        cur_ema_nimg = r3gan_cosine((step - 1) * batch, 0.0, 0.25 * steps * batch, total_nimg=(steps - 1) * batch)
        assert schedules.current["EMA/half_life"] == pytest.approx(cur_ema_nimg / batch, rel=1e-12, abs=1e-12)
        beta = 0.5 ** (batch / max(cur_ema_nimg, 1e-8))  # R3GAN's own guard against 0
        assert ema.current_decay() == pytest.approx(beta, rel=1e-9, abs=1e-300), step
    assert schedules.values()["EMA/half_life"] == 0.25 * steps  # logged: it follows a schedule


def test_an_update_with_a_half_life_moves_g_ema_by_its_decay():
    G = nn.Linear(3, 2)
    ema = EMA(G, 0.0)
    start = [p.clone() for p in ema.G_ema.parameters()]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(1.0)
    ema.set_half_life(10.0)  # decay 0.5 ** 0.1: after 10 such updates an old weight keeps half its share
    ema.update(G)
    decay = 0.5 ** 0.1
    for p0, p, q in zip(start, G.parameters(), ema.G_ema.parameters()):
        torch.testing.assert_close(q, decay * p0 + (1 - decay) * p)
    ema.set_half_life(0.0)
    ema.update(G)
    for p, q in zip(G.parameters(), ema.G_ema.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0)


@pytest.mark.parametrize("override, key", [("objective.ema.half_life=0", "objective.ema.half_life"), ("objective.ema.steps=0", "objective.ema.steps")])
def test_a_bad_ema_schedule_names_its_key(override, key):
    from ganlab.config import validate_train

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_train(compose_train(["objective=r3gan", override]))


TINY_TOY = ["objective=r3gan", "steps=4", "batch_size=16", "log_every=2", "sample_every=4", "eval_every=4", "eval_samples=64",
            "model.width=16", "threads=1"]


def assert_finite(metrics: dict, run) -> dict:
    assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics
    state = final_networks(run)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for net in ("G", "D") for v in state[net].values() if v.is_floating_point())
    return load_checkpoint(latest_checkpoint(run))


def test_the_preset_trains_four_steps_on_the_toy_data_and_ends_its_schedules(tmp_path):
    state = assert_finite(train_in_process(TINY_TOY, tmp_path), tmp_path)
    # The run's last step ran with R3GAN's final values (the schedules span the run).
    for opt in ("opt_G", "opt_D"):
        group = state[opt]["param_groups"][0]
        assert group["lr"] == pytest.approx(5e-5, rel=1e-12) and group["betas"] == pytest.approx((0.0, 0.99), abs=1e-15)
    assert state["config"]["objective"]["constraints"]["r1"]["schedule"]["weight"]["steps"] == 4
    assert state["config"]["objective"]["ema"]["steps"] == 4 and "G_ema" in state  # G_ema without ema_decay


def test_the_preset_trains_four_steps_of_a_dcgan_on_digits(tmp_path):
    overrides = ["experiment=digits_dcgan", "objective=r3gan", "dataset.resolution=16", "steps=4", "batch_size=16", "log_every=2",
                 "sample_every=4", "eval_every=4", "eval_samples=200", "model.width=8", "threads=1"]
    assert_finite(train_in_process(overrides, tmp_path), tmp_path)


def test_a_run_cut_mid_schedule_resumes_bit_exact(tmp_path):
    """12 steps in one go, against 6 steps (told the schedules' 12) and a resume to 12: the same G, D and G_ema."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    base = ["objective=r3gan", *TINY, "log_every=2", "sample_every=6", "eval_every=6"]
    train_in_process(base, whole)
    train_in_process([*base, "steps=6", *(f"{path}.steps=12" for path in SCHEDULES)], cut)
    assert load_checkpoint(latest_checkpoint(cut))["config"]["objective"]["ema"]["steps"] == 12
    train_in_process([f"resume={cut}", "steps=12"], cut)

    a, b = load_checkpoint(latest_checkpoint(whole)), load_checkpoint(latest_checkpoint(cut))
    assert a["step"] == b["step"] == 12
    for net in ("G", "D", "G_ema"):
        assert a[net].keys() == b[net].keys()
        for key in a[net]:
            torch.testing.assert_close(a[net][key], b[net][key], rtol=0, atol=0, msg=f"{net}.{key}")
    for opt in ("opt_G", "opt_D"):
        assert a[opt]["param_groups"][0]["lr"] == b[opt]["param_groups"][0]["lr"] == pytest.approx(5e-5, rel=1e-12)
