"""The GAN step: n_critic critic steps, then one generator step, repeated ``steps`` times.

It never sees the config tree. It receives built objects (networks, objective, optimizers, data,
precision) and a ``run`` that records what happens (scalars, histograms, pictures, metrics,
checkpoints); it knows the objective only through :class:`~ganlab.objectives.Objective`'s methods,
so the same code trains every loss family and constraint. Scalars are reported into a device-side
:class:`~ganlab.logger.stats.Stats` and read once per ``log_every`` steps: no step waits for the
device. What is not the GAN step lives beside it: the per-interval diagnostics
(:mod:`ganlab.train.diagnostics`), the non-finite check and rollback (:mod:`ganlab.train.faults`),
the speed (:mod:`ganlab.train.timing`), observing without changing the run
(:mod:`ganlab.train.observe`), and the scheduled scalars (:mod:`ganlab.schedules`).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
from torch import nn

from ganlab.errors import TrainingFailed
from ganlab.logger.stats import Stats
from ganlab.objectives import Objective
from ganlab.precision import Precision
from ganlab.schedules import Schedules
from ganlab.train.diagnostics import critic_diagnostics
from ganlab.distributed import SINGLE, World, all_reduce_gradients, any_rank
from ganlab.train.ema import EMA
from ganlab.train.fast import compiled
from ganlab.train.faults import FaultGuard, Faults
from ganlab.train.observe import observing
from ganlab.train.state import capture
from ganlab.train.timing import Speedometer


class Data(Protocol):
    def sample(self, n: int) -> torch.Tensor: ...


class Run(Protocol):
    """What the loop reports to; :class:`ganlab.logger.run.RunLogger` is the real one."""

    def progress(self, step: int) -> None: ...
    def log(self, step: int, scalars: dict[str, float]) -> None: ...
    def histograms(self, step: int, values: dict[str, torch.Tensor]) -> None: ...
    def sample(self, step: int, G: nn.Module, D: nn.Module) -> None: ...
    def evaluate(self, step: int, G: nn.Module, D: nn.Module) -> dict[str, float]: ...
    def save(self, step: int, state: dict[str, Any]) -> None: ...
    def last_good_state(self) -> dict[str, Any] | None: ...
    def last_good_description(self) -> str: ...
    def rolled_back(self, step: int, count: int, reason: str, lr_G: float, lr_D: float) -> None: ...


def grad_norm(module: nn.Module) -> torch.Tensor:
    """L2 norm of all parameter gradients of ``module`` (a device tensor; no sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


def _every(step: int, interval: int, last: int) -> bool:
    return step % interval == 0 or step == last


class Interrupted(TrainingFailed):
    """A SIGINT or SIGTERM stopped the run after a checkpoint was written."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message, exit_status=exit_status)


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
    checkpoint_every: int | None = None,
    ema: EMA | None = None,
    stats: Stats | None = None,
    start_step: int = 0,
    faults: Faults = Faults(),
    compile: bool = False,
    schedules: Schedules | None = None,
    world: World = SINGLE,
    latents: Callable[[int], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Train ``G`` against ``D`` from ``start_step`` to ``steps``; return the final metrics.

    With ``ema``, the averaged generator ``ema.G_ema`` is updated after every generator step and
    is the one that pictures and metrics use. The full state (``ganlab.train.state.capture``) goes
    to ``run.save`` every ``checkpoint_every`` steps, at the end and when ``faults.should_stop()``;
    a resumed run passes the restored ``stats`` and ``start_step``.

    With ``compile``, the training forward passes go through ``torch.compile``d views of ``G`` and
    ``D`` (:func:`ganlab.train.fast.compiled`); they share the parameters, so the optimizers, EMA,
    checkpoints and pictures use ``G`` and ``D`` themselves.

    ``schedules`` sets the scheduled scalars (learning rates, beta2, penalty weights) at the start
    of each generator step (:mod:`ganlab.schedules`); by default the learning rates stay as the
    optimizers have them.

    On several processes (``world``, :mod:`ganlab.distributed`), ``batch_size`` is this rank's
    share and ``data`` its own stream; the gradients are averaged over the ranks before every
    optimizer step, the logged scalars are means over the ranks, and a stop seen by one rank stops
    all at the same step. ``run`` is then rank 0's recorder on rank 0 and a follower elsewhere.
    ``latents(n)`` draws G's input (default: ``torch.randn(n, G.z_dim)`` from the global stream).
    """
    device = precision.device
    latents = latents or (lambda n: torch.randn(n, G.z_dim, device=device))
    stats = stats if stats is not None else Stats()
    checkpoint_every = checkpoint_every or steps
    metrics: dict[str, float] = {}
    schedules = schedules if schedules is not None else Schedules.constant_learning_rates(opt_G, opt_D)
    parts = (G, D, opt_G, opt_D, precision, ema, data, stats, schedules)
    G_fast, D_fast = (compiled(G), compiled(D)) if compile else (G, D)
    guard = FaultGuard(faults, run, precision, parts)
    speed = Speedometer(start_step)
    G.train()
    D.train()

    step = start_step
    while step < steps:
        step += 1
        schedules.apply(step)  # this step's learning rates, beta2 and penalty weights (ganlab.schedules)
        # Critic: n_critic steps on fresh real and fake batches.
        D.requires_grad_(True)
        for i in range(objective.n_critic):
            real = data.sample(batch_size)
            z = latents(batch_size)
            with torch.no_grad(), precision.autocast():
                fake = G_fast(z).to(real.dtype)
            critic_step = (step - 1) * objective.n_critic + i  # counts from 0; lazy penalties key on it
            loss_D = objective.critic_loss(D_fast, real, fake, precision, stats, critic_step)
            opt_D.zero_grad(set_to_none=True)
            precision.backward(loss_D)
            all_reduce_gradients(D, world)  # the mean over the ranks: one process's step with the whole batch
            precision.unscale_(opt_D)
            stats.report("GradNorm/D", grad_norm(D))  # before any clipping
            precision.step(opt_D)  # skipped (and counted) if the scaled gradients overflowed
            objective.after_critic_step(D)

        # Generator: one step; the critic's parameters need no gradients here.
        D.requires_grad_(False)
        z = latents(batch_size)
        with precision.autocast():
            fake_G = G_fast(z)
        loss_G = objective.generator_loss(D_fast, fake_G.float(), precision, stats, real=real)  # real: the last critic batch, scored only by a loss that needs it
        opt_G.zero_grad(set_to_none=True)
        precision.backward(loss_G)
        all_reduce_gradients(G, world)
        precision.unscale_(opt_G)
        stats.report("GradNorm/G", grad_norm(G))
        precision.step(opt_G)
        if ema is not None:
            ema.update(G)
        run.progress(step)

        if _every(step, log_every, steps):
            diagnostics, histograms = critic_diagnostics(objective, D, real, fake, step)
            for tag, value in diagnostics.items():
                stats.report(tag, value)
            guard.report(stats, G, D)
            scalars = stats.collect(world)  # the one host-device sync of the interval (means over the ranks)
            bad = guard.problems(scalars)
            if bad:
                step = guard.recover(step, bad)  # back to the last good checkpoint, or Diverged
                speed.restart(step)
                continue
            scalars["Speed/steps_per_sec"] = speed.lap(step)
            scalars.update(schedules.values())  # LR/G, LR/D, and each scheduled scalar
            run.log(step, scalars)
            run.histograms(step, histograms)

        # Observers: whatever they draw or run, the trajectory goes on as if they had not looked;
        # pictures, metrics and checkpoints don't count as training time.
        with speed.paused():
            G_shown = ema.G_ema if ema is not None else G
            if _every(step, sample_every, steps):
                with observing(G, D, G_shown):
                    run.sample(step, G_shown, D)
            if _every(step, eval_every, steps):
                with observing(G, D, G_shown):
                    metrics = run.evaluate(step, G_shown, D)
            stopping = any_rank(faults.should_stop(), world, device)  # every rank stops at the same step
            if _every(step, checkpoint_every, steps) or stopping:
                guard.check_before_save(step, G, D)
                with observing(G, D):
                    run.save(step, capture(step, *parts))
            if stopping:
                raise Interrupted(f"stopped at step {step} of {steps}; the checkpoint is saved", exit_status=130)

    D.requires_grad_(True)
    return metrics
