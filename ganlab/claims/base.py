"""What a claim is, what its measurement returns, and how its verdict is reached.

A claim (one module in ``ganlab/claims/``) is a textbook statement about GAN training that ganlab
measures. It declares

* ``NUMBER``, ``TITLE``, ``SOURCE`` (paper, section) and ``STATEMENT`` (in our own words);
* ``settings(mode)``: every setting of its protocol at a budget (``quick`` checks the machinery in
  CI, ``full`` fits the 2-core CPU, ``gpu`` is larger): seeds, steps, lambda, depth...;
* ``sweeps(mode)``: the training sweeps it reads (:class:`Sweep`); the runner runs each once, as
  ``ganlab train -m`` with the parallel launcher and ``resume=auto``, before any claim measures;
* ``measure(ctx)``: runs its own protocol (a critic against a fixed generator, say) and reads the
  sweeps' runs, then returns an :class:`Outcome`: the figures with their intervals, a table, the
  PNGs it drew, and the verdict.

The verdict is computed from the figures with thresholds that each module writes down as constants
at its top, before the full run, and that are never tuned after it (:func:`verdict_from`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

MODES = ("quick", "full", "gpu")


class Verdict(enum.Enum):
    held = "held"
    not_held = "did not hold"
    inconclusive = "inconclusive"


@dataclass
class Figure:
    """One measured number: ``value`` with, where it has one, its interval ``[low, high]`` (the
    confidence level is in ``interval``, e.g. "95% bootstrap over 5 seeds")."""

    name: str
    value: float
    low: float | None = None
    high: float | None = None
    unit: str = ""
    interval: str = ""

    def text(self) -> str:
        """``0.123 [0.1, 0.15]`` with 3 significant digits (the unit, if any, after the value)."""
        value = f"{_g(self.value)}{(' ' + self.unit) if self.unit else ''}"
        if self.low is None or self.high is None or not (math.isfinite(self.low) and math.isfinite(self.high)):
            return value
        return f"{value} [{_g(self.low)}, {_g(self.high)}]"


def _g(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


@dataclass
class Check:
    """One condition of a verdict: ``figure`` compared with a ``threshold`` fixed in the claim's module.

    ``passed`` is True, False, or None when the figure cannot decide it (e.g. its interval straddles
    the threshold, or too few runs finished): None makes the verdict inconclusive.
    """

    what: str  # e.g. "saturating gradient norm, end / start"
    passed: bool | None
    detail: str  # e.g. "2.1e-05 < 0.01"
    precondition: bool = False  # a check that the protocol put the claim to the test at all (see :func:`precondition`)


def precondition(check: Check) -> Check:
    """``check`` as a precondition: that the protocol put the claim to the test at all (e.g. the
    discriminator did win). Unless it passed, the verdict is inconclusive whatever the other checks say;
    a precondition that failed reads as not met (passed None), not as evidence against the claim."""
    if check.passed is False:
        return Check(check.what, None, f"{check.detail}: not met, so the claim was not put to the test", precondition=True)
    return Check(check.what, check.passed, check.detail, precondition=True)


@dataclass
class Outcome:
    """What :meth:`Claim.measure` returns; the runner adds the commands and writes it to result.json."""

    figures: list[Figure]
    checks: list[Check]
    table: str = ""  # a Markdown table of the measurements (rows per setting, say)
    plots: list[str] = field(default_factory=list)  # PNG files in the claim's folder (names relative to it)
    notes: list[str] = field(default_factory=list)  # protocol differences, what the figures mean
    commands: list[str] = field(default_factory=list)  # filled in by the runner: the exact commands that ran

    @property
    def verdict(self) -> Verdict:
        return verdict_from(self.checks)

    def because(self) -> str:
        """One line: the checks that decided the verdict."""
        unmet = [c for c in self.checks if c.precondition and c.passed is not True]
        decided = unmet or [c for c in self.checks if c.passed is {Verdict.held: True, Verdict.not_held: False, Verdict.inconclusive: None}[self.verdict]]
        return "; ".join(f"{c.what}: {c.detail}" for c in decided or self.checks)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict.value}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Outcome:
        return cls(
            figures=[Figure(**f) for f in body["figures"]], checks=[Check(**c) for c in body["checks"]],
            table=body.get("table", ""), plots=list(body.get("plots", [])), notes=list(body.get("notes", [])),
            commands=list(body.get("commands", [])),
        )


def verdict_from(checks: list[Check]) -> Verdict:
    """The claim is the conjunction of its checks (three-valued, Kleene's AND), once its preconditions
    passed: inconclusive when a precondition did not pass (the claim was not put to the test) or there are
    no checks; otherwise did not hold when a check failed (whatever the undecided ones would say), held
    when every check passed, and inconclusive when none failed but one could not decide."""
    if not checks or any(c.precondition and c.passed is not True for c in checks):
        return Verdict.inconclusive
    if any(c.passed is False for c in checks):
        return Verdict.not_held
    return Verdict.inconclusive if any(c.passed is None for c in checks) else Verdict.held


def below(what: str, value: float, threshold: float, high: float | None = None) -> Check:
    """Passed when ``value`` < ``threshold``; with the interval's upper end ``high``, undecided when
    the interval straddles the threshold. A non-finite value decides nothing."""
    return _compare(what, value, threshold, high, lambda a, b: a < b, "<", ">=")


def above(what: str, value: float, threshold: float, low: float | None = None) -> Check:
    """Passed when ``value`` > ``threshold``; with the interval's lower end ``low``, undecided when
    the interval straddles the threshold."""
    return _compare(what, value, threshold, low, lambda a, b: a > b, ">", "<=")


def _compare(what: str, value: float, threshold: float, bound: float | None, passes: Callable[[float, float], bool], yes: str, no: str) -> Check:
    if not math.isfinite(value):
        return Check(what, None, f"{_g(value)} (not finite)")
    if passes(value, threshold) and (bound is None or not math.isfinite(bound) or passes(bound, threshold)):
        return Check(what, True, f"{_g(value)} {yes} {_g(threshold)}")
    if not passes(value, threshold) and (bound is None or not math.isfinite(bound) or not passes(bound, threshold) or bound == value):
        return Check(what, False, f"{_g(value)} {no} {_g(threshold)}")
    return Check(what, None, f"{_g(value)}, its interval reaching {_g(bound)}, straddles {_g(threshold)}")


@dataclass(frozen=True)
class Sweep:
    """A training sweep that claims read, run once by the runner however many claims need it.

    ``name`` is its folder under ``<out>/sweeps/``; ``overrides`` are ``ganlab train -m`` overrides
    (comma lists sweep). Two claims that name the same sweep must give the same overrides.
    """

    name: str
    overrides: tuple[str, ...]

    def command(self, sweep_dir: Path) -> list[str]:
        """The ``ganlab train -m`` arguments (without the launcher's) of this sweep into ``sweep_dir``."""
        return ["ganlab", "train", "-m", *self.overrides, f"hydra.sweep.dir={sweep_dir}", "resume=auto"]


@dataclass
class Context:
    """What :meth:`Claim.measure` gets: the budget, where to write, the device, and the sweeps' runs."""

    mode: str  # quick | full | gpu
    out: Path  # the claim's own folder: its PNGs and result.json go here
    device: str  # torch device of the critic protocols: cpu, cuda
    sweep_dirs: dict[str, Path]  # each Sweep's folder, by name
    seed: int = 0  # base seed of the critic protocols (seed k of n is seed + k)
    progress: Callable[[str], None] = lambda message: None  # one line of what runs now (shown to the user)

    def runs(self, sweep: str | Sweep) -> list[Any]:
        """The training runs of a sweep (:class:`ganlab.compare.runs.Run`), finished or not, in path order."""
        from ganlab.compare.runs import find_runs

        return find_runs([self.sweep_dirs[sweep if isinstance(sweep, str) else sweep.name]])


class Claim(Protocol):
    """The module-level names a claim module defines (see the module docstring)."""

    NUMBER: int
    SLUG: str  # its folder name after the number, e.g. "saturating_loss"
    TITLE: str
    SOURCE: str
    STATEMENT: str

    def settings(self, mode: str) -> dict[str, Any]: ...

    def sweeps(self, mode: str) -> list[Sweep]: ...

    def measure(self, ctx: Context) -> Outcome: ...
