"""Real training steps on the CPU: every architecture with every objective preset, EMA, determinism."""

from __future__ import annotations

import signal

import pytest
import torch

from ganlab.apps.build import build_data, build_networks, build_objective_from, build_optimizers_from
from ganlab.precision import Precision
from ganlab.train.ema import EMA
from ganlab.train.loop import train
from ganlab.train.signals import StopOnSignal

from conftest import compose_train

PRESETS = ["js", "wgan_clip", "wgan_gp", "spectral_norm"]


class RecordingRun:
    """A Run that keeps what the loop reports, for assertions."""

    def __init__(self):
        self.logged: dict[int, dict[str, float]] = {}
        self.histograms_logged: dict[int, dict[str, torch.Tensor]] = {}
        self.saved: list[int] = []

    def progress(self, step):
        pass

    def log(self, step, scalars):
        self.logged[step] = scalars

    def histograms(self, step, values):
        self.histograms_logged[step] = values

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


def build_and_train(overrides: list[str], steps: int = 3, batch_size: int = 8, ema_decay: float = 0.0, precision: str = "fp32",
                    ema_class: type[EMA] = EMA):
    cfg = compose_train(overrides)
    torch.manual_seed(0)
    device = torch.device("cpu")
    data = build_data(cfg.dataset, device, seed=0)
    G, D = build_networks(cfg.model, data.shape, device)
    objective = build_objective_from(cfg.objective)
    objective.attach(D)
    opt_G, opt_D = build_optimizers_from(cfg.objective, G, D)
    ema = ema_class(G, ema_decay) if ema_decay else None
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


class RecordingEMA(EMA):
    """An EMA that keeps G's initial parameters and the parameters of every G it is updated with."""

    def __init__(self, G, decay):
        super().__init__(G, decay)
        self.initial = [p.detach().clone() for p in G.parameters()]
        self.seen: list[list[torch.Tensor]] = []

    def update(self, G):
        self.seen.append([p.detach().clone() for p in G.parameters()])
        super().update(G)


def test_ema_generator_is_the_running_average():
    # A large generator learning rate, so that G moves far more per step than float rounding.
    G, _, ema, _, _ = build_and_train(["model.width=8", "objective.optimizer.lr_G=1e-2"], steps=3, ema_decay=0.2, ema_class=RecordingEMA)
    assert len(ema.seen) == 3  # one update per generator step, after G's optimizer step
    for after_last_step, p in zip(ema.seen[-1], G.parameters()):
        torch.testing.assert_close(after_last_step, p.detach(), rtol=0, atol=0)
    # Fold the updates by hand: G_ema <- G_ema + (1 - d_t) (G_t - G_ema), d_t = min(0.2, (1 + t) / (10 + t)):
    # 0.1 and 2/11 on the ramp, then the configured 0.2.
    expected = ema.initial
    for t, params in enumerate(ema.seen):
        weight = 1 - min(0.2, (1 + t) / (10 + t))
        expected = [e + weight * (p - e) for e, p in zip(expected, params)]
    # The control: G moved enough that an average left at G's initial weights fails the check below.
    assert not all(torch.allclose(first, want, rtol=1e-6, atol=1e-6) for first, want in zip(ema.initial, expected))
    for got, want in zip(ema.G_ema.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
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


def test_second_sigint_quits_at_once():
    """The first SIGINT only asks the loop to stop after its step (and write a checkpoint); the
    second raises KeyboardInterrupt at once, wherever the program is."""
    before = signal.getsignal(signal.SIGINT)
    with StopOnSignal() as stop:
        assert not stop()
        signal.raise_signal(signal.SIGINT)  # runs the Python handler before it returns
        assert stop() and stop.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # pytest's own handler is back


def test_a_stop_on_signal_entered_again_keeps_its_handlers_until_the_outer_block_ends():
    """A distributed run enters its StopOnSignal when it joins and again around the training loop:
    the inner block's end must not put Python's handlers back while the outer one is in force."""
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignal() as stop:
        with stop:
            assert signal.getsignal(signal.SIGTERM) == stop._handle
        assert signal.getsignal(signal.SIGTERM) == stop._handle and stop.previous[signal.SIGTERM] is before
        signal.raise_signal(signal.SIGTERM)
        assert stop.received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
