"""Closed-form checks of the loss families and the critic constraints."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganlab.errors import ConfigError, OptionError
from ganlab.logger.stats import Stats
from ganlab.objectives import Objective
from ganlab.objectives.constraints import Penalty
from ganlab.objectives.constraints.gradient_penalty import GradientPenalty
from ganlab.objectives.constraints.spectral_norm import SpectralNorm
from ganlab.objectives.constraints.weight_clip import WeightClip
from ganlab.objectives.gradients import input_gradient_norm
from ganlab.objectives.losses.hinge import hinge_critic
from ganlab.objectives.losses.js import JS, js_critic, js_generator, js_generator_saturating
from ganlab.objectives.losses.least_squares import least_squares_critic, least_squares_generator
from ganlab.objectives.losses.wasserstein import wasserstein_critic, wasserstein_generator
from ganlab.precision import Precision

from networks import build_model, objective

REAL = torch.tensor([2.0, -1.0, 0.5])
FAKE = torch.tensor([-3.0, 1.5, 0.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_js_losses_match_hand_computed_values():
    expected_D = mean(softplus(-r) for r in REAL.tolist()) + mean(softplus(f) for f in FAKE.tolist())
    assert js_critic(REAL, FAKE).item() == pytest.approx(expected_D, rel=1e-6)
    assert js_generator(FAKE).item() == pytest.approx(mean(softplus(-f) for f in FAKE.tolist()), rel=1e-6)
    # log(1 - sigmoid(f)) = -softplus(f)
    expected_sat = mean(math.log(1 - 1 / (1 + math.exp(-f))) for f in FAKE.tolist())
    assert js_generator_saturating(FAKE).item() == pytest.approx(expected_sat, rel=1e-6)


def test_wasserstein_hinge_and_least_squares_match_hand_computed_values():
    assert wasserstein_critic(REAL, FAKE).item() == pytest.approx((-3 + 1.5 + 0) / 3 - (2 - 1 + 0.5) / 3)
    assert wasserstein_generator(FAKE).item() == pytest.approx(0.5)
    # relu(1 - r): [0, 2, 0.5]; relu(1 + f): [0, 2.5, 1]
    assert hinge_critic(REAL, FAKE).item() == pytest.approx(2.5 / 3 + 3.5 / 3)
    # 0.5 * mean((r - 1)^2) + 0.5 * mean(f^2) = 0.5 * (1 + 4 + 0.25) / 3 + 0.5 * (9 + 2.25 + 0) / 3
    assert least_squares_critic(REAL, FAKE).item() == pytest.approx(0.5 * 5.25 / 3 + 0.5 * 11.25 / 3)
    assert least_squares_generator(FAKE).item() == pytest.approx(0.5 * (16 + 0.25 + 1) / 3)


def test_saturating_generator_gradient_vanishes_where_the_critic_wins():
    fake = torch.tensor([-10.0], requires_grad=True)  # D is sure this sample is fake
    js_generator_saturating(fake).backward()
    saturating = fake.grad.abs().item()
    fake.grad = None
    js_generator(fake).backward()
    # d/df log(1 - sigmoid(f)) = -sigmoid(f) = -4.5e-5 at f = -10; the non-saturating loss: -sigmoid(-f) = -1.
    assert saturating == pytest.approx(1 / (1 + math.exp(10)), rel=1e-4)
    assert fake.grad.abs().item() == pytest.approx(1.0, abs=1e-4)


class Linear(nn.Module):
    def __init__(self, w: list[float], b: float = 0.3):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x):
        return x @ self.w + self.b


@pytest.mark.parametrize("w", [[3.0, 4.0], [0.6, 0.0], [1.0, 0.0], [-0.2, 0.1]])
def test_gradient_penalty_of_a_linear_critic_is_closed_form(w):
    torch.manual_seed(0)
    real, fake = torch.randn(64, 2), torch.randn(64, 2)
    norm_w = math.hypot(*w)
    gp = GradientPenalty(weight=10.0, every=1).penalty(Linear(w), real, fake, Precision("fp32", "cpu"))
    assert gp.item() == pytest.approx(10.0 * (norm_w - 1) ** 2, rel=1e-5, abs=1e-7)


def test_gradient_penalty_is_differentiable_in_the_critic_parameters():
    critic = Linear([3.0, 4.0])
    gp = GradientPenalty(weight=1.0, every=1).penalty(critic, torch.randn(8, 2), torch.randn(8, 2), Precision("fp32", "cpu"))
    gp.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 4 * (0.6, 0.8)
    torch.testing.assert_close(critic.w.grad, torch.tensor([4.8, 6.4]))


def _critic(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", (2,), z_dim=2, width=64, depth=3)[1]


def test_bf16_penalty_agrees_with_fp32_on_cpu():
    """bf16 keeps 8 mantissa bits, so the penalty agrees to about 1e-2 relative; we allow 5e-2."""
    D = _critic()
    torch.manual_seed(1)
    real, fake = torch.randn(256, 2), torch.randn(256, 2)
    penalties = {}
    for name in ("fp32", "bf16"):
        torch.manual_seed(2)  # same interpolation weights
        penalties[name] = GradientPenalty(weight=10.0, every=1).penalty(D, real, fake, Precision(name, "cpu"))
    assert penalties["bf16"].dtype == torch.float32  # computed in fp32 outside autocast
    assert penalties["bf16"].item() == pytest.approx(penalties["fp32"].item(), rel=5e-2)


def test_scaled_input_gradient_is_unscaled_before_the_norm():
    """The AMP recipe: differentiating scale * D(x) and dividing by scale gives the true norm."""
    D = _critic()
    x = torch.randn(32, 2)
    precision = Precision("fp32", "cpu")
    precision.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)  # a scaler, without float16
    scaled = input_gradient_norm(D, x, precision)
    plain = input_gradient_norm(D, x)
    torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=1e-6)


def test_weight_clipping_bounds_every_critic_parameter():
    D = _critic()
    before = torch.cat([p.detach().flatten() for p in D.parameters()])
    clip = WeightClip(c=0.01)
    clip.after_critic_step(D)
    after = torch.cat([p.detach().flatten() for p in D.parameters()])
    torch.testing.assert_close(after, before.clamp(-0.01, 0.01), rtol=0, atol=0)
    # Exactly the parameters that were beyond c sit at the bound (most He-initialised weights; no bias, they start at 0).
    fraction = clip.diagnostics(D)["Clip/fraction_at_bound"].item()
    assert fraction == pytest.approx((before.abs() >= 0.01).float().mean().item())


def test_spectral_norm_sigma_matches_the_matrix_2_norm():
    D = _critic()
    originals = [m.weight.detach().clone() for m in D.modules() if isinstance(m, nn.Linear)]
    sn = SpectralNorm(power_iterations=1)
    sn.attach(D)
    for _ in range(30):  # power iterations converge over forward passes in train mode
        D(torch.randn(4, 2))
    sigmas = list(sn.diagnostics(D).values())
    assert len(sigmas) == len(originals) == 4
    for sigma, weight in zip(sigmas, originals):
        assert sigma.item() == pytest.approx(torch.linalg.matrix_norm(weight, 2).item(), rel=1e-3)
    # and every normalised layer has spectral norm 1
    for m in D.modules():
        if isinstance(m, nn.Linear):
            assert torch.linalg.matrix_norm(m.weight.detach(), 2).item() == pytest.approx(1.0, rel=1e-3)


def test_spectral_norm_power_iteration_stays_fp32_accurate_under_bf16_autocast():
    """A bf16 power iteration would be off by ~1e-2; ours runs in fp32 with autocast off."""
    D = _critic()
    originals = [m.weight.detach().clone() for m in D.modules() if isinstance(m, nn.Linear)]
    sn = SpectralNorm(power_iterations=1)
    sn.attach(D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(30):
            D(torch.randn(4, 2))
    for sigma, weight in zip(sn.diagnostics(D).values(), originals):
        assert sigma.item() == pytest.approx(torch.linalg.matrix_norm(weight, 2).item(), rel=1e-4)


def test_js_saturating_switches_only_the_generator_loss():
    for saturating, generator in ((False, js_generator), (True, js_generator_saturating)):
        loss = JS(saturating=saturating)
        assert loss.critic(REAL, FAKE).item() == pytest.approx(js_critic(REAL, FAKE).item(), rel=1e-6)
        assert loss.generator(FAKE).item() == pytest.approx(generator(FAKE).item(), rel=1e-6)
    assert js_generator(FAKE).item() != pytest.approx(js_generator_saturating(FAKE).item())  # the two forms differ here


@pytest.mark.parametrize("loss,constraints", [
    ("js", ()), ("wasserstein", ("clip",)), ("wasserstein", ("gp",)), ("hinge", ("sn",)), ("least_squares", ("gp",)), ("hinge", ("gp",)),
    ("hinge", ("gp", "sn")),  # several constraints at once
])
def test_objective_critic_and_generator_losses_are_finite_and_reported(loss, constraints):
    G, D = build_model("mlp", (2,), z_dim=2, width=16, depth=2)
    built = objective(loss, *constraints, n_critic=2)
    built.attach(D)
    stats = Stats()
    precision = Precision("fp32", "cpu")
    real, fake = torch.randn(16, 2), G(torch.randn(16, 2)).detach()
    loss_D = built.critic_loss(D, real, fake, precision, stats)
    loss_G = built.generator_loss(D, G(torch.randn(16, 2)), precision, stats)
    assert torch.isfinite(loss_D) and torch.isfinite(loss_G)
    scalars = stats.collect()
    assert {"Loss/D", "Loss/G", "Wasserstein/estimate"} <= set(scalars)
    assert {tag for tag in scalars if tag.startswith("Penalty/")} == ({"Penalty/gp"} if "gp" in constraints else set())
    # Loss/D is the loss family's term plus the penalties.
    assert scalars["Loss/D"] == pytest.approx(scalars["Loss/D_main"] + scalars.get("Penalty/gp", 0.0), rel=1e-5, abs=1e-6)


def test_the_penalties_of_several_constraints_add_up_each_under_its_name():
    class Constant(Penalty):
        """A penalty whose term is a fixed number: the sum is checkable by hand."""

        def __init__(self, value: float, **kwargs):
            super().__init__(**kwargs)
            self.value = value

        def term(self, D, real, fake, precision):
            return torch.tensor(self.value)

    _, D = build_model("mlp", (2,), z_dim=2, width=8, depth=1)
    both = Objective(JS(saturating=False), {"a": Constant(1.5, weight=2.0, every=1), "b": Constant(0.25, weight=4.0, every=3)})
    real, fake, precision = torch.randn(4, 2), torch.randn(4, 2), Precision("fp32", "cpu")
    for critic_step, expected in ((0, {"Penalty/a": 3.0, "Penalty/b": 3.0}), (1, {"Penalty/a": 3.0})):
        stats = Stats()
        total = both.penalty(D, real, fake, precision, stats, critic_step)
        assert total.item() == pytest.approx(sum(expected.values()))
        assert stats.collect() == pytest.approx(expected)
    assert Objective(JS(saturating=False)).penalty(D, real, fake, precision, Stats()) is None  # no constraint: nothing added


@pytest.mark.parametrize("make,key,value", [
    (lambda: GradientPenalty(weight=-1.0, every=1), "weight", -1.0),
    (lambda: GradientPenalty(weight=10.0, every=0), "every", 0),
    (lambda: WeightClip(c=0.0), "c", 0.0),
    (lambda: WeightClip(c=-0.01), "c", -0.01),
    (lambda: SpectralNorm(power_iterations=0), "power_iterations", 0),
])
def test_constraints_refuse_options_out_of_range_naming_their_key(make, key, value):
    with pytest.raises(OptionError) as info:
        make()
    assert (info.value.key, info.value.value) == (key, value)
    assert str(info.value).startswith(f"{key}={value} is not allowed: ")
    assert str(info.value.at("objective.constraints.x")).startswith(f"objective.constraints.x.{key}={value} is not allowed: ")


def test_gradient_penalty_refuses_a_batch_norm_critic():
    D = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    with pytest.raises(ConfigError, match="model.critic_norm=batch is not allowed with the gradient penalty"):
        objective("wasserstein", "gp").attach(D)
    objective("wasserstein", "sn").attach(D)  # other constraints accept it
