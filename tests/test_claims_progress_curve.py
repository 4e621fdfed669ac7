"""Claim 3 (ganlab.claims.progress_curve): the pairing of logged scalars with evaluations and the rank correlation on
series with known answers, the verdict logic on synthetic figures, and measure() end to end on the quick toy sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ganlab.claims import progress_curve as claim
from ganlab.claims.base import Figure, Verdict, verdict_from
from ganlab.compare.runs import FINISHED, Run
from ganlab.compare.scalars import Series

from claims_support import quick_context


def test_at_evaluations_averages_the_logged_means_in_a_window_centred_on_each_evaluation():
    steps = np.arange(100, 1001, 100)
    signal = Series(steps, steps.astype(float))  # the value is its step
    # eval_every 250: (125, 375] holds 200, 300 -> 250; (375, 625] holds 400, 500, 600 -> 500; (875, 1125] holds 900, 1000
    paired = claim.at_evaluations(signal, np.array([250, 500, 1000]), 250)
    np.testing.assert_allclose(paired, [250.0, 500.0, 950.0])
    # the same clock for both: each evaluation gets its own step's value (window (e - 50, e + 50])
    np.testing.assert_allclose(claim.at_evaluations(signal, steps, 100), steps.astype(float))


def test_at_evaluations_leaves_out_non_finite_points_and_says_nan_where_nothing_was_logged():
    signal = Series(np.array([100, 200, 300]), np.array([1.0, np.nan, 3.0]))
    paired = claim.at_evaluations(signal, np.array([200, 2000]), 250)
    assert paired[0] == pytest.approx(2.0)  # (75, 325]: 1 and 3, the NaN left out
    assert math.isnan(paired[1])
    with pytest.raises(ValueError, match="eval_every"):
        claim.at_evaluations(signal, np.array([100]), 0)


def test_rank_correlation_is_one_for_any_increasing_pair_and_minus_one_for_a_decreasing_one():
    x = np.linspace(0.1, 3.0, 20)
    assert claim.rank_correlation(x, np.exp(x)) == pytest.approx(1.0)  # monotone, far from linear
    assert claim.rank_correlation(x, -x ** 3) == pytest.approx(-1.0)
    # one pair out of order among 5: rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 120 = 0.9
    assert claim.rank_correlation(np.arange(5.0), np.array([0.0, 2.0, 1.0, 3.0, 4.0])) == pytest.approx(0.9)


def test_rank_correlation_is_undefined_without_a_ranking_to_compare():
    assert math.isnan(claim.rank_correlation(np.arange(5.0), np.ones(5)))  # a constant side
    assert math.isnan(claim.rank_correlation(np.array([1.0, 2.0, np.nan]), np.array([1.0, 2.0, 3.0])))  # 2 finite pairs
    # NaN pairs are left out, not ranked
    assert claim.rank_correlation(np.array([1.0, np.nan, 2.0, 3.0]), np.array([3.0, 0.0, 2.0, 1.0])) == pytest.approx(-1.0)


def _curves(objective: str, dataset: str, estimate: np.ndarray, loss_d: np.ndarray, w1: np.ndarray, steps: int = 1000) -> claim.RunCurves:
    run = Run(Path(f"/runs/{objective}-{dataset}"), {"steps": steps, "seed": 0}, {"objective": objective, "dataset": dataset}, [], FINISHED)
    eval_steps = np.linspace(steps / len(w1), steps, len(w1)).astype(int)
    return claim.RunCurves(run, eval_steps, w1, {claim.ESTIMATE: estimate, claim.LOSS_D: loss_d})


def test_run_curves_rho_over_all_evaluations_and_over_the_second_half():
    w1 = np.array([1.0, 0.8, 0.6, 0.5, 0.45, 0.4, 0.38, 0.36])
    estimate = np.array([0.1, 0.5, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])  # rises while the critic sharpens, then tracks W1
    c = _curves("wgan_gp", "gaussians25", estimate, estimate, w1)
    assert c.rho(claim.ESTIMATE, late=True) == pytest.approx(1.0)  # evaluations at 625..1000: both fall
    assert c.rho(claim.ESTIMATE) < 0.5
    by = claim.by_dataset([c, _curves("js", "gaussians25", estimate, -w1, w1)], "js", claim.LOSS_D, absolute=True)
    assert by == {"gaussians25": [pytest.approx(1.0)]}  # |rho| of a loss that falls exactly as W1 rises


def test_verdict_held_not_held_and_inconclusive_from_synthetic_figures():
    gp_good = Figure("gp", 0.9, 0.8, 0.95)
    js_low = Figure("js", 0.2, 0.05, 0.4)
    better = Figure("P", 0.95, 0.8, 1.0)
    assert verdict_from(claim.verdict_checks(gp_good, js_low, better)) is Verdict.held
    assert verdict_from(claim.verdict_checks(Figure("gp", 0.3, 0.1, 0.5), js_low, better)) is Verdict.not_held
    assert verdict_from(claim.verdict_checks(gp_good, Figure("js", 0.8, 0.75, 0.9), better)) is Verdict.not_held
    # wgan_gp's interval straddles the threshold: undecided
    assert verdict_from(claim.verdict_checks(Figure("gp", 0.8, 0.6, 0.9), js_low, better)) is Verdict.inconclusive
    assert verdict_from(claim.verdict_checks(gp_good, js_low, Figure("P", math.nan))) is Verdict.inconclusive


def test_improvement_figure_compares_runs_within_each_dataset():
    gp = {"gaussians8": [0.9, 0.95, 0.85], "gaussians25": [0.8, 0.9, 0.7]}
    js = {"gaussians8": [0.1, 0.2, 0.3], "gaussians25": [0.5, 0.6, 0.4]}
    assert claim.improvement_figure(gp, js).value == pytest.approx(1.0)
    assert math.isnan(claim.improvement_figure(gp, {"swissroll": [0.1]}).value)  # no dataset in common


@pytest.mark.parametrize("mode", ["quick", "full", "gpu"])
def test_settings_are_json_and_the_sweep_is_the_shared_toy_sweep(mode):
    settings = claim.settings(mode)
    assert json.loads(json.dumps(settings)) == settings
    assert [s.name for s in claim.sweeps(mode)] == ["toy"]
    assert settings["thresholds"] == {"usable_rho": claim.USABLE_RHO, "improvement_min": claim.IMPROVEMENT_MIN}


def test_measure_in_quick_mode_on_the_quick_toy_sweep(quick_toy_sweep, tmp_path):
    ctx = quick_context(tmp_path / "03_progress_curve", {"toy": quick_toy_sweep})
    outcome = claim.measure(ctx)
    assert [c.what.split(":")[0] for c in outcome.checks] == ["wgan_gp", "js", "P(wgan_gp's rho > js's |rho|)"]
    names = [f.name for f in outcome.figures]
    assert names[:2] == ["wgan_gp: rho(Wasserstein/estimate, exact W1)", "js: |rho(Loss/D, exact W1)|"]
    gp = outcome.figures[0]
    assert -1.0 <= gp.value <= 1.0 and "over 4 runs" in gp.interval  # 2 seeds x 2 datasets
    skipped = next(f for f in outcome.figures if f.name.startswith("toy sweep runs skipped"))
    assert skipped.value == 0.0
    for objective in ("js", "wgan_clip", "wgan_gp", "spectral_norm"):
        assert f"| {objective} | Wasserstein/estimate" in outcome.table
    assert outcome.plots == ["progress_curves.png", "progress_scatter.png"]
    for name in outcome.plots:
        assert (ctx.out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outcome.verdict in set(Verdict)
    assert json.loads(json.dumps(outcome.to_json(), allow_nan=True))["verdict"] == outcome.verdict.value
