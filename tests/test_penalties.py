"""R1, R2, DRAGAN and the Lipschitz penalty (WGAN-LP): closed forms, where each is evaluated, mixed
precision, lazy regularisation, and the presets that carry them (r1, dragan, wgan_lp).

Two critics whose input gradient is known everywhere:

* linear, D(x) = w.x + b: the gradient is w at every point, so each penalty is a function of ||w||
  alone: R1 = R2 = gamma/2 ||w||^2, LP = lambda max(0, ||w|| - 1)^2, DRAGAN = lambda (||w|| - 1)^2;
* quadratic, D(x) = 1/2 ||x||^2: the gradient at x is x itself, so the value of a penalty says at
  which points it was taken; the critic also records the points it is called on.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.objectives.constraints.dragan import DRAGAN, perturbed_reals
from ganlab.objectives.constraints.lipschitz_penalty import LipschitzPenalty
from ganlab.objectives.constraints.r1 import R1
from ganlab.objectives.constraints.r2 import R2
from ganlab.objectives.gradients import input_gradient_norm, interpolates
from ganlab.precision import Precision

from conftest import TINY, compose_train
from inprocess import train_in_process
from networks import LOSSES, build_model

FP32 = Precision("fp32", "cpu")
GAMMA = 10.0  # R1/R2's gamma and DRAGAN/LP's lambda: the YAMLs' defaults


def penalties(weight: float = GAMMA, every: int = 1) -> dict[str, object]:
    return {
        "r1": R1(weight=weight, every=every),
        "r2": R2(weight=weight, every=every),
        "dragan": DRAGAN(weight=weight, every=every, c=0.5),
        "lp": LipschitzPenalty(weight=weight, every=every),
    }


def linear_critic(norm: float, dim: int = 3) -> nn.Module:
    """D(x) = w.x + b with ||w|| = ``norm`` (a random direction and bias)."""
    g = torch.Generator().manual_seed(1)
    D = nn.Linear(dim, 1)
    with torch.no_grad():
        w = torch.randn(1, dim, generator=g)
        D.weight.copy_(w / w.norm() * norm)
        D.bias.copy_(torch.randn(1, generator=g))
    return D


class Quadratic(nn.Module):
    """D(x) = 1/2 ||x||^2 per sample, shape (n, 1); ``seen`` holds the inputs of every call. One
    parameter, a = 1 (D = a/2 ||x||^2), so the penalty has a graph to differentiate."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.ones(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return 0.5 * self.a * x.flatten(1).pow(2).sum(1, keepdim=True)


def batches(n: int = 64, dim: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n, dim, generator=g) * 0.3 + 1.0  # norms around 1.7: the LP's max(0, .) is active on some points only
    fake = torch.randn(n, dim, generator=g) * 0.2 - 0.2  # norms around 0.4
    return real, fake


# ------------------------------------------------------------------ linear critic: closed forms


@pytest.mark.parametrize("norm", [0.5, 2.0])  # ||w|| on both sides of 1
def test_linear_critic_closed_forms(norm):
    D = linear_critic(norm)
    real, fake = batches()
    expected = {
        "r1": GAMMA / 2 * norm**2,
        "r2": GAMMA / 2 * norm**2,
        "dragan": GAMMA * (norm - 1) ** 2,
        "lp": GAMMA * max(0.0, norm - 1) ** 2,  # 0 for ||w|| <= 1: the one-sided penalty
    }
    for name, penalty in penalties().items():
        value = penalty.penalty(D, real, fake, FP32, critic_step=0)
        assert value.dtype == torch.float32 and value.dim() == 0
        # float32 through one matmul and a norm: a few ulps (1e-6 relative), far below what a wrong
        # factor (1/2, gamma) or a two-sided LP would change (2.5 for LP at ||w|| = 0.5).
        assert value.item() == pytest.approx(expected[name], rel=1e-5, abs=1e-6), name


def test_penalties_have_a_graph_to_the_critic():
    """The penalty pushes the weights: d/dw of gamma/2 ||w||^2 is gamma w, of lambda (||w|| - 1)^2 is
    2 lambda (||w|| - 1) w / ||w|| (a penalty computed without create_graph would give no gradient)."""
    norm = 2.0
    real, fake = batches()
    for name, penalty in penalties().items():
        D = linear_critic(norm)
        penalty.penalty(D, real, fake, FP32).backward()
        w = D.weight.detach()
        expected = GAMMA * w if name in ("r1", "r2") else 2 * GAMMA * (norm - 1) * w / norm
        torch.testing.assert_close(D.weight.grad, expected, rtol=1e-5, atol=1e-6)  # float32 ulps, as above


# ------------------------------------------------------------------ quadratic critic: where each is taken


def test_r1_is_taken_on_the_reals_and_r2_on_the_fakes():
    real, fake = batches()
    for cls, points in ((R1, real), (R2, fake)):
        D = Quadratic()
        value = cls(weight=GAMMA, every=1).penalty(D, real, fake, FP32)
        assert len(D.seen) == 1 and torch.equal(D.seen[0], points)
        # gamma/2 E||x||^2; real and fake differ by a factor ~18 here, so the wrong batch cannot pass
        assert value.item() == pytest.approx(GAMMA / 2 * points.pow(2).sum(1).mean().item(), rel=1e-5)


def test_lp_is_taken_on_real_fake_interpolates():
    real, fake = batches()
    D = Quadratic()
    torch.manual_seed(3)
    value = LipschitzPenalty(weight=GAMMA, every=1).penalty(D, real, fake, FP32)
    (x_hat,) = D.seen
    # Each point on its own real-fake segment, at one eps per sample: x_hat - fake = eps (real - fake).
    eps = ((x_hat - fake) / (real - fake))
    torch.testing.assert_close(eps, eps[:, :1].expand_as(eps), rtol=1e-4, atol=1e-5)
    assert float(eps.min()) >= 0 and float(eps.max()) <= 1
    assert float(eps.std()) > 0.1  # spread over [0, 1], not the reals (eps = 1) or the fakes (0)
    # The same draws as WGAN-GP's interpolates (the global RNG, same order).
    torch.manual_seed(3)
    torch.testing.assert_close(x_hat, interpolates(real, fake))
    expected = GAMMA * (x_hat.norm(dim=1) - 1).clamp(min=0).pow(2).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    at_reals = GAMMA * (real.norm(dim=1) - 1).clamp(min=0).pow(2).mean()
    assert value.item() != pytest.approx(at_reals.item(), rel=0.05)  # the check can tell the points apart


def test_dragan_is_taken_on_perturbed_reals():
    """The points follow the official DRAGAN.ipynb: real + alpha * 0.5 * std(batch) * u, u ~ U[0, 1)
    per element, alpha ~ U[0, 1) per sample, std one number over all of the batch's elements."""
    g = torch.Generator().manual_seed(0)
    n = 4096
    real = torch.randn(n, 2, generator=g) * torch.tensor([1.0, 10.0]) + 3.0  # feature stds 1 and 10
    fake = torch.zeros(n, 2)
    D = Quadratic()
    torch.manual_seed(5)
    value = DRAGAN(weight=GAMMA, every=1, c=0.5).penalty(D, real, fake, FP32)
    (x_hat,) = D.seen
    std = real.std(correction=0)  # ~7.1: the batch's one std, not per feature
    step = (x_hat - real) / (0.5 * std)  # alpha * u, elementwise
    assert float(step.min()) >= 0 and float(step.max()) < 1  # uniform and non-negative, never normal noise
    # E[alpha u] = 1/4 and E[(alpha u)^2] = 1/9 for independent U[0, 1) draws; with 8192 values the
    # standard errors are 0.0024 and 0.0013, so 0.01 is four of them or more.
    assert float(step.mean()) == pytest.approx(0.25, abs=0.01)
    assert float(step.pow(2).mean()) == pytest.approx(1 / 9, abs=0.01)
    # The exact draws, redrawn here in the official order (u for the whole batch, then one alpha per
    # sample): a per-element alpha or another order would not match.
    torch.manual_seed(5)
    u = torch.rand(real.shape)
    alpha = torch.rand(n, 1)
    torch.testing.assert_close(step, alpha * u, rtol=1e-4, atol=1e-6)
    # Feature 0 is perturbed on the scale of the pooled std (~7.1), far beyond its own std of 1.
    assert float((x_hat - real)[:, 0].max()) > 3.0
    expected = GAMMA * (x_hat.norm(dim=1) - 1).pow(2).mean()
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.manual_seed(5)
    torch.testing.assert_close(x_hat, perturbed_reals(real, 0.5))


# ------------------------------------------------------------------ mixed precision


@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_every_penalty_under_autocast_agrees_with_fp32(name):
    """The AMP recipe (ganlab.precision.Precision on the CPU, whose autocast runs both bfloat16 and
    float16 in torch 2.14): the critic's forward pass in half precision, the gradient unscaled and the
    penalty in float32.

    The error is measured against weight * (1 + E||grad D||^2), the size of all four terms: relative
    to the penalty itself it is unbounded where ||grad D|| is near 1 and (||grad D|| - 1)^2 near 0.
    bf16 keeps 8 significant bits and fp16 11, so each op of the 3-layer critic's forward and backward
    pass rounds by up to 0.4% and 0.05%; over 20 random critics and batches the worst errors measured
    were 0.71% (bf16) and 0.26% (fp16), hence 2% and 1%. A wrong unscaling (a factor of the loss scale,
    2^10) or a penalty taken at other points is off by O(1) or more."""
    torch.manual_seed(0)
    _, D = build_model("mlp", (2,), width=32)
    real, fake = batches(n=256, dim=2)
    size = GAMMA * (1 + input_gradient_norm(D, torch.cat([real, fake])).pow(2).mean().item())
    # fp16: a loss scale that fits this small critic (2^16 times a gradient of order 1 overflows
    # float16's 65504 on the first step; the scaler would then halve it, in training).
    precision = Precision(name, "cpu", init_scale=2.0**10)
    tolerance = {"bf16": 2e-2, "fp16": 1e-2}[name]
    for key, penalty in penalties().items():
        torch.manual_seed(1)  # DRAGAN's and LP's draws
        full = penalty.penalty(D, real, fake, FP32)
        torch.manual_seed(1)
        half = penalty.penalty(D, real, fake, precision)
        assert half.dtype == torch.float32 and torch.isfinite(half), key
        assert half.item() == pytest.approx(full.item(), abs=tolerance * size), key
        assert half.item() != full.item(), key  # the half-precision path really ran


# ------------------------------------------------------------------ lazy regularisation


def test_lazy_r1_is_k_times_its_weight_on_one_step_in_k():
    """StyleGAN2's lazy R1 through Penalty's ``every``: computed on critic steps 0, k, 2k, ... with
    weight k * gamma, skipped (None) on the others."""
    D = linear_critic(2.0)
    real, fake = batches()
    every_step = R1(weight=GAMMA, every=1).penalty(D, real, fake, FP32, critic_step=0)
    lazy = R1(weight=GAMMA, every=4)
    values = [lazy.penalty(D, real, fake, FP32, critic_step=step) for step in range(9)]
    assert [v is not None for v in values] == [True, False, False, False, True, False, False, False, True]
    assert values[0].item() == pytest.approx(4 * every_step.item(), rel=1e-6)
    assert values[0].item() == pytest.approx(4 * GAMMA / 2 * 2.0**2, rel=1e-5)


# ------------------------------------------------------------------ the critic each accepts


@pytest.mark.parametrize("name", ["r1", "r2", "dragan", "lp"])
def test_a_critic_with_batch_norm_is_refused(name):
    _, D = build_model("dcgan", (1, 16, 16), critic_norm="batch")
    with pytest.raises(ConfigError, match=rf"^model\.critic_norm=batch is not allowed with .*objective/constraints={name}\)"):
        penalties()[name].attach(D)


# ------------------------------------------------------------------ presets and the command line


PRESETS = {
    # preset: (loss, constraint, n_critic, optimizer, lr, betas)
    "r1": ("js", "r1", 1, "rmsprop", 1e-4, None),
    "dragan": ("js", "dragan", 1, "adam", 1e-4, [0.5, 0.9]),
    "wgan_lp": ("wasserstein", "lp", 10, "rmsprop", 5e-5, None),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_carries_its_paper_defaults_and_trains(preset, tmp_path):
    loss, constraint, n_critic, optimizer, lr, betas = PRESETS[preset]
    obj = compose_train([f"objective={preset}", "dataset=digits", "model=dcgan"]).objective  # off the toy data's tuning
    assert obj.name == preset
    assert obj.loss._target_ == f"{LOSSES[loss][0].__module__}.{LOSSES[loss][0].__name__}"
    if loss == "js":
        assert obj.loss.saturating is False  # the non-saturating generator loss
    assert list(obj.constraints) == [constraint]
    assert obj.constraints[constraint].weight == pytest.approx(10.0) and obj.constraints[constraint].every == 1
    assert (obj.n_critic, obj.optimizer.name.value) == (n_critic, optimizer)
    assert obj.optimizer.lr_G == pytest.approx(lr) and obj.optimizer.lr_D == pytest.approx(lr)
    if betas is not None:
        assert list(obj.optimizer.betas) == pytest.approx(betas)
    if preset == "dragan":
        assert obj.constraints.dragan.c == pytest.approx(0.5)

    run_dir = tmp_path / "run"
    metrics = train_in_process([*TINY, "steps=4", "log_every=2", f"objective={preset}"], run_dir)
    assert metrics  # the run finished and evaluated
    assert f"Penalty/{constraint}" in _logged_tags(run_dir)


def test_toy_data_tuning_sets_dragan_only():
    """conf/tuning/toy.yaml lowers DRAGAN's lambda to 1 on the 2-D data (10 collapsed the dragan preset
    to 3 and 2 of 25 modes); R1, R2 and LP keep 10 there (measured: no collapse). The command line wins."""
    on_toy = compose_train(["objective/constraints=[r1,r2,dragan,lp]", "dataset=gaussians25"]).objective.constraints
    assert {name: on_toy[name].weight for name in on_toy} == {"r1": 10.0, "r2": 10.0, "dragan": 1.0, "lp": 10.0}
    assert compose_train(["objective=dragan", "dataset=digits", "model=dcgan"]).objective.constraints.dragan.weight == 10.0
    assert compose_train(["objective=dragan", "objective.constraints.dragan.weight=10"]).objective.constraints.dragan.weight == 10.0


def test_each_penalty_joins_any_objective_from_the_command_line(tmp_path):
    overrides = ["objective=spectral_norm", "objective/constraints=[sn,r1,r2,dragan,lp]", "objective.constraints.r1.every=2"]
    cfg = compose_train(overrides)
    assert list(cfg.objective.constraints) == ["sn", "r1", "r2", "dragan", "lp"]
    assert cfg.objective.constraints.r1.every == 2
    run_dir = tmp_path / "run"
    train_in_process([*TINY, "steps=4", "log_every=2", "objective.n_critic=1", *overrides], run_dir)
    assert {"Penalty/r1", "Penalty/r2", "Penalty/dragan", "Penalty/lp"} <= _logged_tags(run_dir)


def _logged_tags(run_dir) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return set(events.Tags()["scalars"])
