"""Generator steps (each with its n_critic critic steps) on 2 Gloo processes, each with half of the
batch, equals the step of 1 process with the whole batch: the same real and fake samples, the same
penalty draws, for the classic presets and the penalties, on the MLP and on the DCGAN (whose batch
norms normalise over both ranks: ganlab.distributed.sync_batch_norm).

The optimizers are plain SGD (lr 1e-3), two generator steps: an update proportional to the gradient
shows any difference in it, where the first step of Adam or RMSProp moves each weight by about
lr * sign(gradient) and would hide one (and would blow up float noise in a gradient that is zero in
exact arithmetic, e.g. the last bias under a relativistic loss). The optimizers themselves act on
identical gradients on every rank. Tolerance on every weight and buffer: 1e-6 relative and 1e-7
absolute (float32; the all-reduce adds the ranks' gradients of half-batch means in another order).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganlab.apps.build import build_networks, build_objective_from
from ganlab.logger.stats import Stats
from ganlab.precision import Precision
from ganlab.distributed import World, sync_batch_norm
from ganlab.train.loop import train

from conftest import compose_train
from test_distributed import spawn

BATCH = 8  # the whole batch: 4 per rank
STEPS = 2  # generator steps, each after n_critic critic steps
LR = 1e-3
TOLERANCE = dict(rtol=1e-6, atol=1e-7)
PENALTY_SEED = 100  # rank r draws its penalties' random numbers from torch.manual_seed(PENALTY_SEED + r)

MODELS = {  # model: (the data's shape, its overrides)
    "mlp": ((2,), ["dataset=gaussians8", "model.width=16"]),
    "dcgan": ((1, 16, 16), ["experiment=digits_dcgan", "dataset.resolution=16", "model.width=8"]),
}
CLASSIC = ("js", "wgan_clip", "wgan_gp", "spectral_norm")  # on the MLP and on the DCGAN
NEWER = ("r1", "dragan", "wgan_lp", "lsgan", "rsgan", "ragan", "r3gan")  # on the MLP


class Quiet:
    """A Run that records nothing (the loop's protocol)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: {} if name == "evaluate" else None


class Slices:
    """``sample(n)`` gives this rank's slice of the next of the fixed batches."""

    def __init__(self, batches: list[torch.Tensor], rank: int, world_size: int):
        self.batches, self.rank, self.world_size = iter(batches), rank, world_size

    def sample(self, n: int) -> torch.Tensor:
        batch = next(self.batches)
        assert batch.shape[0] == n * self.world_size
        return batch[self.rank * n:(self.rank + 1) * n]


def build(overrides: list[str], data_shape: tuple[int, ...], world_size: int):
    cfg = compose_train(overrides)
    torch.manual_seed(0)
    G, D = build_networks(cfg.model, data_shape, torch.device("cpu"))
    if world_size > 1:
        G, D = sync_batch_norm(G, torch.device("cpu")), sync_batch_norm(D, torch.device("cpu"))
    objective = build_objective_from(cfg.objective)
    objective.attach(D)
    opt_G, opt_D = (torch.optim.SGD(net.parameters(), lr=LR) for net in (G, D))
    return G, D, objective, opt_G, opt_D


def inputs(data_shape: tuple[int, ...], z_dim: int, n_critic: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The whole batches of STEPS generator steps: n_critic real ones each, and n_critic + 1 latents
    (one per critic step, one for G)."""
    g = torch.Generator().manual_seed(7)
    real = [torch.rand((BATCH, *data_shape), generator=g) * 2 - 1 for _ in range(n_critic * STEPS)]
    z = [torch.randn(BATCH, z_dim, generator=g) for _ in range((n_critic + 1) * STEPS)]
    return real, z


def one_step(rank: int, world_size: int, overrides: list[str], data_shape: tuple[int, ...], out: str) -> None:
    G, D, objective, opt_G, opt_D = build(overrides, data_shape, world_size)
    real, z = inputs(data_shape, G.z_dim, objective.n_critic)
    latents = Slices(z, rank, world_size)
    torch.manual_seed(PENALTY_SEED + rank)
    train(G, D, objective, opt_G, opt_D, Slices(real, rank, world_size), Precision("fp32", "cpu"), Quiet(),
          steps=STEPS, batch_size=BATCH // world_size, log_every=1, sample_every=1, eval_every=1, stats=Stats(),
          world=World(rank, world_size), latents=latents.sample)
    torch.save({"G": G.state_dict(), "D": D.state_dict()}, Path(out) / f"rank{rank}.pt")


def whole_batch_draws(world_size: int):
    """torch.rand as the ranks draw it, for one process with the whole batch: a draw of n rows is
    the concatenation of each rank's draw of n / world_size rows from its own stream."""
    streams = [torch.Generator().manual_seed(PENALTY_SEED + r) for r in range(world_size)]
    rand = torch.rand

    def draw(*size, generator=None, **kwargs):
        shape = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        if generator is not None:
            return rand(shape, generator=generator, **kwargs)
        part = (shape[0] // world_size, *shape[1:])
        return torch.cat([rand(part, generator=g, **kwargs) for g in streams])

    return draw


def reference(overrides: list[str], data_shape: tuple[int, ...], monkeypatch) -> dict:
    """The step of one process with the whole batch (its penalty draws: whole_batch_draws)."""
    G, D, objective, opt_G, opt_D = build(overrides, data_shape, 1)
    real, z = inputs(data_shape, G.z_dim, objective.n_critic)
    monkeypatch.setattr(torch, "rand", whole_batch_draws(2))
    train(G, D, objective, opt_G, opt_D, Slices(real, 0, 1), Precision("fp32", "cpu"), Quiet(),
          steps=STEPS, batch_size=BATCH, log_every=1, sample_every=1, eval_every=1, stats=Stats(), latents=Slices(z, 0, 1).sample)
    monkeypatch.undo()
    return {"G": G.state_dict(), "D": D.state_dict()}


CASES = {  # name: (model, overrides)
    **{f"{preset}-{model}": (model, [f"objective={preset}"]) for model in MODELS for preset in CLASSIC},
    **{f"{preset}-mlp": ("mlp", [f"objective={preset}"]) for preset in NEWER},
    "r1+r2+smoothing-mlp": ("mlp", ["objective=js", "objective/constraints=[r1,r2]", "objective.loss.real_label=0.9"]),
}


def case(name: str) -> tuple[list[str], tuple[int, ...]]:
    """The overrides and the data shape of one case of CASES."""
    model, overrides = CASES[name]
    data_shape, settings = MODELS[model]
    return [*settings, *overrides, "threads=1"], data_shape


def every_case(rank: int, world_size: int, out: str) -> None:
    """Each case's steps on this rank, one after the other in one pair of processes (starting a pair
    of Python processes per case cost more than the steps)."""
    for name in CASES:
        one_step(rank, world_size, *case(name), str(Path(out) / name))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """The folder with ``<case>/rank<r>.pt``: every case's weights after its steps on 2 processes."""
    out = tmp_path_factory.mktemp("two_processes")
    for name in CASES:
        (out / name).mkdir()
    spawn(every_case, str(out))
    return out


def assert_same_step(name: str, two_processes: Path, monkeypatch) -> None:
    overrides, data_shape = case(name)
    expected = reference(overrides, data_shape, monkeypatch)
    for rank in range(2):
        got = torch.load(two_processes / name / f"rank{rank}.pt")
        for net in ("G", "D"):
            assert got[net].keys() == expected[net].keys()
            for key, value in expected[net].items():
                if value.is_floating_point():
                    torch.testing.assert_close(got[net][key], value, **TOLERANCE, msg=f"rank {rank} {net}.{key}")
                else:
                    assert torch.equal(got[net][key], value), f"rank {rank} {net}.{key}"


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("preset", CLASSIC)
def test_two_processes_with_half_batches_step_as_one_process_with_the_whole_batch(preset, model, two_processes, monkeypatch):
    assert_same_step(f"{preset}-{model}", two_processes, monkeypatch)


@pytest.mark.parametrize("preset", NEWER)
def test_the_newer_objectives_and_penalties_give_the_same_step(preset, two_processes, monkeypatch):
    assert_same_step(f"{preset}-mlp", two_processes, monkeypatch)


def test_r2_and_label_smoothing_give_the_same_step(two_processes, monkeypatch):
    assert_same_step("r1+r2+smoothing-mlp", two_processes, monkeypatch)
