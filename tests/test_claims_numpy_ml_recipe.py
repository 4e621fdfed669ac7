"""Claim 9 (ganlab/claims/numpy_ml_recipe.py): the numpy_ml preset and experiment carry numpy-ml's recipe, the
worst-setback figure and the verdict logic on inputs with known answers, and measure() end to end in quick mode."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ganlab.claims import numpy_ml_recipe as claim
from ganlab.claims.base import Sweep, Verdict, verdict_from
from ganlab.compare.runs import DIVERGED, FINISHED

from claims_support import quick_context, run_sweep_in_process
from conftest import compose_train



# ------------------------------------------------------------------------------------ the preset


def test_experiment_carries_the_recipe_and_lambda_10_on_the_toy_data():
    """On the 25 Gaussians the toy tuning's lambda = 0.1 does not reach the preset: the recipe keeps its 10."""
    cfg = compose_train(["experiment=numpy_ml"])
    obj = cfg.objective
    assert obj.name == "numpy_ml" and list(obj.constraints) == ["gp"]
    assert obj.constraints.gp.weight == pytest.approx(10.0)
    assert cfg.tuning.gp.weight == pytest.approx(0.1)  # the toy data's tuning is there, and loses to the preset
    assert (obj.n_critic, obj.optimizer.name.value) == (5, "rmsprop")
    assert (obj.optimizer.lr_G, obj.optimizer.lr_D, obj.optimizer.alpha) == (pytest.approx(1e-4), pytest.approx(1e-4), pytest.approx(0.9))
    assert (cfg.model.width, cfg.model.depth, cfg.model.init.value, cfg.model.activation.value) == (512, 3, "he_uniform", "relu")
    assert cfg.model.z_dim == 2 and cfg.batch_size == 128


@pytest.mark.parametrize("overrides,expected", [
    (["objective=numpy_ml", "dataset=digits", "model=dcgan"], 10.0),
    (["objective=numpy_ml", "dataset=swissroll"], 10.0),
    (["experiment=numpy_ml", "objective.constraints.gp.weight=0.1"], 0.1),  # the command line still wins
])
def test_preset_lambda(overrides, expected):
    from ganlab.apps.build import build_objective_from

    cfg = compose_train(overrides)
    assert cfg.objective.constraints.gp.weight == pytest.approx(expected)
    assert build_objective_from(cfg.objective).constraints["gp"].weight == pytest.approx(expected)  # what a run uses


# ------------------------------------------------------------------------------ measurements


def test_worst_setback():
    steps = np.array([100, 200, 300, 400, 500, 600])
    # Only the evaluations after step 300 count (window 0.5 of 600): 400 -> 500 rises by 50%.
    values = np.array([10.0, 1.0, 2.0, 4.0, 6.0, 5.0])
    assert claim.worst_setback(steps, values, 600) == pytest.approx(0.5)
    assert claim.worst_setback(steps, np.array([6.0, 5, 4, 3, 2, 1]), 600) == 0.0  # always improving
    assert claim.worst_setback(steps, values, 600, window=0.0) == pytest.approx(1.0)  # 1 -> 2 now inside
    assert math.isnan(claim.worst_setback(steps, values, 600, window=0.9))  # one evaluation in the window
    assert claim.worst_setback(steps, np.array([1.0, 1, 1, 1, np.nan, 1]), 600) == math.inf


def test_smallest_p_of_the_exact_test():
    assert claim.smallest_p(3, 3) == pytest.approx(0.1)
    assert claim.smallest_p(4, 4) == pytest.approx(2 / 70)
    assert claim.smallest_p(5, 5) == pytest.approx(2 / 252)
    assert claim.smallest_p(0, 5) == 1.0


# ---------------------------------------------------------------------------------- verdicts


WORSE = [5.0, 6.0, 7.0, 8.0, 9.0]
BETTER = [1.0, 1.1, 1.2, 1.3, 1.4]


def test_not_worse_check():
    failed, p_better, p_value = claim.not_worse_check("q", WORSE, BETTER)
    assert failed.passed is False and p_better == 0.0 and p_value == pytest.approx(2 / 252)
    better, p_better, _ = claim.not_worse_check("q", BETTER, WORSE)
    assert better.passed is True and p_better == 1.0
    mixed, p_better, _ = claim.not_worse_check("q", [1.0, 3.0, 5.0, 7.0, 9.0], [2.0, 4.0, 6.0, 8.0, 10.0])
    assert mixed.passed is True and p_better == pytest.approx(0.6)
    few, _, _ = claim.not_worse_check("q", WORSE[:3], BETTER[:3])  # 3 vs 3: p >= 0.1 whatever happens
    assert few.passed is None and "cannot reach" in few.detail
    diverged, _, _ = claim.not_worse_check("q", [math.nan] * 5, BETTER)  # NaN counts as the worst
    assert diverged.passed is False
    assert claim.not_worse_check("q", [], BETTER)[0].passed is None


def test_bad_runs_check_and_the_verdict():
    assert claim.bad_runs_check(0, 9).passed is True
    assert claim.bad_runs_check(1, 9).passed is False
    assert claim.bad_runs_check(0, 0).passed is None
    held = [claim.bad_runs_check(0, 9), claim.not_worse_check("q", BETTER, WORSE)[0]]
    assert verdict_from(held) is Verdict.held
    assert verdict_from([claim.bad_runs_check(1, 9), *held[1:]]) is Verdict.not_held
    assert verdict_from([*held, claim.not_worse_check("q", WORSE[:3], BETTER[:3])[0]]) is Verdict.inconclusive


def test_setbacks_count_a_diverged_run_as_the_worst():
    side = claim.Side("gaussians25", "numpy_ml", claim.W1_RATIO, [
        claim.RunResult(FINISHED, 2.0, setback=0.1), claim.RunResult(DIVERGED),
        claim.RunResult(FINISHED, 3.0, setback=math.nan), claim.RunResult("failed"),
    ])
    assert side.setbacks() == [0.1, math.inf]  # the run without a setback is left out, the failed one skipped
    assert side.qualities()[0] == 2.0 and math.isnan(side.qualities()[1]) and len(side.qualities()) == 3


# ---------------------------------------------------------------------------------- end to end


def test_measure_quick(quick_toy_sweep, classifier_cache, tmp_path):
    root = tmp_path / "sweeps"
    sweep_dirs = {"toy": quick_toy_sweep}
    for sweep in claim.sweeps("quick")[1:]:
        own = Sweep(sweep.name, (*sweep.overrides, f"metrics.classifier_cache={classifier_cache}"))
        run_sweep_in_process(own, root / sweep.name, tmp_path)
        sweep_dirs[sweep.name] = root / sweep.name
    ctx = quick_context(tmp_path / "claim", sweep_dirs)
    outcome = claim.measure(ctx)
    names = [f.name for f in outcome.figures]
    assert "gaussians25, numpy_ml: final W1 ratio" in names and "digits, wgan_gp: final FCD" in names
    by_name = {f.name: f for f in outcome.figures}
    assert by_name["gaussians25, numpy_ml: share of runs diverged or failed"].unit == "of 2 runs"
    assert by_name["gaussians25, wgan_gp: final W1 ratio"].interval.endswith("over 2 runs")  # the toy sweep's 2 seeds
    assert math.isfinite(by_name["digits, numpy_ml: final FCD"].value)
    assert len(outcome.checks) == 5 and outcome.verdict in Verdict
    assert all(c.passed is None for c in outcome.checks[1:])  # 2 seeds against 2: no test can decide
    assert (ctx.out / "quality.png").stat().st_size > 10_000 and outcome.plots == ["quality.png"]
    assert "| gaussians25 | numpy_ml | 2 / 0 / 0 / 0 |" in outcome.table
    json.dumps(outcome.to_json())  # what the runner stores
    json.dumps(claim.settings("quick")), json.dumps(claim.settings("full")), json.dumps(claim.settings("gpu"))
