"""What the critic protocols of claims 1, 2 and 6 share: training a critic against fixed point
sets, gradient norms with respect to a network's parameters, figures over seeds, and log-scale bands.

A critic protocol (Arjovsky & Bottou 2017, Sec. 2: "with the generator fixed we train a
discriminator from scratch") trains D on fresh batches from two samplers, ``real()`` and
``fake()``, each returning an (n, ...) batch on the critic's device; nothing in it knows which
loss it minimises. The figures over seeds use :func:`ganlab.compare.stats.summarize` (the mean
and its stratified BCa bootstrap interval); a quantity that is a ratio of magnitudes (a gradient
norm's decay over orders of magnitude) is summarised by its geometric mean, the same bootstrap
applied to log10 of the values.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ganlab.claims.base import Figure
from ganlab.compare.curves import seed_band
from ganlab.compare.scalars import Series
from ganlab.compare.stats import CONFIDENCE, summarize

Tensor = torch.Tensor


def fit_critic(D: nn.Module, loss: Callable[[nn.Module, Tensor, Tensor], Tensor], real: Callable[[], Tensor],
               fake: Callable[[], Tensor], steps: int, optimizer: torch.optim.Optimizer,
               after_step: Callable[[int], None] | None = None) -> None:
    """Train ``D`` for ``steps`` optimizer steps on fresh batches ``real()`` and ``fake()``.

    ``loss(D, real, fake)`` is the scalar the critic minimises (a loss family's critic term, plus
    any penalty); ``after_step(k)`` (k = 1..steps) runs after each step, e.g. to record a
    measurement. The batches are drawn without a graph: the critic is trained against fixed sets.
    """
    for k in range(1, steps + 1):
        with torch.no_grad():
            real_batch, fake_batch = real(), fake()
        value = loss(D, real_batch, fake_batch)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if after_step is not None:
            after_step(k)


def scores(D: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """D's scores of ``real`` (n, ...) and ``fake`` (m, ...) in one forward pass, as the training
    step computes them (:meth:`ganlab.objectives.Objective.critic_loss`): (n,) and (m,) float32."""
    out = D(torch.cat([real, fake])).float()
    return out[: real.shape[0]], out[real.shape[0]:]


def parameter_gradient_norm(loss: Tensor, parameters: Iterable[nn.Parameter], retain_graph: bool = False) -> float:
    """||d loss / d theta||_2 over all ``parameters`` together (the Euclidean norm of the whole
    gradient vector), in float64 on the host.

    Raises:
        RuntimeError: ``loss`` has no graph to the parameters (autograd's own error).
    """
    params = [p for p in parameters if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    total = sum(float(g.double().pow(2).sum()) for g in grads if g is not None)
    return math.sqrt(total)


def interval_text(n: int, method: str) -> str:
    """How a figure's interval was made, e.g. "95% BCa bootstrap over 5 seeds"."""
    return f"{CONFIDENCE:.0%} {method} bootstrap over {n} seed{'s' if n != 1 else ''}" if method != "none" else f"{n} seed{'s' if n != 1 else ''}, no interval"


def mean_figure(name: str, per_seed: Sequence[float], unit: str = "") -> Figure:
    """The mean of ``per_seed`` (one value per seed; non-finite values left out) with its 95%
    bootstrap interval (:func:`ganlab.compare.stats.summarize`)."""
    summary = summarize([list(map(float, per_seed))])
    ci = summary.mean_ci
    return Figure(name, summary.mean, _finite_or_none(ci.low), _finite_or_none(ci.high), unit, interval_text(summary.n, ci.method))


def geometric_figure(name: str, per_seed: Sequence[float], unit: str = "") -> Figure:
    """The geometric mean of positive ``per_seed`` values with the 95% bootstrap interval of the
    mean of their log10, mapped back (a ratio that spans orders of magnitude over seeds).

    A value <= 0 or non-finite is left out (its log is undefined) and counts as a non-finite
    value of :func:`~ganlab.compare.stats.summarize`.
    """
    values = np.asarray(per_seed, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(values > 0, np.log10(values), np.nan)
    summary = summarize([logs.tolist()])
    ci = summary.mean_ci
    low, high = (_finite_or_none(10.0 ** x) if math.isfinite(x) else None for x in (ci.low, ci.high))
    value = 10.0 ** summary.mean if math.isfinite(summary.mean) else math.nan
    return Figure(name, value, low, high, unit, interval_text(summary.n, ci.method) + " (geometric mean; interval of log10)")


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def band(steps: Sequence[int], values: np.ndarray, log: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, lower, upper) over seeds of ``values`` (seeds, len(steps)): the 95% t-band of
    :func:`ganlab.compare.curves.seed_band`; with ``log``, the band of log10 of the (positive)
    values mapped back, i.e. the geometric mean and its band (for a log-scale axis)."""
    values = np.asarray(values, dtype=np.float64)
    steps_arr = np.asarray(steps, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        data = np.where(values > 0, np.log10(values), np.nan) if log else values
    b = seed_band([Series(steps_arr, row) for row in data])
    if log:
        return b.steps, 10.0 ** b.mean, 10.0 ** b.lower, 10.0 ** b.upper
    return b.steps, b.mean, b.lower, b.upper


def seeded_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``: a protocol's own stream of draws."""
    return torch.Generator(torch.device(device)).manual_seed(seed)
