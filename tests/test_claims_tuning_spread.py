"""Claim 10 (ganlab/claims/tuning_spread.py): the spread statistics and their intervals on samples with known
spreads, the verdict logic, the grid sweep's overrides, and measure() end to end in quick mode."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ganlab.claims import tuning_spread as claim
from ganlab.claims.base import Verdict
from ganlab.claims.runner import jobs_in
from ganlab.compare.runs import DIVERGED, FINISHED, Run
from ganlab.compare.stats import Interval

from claims_support import quick_context, run_sweep_in_process
from conftest import compose_train


def test_spread_statistics():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert claim.iqr(x) == pytest.approx(2.0)  # 4 - 2 (linear interpolation)
    assert claim.std(x) == pytest.approx(math.sqrt(2.5))
    assert claim.spread_ratio(claim.iqr)(x, 4 * x) == pytest.approx(0.25)
    batch = np.stack([x, 2 * x])  # vectorised along the last axis, as the bootstrap calls it
    np.testing.assert_allclose(claim.spread_ratio(claim.iqr)(batch, np.stack([x, x])), [1.0, 2.0])
    np.testing.assert_array_equal(claim.with_worst(np.array([1.0, np.nan, 3.0, np.inf]), 9.0), [1.0, 9.0, 3.0, 9.0])


def test_spread_check():
    assert claim.spread_check(0.5, Interval(0.3, 0.8, "BCa")).passed is True
    assert claim.spread_check(2.0, Interval(1.5, 3.0, "BCa")).passed is False
    undecided = claim.spread_check(0.9, Interval(0.5, 1.4, "BCa"))
    assert undecided.passed is None and "contains 1" in undecided.detail
    assert claim.spread_check(math.nan, Interval(0.1, 0.2, "BCa")).passed is None
    assert claim.spread_check(0.5, Interval(math.nan, math.nan, "none")).passed is None


def test_bootstrap_interval_of_the_ratio_finds_a_known_difference():
    """24 runs each with standard deviations 0.1 and 1: the IQR ratio (true value 0.1) lies far below 1."""
    rng = np.random.default_rng(0)
    tight, wide = 3 + 0.1 * rng.standard_normal(24), 3 + rng.standard_normal(24)
    ratio = claim.spread_ratio(claim.iqr)(tight, wide)
    interval = claim.interval_of([tight, wide], claim.spread_ratio(claim.iqr), seed=0)
    assert interval.low < ratio < interval.high < 1 and ratio == pytest.approx(0.1, rel=0.6)
    assert claim.spread_check(ratio, interval).passed is True
    swapped = claim.interval_of([wide, tight], claim.spread_ratio(claim.iqr), seed=0)
    assert claim.spread_check(1 / ratio, swapped).passed is False
    same = claim.interval_of([wide, 3 + rng.standard_normal(24)], claim.spread_ratio(claim.iqr), seed=0)
    assert same.low < 1 < same.high  # equal spreads: the interval contains 1


def test_grid_run_reads_a_run():
    config = {"seed": 1, "objective": {"optimizer": {"lr_G": 0.0003, "lr_D": "${objective.optimizer.lr_G}", "betas": [0.0, 0.999]}}}
    run = Run(Path("r"), config, {"objective": "js", "dataset": "gaussians25"}, [], FINISHED, final={claim.W1_RATIO: 4.5})
    assert claim.grid_run(run) == claim.GridRun("js", 0.0003, (0.0, 0.999), 1, FINISHED, 4.5)
    diverged = Run(Path("r"), config, {"objective": "js"}, [], DIVERGED)
    assert math.isnan(claim.grid_run(diverged).w1_ratio)


def test_the_grid_sweep():
    (sweep,) = claim.sweeps("full")
    assert jobs_in(sweep) == 24  # 2 objectives x 3 learning rates x 2 beta1 x 2 beta2 x 1 seed
    overrides = [o for o in sweep.overrides if "," not in o.split("=", 1)[1]]  # one job's fixed part
    cfg = compose_train([*overrides, "objective=js", "objective.optimizer.lr_G=3e-4", "objective.optimizer.betas.0=0.0",
                         "objective.optimizer.betas.1=0.9", "seed=0"])
    assert cfg.objective.optimizer.lr_D == pytest.approx(3e-4)  # lr_D follows lr_G
    assert list(cfg.objective.optimizer.betas) == [0.0, 0.9] and cfg.objective.n_critic == 1


def test_measure_quick(tmp_path):
    (sweep,) = claim.sweeps("quick")
    run_sweep_in_process(sweep, tmp_path / "sweeps" / sweep.name, tmp_path)
    ctx = quick_context(tmp_path / "claim", {sweep.name: tmp_path / "sweeps" / sweep.name})
    outcome = claim.measure(ctx)
    by_name = {f.name: f for f in outcome.figures}
    for o in claim.OBJECTIVES:
        assert by_name[f"{o}: IQR of the final W1 ratio"].interval.startswith("over 4 runs")
        assert math.isfinite(by_name[f"{o}: best final W1 ratio (the tuned result)"].value)
    assert math.isfinite(by_name["IQR ratio wgan_gp / js"].value)
    assert by_name["grid runs skipped (failed or unfinished)"].value == 0
    assert len(outcome.checks) == 1 and outcome.verdict in Verdict
    assert outcome.plots == ["spread.png"] and (ctx.out / "spread.png").stat().st_size > 10_000
    assert outcome.table.count("\n") == 2 + 4 - 1  # header, rule, 4 settings
    json.dumps(outcome.to_json())
    for mode in ("quick", "full", "gpu"):
        json.dumps(claim.settings(mode))
