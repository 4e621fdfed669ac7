"""Claim 4 (ganlab.claims.weight_clipping): the measurements on critics with known answers, the verdict logic
on synthetic figures, and measure() end to end in quick mode on the quick toy sweep and a quick clip_adam sweep."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from ganlab.claims import weight_clipping as claim
from ganlab.claims.base import Figure, Verdict, verdict_from
from ganlab.claims.runner import jobs_in
from ganlab.claims.sweeps import seeds, toy
from ganlab.compare.runs import find_runs
from ganlab.models.mlp import build_mlp



def test_fraction_at_bound_counts_entries_within_the_tolerance_of_c():
    params = [torch.tensor([0.01, -0.01, 0.00995]), torch.tensor([[0.005, -0.0099], [0.0, 0.0098]])]
    # |w| >= 0.0099: 0.01, -0.01, 0.00995, -0.0099 -> 4 of 7
    assert claim.fraction_at_bound(params, 0.01, tolerance=0.01) == pytest.approx(4 / 7)
    assert claim.fraction_at_bound(params, 0.01, tolerance=0.0) == pytest.approx(2 / 7)
    with pytest.raises(ValueError, match="c must be > 0"):
        claim.fraction_at_bound(params, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        claim.fraction_at_bound([], 0.01)


def scalar_chain(a: float, depth: int) -> nn.Module:
    """ganlab's MLP critic of width 1: every weight ``a`` (the first layer's two as well), every bias 0."""
    _, D = build_mlp((2,), None, z_dim=2, width=1, depth=depth, activation="relu", init="he_uniform", critic_norm="none")
    with torch.no_grad():
        for m in D.net:
            if isinstance(m, nn.Linear):
                m.weight.fill_(a)
                m.bias.zero_()
    return D


def test_layer_gradient_norms_of_a_chain_of_scalar_layers():
    """With positive inputs and weights every ReLU passes its input, so D(x) = a^(L+1) (x1 + x2). The loss
    mean D(fake) - mean D(real) has d loss / d h_l = +-a^(L+1-l) / n per sample (L + 1 - l linear layers above
    h_l): the activation gradient grows by a per layer towards the input. The weight gradient of every layer
    l >= 2 is a^L (mean_fake(x1 + x2) - mean_real(x1 + x2)): the same for all, however large a^(L-1) is."""
    a, depth, n = 2.0, 5, 8
    D = scalar_chain(a, depth)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(n, 2, generator=g) + 0.1, torch.rand(n, 2, generator=g) + 0.1
    activations, weights = claim.layer_gradient_norms(D, real, fake)
    layers = np.arange(1, depth + 1)
    np.testing.assert_allclose(activations, math.sqrt(2 * n) / n * a ** (depth + 1 - layers), rtol=1e-12)
    delta = (fake.double().sum(1).mean() - real.double().sum(1).mean()).item()
    delta_vec = (fake.double().mean(0) - real.double().mean(0)).norm().item()
    np.testing.assert_allclose(weights, [a**depth * delta_vec] + [a**depth * abs(delta)] * depth, rtol=1e-12)
    assert claim.log10_ratio(activations) == pytest.approx((depth - 1) * math.log10(a))
    assert next(D.parameters()).dtype == torch.float32  # measured on a float64 copy


def test_layer_gradient_norms_keep_gradients_that_float32_flushes_to_zero():
    D = scalar_chain(1e-4, 12)  # the activation gradients span 1e-4 ... 1e-48, below float32's smallest 1.4e-45
    real, fake = torch.full((4, 2), 0.5), torch.full((4, 2), 1.0)
    activations, _ = claim.layer_gradient_norms(D, real, fake)
    assert claim.log10_ratio(activations) == pytest.approx(-44.0)


def test_run_critic_clips_its_weights_and_repeats_with_its_seed():
    s = claim.settings("quick")["critic"]
    first, again = claim.run_critic(0.01, 3, s, "cpu"), claim.run_critic(0.01, 3, s, "cpu")
    np.testing.assert_array_equal(first.activation_norms, again.activation_norms)
    assert np.abs(first.weights).max() <= 0.01
    assert first.activation_norms.shape == (s["depth"],) and first.weight_norms.shape == (s["depth"] + 1,)
    assert first.fraction_at_bound_start > 0.5  # He-uniform initial weights exceed 0.01 almost everywhere
    assert [step for step, _ in first.ratio_trace][0] == 0 and first.ratio_trace[-1][0] == s["critic_steps"]
    gp = claim.run_critic(None, 3, s, "cpu")
    assert math.isnan(gp.fraction_at_bound) and np.abs(gp.weights).max() > 0.01


def test_critic_checks_decide_held_not_held_and_inconclusive():
    held = claim.critic_checks(Figure("f", 0.9, 0.85, 0.95), {
        "c=0.1": Figure("r", 3.0, 2.5, 3.5), "c=0.01": Figure("r", -12.0, -13.0, -11.0),
        "c=0.001": Figure("r", -23.0, -24.0, -22.0), "gp": Figure("r", -0.3, -0.4, -0.2)})
    assert verdict_from(held) is Verdict.held
    exploding_gp = claim.critic_checks(Figure("f", 0.9, 0.85, 0.95), {
        "c=0.1": Figure("r", 3.0, 2.5, 3.5), "c=0.01": Figure("r", 2.0, 1.5, 2.5),  # c = 0.01 may explode instead
        "c=0.001": Figure("r", -23.0, -24.0, -22.0), "gp": Figure("r", 2.0, 1.8, 2.2)})
    assert [c.passed for c in exploding_gp] == [True, True, True, True, True, False]
    assert verdict_from(exploding_gp) is Verdict.not_held
    straddling = claim.critic_checks(Figure("f", 0.6, 0.4, 0.8), {
        "c=0.1": Figure("r", 3.0, 2.5, 3.5), "c=0.01": Figure("r", -1.2, -1.5, -0.5),
        "c=0.001": Figure("r", -23.0, -24.0, -22.0), "gp": Figure("r", -0.3, -0.4, -0.2)})
    assert [c.passed for c in straddling][:3] == [None, True, None]
    assert verdict_from(straddling) is Verdict.inconclusive


def test_outside_needs_the_whole_interval_on_one_side():
    assert claim.outside("x", Figure("x", -3.0, -4.0, -2.0), 1.0).passed is True
    assert claim.outside("x", Figure("x", 3.0), 1.0).passed is True
    assert claim.outside("x", Figure("x", 0.2, -0.5, 0.9), 1.0).passed is False
    assert claim.outside("x", Figure("x", 1.5, 0.5, 2.5), 1.0).passed is None
    assert claim.outside("x", Figure("x", math.nan), 1.0).passed is None


def test_optimizer_check():
    assert claim.optimizer_check(1.0, 0.008).passed is True
    assert claim.optimizer_check(0.04, 0.016).passed is False
    assert claim.optimizer_check(0.8, 0.22).passed is None
    assert claim.optimizer_check(math.nan, None).passed is None


def test_settings_and_sweeps():
    for mode in ("quick", "full", "gpu"):
        body = claim.settings(mode)
        assert json.loads(json.dumps(body)) == body
        names = [s.name for s in claim.sweeps(mode)]
        assert names == ["toy", "clip_adam"] and claim.sweeps(mode)[0] == toy(mode)
        assert jobs_in(claim.clip_adam(mode)) == len(seeds(mode))  # one run per seed: the betas list is not swept


def test_measure_in_quick_mode(quick_toy_sweep, tmp_path):
    from claims_support import quick_context, run_sweep_in_process  # imported here: loaded first as the plugin above, its asserts rewritten

    adam_dir = tmp_path / "sweeps" / "clip_adam"
    run_sweep_in_process(claim.clip_adam("quick"), adam_dir, tmp_path)
    adam_runs = find_runs([adam_dir])
    assert len(adam_runs) == 2 and all(r.config["objective"]["optimizer"]["name"] == "adam" for r in adam_runs)
    assert all(r.config["objective"]["optimizer"]["betas"] == [0.5, 0.99] for r in adam_runs)

    ctx = quick_context(tmp_path / "04_weight_clipping", {"toy": quick_toy_sweep, "clip_adam": adam_dir})
    outcome = claim.measure(ctx)
    names = [f.name for f in outcome.figures]
    assert any("P(an RMSProp run" in n for n in names)
    assert len(outcome.checks) == 7 and outcome.verdict in Verdict
    for plot in outcome.plots:
        assert (ctx.out / plot).stat().st_size > 10_000
    assert outcome.table.count("\n| c=") == 3 and "| adam | 2 of 2 |" in outcome.table and "| rmsprop | 2 of 2 |" in outcome.table
    fraction = next(f for f in outcome.figures if f.name.endswith("at +-c, c=0.01"))
    assert 0.5 < fraction.value <= 1.0
