"""Claim 3: the critic's Wasserstein estimate is a usable progress curve; the JS discriminator's loss is not.

Source: Arjovsky et al. 2017 (WGAN), Sec. 4.2 and Fig. 3-4 (the estimate falls as the samples improve;
the JS estimate does not follow sample quality); Gulrajani et al. 2017 (WGAN-GP), Sec. 5.6
("meaningful loss curves": the negative critic loss follows sample quality and can monitor training).

Protocol: the shared toy sweep (:func:`ganlab.claims.sweeps.toy`: js, wgan_clip, wgan_gp and
spectral_norm on ``gaussians8`` and ``gaussians25`` over seeds). Each run logs

* ``Wasserstein/estimate`` = mean D(real) - mean D(fake) of the critic batches, as the mean over each
  ``log_every`` interval (every 100 steps at the default), and ``Loss/D`` the same way;
* ``Metrics/w1``: the exact W1 (optimal transport, :func:`ganlab.metrics.ot.wasserstein1`) between
  ``eval_samples`` generated and as many real points, every ``eval_every`` steps (250 in full mode).

The two clocks differ (100 and 250), so each evaluation at step e is paired with the **mean of the
logged interval means whose step lies in (e - eval_every/2, e + eval_every/2]** (:func:`at_evaluations`):
a window centred on the evaluation, as wide as the spacing of the evaluations, which averages the
minibatch noise of the estimate over about the stretch of training that the evaluation stands for.
Per run, the Spearman rank correlation (``scipy.stats.spearmanr``) over the evaluations between that
signal and the exact W1: for the Wasserstein objectives the estimate, for js its ``Loss/D`` (also the
estimate, reported). Over runs: the IQM and median of the per-run correlations with a 95% bootstrap
interval stratified by dataset (:func:`ganlab.compare.stats.summarize`).

A usable progress curve moves with the distance: the estimate should correlate positively with W1.
The JS loss may move either way (a winning discriminator's loss falls while the samples stall), so it
is judged by |rho|, which gives it every benefit of the doubt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as PlotFigure
from scipy import stats

from ganlab.claims.base import Check, Context, Figure, Outcome, Sweep, above, below
from ganlab.claims.sweeps import TOY_OBJECTIVES, run_budget, seeds, toy
from ganlab.compare.runs import FINISHED, Run
from ganlab.compare.scalars import Series, read_scalars
from ganlab.compare.stats import improvement_interval, probability_of_improvement, summarize

NUMBER = 3
SLUG = "progress_curve"
TITLE = "The Wasserstein estimate is a usable progress curve; the JS discriminator loss is not"
SOURCE = ("Arjovsky, Chintala & Bottou 2017, Wasserstein GAN, Sec. 4.2 and Fig. 3-4; "
          "Gulrajani et al. 2017, Improved Training of Wasserstein GANs, Sec. 5.6")
STATEMENT = ("Over training, the critic's estimate E[D(real)] - E[D(fake)] of a WGAN-GP rises and falls with the true "
             "Wasserstein-1 distance between generated and real samples, so it can be read as a progress curve; "
             "the original GAN's discriminator loss does not follow the distance.")

# Verdict thresholds: fixed before the full run; never tuned after it.
USABLE_RHO = 0.7  # a rank correlation of 0.7 or more is "strong" by the usual convention, and with ~20 evaluations it is
                  # far from chance (p < 0.001): the least a curve must reach to be read as progress. wgan_gp's estimate
                  # must lie above it (the interval's low end too); js's |rho| of Loss/D below it (the high end too).
IMPROVEMENT_MIN = 0.5  # P(a wgan_gp run's rho > a js run's |rho|): its interval's low end above a coin flip

ESTIMATE, LOSS_D, W1 = "Wasserstein/estimate", "Loss/D", "Metrics/w1"
SIGNALS = (ESTIMATE, LOSS_D)
PRIMARY = {"wgan_gp": ESTIMATE, "wgan_clip": ESTIMATE, "spectral_norm": ESTIMATE, "js": LOSS_D}  # what each objective's user would watch


def settings(mode: str) -> dict[str, Any]:
    """The sweep read and how it is paired and summarised at ``mode`` (quick | full | gpu).

    Raises:
        KeyError: an unknown mode.
    """
    return {
        "sweep": {"name": "toy", "objectives": list(TOY_OBJECTIVES), "datasets": ["gaussians8", "gaussians25"],
                  "seeds": list(seeds(mode)), "budget": list(run_budget(mode))},
        "signals": {objective: PRIMARY[objective] for objective in TOY_OBJECTIVES},
        "exact": W1,
        "pairing": "each evaluation at step e with the mean of the logged interval means at steps in (e - eval_every/2, e + eval_every/2]",
        "correlation": "Spearman rank correlation over a run's evaluations (scipy.stats.spearmanr); js judged by |rho|",
        "summary": "IQM and median over runs, 95% BCa bootstrap stratified by dataset (ganlab.compare.stats.summarize)",
        "thresholds": {"usable_rho": USABLE_RHO, "improvement_min": IMPROVEMENT_MIN},
    }


def sweeps(mode: str) -> list[Sweep]:
    return [toy(mode)]


# ------------------------------------------------------------------------------ the measurement


def at_evaluations(signal: Series, eval_steps: np.ndarray, eval_every: int) -> np.ndarray:
    """``signal`` paired with evaluations: for each step e of ``eval_steps`` (m,), the mean of the finite values
    logged at steps in (e - eval_every/2, e + eval_every/2]; NaN where none was logged. Returns float64 (m,).

    Raises:
        ValueError: ``eval_every`` < 1.
    """
    if eval_every < 1:
        raise ValueError(f"eval_every={eval_every} must be at least 1")
    half = eval_every / 2
    out = np.full(len(eval_steps), np.nan)
    for i, e in enumerate(np.asarray(eval_steps)):
        inside = (signal.steps > e - half) & (signal.steps <= e + half) & np.isfinite(signal.values)
        if inside.any():
            out[i] = signal.values[inside].mean()
    return out


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho between ``x`` and ``y`` (n,) over the pairs where both are finite; NaN with fewer than 3
    such pairs or a constant side (no ranking to compare)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    both = np.isfinite(x) & np.isfinite(y)
    x, y = x[both], y[both]
    if x.size < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


@dataclass
class RunCurves:
    """One finished run's curves: the evaluations' steps and exact W1 (m,), and each signal paired with them (m,)."""

    run: Run
    eval_steps: np.ndarray
    w1: np.ndarray
    paired: dict[str, np.ndarray]
    raw: dict[str, Series] = field(default_factory=dict)  # the signals as logged, for the plots

    @property
    def objective(self) -> str:
        return str(self.run.choices.get("objective"))

    def rho(self, signal: str, late: bool = False) -> float:
        """Spearman's rho of ``signal`` and W1 over the evaluations (``late``: only those after half the run's steps)."""
        if signal not in self.paired:
            return math.nan
        keep = self.eval_steps > self.steps / 2 if late else np.ones(len(self.eval_steps), dtype=bool)
        return rank_correlation(self.paired[signal][keep], self.w1[keep])

    @property
    def steps(self) -> int:
        return int(self.run.config.get("steps") or (self.eval_steps[-1] if len(self.eval_steps) else 0))


def run_curves(run: Run) -> RunCurves | None:
    """The curves of a finished ``run`` (None when it is not finished or logged no W1)."""
    if run.status != FINISHED:
        return None
    scalars = read_scalars(run.path, [W1, *SIGNALS])
    if W1 not in scalars or not len(scalars[W1]):
        return None
    w1 = scalars[W1]
    eval_every = int(run.config.get("eval_every") or np.min(np.diff(w1.steps), initial=1))
    paired = {tag: at_evaluations(scalars[tag], w1.steps, eval_every) for tag in SIGNALS if tag in scalars}
    return RunCurves(run, w1.steps, w1.values, paired, {tag: scalars[tag] for tag in SIGNALS if tag in scalars})


def by_dataset(curves: list[RunCurves], objective: str, signal: str, absolute: bool = False, late: bool = False) -> dict[str, list[float]]:
    """The per-run correlations of ``objective``'s runs with ``signal``, by dataset (|rho| with ``absolute``; over
    the second half of the evaluations with ``late``)."""
    out: dict[str, list[float]] = {}
    for c in curves:
        if c.objective == objective:
            rho = c.rho(signal, late)
            out.setdefault(c.run.dataset, []).append(abs(rho) if absolute else rho)
    return dict(sorted(out.items()))


def summary_figure(name: str, strata: dict[str, list[float]]) -> Figure:
    """The IQM of the values of every stratum, with its stratified bootstrap interval (ends None when there is none)."""
    s = summarize(list(strata.values()) or [[]])
    low, high = s.iqm_ci.low, s.iqm_ci.high
    return Figure(name, s.iqm, None if math.isnan(low) else low, None if math.isnan(high) else high, "",
                  f"IQM, 95% bootstrap ({s.iqm_ci.method}) over {s.n} runs, stratified by dataset"
                  + (f"; {s.n_nonfinite} undefined left out" if s.n_nonfinite else ""))


def improvement_figure(gp: dict[str, list[float]], js: dict[str, list[float]]) -> Figure:
    """P(a wgan_gp run's rho > a js run's |rho|), averaged over the datasets both have, with its bootstrap interval."""
    common = sorted(set(gp) & set(js))
    a, b = [gp[d] for d in common], [js[d] for d in common]
    name = "P(wgan_gp's rho(estimate, W1) > js's |rho(Loss/D, W1)|)"
    if not common or any(not x or not y for x, y in zip(a, b)):
        return Figure(name, math.nan)
    value = probability_of_improvement(a, b, higher_is_better=True)
    ci = improvement_interval(a, b, higher_is_better=True)
    return Figure(name, value, None if math.isnan(ci.low) else ci.low, None if math.isnan(ci.high) else ci.high, "",
                  f"95% bootstrap ({ci.method}), stratified by dataset; NaN correlations count as worst")


def verdict_checks(gp_rho: Figure, js_abs_rho: Figure, improvement: Figure) -> list[Check]:
    """Held when wgan_gp's estimate tracks W1 (IQM rho above USABLE_RHO), js's loss does not (IQM |rho| below it) and
    a wgan_gp run beats a js run (P above IMPROVEMENT_MIN); the interval ends decide where the figures have them."""
    return [
        above("wgan_gp: IQM rho(Wasserstein/estimate, exact W1)", gp_rho.value, USABLE_RHO, gp_rho.low),
        below("js: IQM |rho(Loss/D, exact W1)|", js_abs_rho.value, USABLE_RHO, js_abs_rho.high),
        above("P(wgan_gp's rho > js's |rho|)", improvement.value, IMPROVEMENT_MIN, improvement.low),
    ]


# -------------------------------------------------------------------------------------- measure


def measure(ctx: Context) -> Outcome:
    ctx.progress("reading the toy sweep's Wasserstein/estimate, Loss/D and Metrics/w1 curves")
    runs = ctx.runs("toy")
    curves = [c for c in (run_curves(r) for r in runs) if c is not None]
    skipped = len(runs) - len(curves)

    gp_rho = summary_figure("wgan_gp: rho(Wasserstein/estimate, exact W1)", by_dataset(curves, "wgan_gp", ESTIMATE))
    js_abs = summary_figure("js: |rho(Loss/D, exact W1)|", by_dataset(curves, "js", LOSS_D, absolute=True))
    improvement = improvement_figure(by_dataset(curves, "wgan_gp", ESTIMATE), by_dataset(curves, "js", LOSS_D, absolute=True))
    figures = [gp_rho, js_abs, improvement]
    for objective in TOY_OBJECTIVES:
        for signal in SIGNALS:
            if (objective, signal) in (("wgan_gp", ESTIMATE),):
                continue
            figures.append(summary_figure(f"{objective}: rho({signal}, exact W1)", by_dataset(curves, objective, signal)))
        figures.append(summary_figure(f"{objective}: rho({PRIMARY[objective]}, exact W1), second half of the evaluations only",
                                      by_dataset(curves, objective, PRIMARY[objective], late=True)))
    figures.append(Figure("toy sweep runs skipped (not finished, or no Metrics/w1)", float(skipped)))

    ctx.progress("drawing the curves and the scatter of the estimate against the exact W1")
    plots = [draw_curves(ctx, curves), draw_scatter(ctx, curves)]
    return Outcome(figures=figures, checks=verdict_checks(gp_rho, js_abs, improvement), table=table(curves),
                   plots=plots, notes=notes(ctx.mode, curves, skipped))


def table(curves: list[RunCurves]) -> str:
    datasets = sorted({c.run.dataset for c in curves})
    rows = ["| objective | signal | runs | rho IQM [95% CI] | rho median | \\|rho\\| IQM [95% CI] | rho IQM, second half | "
            + " | ".join(f"median rho, {d}" for d in datasets) + " |",
            "| --- | --- | --- | --- | --- | --- | --- | " + " | ".join("---" for _ in datasets) + " |"]
    for objective in TOY_OBJECTIVES:
        for signal in SIGNALS:
            strata = by_dataset(curves, objective, signal)
            if not strata:
                continue
            signed = summary_figure("", strata)
            absolute = summary_figure("", by_dataset(curves, objective, signal, absolute=True))
            late = summary_figure("", by_dataset(curves, objective, signal, late=True))
            values = np.array([v for vs in strata.values() for v in vs], dtype=np.float64)
            median = float(np.median(values[np.isfinite(values)])) if np.isfinite(values).any() else math.nan
            per = " | ".join(_g(float(np.nanmedian(strata[d]))) if d in strata and np.isfinite(strata[d]).any() else "-"
                             for d in datasets)
            mark = " (primary)" if PRIMARY.get(objective) == signal else ""
            rows.append(f"| {objective} | {signal}{mark} | {values.size} | {signed.text()} | {_g(median)} | {absolute.text()} | {late.text()} | {per} |")
    return "\n".join(rows)


def _g(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else "nan"


def notes(mode: str, curves: list[RunCurves], skipped: int) -> list[str]:
    evals = sorted({len(c.eval_steps) for c in curves})
    return [
        f"Each run's correlation is over its {', '.join(map(str, evals)) or 'no'} evaluations of the exact W1 "
        "(every eval_every steps and at the end); the logged signal is the mean of the interval means in a window of "
        "width eval_every centred on each evaluation, since the scalars and the metrics are logged on different clocks.",
        "rho > 0 means the signal falls when W1 falls. Over the whole run the correlation weighs the early fall of W1 "
        "most; the rho over the second half of the evaluations (reported, not in the verdict) asks whether the curve "
        "still tracks the distance once the samples improve slowly, and the scatter and the curves are part of the evidence.",
        "The estimate E[D(real)] - E[D(fake)] bounds W1 from below only for a 1-Lipschitz critic. ganlab's toy wgan_gp has "
        "lambda = 0.1 (the WGAN-GP paper's gan_toy.py; conf/tuning/toy.yaml), which holds the critic's slope near 1 loosely "
        "(claim 5): while the critic sharpens early in training its estimate can grow as W1 falls.",
        "js is judged by |rho| of Loss/D, the quantity its users watch; its logit gap (Wasserstein/estimate) is reported too. "
        "wgan_clip is the setting of the WGAN paper's Fig. 3; the verdict reads wgan_gp, as the issue states it.",
        f"{skipped} toy sweep run(s) skipped (not finished, or no Metrics/w1)."
        + (" Quick mode has 3 evaluations a run: the correlations are the machinery's, not evidence." if mode == "quick" else ""),
        "Protocol differences: the papers train on LSUN/CIFAR-10 images with DCGAN/ResNet networks and plot the estimate "
        "against samples by eye; here the exact W1 of 2-D samples is the ground truth, with ganlab's toy MLP settings.",
    ]


# -------------------------------------------------------------------------------------- plots


def pick_example(curves: list[RunCurves], objective: str) -> RunCurves | None:
    """The run of ``objective`` with the lowest seed on gaussians25 (else on any dataset), for the curve plot."""
    ours = [c for c in curves if c.objective == objective]
    preferred = [c for c in ours if c.run.dataset == "gaussians25"] or ours
    return min(preferred, key=lambda c: (c.run.seed if isinstance(c.run.seed, int) else 0, str(c.run.path)), default=None)


def draw_curves(ctx: Context, curves: list[RunCurves]) -> str:
    """progress_curves.png: for one seed, the logged signal (left axis) and the exact W1 (right axis) over steps,
    wgan_gp's estimate on the left panel and js's Loss/D on the right."""
    fig = PlotFigure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    for i, objective in enumerate(("wgan_gp", "js")):
        ax = fig.add_subplot(1, 2, i + 1)
        example = pick_example(curves, objective)
        signal = PRIMARY[objective]
        if example is None or signal not in example.raw:
            ax.set_title(f"{objective}: no finished run")
            ax.set_xlabel("generator step")
            continue
        raw = example.raw[signal]
        (a,) = ax.plot(raw.steps, raw.values, color="C0", label=f"{signal} (logged, interval means)")
        (b,) = ax.plot(example.eval_steps, example.paired[signal], "o", color="C0", markersize=4, label=f"{signal} paired with each evaluation")
        twin = ax.twinx()
        (c,) = twin.plot(example.eval_steps, example.w1, "s-", color="C3", markersize=4, label="exact W1 (Metrics/w1)")
        ax.set_xlabel("generator step")
        ax.set_ylabel(signal, color="C0")
        twin.set_ylabel("exact W1 of generated vs real samples", color="C3")
        ax.grid(alpha=0.3)
        ax.legend(handles=[a, b, c], fontsize="small", loc="upper right")
        ax.set_title(f"{objective}, {example.run.dataset}, seed {example.run.seed}: Spearman rho = {_g(example.rho(signal))}")
    fig.suptitle("Progress curves: the logged signal and the exact W1 over training (one seed)")
    name = "progress_curves.png"
    fig.savefig(ctx.out / name, dpi=100)
    return name


def draw_scatter(ctx: Context, curves: list[RunCurves]) -> str:
    """progress_scatter.png: every evaluation of every run, the paired signal against the exact W1, wgan_gp's estimate
    (left) and js's Loss/D (right), coloured by dataset."""
    fig = PlotFigure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    datasets = sorted({c.run.dataset for c in curves})
    for i, objective in enumerate(("wgan_gp", "js")):
        ax = fig.add_subplot(1, 2, i + 1)
        signal = PRIMARY[objective]
        for j, dataset in enumerate(datasets):
            ours = [c for c in curves if c.objective == objective and c.run.dataset == dataset and signal in c.paired]
            if not ours:
                continue
            x = np.concatenate([c.w1 for c in ours])
            y = np.concatenate([c.paired[signal] for c in ours])
            rhos = [c.rho(signal) for c in ours]
            ax.scatter(x, y, s=12, alpha=0.6, color=f"C{j}",
                       label=f"{dataset}: {len(ours)} runs, median rho = {_g(float(np.nanmedian(rhos))) if np.isfinite(rhos).any() else 'nan'}")
        ax.set_xlabel("exact W1 of generated vs real samples (Metrics/w1)")
        ax.set_ylabel(f"{signal}, paired with the evaluation")
        ax.set_title(f"{objective}: {signal} against the exact W1")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle("Every evaluation of every run: the logged signal against the exact W1")
    name = "progress_scatter.png"
    fig.savefig(ctx.out / name, dpi=100)
    return name
