"""Claim 8 (ganlab.claims.d_converges_g_diverges): the operational measures on synthetic curves with known answers,
which run is which variant, the remedy test and the verdict logic, and measure() end to end in quick mode on the
quick toy sweep (the reference js) and this claim's own quick d_vs_g sweeps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ganlab.claims import d_converges_g_diverges as claim
from ganlab.claims.base import Figure, Verdict, verdict_from
from ganlab.compare.runs import FINISHED, Run
from ganlab.compare.scalars import Series

from claims_support import quick_context, run_sweep_in_process

LOG2 = math.log(2.0)


def _series(steps: np.ndarray, values) -> Series:
    return Series(np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))


def test_window_mean_takes_the_half_open_window_and_skips_non_finite_values():
    s = _series([100, 200, 300, 400], [1.0, 2.0, np.nan, 4.0])
    assert claim.window_mean(s, 100, 400) == pytest.approx(3.0)  # 200 and 400; 100 is outside (100, 400], 300 is NaN
    assert math.isnan(claim.window_mean(s, 400, 1000))


def test_pattern_of_a_winning_discriminator_and_a_diverging_generator():
    logged = np.arange(100, 2001, 100)
    evals = np.arange(250, 2001, 250)
    curves = {
        "Critic/accuracy": _series(logged, np.where(logged > 1000, 0.98, 0.7)),  # second half: 0.98
        "Loss/G": _series(logged, np.where(logged > 1500, 4 * LOG2, LOG2)),  # last quarter: 4 log 2
        "Loss/D": _series(logged, np.where(logged > 1500, 0.25 * math.log(4.0), 1.0)),
        # W1 at 750, 1000 (second quarter): 0.4, 0.5 -> 0.45; at 1750, 2000 (last quarter): 0.6, 0.6 -> 0.6
        "Metrics/w1": _series(evals, [0.9, 0.6, 0.4, 0.5, 0.55, 0.55, 0.6, 0.6]),
        "Metrics/modes_covered": _series(evals, [10, 15, 16, 14, 13, 12, 12, 10]),
    }
    p = claim.pattern(curves, 2000)
    assert p.d_accuracy == pytest.approx(0.98)
    assert p.g_loss_growth == pytest.approx(4.0)
    assert p.w1_change == pytest.approx(0.6 / 0.45)
    assert p.d_loss_end == pytest.approx(0.25)
    assert p.modes_change == pytest.approx(11 / 15)
    assert p.shows_pattern()
    calm = claim.Pattern(d_accuracy=0.7, g_loss_growth=1.0, w1_change=0.8, d_loss_end=1.0, modes_change=1.2)
    assert not calm.shows_pattern()


def test_pattern_needs_its_curves_and_quarters():
    with pytest.raises(ValueError, match="no Loss/G"):
        claim.pattern({"Critic/accuracy": _series([1], [0.5]), "Loss/D": _series([1], [1.0]), "Metrics/w1": _series([1], [1.0])}, 100)
    with pytest.raises(ValueError, match="at least 4 steps"):
        claim.pattern({}, 3)


def _run(objective: dict, dataset: str = "gaussians25", steps: int = 2000) -> Run:
    return Run(Path("/runs/x"), {"objective": objective, "steps": steps}, {"dataset": dataset}, [], FINISHED)


def _js(lr_D: float, constraints: dict | None = None, real_label: float = 1.0, name: str = "js") -> dict:
    return {"name": name, "loss": {"_target_": "ganlab.objectives.losses.js.JS", "real_label": real_label},
            "constraints": constraints or {}, "optimizer": {"lr_D": lr_D}}


def test_variant_of_reads_the_resolved_config():
    fast = claim.FAST_LR_D
    assert claim.variant_of(_run(_js(2e-4))) == claim.REFERENCE
    assert claim.variant_of(_run(_js(fast))) == claim.FAST
    assert claim.variant_of(_run(_js(fast, {"sn": {}}))) == claim.SN
    assert claim.variant_of(_run(_js(fast, {"gp": {"weight": 0.1}}))) == claim.GP
    assert claim.variant_of(_run(_js(fast, real_label=0.9))) == claim.SMOOTHING
    assert claim.variant_of(_run(_js(fast, {"sn": {}}, real_label=0.9))) is None  # two remedies at once: no variant
    assert claim.variant_of(_run(_js(2e-4), dataset="gaussians8")) is None
    assert claim.variant_of(_run({**_js(2e-4), "n_critic": 5})) is None  # a faster critic by steps is not one of ours
    assert claim.variant_of(_run(_js(2e-4, {"r1": {}}, name="r1"))) is None
    wgan = {"name": "wgan_gp", "loss": {"_target_": "ganlab.objectives.losses.wasserstein.Wasserstein"}, "constraints": {"gp": {}}}
    assert claim.variant_of(_run(wgan)) is None


def test_smallest_p_of_the_exact_test():
    assert claim.smallest_p(5, 5) == pytest.approx(2 / 252)
    assert claim.smallest_p(4, 4) == pytest.approx(2 / 70)
    assert claim.smallest_p(1, 1) == 1.0 and claim.smallest_p(0, 5) == 1.0


def test_remedy_test_and_check_on_synthetic_runs():
    fast = [4.1, 4.5, 3.9, 5.0, 4.4]
    sn = claim.remedy_test([1.0, 1.05, 0.98, 1.1, 1.02], fast)
    assert sn[0] == pytest.approx(1.0) and sn[1] == pytest.approx(2 / 252) and sn[2]  # complete separation, exact test
    same = claim.remedy_test([4.0, 4.6, 3.8, 5.1, 4.3], fast)
    assert 0.3 < same[0] < 0.7 and same[1] > 0.5 and same[2]
    means = {claim.SN: (1.03, 4.38), claim.SMOOTHING: (4.36, 4.38)}
    check = claim.remedies_check({claim.SN: sn, claim.SMOOTHING: same}, means)
    assert check.passed is True and claim.SN in check.detail
    assert claim.remedies_check({claim.SMOOTHING: same}, means).passed is False
    assert claim.remedies_check({claim.SN: (math.nan, math.nan, False)}, means).passed is None
    # significant but the wrong way (the remedy makes it worse) is no remedy
    assert claim.remedies_check({claim.SN: (0.0, 0.008, True)}, {claim.SN: (9.0, 4.38)}).passed is False
    # one seed a side cannot show a change: undecided, not "did not change"
    one = claim.remedy_test([1.0], [5.0])
    assert one[1] == pytest.approx(1.0) and not one[2]
    assert claim.remedies_check({claim.SN: one}, {claim.SN: (1.0, 5.0)}).passed is None


def test_verdict_held_not_held_and_inconclusive_from_synthetic_figures():
    remedied = claim.remedies_check({claim.SN: (1.0, 0.008, True)}, {claim.SN: (1.0, 4.0)})
    strong = (Figure("acc", 0.98, 0.97, 0.99), Figure("g", 4.5, 3.8, 5.0), Figure("w1", 1.1, 0.95, 1.3))
    assert verdict_from(claim.verdict_checks(*strong, remedied)) is Verdict.held
    assert verdict_from(claim.verdict_checks(Figure("acc", 0.8, 0.7, 0.85), *strong[1:], remedied)) is Verdict.not_held
    assert verdict_from(claim.verdict_checks(*strong[:2], Figure("w1", 0.95, 0.85, 1.05), remedied)) is Verdict.inconclusive
    none = claim.remedies_check({claim.SN: (0.5, 0.9, True)}, {claim.SN: (4.0, 4.0)})
    assert verdict_from(claim.verdict_checks(*strong, none)) is Verdict.not_held


@pytest.mark.parametrize("mode", ["quick", "full", "gpu"])
def test_settings_are_json_and_the_sweeps_share_the_toy_clocks(mode):
    settings = claim.settings(mode)
    assert json.loads(json.dumps(settings)) == settings
    sweeps = {s.name: s for s in claim.sweeps(mode)}
    assert list(sweeps) == ["toy", "d_vs_g", "d_vs_g_smoothing"]
    assert "objective/constraints=[],[sn],[gp]" in sweeps["d_vs_g"].overrides
    assert "objective.loss.real_label=0.9" in sweeps["d_vs_g_smoothing"].overrides
    toy = dict(o.split("=", 1) for o in sweeps["toy"].overrides if o.startswith(("eval_every", "log_every")))
    ours = dict(o.split("=", 1) for o in claim.budget(mode) if o.startswith(("eval_every", "log_every")))
    assert ours == toy  # the reference js is read on the same clocks
    toy_steps = int(dict(o.split("=", 1) for o in sweeps["toy"].overrides if o.startswith("steps"))["steps"])
    assert claim.steps_of(mode) <= toy_steps


def test_measure_in_quick_mode_on_its_own_quick_sweeps(quick_toy_sweep, tmp_path):
    root = tmp_path / "sweeps"
    dirs = {"toy": quick_toy_sweep}
    for sweep in claim.sweeps("quick")[1:]:
        run_sweep_in_process(sweep, root / sweep.name, tmp_path)
        dirs[sweep.name] = root / sweep.name
    ctx = quick_context(tmp_path / "08_d_converges_g_diverges", dirs)
    outcome = claim.measure(ctx)
    assert len(outcome.checks) == 4 and outcome.checks[-1].what.startswith("at least one remedy")
    shown = {f.name: f for f in outcome.figures}
    for variant in claim.VARIANTS:  # 2 seeds of each, the reference from the toy sweep
        assert "over 2 seeds" in shown[f"{variant}: Loss/G (last quarter) / log 2"].interval
        assert 0.0 <= shown[f"{variant}: mean Critic/accuracy, second half"].value <= 1.0
    assert set(shown) >= {f"{r}: P(its G-loss growth < the fast critic's)" for r in claim.REMEDIES}
    assert shown["runs skipped (not finished, shorter than the budget, or a curve missing)"].value == 0.0
    assert all(f"| {v} | 2 |" in outcome.table for v in claim.VARIANTS)
    assert outcome.plots == ["d_vs_g.png"]
    assert (ctx.out / "d_vs_g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(json.dumps(outcome.to_json(), allow_nan=True))["verdict"] == outcome.verdict.value
