"""Claim 5 (ganlab.claims.gradient_penalty): the interpolate norms on critics with known gradients, the
clipped critic's Lipschitz bound, the penalty pulling the norm to 1, the reading of the sweep's curves, the
verdict logic on synthetic figures, and measure() end to end in quick mode on the quick toy sweep."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ganlab.claims import gradient_penalty as claim
from ganlab.claims.base import Figure, Verdict, verdict_from
from ganlab.compare.runs import FINISHED, Run
from ganlab.compare.scalars import Series



def test_interpolate_norms_of_a_linear_critic_are_the_norm_of_its_weights():
    D = nn.Linear(2, 1)
    with torch.no_grad():
        D.weight.copy_(torch.tensor([[3.0, -4.0]]))
    g = torch.Generator().manual_seed(0)
    norms = claim.interpolate_norms(D, torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g), g)
    torch.testing.assert_close(norms, torch.full((16,), 5.0))


def test_interpolates_lie_between_real_and_fake():
    """D(x) = ||x - fake_0||^2 / 2 has gradient x - fake_0: at x_hat = eps real + (1 - eps) fake its norm is
    eps ||real - fake||, with eps in [0, 1]."""

    class Quadratic(nn.Module):
        def forward(self, x):
            return 0.5 * ((x - torch.tensor([1.0, 1.0])) ** 2).sum(1)

    real, fake = torch.zeros(64, 2), torch.ones(64, 2)
    norms = claim.interpolate_norms(Quadratic(), real, fake, torch.Generator().manual_seed(1))
    assert float(norms.min()) >= 0.0 and float(norms.max()) <= math.sqrt(2) + 1e-6
    assert float(norms.std()) > 0.1  # one eps per sample, not one per batch


def test_clipped_critic_stays_below_its_lipschitz_bound_and_the_penalty_pulls_towards_1():
    s = {**claim.settings("quick")["critic"], "critic_steps": 60, "width": 64, "batch_size": 128, "eval_every": 10}
    clip = claim.run_critic(False, 0, s, "cpu")
    w = s["width"]  # 2 -> w -> w -> w -> 1, every weight in [-c, c]: ||grad D|| <= prod c sqrt(n_in n_out)
    bound = claim.CLIP_C * math.sqrt(2 * w) * (claim.CLIP_C * w) ** 2 * claim.CLIP_C * math.sqrt(w)
    assert clip.mean.max() <= bound
    gp = claim.run_critic(True, 0, s, "cpu")
    assert list(gp.steps) == list(range(0, 61, 10))
    assert gp.sq_dev[-1] < gp.sq_dev[0] / 4  # (norm - 1)^2 shrinks under lambda = 10 (0.72 -> 0.05 here)
    assert gp.mean[-1] == pytest.approx(1.0, abs=0.2)
    again = claim.run_critic(True, 0, s, "cpu")
    np.testing.assert_array_equal(gp.mean, again.mean)


def test_norm_trace_second_half():
    trace = claim.NormTrace(np.array([0, 5, 10]), np.array([3.0, 1.0, 2.0]), np.array([4.0, 0.0, 1.0]))
    assert trace.second_half(10) == pytest.approx((1.5, math.sqrt(0.5)))


def fake_run(dataset: str, steps: int = 24) -> Run:
    return Run(Path("/nonexistent"), {"steps": steps}, {"objective": "wgan_gp", "dataset": dataset}, [], FINISHED)


def test_sweep_norms_use_the_second_half_of_each_run():
    runs = [fake_run("gaussians8"), fake_run("gaussians8"), fake_run("gaussians25")]
    steps = np.array([4, 8, 12, 16, 20, 24])
    series = [Series(steps, np.array([9, 9, 1.0, 1.0, 1.0, 1.0])), Series(steps, np.array([9, 9, 0.5, 0.5, 1.5, 1.5])),
              Series(steps, np.array([0, 0, 2.0, 2.0, 2.0, 2.0]))]
    found = claim.SweepNorms("wgan_gp", runs, series, series, skipped=1)
    assert found.run_means() == {"gaussians8": [1.0, 1.0], "gaussians25": [2.0]}
    late = np.array([1.0] * 4 + [0.5, 0.5, 1.5, 1.5] + [2.0] * 4)
    assert found.spread() == pytest.approx(late.std(ddof=1))
    assert found.max_mean() == pytest.approx(late.mean())


def test_verdict_checks_decide_held_not_held_and_inconclusive():
    held = claim.verdict_checks(Figure("m", 1.02, 0.97, 1.06), Figure("r", 0.15, 0.12, 0.2), Figure("c", 0.99, 0.99, 0.995),
                                Figure("s", 0.01, 0.008, 0.012))
    assert verdict_from(held) is Verdict.held
    drifting = claim.verdict_checks(Figure("m", 1.5, 1.4, 1.6), Figure("r", 0.6, 0.5, 0.7), Figure("c", 0.99, 0.99, 0.995),
                                    Figure("s", 0.01, 0.008, 0.012))
    assert [c.passed for c in drifting] == [True, False, False, True, True]
    assert verdict_from(drifting) is Verdict.not_held
    straddling = claim.verdict_checks(Figure("m", 0.85, 0.75, 0.95), Figure("r", 0.2, 0.1, 0.3), Figure("c", 0.99, 0.99, 0.995),
                                      Figure("s", math.nan))
    assert [c.passed for c in straddling] == [None, True, None, True, None]
    assert verdict_from(straddling) is Verdict.inconclusive


def test_settings_are_json():
    for mode in ("quick", "full", "gpu"):
        body = claim.settings(mode)
        assert json.loads(json.dumps(body)) == body
        assert [s.name for s in claim.sweeps(mode)] == ["toy"]


def test_measure_in_quick_mode(quick_toy_sweep, tmp_path):
    from claims_support import quick_context  # imported here: loaded first as the plugin above, its asserts rewritten

    ctx = quick_context(tmp_path / "05_gradient_penalty", {"toy": quick_toy_sweep})
    outcome = claim.measure(ctx)
    assert len(outcome.checks) == 5 and outcome.verdict in Verdict
    assert (ctx.out / outcome.plots[0]).stat().st_size > 10_000
    by_name = {f.name: f for f in outcome.figures}
    assert by_name["toy sweep: wgan_gp and wgan_clip runs skipped (not finished, or no norms logged)"].value == 0
    gp_sweep = next(f for name, f in by_name.items() if name.startswith("toy sweep: mean CriticGrad/interp_mean") and "wgan_gp" in name)
    assert "lambda = 0.1" in gp_sweep.name  # conf/tuning/toy.yaml, resolved from the run's config
    assert "over 4 runs" in gp_sweep.interval
    clip_sweep = next(f for name, f in by_name.items() if name.startswith("toy sweep: mean CriticGrad/interp_mean") and "wgan_clip" in name)
    assert 0 < clip_sweep.value < 0.01  # width 16: the clipped critic's bound is ~6e-5
    assert outcome.table.count("| toy sweep,") == 4
