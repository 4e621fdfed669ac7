"""One training run on several processes: PyTorch's own engine (``torchrun``, ``torch.distributed``;
NCCL on GPUs, Gloo on CPUs), without DistributedDataParallel's wrapper.

Why not DDP: it does not support the double backward of the gradient penalties (pytorch #63812:
the gradients of gradients are not synchronised, and a second backward breaks its reducer), and
two forward passes before one backward, as in a critic step on real then fake batches, break its
buffer broadcasting (pytorch #22095). StyleGAN2-ADA/StyleGAN3 (``training/training_loop.py``) and
R3GAN avoid the wrapper the same way: every rank computes its loss on its share of the batch, then
the flattened gradients are all-reduced and averaged (:func:`all_reduce_gradients`) before each
optimizer step, so every rank applies the same update, the one a single process with the whole
batch would apply when the loss is a mean over the batch.

What else must stay identical on every rank:

* the initial weights: every rank builds them from the same seed, and :func:`broadcast_module`
  copies rank 0's anyway;
* batch-norm statistics: a batch norm normalises with its own batch, so on several ranks it needs
  the whole batch's mean and variance (:func:`sync_batch_norm`): PyTorch's SyncBatchNorm on GPUs;
  on CPUs, where SyncBatchNorm refuses its input ("expected input tensor to be on GPU"), ganlab's
  :class:`DistributedBatchNorm`, the same arithmetic with the differentiable all-reduce of
  ``torch.distributed.nn.functional``;
* spectral norm's power-iteration vectors: they are updated from the weights alone, which all ranks
  hold identically, so they stay identical without communication;
* statistics of the whole batch inside a loss or penalty: the relativistic average loss's mean
  scores and DRAGAN's batch standard deviation are taken over all ranks (:func:`batch_mean`,
  :func:`batch_std`), as one process would take them over its whole batch;
* decisions: whether to stop (a signal seen by one rank) is agreed with :func:`any_rank`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes: ``rank`` of ``size`` (``local_rank`` on its node)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes TensorBoard, pictures, metrics and checkpoints."""
        return self.rank == 0


SINGLE = World()


def world_from_env(environ: Mapping[str, str] | None = None) -> World:
    """The World that the launcher describes in the environment: torchrun's ``RANK``, ``WORLD_SIZE``
    and ``LOCAL_RANK``; a SLURM job step's ``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID``
    (what submitit's tasks see); otherwise a single process.

    Raises:
        ValueError: a rank outside [0, size) or a size < 1 (a broken environment).
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env:
        world = World(int(env.get("RANK", 0)), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    elif int(env.get("SLURM_NTASKS", 1)) > 1:
        world = World(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    else:
        return SINGLE
    if world.size < 1 or not 0 <= world.rank < world.size:
        raise ValueError(f"rank {world.rank} of {world.size} processes: the launcher's environment is inconsistent")
    return world


def all_reduce_gradients(module: nn.Module, world: World) -> None:
    """Replace the gradient of every parameter of ``module`` by its mean over the ranks: one
    all-reduce of the flattened gradients (a parameter without a gradient counts as zeros)."""
    if not world.distributed:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


@torch.no_grad()
def broadcast_module(module: nn.Module, world: World, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into every rank's ``module``."""
    if not world.distributed:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src)


def any_rank(flag: bool, world: World, device: torch.device | None = None) -> bool:
    """True on every rank when ``flag`` is True on at least one (an all-reduce of one number)."""
    if not world.distributed:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


LOST_PEER_SIGNS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator was aborted")


def lost_peer(err: BaseException) -> bool:
    """Whether ``err`` (raised by a collective) says that another process of the run is gone: Gloo
    raises a plain RuntimeError ("Connection closed by peer ... typically caused by a remote worker
    crashing"), newer backends a ``torch.distributed.DistError``."""
    dist_error = getattr(dist, "DistError", None)
    return (dist_error is not None and isinstance(err, dist_error)) or (
        isinstance(err, RuntimeError) and any(sign in str(err) for sign in LOST_PEER_SIGNS))


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over all ranks, differentiable: the backward of a sum is the sum of the
    gradients (``torch.distributed.nn.functional.all_reduce`` did this; it is deprecated)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


def _several_ranks() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def batch_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of every element of ``x`` over the batches of all ranks (the plain mean on one
    process), differentiable: what a loss that compares each sample with the batch's mean score
    needs (RaSGAN). Ranks may hold batches of different sizes."""
    if not _several_ranks():
        return x.mean()
    total = _SumOverRanks.apply(torch.stack([x.sum(), x.new_tensor(float(x.numel()))]))
    return total[0] / total[1].detach()


@torch.no_grad()
def batch_std(x: torch.Tensor) -> torch.Tensor:
    """The population standard deviation of every element of ``x`` over all ranks' batches (the
    plain ``x.std(correction=0)`` on one process); no gradient (DRAGAN's perturbation scale)."""
    if not _several_ranks():
        return x.std(correction=0)
    moments = torch.stack([x.sum(), (x * x).sum(), x.new_tensor(float(x.numel()))]).double()
    dist.all_reduce(moments)
    mean = moments[0] / moments[2]
    return (moments[1] / moments[2] - mean * mean).clamp_min(0).sqrt().to(x.dtype)


class DistributedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the whole batch of all ranks, on any device (for CPUs: Gloo).

    In training, the per-channel sums of x and x² and the count are summed over the ranks by an
    all-reduce whose backward all-reduces the gradient, so the output is that of one batch norm over
    the concatenated batch (Ioffe & Szegedy 2015, Alg. 1; the running variance uses the unbiased
    estimate, as ``nn.BatchNorm*``), and an input's gradient is that of the sum of all ranks'
    losses: averaged over the ranks (:func:`all_reduce_gradients`), the parameters upstream get the
    gradient of the mean loss, as one process with the whole batch. Input (N, C, ...); a single
    process, or evaluation, is plain batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and _several_ranks()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        x32 = x.float()  # the statistics in float32 under bf16/fp16 autocast, as the running buffers are
        local = torch.cat([x32.sum(dims), (x32 * x32).sum(dims), x32.new_full((1,), x.numel() / x.shape[1])])
        total = _SumOverRanks.apply(local)
        c = x.shape[1]
        count = total[2 * c]
        mean = total[:c] / count
        var = total[c:2 * c] / count - mean * mean  # biased: what normalises the batch
        if self.track_running_stats:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked + 1)
                self.num_batches_tracked += 1
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / (count - 1), momentum)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x32 - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by one that normalises over all ranks:
    ``torch.nn.SyncBatchNorm`` on CUDA, :class:`DistributedBatchNorm` elsewhere (weights, buffers
    and settings kept)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, DistributedBatchNorm):
        new = DistributedBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new.to(next(iter(module.state_dict().values())).device) if module.state_dict() else new
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module

