"""The relativistic losses (RSGAN/RpGAN, RaSGAN), one-sided label smoothing of the JS loss, and the
``rsgan``, ``ragan`` and ``lsgan`` presets.

Closed-form values on fixed logits; the generator's gradient flows through D(fake) only; the
objective runs the extra D(real) forward pass only for a loss that needs it, on the last critic
batch; every other objective's trajectory is what it was before the generator could see D(real).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganlab.apps.build import build_data, build_networks, build_objective_from, build_optimizers_from
from ganlab.errors import ConfigError, OptionError
from ganlab.logger.stats import Stats
from ganlab.objectives import Objective
from ganlab.objectives.losses.js import JS, js_critic, js_generator
from ganlab.objectives.losses.least_squares import LeastSquares
from ganlab.objectives.losses.relativistic import (
    Relativistic,
    relativistic_average_critic,
    relativistic_average_generator,
    relativistic_critic,
    relativistic_generator,
)
from ganlab.precision import Precision
from ganlab.train.loop import train

from conftest import compose_train
from inprocess import final_networks, train_in_process
from networks import LOSSES, objective

REAL = torch.tensor([2.0, -1.0, 0.5])
FAKE = torch.tensor([-3.0, 1.5, 0.0])
FP32 = Precision("fp32", "cpu")


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


# ------------------------------------------------------------------------------ closed forms


def test_pairing_loss_matches_hand_computed_values():
    # r - f per pair: 5, -2.5, 0.5. Critic: softplus(-(r - f)); generator: softplus(-(f - r)).
    assert relativistic_critic(REAL, FAKE).item() == pytest.approx(mean([softplus(-5.0), softplus(2.5), softplus(-0.5)]), rel=1e-6)
    assert relativistic_generator(FAKE, REAL).item() == pytest.approx(mean([softplus(5.0), softplus(-2.5), softplus(0.5)]), rel=1e-6)
    # As -log sigmoid of the relativistic logit (the paper's form): sigmoid(r - f) is P(real_i more real than fake_i).
    expected = mean(-math.log(1 / (1 + math.exp(-(r - f)))) for r, f in zip(REAL.tolist(), FAKE.tolist()))
    assert relativistic_critic(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_average_loss_matches_hand_computed_values():
    mean_real, mean_fake = 1.5 / 3, -1.5 / 3  # 0.5 and -0.5
    critic_real = mean(softplus(-(r - mean_fake)) for r in REAL.tolist())  # reals should beat the average fake
    critic_fake = mean(softplus(f - mean_real) for f in FAKE.tolist())  # fakes should lose to the average real
    assert relativistic_average_critic(REAL, FAKE).item() == pytest.approx((critic_real + critic_fake) / 2, rel=1e-6)
    generator_real = mean(softplus(r - mean_fake) for r in REAL.tolist())  # the targets swapped
    generator_fake = mean(softplus(-(f - mean_real)) for f in FAKE.tolist())
    assert relativistic_average_generator(FAKE, REAL).item() == pytest.approx((generator_real + generator_fake) / 2, rel=1e-6)
    # The average form needs no pairing: 2 reals against 3 fakes.
    two = REAL[:2]
    expected = (mean(softplus(mean_fake - r) for r in two.tolist()) + mean(softplus(f - two.mean().item()) for f in FAKE.tolist())) / 2
    assert relativistic_average_critic(two, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_the_average_switch_chooses_the_form_and_the_pairing_form_refuses_unpaired_scores():
    for average, critic, generator in ((False, relativistic_critic, relativistic_generator), (True, relativistic_average_critic, relativistic_average_generator)):
        loss = Relativistic(average=average)
        assert loss.needs_real is True
        assert loss.critic(REAL, FAKE).item() == pytest.approx(critic(REAL, FAKE).item(), rel=1e-6)
        assert loss.generator(FAKE, REAL).item() == pytest.approx(generator(FAKE, REAL).item(), rel=1e-6)
    assert relativistic_critic(REAL, FAKE).item() != pytest.approx(relativistic_average_critic(REAL, FAKE).item())  # the forms differ here
    with pytest.raises(ValueError, match="pairs real and fake scores one to one"):
        relativistic_critic(REAL[:2], FAKE)
    with pytest.raises(ValueError, match="needs D\\(real\\)"):
        Relativistic(average=False).generator(FAKE)


def test_one_sided_label_smoothing_matches_hand_computed_values():
    t = 0.9
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # BCE of the reals against the target 0.9; the fakes keep the target 0 (Salimans 2016, Sec. 3.4).
    real_term = mean(-(t * math.log(sigmoid(r)) + (1 - t) * math.log(1 - sigmoid(r))) for r in REAL.tolist())
    fake_term = mean(-math.log(1 - sigmoid(f)) for f in FAKE.tolist())
    assert js_critic(REAL, FAKE, real_label=t).item() == pytest.approx(real_term + fake_term, rel=1e-6)
    smoothed, plain = JS(saturating=False, real_label=t), JS(saturating=False)
    assert smoothed.critic(REAL, FAKE).item() == pytest.approx(real_term + fake_term, rel=1e-6)
    assert smoothed.critic(REAL, FAKE).item() != pytest.approx(plain.critic(REAL, FAKE).item())
    assert smoothed.generator(FAKE).item() == pytest.approx(js_generator(FAKE).item(), rel=1e-6)  # the generator is unchanged
    # The smoothed real term stops pushing at sigmoid(D(real)) = 0.9, D(real) = log 9; the plain one never does.
    score = torch.tensor([math.log(9.0)], requires_grad=True)
    js_critic(score, torch.zeros(1), real_label=t).backward()
    assert score.grad.item() == pytest.approx(0.0, abs=1e-6)
    score.grad = None
    js_critic(score, torch.zeros(1)).backward()
    assert score.grad.item() == pytest.approx(-0.1, rel=1e-5)  # -sigmoid(-log 9)


def test_real_label_one_is_the_unsmoothed_loss_bit_for_bit():
    real, fake = torch.randn(64), torch.randn(64)
    before = torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean()  # js_critic before the option
    torch.testing.assert_close(JS(saturating=False, real_label=1.0).critic(real, fake), before, rtol=0, atol=0)


@pytest.mark.parametrize("value", [0.5, 0.0, 1.1, -0.9])
def test_label_smoothing_refuses_targets_out_of_range(value):
    with pytest.raises(OptionError) as info:
        JS(saturating=False, real_label=value)
    assert (info.value.key, info.value.value) == ("real_label", value)
    with pytest.raises(ConfigError, match=f"objective.loss.real_label={value} is not allowed"):
        build_objective_from(compose_train([f"objective.loss.real_label={value}", "objective=js"]).objective)


# ------------------------------------------------------------------ the generator step's interface


class Linear(nn.Module):
    """D(x) = x . w + b, counting its calls and whether each ran with autograd on."""

    def __init__(self, w: list[float], b: float = 0.3):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))
        self.b = nn.Parameter(torch.tensor(b))
        self.calls: list[bool] = []

    def forward(self, x):
        self.calls.append(torch.is_grad_enabled())
        return x @ self.w + self.b


@pytest.mark.parametrize("average", [False, True])
def test_the_generator_gradient_flows_through_d_fake_only(average):
    torch.manual_seed(0)
    D = Linear([0.7, -1.2])
    real = torch.randn(5, 2, requires_grad=True)  # even a real batch that asks for gradients gets none
    fake = torch.randn(5, 2, requires_grad=True)
    loss_G = objective("relativistic", relativistic={"average": average}).generator_loss(D, fake, FP32, Stats(), real=real)
    assert D.calls == [True, False]  # D(fake) with a graph, then D(real) under no_grad
    loss_G.backward()
    assert real.grad is None
    # By hand, with d_real a constant: dL/dD(fake_i), then the chain rule through the linear critic.
    d_real, d_fake = (real @ D.w + D.b).detach(), (fake @ D.w + D.b).detach()
    n = len(d_fake)
    if average:  # L = (mean softplus(r - mean f) + mean softplus(mean r - f)) / 2
        dL = (-torch.sigmoid(d_real - d_fake.mean()).mean() / n - torch.sigmoid(d_real.mean() - d_fake) / n) / 2
    else:  # L = mean softplus(r_i - f_i)
        dL = -torch.sigmoid(d_real - d_fake) / n
    torch.testing.assert_close(fake.grad, dL[:, None] * D.w.detach()[None, :], rtol=1e-5, atol=1e-7)
    # D's parameters see only the D(fake) path (through D(real) they would get dL/dr_i * real_i as well).
    torch.testing.assert_close(D.w.grad, (dL[:, None] * fake.detach()).sum(0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_the_objective_scores_the_reals_only_for_a_loss_that_needs_them(loss):
    D = Linear([0.7, -1.2])
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    built = objective(loss)
    loss_G = built.generator_loss(D, fake, FP32, Stats(), real=real)
    assert torch.isfinite(loss_G)
    assert len(D.calls) == (2 if built.loss.needs_real else 1)
    assert built.loss.needs_real is (loss == "relativistic")
    if not built.loss.needs_real:  # the extra forward pass is skipped, and so is the need for a real batch
        D.calls.clear()
        torch.testing.assert_close(built.generator_loss(D, fake, FP32, Stats()), loss_G, rtol=0, atol=0)
        assert len(D.calls) == 1


def test_a_loss_that_needs_the_reals_refuses_a_generator_step_without_them():
    with pytest.raises(ValueError, match="needs the real batch in the generator step"):
        objective("relativistic").generator_loss(Linear([1.0, 0.0]), torch.randn(4, 2), FP32, Stats())


class RecordingData:
    """The run's data, recording every batch it hands out."""

    def __init__(self, data):
        self.data, self.batches = data, []

    def __getattr__(self, name):
        return getattr(self.data, name)

    def sample(self, n, *args, **kwargs):
        self.batches.append(self.data.sample(n, *args, **kwargs))
        return self.batches[-1]


class QuietRun:
    def progress(self, step): pass
    def log(self, step, scalars): self.logged = scalars
    def histograms(self, step, values): pass
    def sample(self, step, G, D): pass
    def evaluate(self, step, G, D): return {}
    def save(self, step, state): pass
    def last_good_state(self): return None
    def last_good_description(self): return "none"
    def rolled_back(self, *args): raise AssertionError("no rollback expected")


def train_steps(overrides: list[str], steps: int, spy=None) -> tuple[nn.Module, nn.Module, RecordingData]:
    """``steps`` steps of the loop on the composed config (seed 0, CPU, batch 8)."""
    cfg = compose_train(overrides)
    torch.manual_seed(0)
    device = torch.device("cpu")
    data = RecordingData(build_data(cfg.dataset, device, seed=0))
    G, D = build_networks(cfg.model, data.shape, device)
    built = build_objective_from(cfg.objective)
    built.attach(D)
    if spy is not None:
        spy(built)
    opt_G, opt_D = build_optimizers_from(cfg.objective, G, D)
    train(G, D, built, opt_G, opt_D, data, FP32, QuietRun(), steps=steps, batch_size=8, log_every=steps, sample_every=steps, eval_every=steps)
    return G, D, data


@pytest.mark.parametrize("preset", ["rsgan", "ragan"])
def test_the_generator_step_scores_the_last_critic_batch_and_draws_no_new_one(preset):
    seen = []

    def spy(built: Objective):
        generator_loss = built.generator_loss

        def recording(D, fake, precision, stats, real=None):
            seen.append(real)
            return generator_loss(D, fake, precision, stats, real=real)

        built.generator_loss = recording

    _, _, data = train_steps([f"objective={preset}", "objective.n_critic=2", "model.width=8"], steps=3, spy=spy)
    assert len(data.batches) == 3 * 2  # n_critic draws per step, as for every objective
    assert all(real is data.batches[2 * step + 1] for step, real in enumerate(seen))  # the step's last critic batch, itself


def generator_loss_before_issue_14(self, D, fake, precision, stats):
    """Objective.generator_loss as it was before a loss could need D(real) (commit c684399)."""
    with precision.autocast():
        d_fake = D(fake).float()
    loss_G = self.loss.generator(d_fake)
    stats.report("Loss/G", loss_G)
    return loss_G


@pytest.mark.parametrize("preset", ["wgan_gp", "js", "spectral_norm", "lsgan"])
def test_objectives_without_the_reals_train_exactly_as_before(preset, monkeypatch):
    """The same steps through today's generator_loss and through the one before issue 14: bit-identical G and D."""
    overrides = [f"objective={preset}", "model.width=16"]
    G_now, D_now, _ = train_steps(overrides, steps=4)
    monkeypatch.setattr(Objective, "generator_loss", lambda self, D, fake, precision, stats, real=None: generator_loss_before_issue_14(self, D, fake, precision, stats))
    G_before, D_before, _ = train_steps(overrides, steps=4)
    for now, before in ((G_now, G_before), (D_now, D_before)):
        for (name, a), b in zip(now.state_dict().items(), before.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=lambda m, name=name: f"{preset} {name}: {m}")


# ------------------------------------------------------------------------------------- presets


@pytest.mark.parametrize("preset,loss,options,lr,betas", [
    ("rsgan", Relativistic, {"average": False}, 2e-4, [0.5, 0.999]),  # AlexiaJM/RelativisticGAN code/stable.sh, DCGAN setup
    ("ragan", Relativistic, {"average": True}, 2e-4, [0.5, 0.999]),
    ("lsgan", LeastSquares, {}, 1e-3, [0.5, 0.999]),  # Mao 2017, Sec. 4.1 (xudonmao/LSGAN train_lsun.py)
])
def test_presets_compose_with_their_paper_defaults(preset, loss, options, lr, betas):
    cfg = compose_train([f"objective={preset}", "dataset=digits", "model=dcgan"])
    obj = cfg.objective
    assert obj.name == preset and dict(obj.constraints) == {} and obj.n_critic == 1
    assert (obj.optimizer.name.value, obj.optimizer.lr_G, obj.optimizer.lr_D) == ("adam", pytest.approx(lr), pytest.approx(lr))
    assert list(obj.optimizer.betas) == pytest.approx(betas)
    built = build_objective_from(obj)
    assert type(built.loss) is loss and {key: getattr(built.loss, key) for key in options} == options


@pytest.mark.parametrize("preset", ["rsgan", "ragan", "lsgan"])
def test_presets_train_four_steps_in_process(preset, tmp_path):
    overrides = [f"objective={preset}", "steps=4", "batch_size=16", "log_every=2", "sample_every=4", "eval_every=4", "eval_samples=64",
                 "model.width=16", "threads=1"]
    metrics = train_in_process(overrides, tmp_path)
    assert metrics and all(math.isfinite(v) for v in metrics.values()), metrics
    state = final_networks(tmp_path)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for net in ("G", "D") for v in state[net].values() if v.is_floating_point())


@pytest.mark.parametrize("preset", ["rsgan", "ragan", "lsgan"])
def test_presets_train_a_dcgan_on_digits(preset):
    G, D, _ = train_steps([f"objective={preset}", "dataset=digits", "model=dcgan", "model.width=8"], steps=2)
    assert all(torch.isfinite(p).all() for p in [*G.parameters(), *D.parameters()])


def test_relativistic_loss_with_spectral_norm_trains_and_composes_from_the_command_line(tmp_path):
    overrides = ["objective=ragan", "objective/constraints=sn", "steps=2", "batch_size=16", "log_every=2", "sample_every=2", "eval_every=2",
                 "eval_samples=64", "model.width=16", "threads=1"]
    metrics = train_in_process(overrides, tmp_path)
    assert all(math.isfinite(v) for v in metrics.values()), metrics
