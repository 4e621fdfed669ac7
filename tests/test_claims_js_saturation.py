"""Claim 2 (ganlab.claims.js_saturation): the exact W1 of a translate, the separation of the shifted
modes, the rank correlation, the verdict on synthetic figures, and measure() in quick mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from claims_support import quick_context
from ganlab.claims import js_saturation as claim
from ganlab.claims.base import Verdict, verdict_from
from ganlab.data.toy import Gaussians8
from ganlab.metrics.ot import wasserstein1


@pytest.mark.parametrize("shift", [0.25, 1.0, 6.0])
def test_exact_w1_of_a_translate_is_the_shift(shift):
    """The W1 that the claim compares the critic with: a set and its translate by d are d apart."""
    data = Gaussians8(seed=1)
    x = data.sample(500)
    assert wasserstein1(x, x + shift * claim.direction()) == pytest.approx(shift, rel=1e-6)


def test_direction_is_a_unit_vector_at_the_stated_angle():
    u = claim.direction()
    assert float(u.norm()) == pytest.approx(1.0)
    assert math.atan2(float(u[1]), float(u[0])) == pytest.approx(math.pi / 16)


def test_separation_in_standard_deviations():
    data = Gaussians8()
    assert claim.separation(data, 0.0) == pytest.approx(0.0, abs=1e-9)
    # a small shift keeps each mode nearest its own centre: d / std
    assert claim.separation(data, 0.1) == pytest.approx(0.1 / data.std, rel=1e-5)
    # along the axis a shift by the distance between two diagonal centres lands one on the other: what DIRECTION avoids
    centers = data.centers.double()
    dx = float(centers[4, 0] - centers[6, 0])  # (r, r) and (-r, r): a horizontal chord
    moved = centers + torch.tensor([dx, 0.0], dtype=torch.float64)
    assert float(torch.cdist(moved, centers).min()) == pytest.approx(0.0, abs=1e-6)


def test_every_full_shift_from_the_separating_one_on_keeps_the_modes_apart():
    data = Gaussians8()
    shifts = claim.settings("full")["shifts"]
    separations = [claim.separation(data, d) for d in shifts]
    separated = [d for d, s in zip(shifts, separations) if s > claim.SEPARATED_SIGMAS]
    assert separated == [d for d in shifts if d >= 0.25]
    assert len(separated) >= 5  # enough shifts for a rank correlation


def test_spearman():
    x = np.arange(5.0)
    assert claim.spearman(x, x**2) == pytest.approx(1.0)
    assert claim.spearman(x, -x) == pytest.approx(-1.0)
    assert math.isnan(claim.spearman(x, np.ones(5)))
    assert math.isnan(claim.spearman(x[:2], x[:2]))


SHIFTS = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0])
SEPARATED = SHIFTS >= 0.25


def results(js: np.ndarray, w: np.ndarray, n: int = 5, noise: float = 0.01) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"js": np.abs(js + noise * rng.standard_normal(js.shape)), "w": w + noise * rng.standard_normal(w.shape)} for _ in range(n)]


def test_verdict_held_when_js_is_at_its_floor_and_w_tracks_d():
    js = np.where(SEPARATED, 0.01, claim.LOG4 * 0.9)
    _, checks = claim.figures_and_checks(SHIFTS, SEPARATED, results(js, SHIFTS * 1.1))
    assert [c.passed for c in checks] == [True, True]
    assert verdict_from(checks) is Verdict.held


def test_verdict_not_held_when_the_js_loss_keeps_falling_with_d():
    js = claim.LOG4 * np.exp(-SHIFTS)  # informative about d: never at its floor by 0.5
    _, checks = claim.figures_and_checks(SHIFTS, SEPARATED, results(js, SHIFTS))
    assert checks[0].passed is False
    assert verdict_from(checks) is Verdict.not_held


def test_verdict_not_held_when_the_w_estimate_does_not_track_d():
    js = np.where(SEPARATED, 0.01, 1.0)
    w = np.where(SEPARATED, 1.0, 0.0)  # saturates too, up to noise: no ranking
    _, checks = claim.figures_and_checks(SHIFTS, SEPARATED, results(js, w, noise=0.05))
    assert checks[1].passed is False
    assert verdict_from(checks) is Verdict.not_held


def test_verdict_inconclusive_when_the_floor_interval_straddles():
    per_seed = results(np.where(SEPARATED, 0.01, 1.0), SHIFTS)
    for r, top in zip(per_seed, [0.01, 0.02, 0.03, 0.09, 0.12]):
        r["js"][-1] = top  # the largest separated loss: mean 0.054 < 0.069, interval past it
    _, checks = claim.figures_and_checks(SHIFTS, SEPARATED, per_seed)
    assert checks[0].passed is None
    assert verdict_from(checks) is Verdict.inconclusive


def test_settings_and_no_sweeps():
    for mode in ("quick", "full", "gpu"):
        config = claim.settings(mode)
        assert config["shifts"][0] == 0.0 and max(config["shifts"]) > 2 * 2 / 1.414  # past the ring's diameter
        assert config["gp_lambda"] == 10.0
        assert claim.sweeps(mode) == []


def test_measure_quick_writes_its_figure(tmp_path):
    outcome = claim.measure(quick_context(tmp_path / "02_js_saturation", {}))
    png = tmp_path / "02_js_saturation" / outcome.plots[0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(outcome.checks) == 2
    assert outcome.table.count("\n") == 1 + len(claim.settings("quick")["shifts"])
    zero = next(f for f in outcome.figures if f.name.startswith("JS loss at d = 0"))
    assert zero.value == pytest.approx(1.0, abs=0.05)  # identical distributions: the loss stays at 2 log 2
