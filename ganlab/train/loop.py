"""The training loop: n_critic critic steps, then one generator step, repeated ``steps`` times.

It never sees the config tree. It receives built objects (networks, objective, optimizers, data,
precision) and a ``run`` that records what happens (scalars, pictures, metrics, checkpoints);
it knows the objective only through :class:`~ganlab.objectives.Objective`'s methods, so the same
code trains every loss family and constraint. Scalars are reported into a device-side
:class:`~ganlab.logger.stats.Stats` and read once per ``log_every`` steps: no step waits for the
device.
"""

from __future__ import annotations

import time
from typing import Protocol

import torch
from torch import nn

from ganlab.logger.stats import Stats
from ganlab.objectives import Objective
from ganlab.objectives.constraints import input_gradient_norm, interpolates
from ganlab.precision import Precision
from ganlab.train.ema import EMA


class Data(Protocol):
    def sample(self, n: int) -> torch.Tensor: ...


class Run(Protocol):
    """What the loop reports to; :class:`ganlab.logger.run.RunLogger` is the real one."""

    def progress(self, step: int) -> None: ...
    def log(self, step: int, scalars: dict[str, float]) -> None: ...
    def sample(self, step: int, G: nn.Module, D: nn.Module) -> None: ...
    def evaluate(self, step: int, G: nn.Module, D: nn.Module) -> dict[str, float]: ...
    def save(self, step: int, G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer, G_ema: nn.Module | None) -> None: ...


def grad_norm(module: nn.Module) -> torch.Tensor:
    """L2 norm of all parameter gradients of ``module`` (a device tensor; no sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


def critic_input_gradients(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean and max of ||dD/dx|| at real, fake and interpolated points, in fp32 (a diagnostic)."""
    out = {}
    for name, x in (("real", real), ("fake", fake), ("interp", interpolates(real, fake))):
        norm = input_gradient_norm(D, x)
        out[f"CriticGrad/{name}_mean"] = norm.mean()
        out[f"CriticGrad/{name}_max"] = norm.max()
    return out


def _every(step: int, interval: int, last: int) -> bool:
    return step % interval == 0 or step == last


def train(
    G: nn.Module,
    D: nn.Module,
    objective: Objective,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    data: Data,
    precision: Precision,
    run: Run,
    *,
    steps: int,
    batch_size: int,
    log_every: int,
    sample_every: int,
    eval_every: int,
    ema: EMA | None = None,
    start_step: int = 0,
) -> dict[str, float]:
    """Train ``G`` against ``D`` from ``start_step`` to ``steps``; return the final metrics.

    With ``ema``, the averaged generator ``ema.G_ema`` is updated after every generator step and
    is the one that pictures and metrics use.
    """
    device = precision.device
    stats = Stats()
    metrics: dict[str, float] = {}
    G.train()
    D.train()
    clock, clock_step, paused = time.perf_counter(), start_step, 0.0  # for steps/s

    for step in range(start_step + 1, steps + 1):
        # Critic: n_critic steps on fresh real and fake batches.
        D.requires_grad_(True)
        for _ in range(objective.n_critic):
            real = data.sample(batch_size)
            z = torch.randn(batch_size, G.z_dim, device=device)
            with torch.no_grad(), precision.autocast():
                fake = G(z).to(real.dtype)
            loss_D = objective.critic_loss(D, real, fake, precision, stats)
            opt_D.zero_grad(set_to_none=True)
            precision.backward(loss_D)
            precision.unscale_(opt_D)
            stats.report("GradNorm/D", grad_norm(D))  # before any clipping
            precision.step(opt_D)
            precision.update()
            objective.after_critic_step(D)

        # Generator: one step; the critic's parameters need no gradients here.
        D.requires_grad_(False)
        z = torch.randn(batch_size, G.z_dim, device=device)
        with precision.autocast():
            fake_G = G(z)
        loss_G = objective.generator_loss(D, fake_G.float(), precision, stats)
        opt_G.zero_grad(set_to_none=True)
        precision.backward(loss_G)
        precision.unscale_(opt_G)
        stats.report("GradNorm/G", grad_norm(G))
        precision.step(opt_G)
        precision.update()
        if ema is not None:
            ema.update(G)
        run.progress(step)

        if _every(step, log_every, steps):
            D.requires_grad_(True)
            for tag, value in {**objective.diagnostics(D), **critic_input_gradients(D, real, fake)}.items():
                stats.report(tag, value)
            scalars = stats.collect()  # the one host-device sync of the interval
            now = time.perf_counter()
            scalars["Speed/steps_per_sec"] = (step - clock_step) / max(now - clock - paused, 1e-9)
            clock, clock_step, paused = now, step, 0.0
            scalars["LR/G"] = opt_G.param_groups[0]["lr"]
            scalars["LR/D"] = opt_D.param_groups[0]["lr"]
            if precision.scaler.is_enabled():
                scalars["Precision/loss_scale"] = precision.scaler.get_scale()
            run.log(step, scalars)
        pause_start = time.perf_counter()  # pictures and metrics don't count as training time
        G_shown = ema.G_ema if ema is not None else G
        if _every(step, sample_every, steps):
            run.sample(step, G_shown, D)
        if _every(step, eval_every, steps):
            metrics = run.evaluate(step, G_shown, D)
            run.save(step, G, D, opt_G, opt_D, ema.G_ema if ema is not None else None)
        paused += time.perf_counter() - pause_start

    D.requires_grad_(True)
    return metrics
