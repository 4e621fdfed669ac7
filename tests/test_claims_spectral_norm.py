"""Claim 6 (ganlab.claims.spectral_norm): the convolution's operator norm against its dense matrix,
the per-layer sigmas of a spectrally normalised critic (and that measuring them changes nothing),
the verdict on synthetic figures, and measure() in quick mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from claims_support import quick_context
from ganlab.claims import spectral_norm as claim
from ganlab.claims.base import Verdict, verdict_from
from ganlab.objectives.constraints.spectral_norm import SpectralNorm


def dense_norm(conv: nn.Conv2d, input_shape: tuple[int, int, int]) -> float:
    """The exact operator norm: the largest singular value of the convolution's dense matrix."""
    def linear(x):
        return nn.functional.conv2d(x, conv.weight.double(), None, conv.stride, conv.padding, conv.dilation, conv.groups)

    jacobian = torch.autograd.functional.jacobian(linear, torch.zeros((1, *input_shape), dtype=torch.float64))
    matrix = jacobian.reshape(-1, math.prod(input_shape))
    return float(torch.linalg.matrix_norm(matrix, 2))


@pytest.mark.parametrize("conv, shape", [
    (nn.Conv2d(2, 3, 4, 2, 1), (2, 8, 8)),  # the DCGAN critic's down-sampling block
    (nn.Conv2d(3, 1, 4, 1, 0), (3, 4, 4)),  # its last layer: one score
    (nn.Conv2d(2, 2, 3, 1, 1), (2, 5, 5)),  # stride 1, odd kernel
])
def test_conv_operator_norm_matches_the_dense_matrix(conv, shape):
    torch.manual_seed(0)
    nn.init.normal_(conv.weight)
    sigma, x = claim.conv_operator_norm(conv.weight, conv, shape, iterations=500, generator=torch.Generator().manual_seed(1))
    assert sigma == pytest.approx(dense_norm(conv, shape), rel=1e-4)
    assert x.shape == (1, *shape) and float(x.norm()) == pytest.approx(1.0)


def test_a_1x1_convolution_has_the_reshaped_matrix_norm():
    conv = nn.Conv2d(4, 3, 1)
    sigma, _ = claim.conv_operator_norm(conv.weight, conv, (4, 5, 5), iterations=300, generator=torch.Generator().manual_seed(0))
    assert sigma == pytest.approx(float(torch.linalg.matrix_norm(conv.weight.detach().double().flatten(1), 2)), rel=1e-5)


def test_conv_operator_norm_refuses_string_padding():
    conv = nn.Conv2d(1, 1, 3, padding="same")
    with pytest.raises(ValueError, match="integer zero padding"):
        claim.conv_operator_norm(conv.weight, conv, (1, 4, 4), iterations=1)


def normalised_critic(power_iterations: int = 1) -> nn.Module:
    torch.manual_seed(0)
    D = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 4, 1, 0), nn.Flatten(), nn.Linear(1, 1))
    SpectralNorm(power_iterations=power_iterations).attach(D)
    return D.train()


def test_layer_sigmas_of_a_converged_power_iteration_are_one_and_change_nothing():
    D = normalised_critic(power_iterations=500)
    with torch.no_grad():
        D(torch.randn(1, 1, 8, 8))  # a training-mode forward pass: 500 power iterations, the estimate is then exact
    shapes = claim.layer_inputs(D, torch.randn(2, 1, 8, 8))
    assert shapes == {"0": (1, 8, 8), "2": (4, 4, 4), "4": (1,)}
    buffers = [b.clone() for b in D.buffers()]
    starts: dict[str, torch.Tensor] = {}
    out = claim.layer_sigmas(D, shapes, 200, starts, torch.Generator().manual_seed(0))
    for name, row in out.items():
        assert row["sigma"] == pytest.approx(1.0, abs=1e-5)
        assert row["lag"] == pytest.approx(0.0, abs=1e-5)
    assert "conv" not in out["4"] and set(starts) == {"0", "2"}
    for before, after in zip(buffers, D.buffers()):  # observing() put u and v back
        torch.testing.assert_close(before, after)
    # the first layer's convolution with the normalised kernel: its own operator norm, from the dense matrix
    probe = nn.Conv2d(1, 4, 4, 2, 1)
    D.eval()  # reading the weight in eval mode runs no power iteration
    probe.weight = nn.Parameter(D[0].weight.detach().clone())
    assert out["0"]["conv"] == pytest.approx(dense_norm(probe, (1, 8, 8)), rel=1e-3)


def test_layer_sigmas_shows_the_lag_of_an_unconverged_estimate():
    D = normalised_critic()
    module = D[0]  # W.flatten(1) is 4 x 16 (the last conv's 1 x 64 has rank 1: one iteration is exact)
    with torch.no_grad():
        module.parametrizations.weight.original.mul_(torch.linspace(-2.0, 2.0, 64).reshape(4, 1, 4, 4))  # W moved; u, v did not
    row = claim.layer_sigmas(D, claim.layer_inputs(D, torch.randn(1, 1, 8, 8)), 50, {}, torch.Generator().manual_seed(0))["0"]
    # by hand: one power iteration from the stored u (Miyato 2018, Alg. 1), against the exact sigma
    W = module.parametrizations.weight.original.detach().double().flatten(1)
    u = module.parametrizations.weight[0].u.double()
    v = nn.functional.normalize(W.t() @ u, dim=0)
    u = nn.functional.normalize(W @ v, dim=0)
    lag = 1 - float(u @ W @ v) / float(torch.linalg.matrix_norm(W, 2))
    assert lag > 1e-3  # the move left the stored vectors behind: a lag worth measuring
    assert row["lag"] == pytest.approx(lag, rel=1e-4)
    assert row["sigma"] == pytest.approx(1.0 / (1.0 - lag), rel=1e-5)


def result(sigma_rows: list[list[float]], steps: list[int] | None = None) -> dict:
    sigma = np.array(sigma_rows)
    steps = steps or list(range(0, 10 * len(sigma_rows), 10))
    return {"steps": np.array(steps), "layers": ["a", "b"], "shapes": [(4, 16), (1, 64)], "sigma": sigma,
            "lag": 1 - 1 / sigma, "raw": sigma * 3, "conv": np.column_stack([sigma[:, 0] * 1.5, np.full(len(sigma), np.nan)])}


def test_verdict_held_within_the_tolerance_after_the_warm_up():
    """A large sigma at the start (before the warm-up ends) does not count."""
    rows = [[1.3, 1.0]] + [[1.01, 1.0]] * 10
    _, checks = claim.figures_and_checks([result(rows) for _ in range(5)], 0.1)
    assert verdict_from(checks) is Verdict.held


def test_verdict_not_held_when_a_layer_drifts_past_the_tolerance():
    rows = [[1.0, 1.0]] * 5 + [[1.0, 1.2]] * 6
    figures, checks = claim.figures_and_checks([result(rows) for _ in range(5)], 0.1)
    assert verdict_from(checks) is Verdict.not_held
    assert figures[0].value == pytest.approx(0.2)


def test_verdict_inconclusive_when_the_seeds_straddle_the_tolerance():
    per_seed = [result([[1.0, 1.0]] * 5 + [[1.0, 1.0 + top]] * 6) for top in (0.0, 0.01, 0.02, 0.08, 0.11)]
    _, checks = claim.figures_and_checks(per_seed, 0.1)
    assert checks[0].passed is None
    assert verdict_from(checks) is Verdict.inconclusive


def test_conv_figures_only_for_convolutions():
    figures, _ = claim.figures_and_checks([result([[1.0, 1.0]] * 3) for _ in range(3)], 0.1)
    ratio = [f for f in figures if "operator norm / reshaped" in f.name]
    assert [f.name.split(":")[0] for f in ratio] == ["layer a"]
    assert ratio[0].value == pytest.approx(1.5)


def test_settings_and_no_sweeps():
    for mode in ("quick", "full", "gpu"):
        config = claim.settings(mode)
        assert config["power_iterations"] == 1 and config["n_critic"] == 5
        assert claim.sweeps(mode) == []


def test_measure_quick_writes_its_figure(tmp_path):
    outcome = claim.measure(quick_context(tmp_path / "06_spectral_norm", {}))
    png = tmp_path / "06_spectral_norm" / outcome.plots[0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(outcome.checks) == 1
    assert outcome.table.count("\n") == 1 + 3  # the 16 px DCGAN critic's three layers
    end = next(f for f in outcome.figures if f.name == "max over layers of |sigma - 1| at the end")
    assert 0.0 <= end.value < 0.5  # normalised: near 1, unlike the raw weights (N(0, 0.02) init)
