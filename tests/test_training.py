"""Real training steps on the CPU: every architecture with every objective preset, EMA, determinism."""

from __future__ import annotations

import pytest
import torch

from ganlab.apps.build import build_data, build_networks, build_objective_from, build_optimizers_from
from ganlab.precision import Precision
from ganlab.train.ema import EMA
from ganlab.train.loop import train

from conftest import compose_train

PRESETS = ["js", "wgan_clip", "wgan_gp", "spectral_norm"]


class RecordingRun:
    """A Run that keeps what the loop reports, for assertions."""

    def __init__(self):
        self.logged: dict[int, dict[str, float]] = {}
        self.saved: list[int] = []

    def progress(self, step):
        pass

    def log(self, step, scalars):
        self.logged[step] = scalars

    def sample(self, step, G, D):
        pass

    def evaluate(self, step, G, D):
        return {"Metrics/dummy": float(step)}

    def save(self, step, state):
        assert state["step"] == step
        self.saved.append(step)

    def last_good_state(self):
        return None

    def last_good_description(self):
        return "no checkpoint"

    def rolled_back(self, step, count, reason, lr_G, lr_D):
        raise AssertionError("no rollback expected")


def build_and_train(overrides: list[str], steps: int = 3, batch_size: int = 8, ema_decay: float = 0.0, precision: str = "fp32"):
    cfg = compose_train(overrides)
    torch.manual_seed(0)
    device = torch.device("cpu")
    data = build_data(cfg.dataset, device, seed=0)
    G, D = build_networks(cfg.model, data.shape, device)
    objective = build_objective_from(cfg.objective)
    objective.attach(D)
    opt_G, opt_D = build_optimizers_from(cfg.objective, G, D)
    ema = EMA(G, ema_decay) if ema_decay else None
    run = RecordingRun()
    metrics = train(
        G, D, objective, opt_G, opt_D, data, Precision(precision, device), run,
        steps=steps, batch_size=batch_size, log_every=1, sample_every=steps, eval_every=steps, ema=ema,
    )
    return G, D, ema, run, metrics


@pytest.mark.parametrize("objective", PRESETS)
@pytest.mark.parametrize("model", ["mlp", "dcgan", "resnet"])
def test_three_steps_of_every_architecture_and_objective_on_images(model, objective):
    overrides = ["dataset=digits", f"model={model}", f"objective={objective}", "model.width=8"]
    if model == "mlp":
        overrides.append("model.z_dim=8")
    G, D, _, run, metrics = build_and_train(overrides)
    assert sorted(run.logged) == [1, 2, 3] and run.saved == [3]
    for scalars in run.logged.values():
        assert all(torch.isfinite(torch.tensor(v)) for v in scalars.values()), scalars
    assert all(torch.isfinite(p).all() for p in list(G.parameters()) + list(D.parameters()))
    assert metrics == {"Metrics/dummy": 3.0}


def test_ema_generator_is_the_running_average():
    G, _, ema, _, _ = build_and_train(["model.width=8"], steps=2, ema_decay=0.5)
    # After 2 steps with decay 0.5: ema = 0.25 * G0 + 0.25 * G1 + 0.5 * G2; just check it differs
    # from G and stays between G's initial and final weights on average.
    diffs = [(pe - p).abs().max().item() for pe, p in zip(ema.G_ema.parameters(), G.parameters())]
    assert max(diffs) > 0
    assert not any(p.requires_grad for p in ema.G_ema.parameters())


def test_ema_update_is_a_lerp_with_a_ramped_decay():
    G = torch.nn.Linear(2, 2)
    ema = EMA(G, decay=0.9)
    ema.updates = 1000  # past the ramp: the configured decay
    before = ema.G_ema.weight.detach().clone()
    with torch.no_grad():
        G.weight.add_(1.0)
    ema.update(G)
    torch.testing.assert_close(ema.G_ema.weight, 0.9 * before + 0.1 * G.weight.detach())
    fresh = EMA(G, decay=0.999)
    with torch.no_grad():
        G.weight.add_(1.0)
    fresh.update(G)  # first update: decay (1 + 0) / (10 + 0) = 0.1
    torch.testing.assert_close(fresh.G_ema.weight, 0.1 * (G.weight.detach() - 1.0) + 0.9 * G.weight.detach())


def test_same_seed_same_parameters_in_process():
    first = build_and_train(["objective=spectral_norm", "model.width=8"], steps=3)[0]
    second = build_and_train(["objective=spectral_norm", "model.width=8"], steps=3)[0]
    for a, b in zip(first.parameters(), second.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bf16_training_steps_stay_close_to_fp32_on_cpu():
    """The parameter updates of two bf16 steps point the same way as fp32's: bf16's 8-bit mantissa
    perturbs the gradients by ~1%, and Adam's normalised steps flip only a few small coordinates."""
    start = torch.cat([p.detach().flatten() for p in build_and_train(["model.width=16"], steps=0)[0].parameters()])
    moved = {}
    for precision in ("fp32", "bf16"):
        G = build_and_train(["model.width=16"], steps=2, precision=precision)[0]
        moved[precision] = torch.cat([p.detach().flatten() for p in G.parameters()]) - start
    assert torch.isfinite(moved["bf16"]).all()
    assert moved["fp32"].norm() > 0
    relative = (moved["bf16"] - moved["fp32"]).norm() / moved["fp32"].norm()
    assert relative < 0.3, relative
