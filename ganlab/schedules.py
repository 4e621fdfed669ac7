"""Schedules: a scalar of the run (a learning rate, Adam's beta2, a penalty weight) as a function of
the generator step.

A schedule starts at the scalar's configured value, optionally after a linear warm-up from 0,
and decays (linearly or along a half cosine) to ``end`` over ``steps`` generator steps, then
stays there. R3GAN (Huang et al. 2024, Sec. 4 and its config) schedules the learning rate, beta2
and the R1/R2 weight this way; warm-up then decay is the usual learning-rate schedule (Goyal et al.
2017; Loshchilov & Hutter 2017 for the cosine).

Each value is a closed-form function of the step, so a resumed run recomputes exactly the value
the uninterrupted run had: nothing but the rollback's learning-rate factor needs a checkpoint.
``torch.optim.lr_scheduler`` is not used: it drives only an optimizer's ``lr`` (not beta2, not a
penalty weight), and its chainable schedulers carry their state by recurrence.

The config node (:class:`ScheduleConfig`) sits beside the scalar it schedules, e.g.
``objective.optimizer.schedule.lr_G`` or ``objective.constraints.gp.schedule.weight``;
:class:`Schedules` applies them all at the start of each generator step.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ganlab.errors import require


class ScheduleShape(enum.Enum):
    constant = "constant"  # the configured value throughout (after the warm-up, if any)
    linear = "linear"  # straight from the value to `end`
    cosine = "cosine"  # half a cosine from the value to `end` (SGDR, Loshchilov & Hutter 2017)


@dataclass
class ScheduleConfig:
    shape: ScheduleShape = ScheduleShape.constant
    end: Optional[float] = None  # the value at the last step of the decay (linear, cosine)
    warmup: int = 0  # generator steps of linear warm-up from 0 to the value, before the decay
    steps: Optional[int] = None  # generator steps until `end` is reached, warm-up included; null: the run's `steps`


class Schedule:
    """The value of one scalar at each generator step (1-based).

    ``start`` is the configured value. Steps 1..``warmup`` ramp linearly up to it
    (``start * step / warmup``); steps ``warmup + 1``..``steps`` go from ``start`` to ``end``
    along ``shape``; later steps keep ``end``. A constant schedule is ``start`` after the warm-up.

    Raises:
        OptionError: (keys relative to the schedule's node) a decay without ``end``, a negative
            ``warmup``, ``steps`` < 1 or a warm-up longer than ``steps``.
    """

    def __init__(self, start: float, shape: str = "constant", end: float | None = None, warmup: int = 0, steps: int | None = None):
        shape = ScheduleShape(shape if isinstance(shape, str) else shape.value).value
        require(warmup >= 0, "warmup", warmup, "must be >= 0 generator steps (0: no warm-up)")
        require(steps is None or steps >= 1, "steps", steps, "must be >= 1 generator step, or null for the whole run")
        require(steps is None or warmup <= steps, "warmup", warmup, f"must not be longer than the schedule's steps ({steps})")
        require(shape == "constant" or end is not None, "end", end, f"a {shape} schedule needs the value it ends at, e.g. end=0")
        self.start, self.shape, self.end, self.warmup, self.steps = float(start), shape, end, warmup, steps

    @property
    def constant(self) -> bool:
        return self.shape == "constant" and self.warmup == 0

    def __call__(self, step: int) -> float:
        if step <= self.warmup:
            return self.start * step / self.warmup
        if self.shape == "constant":
            return self.start
        if self.steps is None:
            raise ValueError("the schedule's length is unresolved: call with_length(run steps) first")
        if step >= self.steps:
            return self.end
        t = min(1.0, (step - self.warmup - 1) / max(1, self.steps - self.warmup - 1))
        if self.shape == "linear":
            return self.start + (self.end - self.start) * t
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * t)) / 2

    def with_length(self, run_steps: int) -> Schedule:
        """This schedule with ``steps`` = ``run_steps`` when it had none."""
        return self if self.steps is not None else Schedule(self.start, self.shape, self.end, self.warmup, run_steps)


def schedule_of(start: float, node: dict[str, Any] | None) -> Schedule:
    """The :class:`Schedule` of a scalar whose value is ``start``, from its config ``node`` (None: constant)."""
    return Schedule(start, **(node or {}))


def param_group_setter(optimizers: tuple[Any, ...], key: str) -> Callable[[float], None]:
    """A setter of ``key`` in every param group of ``optimizers``: ``"lr"``, or ``"beta2"`` (the
    second of Adam's ``betas``)."""

    def set_value(value: float) -> None:
        for opt in optimizers:
            for group in opt.param_groups:
                if key == "beta2":
                    group["betas"] = (group["betas"][0], value)
                else:
                    group[key] = value

    return set_value


@dataclass
class Scheduled:
    """One scheduled scalar: its TensorBoard tag, its schedule and how to set it.

    ``learning_rate`` marks the scalars that a rollback lowers (:meth:`Schedules.lower_learning_rates`).
    """

    tag: str
    schedule: Schedule
    set: Callable[[float], None]
    learning_rate: bool = False


class Schedules:
    """Every scheduled scalar of a run, set at the start of each generator step.

    ``lr_scale`` multiplies the learning rates: the loop's rollback lowers it, and it is the only
    state a checkpoint needs (:meth:`state_dict`), since every value is a function of the step.
    """

    def __init__(self, scheduled: list[Scheduled]):
        self.scheduled = scheduled
        self.lr_scale = 1.0
        self.current: dict[str, float] = {}

    @classmethod
    def constant_learning_rates(cls, opt_G: Any, opt_D: Any) -> Schedules:
        """The learning rates the optimizers have now, kept constant (``LR/G``, ``LR/D``)."""

        return cls([
            Scheduled("LR/G", Schedule(opt_G.param_groups[0]["lr"]), param_group_setter((opt_G,), "lr"), learning_rate=True),
            Scheduled("LR/D", Schedule(opt_D.param_groups[0]["lr"]), param_group_setter((opt_D,), "lr"), learning_rate=True),
        ])

    def apply(self, step: int) -> None:
        """Set every scalar to its value at generator ``step`` (1-based)."""
        for item in self.scheduled:
            value = item.schedule(step)
            if item.learning_rate and self.lr_scale != 1.0:
                value *= self.lr_scale
            item.set(value)
            self.current[item.tag] = value

    def values(self) -> dict[str, float]:
        """The values set by the last :meth:`apply`, by tag, for the log: the learning rates always,
        the other scalars when they follow a schedule."""
        shown = {item.tag for item in self.scheduled if item.learning_rate or not item.schedule.constant}
        return {tag: value for tag, value in self.current.items() if tag in shown}

    def lower_learning_rates(self, factor: float, scale_before: float) -> None:
        """After a rollback has restored a checkpoint's ``lr_scale``: multiply by ``factor`` the
        lower of that and ``scale_before`` (the one in use when the run diverged), so that each
        rollback lowers the learning rates further, whichever checkpoint it went back to."""
        self.lr_scale = min(self.lr_scale, scale_before) * factor

    def state_dict(self) -> dict[str, float]:
        return {"lr_scale": self.lr_scale}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.lr_scale = float(state["lr_scale"])
