"""The fast path: mixed-precision steps against fp32, overflowed steps skipped and counted, lazy
penalty, torch.compile against eager, and (on CUDA only) a step free of host syncs."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from networks import build_model, objective

from ganlab.objectives.constraints.gradient_penalty import GradientPenalty
from ganlab.config import has_cxx_compiler
from ganlab.data.toy import Gaussians25
from ganlab.precision import Precision, resolve_precision
from ganlab.train.loop import train
from ganlab.train.optim import build_optimizers

from test_training import RecordingRun

DEVICES = ["cpu"] + ([pytest.param("cuda", marks=pytest.mark.cuda)] if torch.cuda.is_available() else [])  # cuda: run by pytest -m cuda (scripts/gpu_check.sh)


class ImageNoise:
    """Random 16 px images on ``device``: a stand-in dataset for conv nets, with its own generator."""

    shape = (1, 16, 16)

    def __init__(self, device):
        self.generator = torch.Generator(device).manual_seed(0)
        self.device = device

    def sample(self, n, generator=None):
        return torch.rand(n, *self.shape, device=self.device, generator=generator or self.generator) * 2 - 1


def networks(model: str, device):
    torch.manual_seed(0)
    if model == "mlp":
        G, D = build_model("mlp", (2,), z_dim=4, width=32, depth=2)
        data = Gaussians25(device)
    else:
        G, D = build_model("dcgan", (1, 16, 16), z_dim=8, width=8, critic_norm="layer")
        data = ImageNoise(device)
    return G.to(device), D.to(device), data


def one_step(G, D, data, loss: str, constraint: str | None, precision: Precision, optimizer: str = "sgd", steps: int = 1, compile: bool = False):
    """``steps`` generator steps (one critic step each) from the given state, on copies; returns them and the run.
    ``constraint``: a constraint's config name, or None."""
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    built = objective(loss, *([constraint] if constraint else []), n_critic=1)  # gp: the paper's weight 10
    built.attach(D)
    if optimizer == "sgd":  # plain SGD: parameter changes are proportional to the gradients
        opt_G, opt_D = torch.optim.SGD(G.parameters(), lr=0.05), torch.optim.SGD(D.parameters(), lr=0.05)
    else:
        opt_G, opt_D = build_optimizers(G, D, optimizer, 1e-3, 1e-3, [0.5, 0.9], 0.99)
    torch.manual_seed(1)
    data.generator.manual_seed(1)
    run = RecordingRun()
    train(G, D, built, opt_G, opt_D, data, precision, run, steps=steps, batch_size=32,
          log_every=1, sample_every=10**6, eval_every=10**6, compile=compile)
    return G, D, run


def relative_error(after, reference_after, before) -> float:
    """||after - reference_after|| / ||reference_after - before|| over all parameters."""
    diff = sum(((a - r) ** 2).sum() for a, r in zip(after.parameters(), reference_after.parameters()))
    step = sum(((r - b) ** 2).sum() for r, b in zip(reference_after.parameters(), before.parameters()))
    return float((diff / step).sqrt().detach())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["bf16", "fp16"])
@pytest.mark.parametrize("model,loss,constraint", [
    ("mlp", "wasserstein", "gp"), ("mlp", "hinge", "sn"), ("dcgan", "wasserstein", "gp"), ("dcgan", "js", None),
])
def test_mixed_precision_step_is_finite_and_close_to_fp32(device, name, model, loss, constraint):
    G, D, data = networks(model, device)
    G0, D0, _ = one_step(G, D, data, loss, constraint, Precision("fp32", device), steps=0)  # with the constraint attached
    G32, D32, run32 = one_step(G, D, data, loss, constraint, Precision("fp32", device))
    # fp16 starts from a loss scale that fits these small nets: the first steps of the default 2^16
    # overflow and are skipped (the next test), which is not what this one compares.
    G16, D16, run16 = one_step(G, D, data, loss, constraint, Precision(name, device, init_scale=2.0**8))
    for scalars in (run32.logged[1], run16.logged[1]):
        assert all(torch.isfinite(torch.tensor(v)) for v in scalars.values()), scalars
    # The update of a half-precision step differs from fp32's by its rounding error: a few percent
    # at most (bf16 keeps 8 mantissa bits, fp16 11), never a different direction.
    tolerance = 0.1 if name == "bf16" else 0.03
    assert relative_error(D16, D32, D0) < tolerance
    assert relative_error(G16, G32, G0) < tolerance
    assert run16.logged[1]["Loss/D"] == pytest.approx(run32.logged[1]["Loss/D"], rel=0.05, abs=0.05)
    assert run16.logged[1].get("Precision/skipped_steps") == (0.0 if name == "fp16" else None)  # bf16 has no scaler


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])  # fused (skips on the device) and foreach
def test_an_overflowed_step_is_skipped_and_counted(optimizer):
    """A loss scale so large that the fp16 gradients overflow: no parameter changes, each skip is counted."""
    G, D, data = networks("mlp", "cpu")
    precision = Precision("fp16", "cpu", init_scale=2.0**100)  # float16 overflows above 65504
    G1, D1, run = one_step(G, D, data, "wasserstein", "gp", precision, optimizer=optimizer)
    for before, after in zip(list(G.parameters()) + list(D.parameters()), list(G1.parameters()) + list(D1.parameters())):
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert int(precision.skipped_steps) == 2  # the critic's step and the generator's
    assert run.logged[1]["Precision/skipped_steps"] == 2.0
    assert precision.scaler.get_scale() == 2.0**98  # halved after each overflow

    # The scale keeps halving until the steps fit; from then on they are applied.
    G2, D2, run = one_step(G, D, data, "wasserstein", "gp", Precision("fp16", "cpu", init_scale=2.0**30), optimizer=optimizer, steps=40)
    skipped = run.logged[40]["Precision/skipped_steps"]
    assert 0 < skipped < 80
    assert any(not torch.equal(a, b) for a, b in zip(D.parameters(), D2.parameters()))


def test_no_scaler_means_no_skips():
    for name in ("fp32", "bf16"):
        precision = Precision(name, "cpu")
        assert not precision.scaler.is_enabled() and precision.loss_scale() is None


def test_auto_precision(monkeypatch):
    import ganlab.precision

    assert resolve_precision("fp16", "cpu") == "fp16"  # an explicit choice stays
    assert resolve_precision("auto", "cpu", convolutional=False) == "fp32"  # MLPs: bf16 is slower on the CPU
    monkeypatch.setattr(ganlab.precision, "native_cpu_bf16", lambda: True)
    assert resolve_precision("auto", "cpu", convolutional=True) == "bf16"
    monkeypatch.setattr(ganlab.precision, "native_cpu_bf16", lambda: False)
    assert resolve_precision("auto", "cpu", convolutional=True) == "fp32"
    if torch.cuda.is_available():
        assert resolve_precision("auto", "cuda") == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    with pytest.raises(ValueError, match="resolve auto first"):
        Precision("auto", "cpu")


def test_lazy_penalty_runs_every_k_critic_steps_with_weight_k():
    torch.manual_seed(0)
    _, D = build_model("mlp", (2,), z_dim=2, width=16, depth=2)
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    eager = GradientPenalty(weight=2.0, every=1)
    lazy = GradientPenalty(weight=2.0, every=4)
    precision = Precision("fp32", "cpu")
    for critic_step in range(8):
        torch.manual_seed(critic_step)
        expected = eager.penalty(D, real, fake, precision, critic_step)
        torch.manual_seed(critic_step)
        got = lazy.penalty(D, real, fake, precision, critic_step)
        if critic_step % 4:
            assert got is None
        else:
            torch.testing.assert_close(got, 4 * expected)


@pytest.mark.skipif(not has_cxx_compiler(), reason="torch.compile on the CPU needs a C++ compiler")
@pytest.mark.parametrize("loss,constraint", [("wasserstein", "gp"), ("hinge", "sn")])
def test_compiled_and_eager_steps_agree(loss, constraint):
    torch._dynamo.reset()
    G, D, data = networks("mlp", "cpu")
    # SGD: Adam would blow a 1e-9 gradient of a dead unit (0 in eager) up to a full-size step
    G0, D0, _ = one_step(G, D, data, loss, constraint, Precision("fp32", "cpu"), steps=0)
    G_eager, D_eager, run_eager = one_step(G, D, data, loss, constraint, Precision("fp32", "cpu"), steps=3)
    G_comp, D_comp, run_comp = one_step(G, D, data, loss, constraint, Precision("fp32", "cpu"), steps=3, compile=True)
    # Compiled kernels sum in another order (float rounding, ~1e-7); over 3 steps a few units near a
    # ReLU or hinge kink drift further (0.14% of the update measured), so the whole update is compared.
    assert relative_error(D_comp, D_eager, D0) < 1e-2  # a wrong graph (no power iteration, no penalty) is off by O(1)
    assert relative_error(G_comp, G_eager, G0) < 1e-2
    assert run_comp.logged[3]["Loss/D"] == pytest.approx(run_eager.logged[3]["Loss/D"], rel=1e-3, abs=1e-4)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_cuda_steps_have_no_host_sync(name):
    """A step never waits for the GPU: runs of 1 and of 6 steps sync equally often (only at their end)."""
    import warnings

    from ganlab.train import fast

    G, D, data = networks("dcgan", "cuda")
    fast.prepare_networks(G, D, torch.device("cuda"))
    built = objective("wasserstein", "gp", n_critic=2)
    built.attach(D)
    opt_G, opt_D = build_optimizers(G, D, "adam", 1e-4, 1e-4, [0.5, 0.9], 0.99)
    precision = Precision(name, "cuda")
    common = dict(batch_size=16, log_every=10**6, sample_every=10**6, eval_every=10**6)
    train(G, D, built, opt_G, opt_D, data, precision, RecordingRun(), steps=2, **common)  # warm-up

    def syncs(start: int, steps: int) -> int:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train(G, D, built, opt_G, opt_D, data, precision, RecordingRun(), steps=start + steps, start_step=start, **common)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(w.message) for w in caught)

    one, six = syncs(2, 1), syncs(3, 6)
    assert one > 0  # the end of a run reads its scalars: the counter works
    assert six == one


def test_a_collapsed_loss_scale_is_divergence():
    """NaN data: every fp16 step overflows and is skipped; once the scale has collapsed the run stops."""
    from ganlab.train.faults import Diverged

    class NaNData(Gaussians25):
        def sample(self, n, generator=None):
            return super().sample(n, generator) * float("nan")

    G, D, _ = networks("mlp", "cpu")
    with pytest.raises(Diverged, match=r"fp16 loss scale fell to .*e-0"):
        one_step(G, D, NaNData(), "wasserstein", "gp", Precision("fp16", "cpu"), steps=60)


def test_compile_on_a_cpu_without_a_compiler_is_refused(monkeypatch):
    import ganlab.config
    from ganlab.errors import ConfigError

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="compile=true on the CPU needs a C\\+\\+ compiler"):
        ganlab.config.validate_compile("cpu")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/g++" if name == "g++" else None)
    ganlab.config.validate_compile("cpu")  # a compiler: accepted
