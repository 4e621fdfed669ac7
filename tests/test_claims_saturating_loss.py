"""Claim 1 (ganlab.claims.saturating_loss): the gradient measurements on networks with known
gradients, the verdict on synthetic figures, and measure() in quick mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from claims_support import quick_context
from ganlab.claims import saturating_loss as claim
from ganlab.claims.base import Verdict, verdict_from
from ganlab.claims.critic import geometric_figure, mean_figure, parameter_gradient_norm


class ConstantG(nn.Module):
    """G(z) = theta for every z: its parameter gradient is the loss's gradient at theta."""

    def __init__(self, theta):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta))

    def forward(self, z):
        return self.theta.expand(z.shape[0], -1)


class LinearD(nn.Module):
    """D(x) = a.x + b (a logit); its input gradient is a everywhere."""

    def __init__(self, a, b):
        super().__init__()
        self.a, self.b = torch.tensor(a), b

    def forward(self, x):
        return x @ self.a + self.b


def test_parameter_gradient_norm_of_a_linear_loss():
    w = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    x = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    loss = (x @ w).mean()  # gradient = mean of the rows = (2, 2, 2)
    assert parameter_gradient_norm(loss, [w]) == pytest.approx(math.sqrt(12.0))


def test_generator_gradients_are_sigmoid_times_the_critic_slope():
    """(a) log(1 - sigmoid(s)) has d/dtheta = -sigmoid(s) a, (b) -log sigmoid(s) has -(1 - sigmoid(s)) a."""
    theta, a, b = [0.5, -1.0], [3.0, 4.0], -2.0  # |a| = 5, s = 1.5 - 4 - 2 = -4.5
    s = 1.5 - 4.0 - 2.0
    D_fake = 1 / (1 + math.exp(-s))
    out = claim.generator_gradients(ConstantG(theta), LinearD(a, b), torch.zeros(3, 7, 1))
    np.testing.assert_allclose(out["saturating"], [5 * D_fake] * 3, rtol=1e-5)
    np.testing.assert_allclose(out["non_saturating"], [5 * (1 - D_fake)] * 3, rtol=1e-5)
    np.testing.assert_allclose(out["d_fake"], [D_fake] * 3, rtol=1e-5)
    # their ratio is (1 - D) / D = exp(-s): the figure behind RATIO_MIN
    assert out["non_saturating"][0] / out["saturating"][0] == pytest.approx(math.exp(-s), rel=1e-4)


def test_coefficient_of_variation():
    x = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(claim.coefficient_of_variation(x), [1.0 / 2.0, 0.0])


def test_geometric_figure_is_the_geometric_mean():
    figure = geometric_figure("ratio", [1e-3, 1e-1, 1e-2])
    assert figure.value == pytest.approx(1e-2)
    assert figure.low < 1e-2 < figure.high
    assert mean_figure("x", [1.0, 2.0, 3.0]).value == pytest.approx(2.0)


def seed(d_fake_end=0.01, decay=1e-3, ratio=100.0, spread_growth=2.0) -> dict[str, float]:
    """Synthetic per-seed figures (with a little seed-to-seed variation added by the callers)."""
    return {"d_fake_end": d_fake_end, "decay_a": decay, "end_over_peak_a": decay, "ratio_end": ratio, "ratio_start": 1.0,
            "spread_growth_b": spread_growth, "growth_b": 10.0, "a_start": 1.0, "a_end": decay, "b_start": 1.0, "b_end": 10.0,
            "cv_a_end": 0.3, "cv_b_start": 0.1, "cv_b_end": 0.1 * spread_growth}


def jitter(n: int = 5, **values) -> list[dict[str, float]]:
    return [{k: v * (1 + 0.05 * (i - n // 2)) for k, v in seed(**values).items()} for i in range(n)]


def test_verdict_held_when_a_vanishes_b_stays_large_and_grows_noisier():
    _, checks = claim.figures_and_checks(jitter())
    assert verdict_from(checks) is Verdict.held


def test_verdict_not_held_when_the_minimax_gradient_does_not_vanish():
    _, checks = claim.figures_and_checks(jitter(decay=0.5))
    assert verdict_from(checks) is Verdict.not_held
    assert [c.passed for c in checks] == [True, False, True, True]


def test_verdict_inconclusive_when_the_discriminator_did_not_win():
    """A discriminator that never won did not put the claim to the test: not "did not hold"."""
    _, checks = claim.figures_and_checks(jitter(d_fake_end=0.4, decay=0.5, ratio=1.5))
    assert checks[0].passed is None
    assert verdict_from(checks) is Verdict.inconclusive


def test_verdict_inconclusive_when_the_interval_straddles_a_threshold():
    per_seed = jitter()
    for s, decay in zip(per_seed, [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]):  # geometric mean 1e-3, interval past 1e-2
        s["decay_a"] = decay
    _, checks = claim.figures_and_checks(per_seed)
    assert checks[1].passed is None
    assert verdict_from(checks) is Verdict.inconclusive


def test_settings_and_no_sweeps():
    for mode in ("quick", "full", "gpu"):
        config = claim.settings(mode)
        assert config["checkpoints"][0] == 0 and config["checkpoints"][-1] == config["d_steps"]
        assert claim.sweeps(mode) == []
    with pytest.raises(ValueError, match="mode"):
        claim.settings("slow")


def test_measure_quick_writes_its_figure(tmp_path):
    outcome = claim.measure(quick_context(tmp_path / "01_saturating_loss", {}))
    assert outcome.plots == ["gradient_norms.png"]
    png = tmp_path / "01_saturating_loss" / "gradient_norms.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(outcome.checks) == 4
    assert all(math.isfinite(f.value) for f in outcome.figures)
    assert outcome.table.count("\n") == 1 + len(claim.settings("quick")["checkpoints"])
