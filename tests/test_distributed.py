"""ganlab.distributed on the CPU with Gloo: two processes (torch.multiprocessing) whose
gradients, batch-norm outputs and statistics equal one process's with the whole batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ganlab.distributed import SINGLE, DistributedBatchNorm, World, all_reduce_gradients, any_rank, batch_mean, batch_std, sync_batch_norm, world_from_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, *args, world_size: int = 2) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` Gloo processes; a failure in one fails the test."""
    mp.spawn(_worker, args=(world_size, free_port(), fn, args), nprocs=world_size, join=True)


def _worker(rank: int, world_size: int, port: int, fn, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def test_the_world_comes_from_torchrun_or_slurm():
    assert world_from_env({}) == SINGLE and not SINGLE.distributed and SINGLE.is_main
    assert world_from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == World(1, 4, 1)
    assert world_from_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1"}) == World(3, 4, 1)
    assert world_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == SINGLE  # one task: not distributed
    with pytest.raises(ValueError, match="rank 4 of 4"):
        world_from_env({"RANK": "4", "WORLD_SIZE": "4"})


def _mean_gradients(rank, world_size, out):
    layer = nn.Linear(3, 2)
    layer.weight.grad = torch.full_like(layer.weight, float(rank + 1))  # bias has no gradient on either rank
    all_reduce_gradients(layer, World(rank, world_size))
    torch.save({"weight": layer.weight.grad, "bias": layer.bias.grad, "any": any_rank(rank == 1, World(rank, world_size)),
                "none": any_rank(False, World(rank, world_size))}, f"{out}/{rank}.pt")


def test_gradients_become_their_mean_over_the_ranks(tmp_path):
    spawn(_mean_gradients, str(tmp_path))
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt")
        torch.testing.assert_close(got["weight"], torch.full((2, 3), 1.5), rtol=0, atol=0)
        torch.testing.assert_close(got["bias"], torch.zeros(2), rtol=0, atol=0)
        assert got["any"] is True and got["none"] is False


def _batch_norm_halves(rank, world_size, x, out):
    torch.manual_seed(0)
    bn = DistributedBatchNorm(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    n = x.shape[0] // world_size
    part = x[rank * n:(rank + 1) * n].clone().requires_grad_()
    y = bn(part)
    loss = (y * torch.arange(y.numel(), dtype=y.dtype).view_as(y)).mean()  # weights the samples unequally
    loss.backward()
    all_reduce_gradients(bn, World(rank, world_size))
    torch.save({"y": y.detach(), "dx": part.grad, "dw": bn.weight.grad, "db": bn.bias.grad,
                "running_mean": bn.running_mean, "running_var": bn.running_var}, f"{out}/{rank}.pt")


@pytest.mark.parametrize("shape", [(8, 3), (6, 3, 4, 4)])
def test_distributed_batch_norm_on_halves_equals_batch_norm_on_the_whole(tmp_path, shape):
    """Forward, the input's and the affine parameters' gradients, and the running statistics."""
    torch.manual_seed(1)
    x = torch.randn(*shape) * 3 + 1
    spawn(_batch_norm_halves, x, str(tmp_path))

    bn = nn.BatchNorm2d(3) if len(shape) == 4 else nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    whole = x.clone().requires_grad_()
    y = bn(whole)
    n = shape[0] // 2
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt")
        part = y[rank * n:(rank + 1) * n]
        torch.testing.assert_close(got["y"], part.detach(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got["running_mean"], bn.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["running_var"], bn.running_var, rtol=1e-5, atol=1e-6)
    # The whole batch's loss: the mean of the two halves' losses.
    halves = [y[r * n:(r + 1) * n] for r in range(2)]
    loss = sum((h * torch.arange(h.numel(), dtype=y.dtype).view_as(h)).mean() for h in halves) / 2
    loss.backward()
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt")
        # The input's gradient is that of the sum of the ranks' losses (what flows on into G, whose
        # gradients are then averaged over the ranks): twice the mean loss's.
        torch.testing.assert_close(got["dx"], 2 * whole.grad[rank * n:(rank + 1) * n], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(got["dw"], bn.weight.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(got["db"], bn.bias.grad, rtol=1e-4, atol=1e-6)


def _batch_norm_in_bf16(rank, world_size, x, out):
    bn = DistributedBatchNorm(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = bn(x[rank * 3:(rank + 1) * 3].to(torch.bfloat16))
    torch.save({"y": y, "running_mean": bn.running_mean}, f"{out}/{rank}.pt")


def test_distributed_batch_norm_under_bf16_autocast_keeps_float32_statistics(tmp_path):
    x = torch.randn(6, 3, 2, 2) + 2
    spawn(_batch_norm_in_bf16, x, str(tmp_path))
    bn = nn.BatchNorm2d(3)
    expected = bn(x.to(torch.bfloat16).float())
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt")
        assert got["y"].dtype == torch.bfloat16 and got["running_mean"].dtype == torch.float32
        torch.testing.assert_close(got["y"].float(), expected[rank * 3:(rank + 1) * 3], rtol=2e-2, atol=2e-2)
        torch.testing.assert_close(got["running_mean"], bn.running_mean, rtol=1e-5, atol=1e-6)


def test_sync_batch_norm_converts_every_batch_norm_and_keeps_its_state():
    net = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)))
    with torch.no_grad():
        net[1].running_mean.fill_(0.5)
    converted = sync_batch_norm(net, torch.device("cpu"))
    assert isinstance(converted[1], DistributedBatchNorm) and isinstance(converted[2][1], DistributedBatchNorm)
    torch.testing.assert_close(converted[1].running_mean, torch.full((4,), 0.5))
    x = torch.randn(5, 4)
    converted[1].eval()
    torch.testing.assert_close(converted[1](x), (x - 0.5) / torch.sqrt(torch.ones(4) + 1e-5) * converted[1].weight + converted[1].bias)


def _batch_statistics(rank, world_size, x, out):
    part = (x[:3] if rank == 0 else x[3:]).clone().requires_grad_()  # uneven shares: 3 and 5 samples
    mean = batch_mean(part)
    mean.backward()
    torch.save({"mean": mean.detach(), "std": batch_std(part.detach()), "grad": part.grad}, f"{out}/{rank}.pt")


def test_batch_mean_and_std_are_the_whole_batchs_over_the_ranks(tmp_path):
    x = torch.randn(8, 2) * 2 + 1
    spawn(_batch_statistics, x, str(tmp_path))
    for rank in range(2):
        got = torch.load(tmp_path / f"{rank}.pt")
        torch.testing.assert_close(got["mean"], x.mean())
        torch.testing.assert_close(got["std"], x.std(correction=0))
        # d(sum of both ranks' means)/dx: each element counts 2 / 16, the gradient of the sum of the ranks' losses
        torch.testing.assert_close(got["grad"], torch.full_like(got["grad"], 2 / x.numel()))
    assert batch_mean(x) == x.mean() and batch_std(x) == x.std(correction=0)  # one process: the plain statistics


def test_a_slurm_jobs_tasks_find_their_master_through_submitit(monkeypatch):
    from ganlab.apps.train import export_slurm_master

    for key in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.setenv(key, "")  # recorded, so that what submitit's export writes into os.environ is undone after the test
        monkeypatch.delenv(key)
    slurm = dict(SUBMITIT_EXECUTOR="slurm", SLURM_JOB_ID="4242", SLURM_JOB_NODELIST="node[07-08]", SLURM_JOB_NUM_NODES="2",
                 SLURM_NODEID="1", SLURM_PROCID="5", SLURM_NTASKS="8", SLURM_LOCALID="1")
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    assert world_from_env() == World(5, 8, 1)
    export_slurm_master()
    assert (os.environ["MASTER_ADDR"], os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("node07", "5", "8", "1")
    assert 20000 <= int(os.environ["MASTER_PORT"]) <= 60000  # drawn from the job id: the same on every task


@pytest.mark.parametrize("overrides, multirun, message", [
    (["batch_size=30"], False, "batch_size=30 does not split over 4 processes: choose a multiple of 4"),
    (["batch_size=24", "pack=4"], False, "batch_size=24 does not split over 4 processes in packs of pack=4: choose a multiple of 16"),
    ([], True, "ganlab train -m under torchrun"),
])
def test_a_run_that_cannot_be_distributed_is_a_one_line_error(overrides, multirun, message, monkeypatch):
    from ganlab.apps.train import join_world
    from ganlab.errors import ConfigError

    from conftest import compose_train

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        join_world(compose_train(overrides), multirun)
