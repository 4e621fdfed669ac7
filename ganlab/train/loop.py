"""The training loop: n_critic critic steps, then one generator step, repeated ``steps`` times.

It never sees the config tree. It receives built objects (networks, objective, optimizers, data,
precision) and a ``run`` that records what happens (scalars, pictures, metrics, checkpoints);
it knows the objective only through :class:`~ganlab.objectives.Objective`'s methods, so the same
code trains every loss family and constraint. Scalars are reported into a device-side
:class:`~ganlab.logger.stats.Stats` and read once per ``log_every`` steps: no step waits for the
device.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from torch import nn

from ganlab.logger.stats import Stats
from ganlab.objectives import Objective
from ganlab.objectives.constraints import input_gradient_norm, interpolates
from ganlab.errors import TrainingFailed
from ganlab.precision import Precision
from ganlab.train.ema import EMA
from ganlab.train.fast import compiled
from ganlab.train.observe import observer_generator, observing
from ganlab.train.state import capture, restore


class Data(Protocol):
    def sample(self, n: int) -> torch.Tensor: ...


class Run(Protocol):
    """What the loop reports to; :class:`ganlab.logger.run.RunLogger` is the real one."""

    def progress(self, step: int) -> None: ...
    def log(self, step: int, scalars: dict[str, float]) -> None: ...
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


CRITIC_GRAD_STREAM = 1  # observer_generator stream of the critic-gradient diagnostic's interpolation points


def critic_input_gradients(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
    """Mean and max of ||dD/dx|| at real, fake and interpolated points, in fp32 (a diagnostic).

    ``real`` and ``fake`` are (n, ...) batches. The critic runs as in training (its batch-norm and
    spectral-norm layers behave as the penalty sees them), inside :func:`observing`, and the
    interpolation weights come from a generator seeded by ``step``: the run continues exactly as it
    would have without the diagnostic, and a step's figures do not depend on ``log_every``.
    """
    out = {}
    with observing(D):
        x_hat = interpolates(real, fake, generator=observer_generator(real.device, step, CRITIC_GRAD_STREAM))
        for name, x in (("real", real), ("fake", fake), ("interp", x_hat)):
            norm = input_gradient_norm(D, x)
            out[f"CriticGrad/{name}_mean"] = norm.mean()
            out[f"CriticGrad/{name}_max"] = norm.max()
    return out


MIN_LOSS_SCALE = 2.0**-16  # below this the fp16 gradients overflow whatever the scale: the run has diverged


def _every(step: int, interval: int, last: int) -> bool:
    return step % interval == 0 or step == last


def nonfinite_parameters(*modules: nn.Module) -> torch.Tensor:
    """How many parameters are NaN or inf (a device tensor; no sync)."""
    return sum((~torch.isfinite(p)).sum() for m in modules for p in m.parameters())


class Diverged(TrainingFailed):
    """Losses or parameters became NaN or inf, and no rollback was allowed or possible."""

    def __init__(self, message: str):
        super().__init__(message, exit_status=3)


class Interrupted(TrainingFailed):
    """A SIGINT or SIGTERM stopped the run after a checkpoint was written."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message, exit_status=exit_status)


@dataclass
class Faults:
    """What to do when training goes wrong."""

    on_nonfinite: str = "stop"  # stop | rollback
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    should_stop: Callable[[], bool] = lambda: False  # e.g. a StopOnSignal


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
) -> dict[str, float]:
    """Train ``G`` against ``D`` from ``start_step`` to ``steps``; return the final metrics.

    With ``ema``, the averaged generator ``ema.G_ema`` is updated after every generator step and
    is the one that pictures and metrics use. The full state (``ganlab.train.state.capture``) goes
    to ``run.save`` every ``checkpoint_every`` steps, at the end and when ``faults.should_stop()``;
    a resumed run passes the restored ``stats`` and ``start_step``.

    With ``compile``, the training forward passes go through ``torch.compile``d views of ``G`` and
    ``D`` (:func:`ganlab.train.fast.compiled`); they share the parameters, so the optimizers, EMA,
    checkpoints and pictures use ``G`` and ``D`` themselves.
    """
    device = precision.device
    stats = stats if stats is not None else Stats()
    checkpoint_every = checkpoint_every or steps
    metrics: dict[str, float] = {}
    parts = (G, D, opt_G, opt_D, precision, ema, data, stats)
    G_fast, D_fast = (compiled(G), compiled(D)) if compile else (G, D)
    skipped_logged = float(precision.skipped_steps)  # overflowed steps up to the last log
    G.train()
    D.train()
    clock, clock_step, paused = time.perf_counter(), start_step, 0.0  # for steps/s
    rollbacks = 0

    step = start_step
    while step < steps:
        step += 1
        # Critic: n_critic steps on fresh real and fake batches.
        D.requires_grad_(True)
        for i in range(objective.n_critic):
            real = data.sample(batch_size)
            z = torch.randn(batch_size, G.z_dim, device=device)
            with torch.no_grad(), precision.autocast():
                fake = G_fast(z).to(real.dtype)
            critic_step = (step - 1) * objective.n_critic + i  # counts from 0; lazy penalties key on it
            loss_D = objective.critic_loss(D_fast, real, fake, precision, stats, critic_step)
            opt_D.zero_grad(set_to_none=True)
            precision.backward(loss_D)
            precision.unscale_(opt_D)
            stats.report("GradNorm/D", grad_norm(D))  # before any clipping
            precision.step(opt_D)  # skipped (and counted) if the scaled gradients overflowed
            objective.after_critic_step(D)

        # Generator: one step; the critic's parameters need no gradients here.
        D.requires_grad_(False)
        z = torch.randn(batch_size, G.z_dim, device=device)
        with precision.autocast():
            fake_G = G_fast(z)
        loss_G = objective.generator_loss(D_fast, fake_G.float(), precision, stats)
        opt_G.zero_grad(set_to_none=True)
        precision.backward(loss_G)
        precision.unscale_(opt_G)
        stats.report("GradNorm/G", grad_norm(G))
        precision.step(opt_G)
        if ema is not None:
            ema.update(G)
        run.progress(step)

        if _every(step, log_every, steps):
            with observing(D):
                D.requires_grad_(True)
                diagnostics = {**objective.diagnostics(D), **critic_input_gradients(D, real, fake, step)}
            for tag, value in diagnostics.items():
                stats.report(tag, value)
            stats.report("Health/nonfinite_params", nonfinite_parameters(G, D))
            if precision.scaler.is_enabled():
                stats.report("Precision/skipped_steps", precision.skipped_steps)  # since the start of the run
                stats.report("Precision/loss_scale", precision.loss_scale())
            scalars = stats.collect()  # the one host-device sync of the interval
            bad = sorted(tag for tag in ("Loss/D", "Loss/G") if not math.isfinite(scalars[tag]))
            if precision.scaler.is_enabled():
                # An overflowed fp16 step has an inf loss by design (the AMP recipe) and was skipped,
                # leaving the parameters untouched: that is the scaler at work, not divergence. A loss
                # scale that has collapsed means every step overflows, whatever the scale.
                if scalars["Precision/skipped_steps"] > skipped_logged:
                    bad = []
                if scalars["Precision/loss_scale"] < MIN_LOSS_SCALE:
                    bad.append(f"gradients at every step (the fp16 loss scale fell to {scalars['Precision/loss_scale']:.3g})")
                skipped_logged = scalars["Precision/skipped_steps"]
            if scalars["Health/nonfinite_params"] > 0:
                bad.append(f"{scalars['Health/nonfinite_params']:.0f} parameters")
            if bad:
                good = run.last_good_state() if faults.on_nonfinite == "rollback" and rollbacks < faults.max_rollbacks else None
                if good is None:
                    raise Diverged(_divergence_message(step, bad, faults, rollbacks, run))
                rollbacks += 1
                step = restore(good, *parts)
                skipped_logged = float(precision.skipped_steps)
                for opt in (opt_G, opt_D):
                    for group in opt.param_groups:
                        group["lr"] *= faults.rollback_lr_factor**rollbacks  # the checkpoint holds the unlowered rates
                run.rolled_back(step, rollbacks, f"non-finite {', '.join(bad)}", opt_G.param_groups[0]["lr"], opt_D.param_groups[0]["lr"])
                clock, clock_step, paused = time.perf_counter(), step, 0.0
                continue
            now = time.perf_counter()
            scalars["Speed/steps_per_sec"] = (step - clock_step) / max(now - clock - paused, 1e-9)
            clock, clock_step, paused = now, step, 0.0
            scalars["LR/G"] = opt_G.param_groups[0]["lr"]
            scalars["LR/D"] = opt_D.param_groups[0]["lr"]
            run.log(step, scalars)
        pause_start = time.perf_counter()  # pictures, metrics and checkpoints don't count as training time
        G_shown = ema.G_ema if ema is not None else G
        # Observers: whatever they draw or run, the trajectory goes on as if they had not looked.
        if _every(step, sample_every, steps):
            with observing(G, D, G_shown):
                run.sample(step, G_shown, D)
        if _every(step, eval_every, steps):
            with observing(G, D, G_shown):
                metrics = run.evaluate(step, G_shown, D)
        stopping = faults.should_stop()
        if _every(step, checkpoint_every, steps) or stopping:
            # Never let a diverged state replace the last good checkpoint (one sync per checkpoint).
            if nonfinite_parameters(G, D).item() > 0:
                raise Diverged(_divergence_message(step, ["parameters"], faults, rollbacks, run))
            with observing(G, D):
                run.save(step, capture(step, *parts))
        if stopping:
            raise Interrupted(f"stopped at step {step} of {steps}; the checkpoint is saved", exit_status=130)
        paused += time.perf_counter() - pause_start

    D.requires_grad_(True)
    return metrics


def _divergence_message(step: int, bad: list[str], faults: Faults, rollbacks: int, run: Run) -> str:
    hint = "lower the learning rates or use precision=fp32"
    if faults.on_nonfinite == "rollback":
        hint = f"{rollbacks} rollback(s) used of max_rollbacks={faults.max_rollbacks}; {hint}"
    else:
        hint = f"on_nonfinite=rollback would go back to the last good checkpoint and lower the learning rates; or {hint}"
    return f"training diverged at step {step}: non-finite {', '.join(bad)}; {run.last_good_description()}; {hint}"
