"""When training goes wrong: the non-finite check of each log interval, and what follows it.

:class:`FaultGuard` looks at an interval's statistics once they are read from the device (no
extra sync): a non-finite ``Loss/D`` or ``Loss/G``, non-finite parameters, or an fp16 loss scale
that has collapsed. Then, by :class:`Faults`, it either stops the run (:class:`Diverged`, exit
status 3, naming the last good checkpoint) or rolls back to the last good checkpoint with lowered
learning rates, at most ``max_rollbacks`` times. It also refuses to checkpoint a non-finite state,
so a bad state never replaces the last good checkpoint.

Where the check fires depends on ``log_every`` by design: a diverging run is the one run whose
trajectory the intervals may change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
from torch import nn

from ganlab.errors import TrainingFailed
from ganlab.logger.stats import Stats
from ganlab.precision import Precision
from ganlab.train.state import restore

MIN_LOSS_SCALE = 2.0**-16  # below this the fp16 gradients overflow whatever the scale: the run has diverged


class Diverged(TrainingFailed):
    """Losses or parameters became NaN or inf, and no rollback was allowed or possible."""

    def __init__(self, message: str):
        super().__init__(message, exit_status=3)


@dataclass
class Faults:
    """What to do when training goes wrong."""

    on_nonfinite: str = "stop"  # stop | rollback
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    should_stop: Callable[[], bool] = lambda: False  # e.g. a StopOnSignal


class Checkpoints(Protocol):
    """The part of the loop's ``Run`` that the guard uses."""

    def last_good_state(self) -> dict[str, Any] | None: ...
    def last_good_description(self) -> str: ...
    def rolled_back(self, step: int, count: int, reason: str, lr_G: float, lr_D: float) -> None: ...


def nonfinite_parameters(*modules: nn.Module) -> torch.Tensor:
    """How many parameters are NaN or inf (a device tensor; no sync)."""
    return sum((~torch.isfinite(p)).sum() for m in modules for p in m.parameters())


class FaultGuard:
    """The non-finite check and its consequences for one run.

    ``parts`` are the objects a checkpoint restores, in :func:`ganlab.train.state.restore`'s order
    (G, D, opt_G, opt_D, precision, ema, data, stats, schedules).
    """

    def __init__(self, faults: Faults, run: Checkpoints, precision: Precision, parts: tuple):
        self.faults, self.run, self.precision, self.parts = faults, run, precision, parts
        self.rollbacks = 0
        self.skipped_logged = float(precision.skipped_steps)  # overflowed fp16 steps up to the last log

    def report(self, stats: Stats, G: nn.Module, D: nn.Module) -> None:
        """Report what the check reads into ``stats`` (device values; read with the interval's others)."""
        stats.report("Health/nonfinite_params", nonfinite_parameters(G, D))
        if self.precision.scaler.is_enabled():
            stats.report("Precision/skipped_steps", self.precision.skipped_steps)  # since the start of the run
            stats.report("Precision/loss_scale", self.precision.loss_scale())

    def problems(self, scalars: dict[str, float]) -> list[str]:
        """What is non-finite in an interval's collected ``scalars`` (empty when all is well)."""
        bad = sorted(tag for tag in ("Loss/D", "Loss/G") if not math.isfinite(scalars[tag]))
        if self.precision.scaler.is_enabled():
            # An overflowed fp16 step has an inf loss by design (the AMP recipe) and was skipped,
            # leaving the parameters untouched: that is the scaler at work, not divergence. A loss
            # scale that has collapsed means every step overflows, whatever the scale.
            if scalars["Precision/skipped_steps"] > self.skipped_logged:
                bad = []
            if scalars["Precision/loss_scale"] < MIN_LOSS_SCALE:
                bad.append(f"gradients at every step (the fp16 loss scale fell to {scalars['Precision/loss_scale']:.3g})")
            self.skipped_logged = scalars["Precision/skipped_steps"]
        if scalars["Health/nonfinite_params"] > 0:
            bad.append(f"{scalars['Health/nonfinite_params']:.0f} parameters")
        return bad

    def recover(self, step: int, bad: list[str]) -> int:
        """Roll back to the last good checkpoint with lowered learning rates and return its step.

        Raises:
            Diverged: when ``on_nonfinite`` is ``stop``, the rollbacks are used up, or no
                checkpoint was written yet.
        """
        faults = self.faults
        allowed = faults.on_nonfinite == "rollback" and self.rollbacks < faults.max_rollbacks
        good = self.run.last_good_state() if allowed else None
        if good is None:
            raise Diverged(self.message(step, bad))
        self.rollbacks += 1
        schedules = self.parts[-1]
        scale_before = schedules.lr_scale
        step = restore(good, *self.parts)
        self.skipped_logged = float(self.precision.skipped_steps)
        schedules.lower_learning_rates(self.faults.rollback_lr_factor, scale_before)
        schedules.apply(step + 1)  # the rates the run goes on with
        opt_G, opt_D = self.parts[2], self.parts[3]
        self.run.rolled_back(step, self.rollbacks, f"non-finite {', '.join(bad)}", opt_G.param_groups[0]["lr"], opt_D.param_groups[0]["lr"])
        return step

    def check_before_save(self, step: int, G: nn.Module, D: nn.Module) -> None:
        """Raise :class:`Diverged` rather than let a non-finite state replace the last good checkpoint (one sync)."""
        if nonfinite_parameters(G, D).item() > 0:
            raise Diverged(self.message(step, ["parameters"]))

    def message(self, step: int, bad: list[str]) -> str:
        faults, hint = self.faults, "lower the learning rates or use precision=fp32"
        if faults.on_nonfinite == "rollback":
            hint = f"{self.rollbacks} rollback(s) used of max_rollbacks={faults.max_rollbacks}; {hint}"
        else:
            hint = f"on_nonfinite=rollback would go back to the last good checkpoint and lower the learning rates; or {hint}"
        return f"training diverged at step {step}: non-finite {', '.join(bad)}; {self.run.last_good_description()}; {hint}"
