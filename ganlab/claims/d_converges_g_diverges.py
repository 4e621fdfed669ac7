"""Claim 8: "the discriminator converges while the generator diverges": when it happens, and what changes it.

Source: Arjovsky & Bottou 2017, "Towards Principled Methods for Training GANs", Sec. 2 (with a
discriminator trained towards optimality the JS objective saturates: the discriminator's loss goes to
its floor, the generator's gradients vanish or, with the non-saturating loss, grow unstable); the
account is repeated in many tutorials ("D loss goes to 0, G loss goes up"). Remedies tried here:
one-sided label smoothing (Salimans et al. 2016, Sec. 3.4), spectral normalisation (Miyato et al.
2018) and the gradient penalty (Gulrajani et al. 2017) on the same JS loss.

Protocol. "A critic that trains much faster": the js preset (Adam (0.5, 0.999), 1 D step per G step)
with the discriminator's learning rate 10 times the generator's, lr_D = 2e-3 against lr_G = 2e-4 (the
two time-scale knob of Heusel et al. 2017, pushed far). It was chosen over ``n_critic = 5``: both made
the discriminator win in a first look at one seed (Critic/accuracy 0.97, Loss/G from 0.7 to 3-3.6
in 2000 steps), but a larger learning rate costs no extra compute, so the remedies (the gradient
penalty's double backward above all) are compared at the price of a plain js run. Variants, each on
``gaussians25`` over :func:`ganlab.claims.sweeps.seeds`:

* **fast critic**: ``objective=js objective.optimizer.lr_D=2e-3`` (sweep ``d_vs_g``, no constraint);
* **+ spectral norm**, **+ gradient penalty**: the same with ``objective/constraints=[sn]`` or ``[gp]``
  (sweep ``d_vs_g``; the penalty's weight is ganlab's toy value lambda = 0.1, conf/tuning/toy.yaml);
* **+ label smoothing**: the same with ``objective.loss.real_label=0.9`` (sweep ``d_vs_g_smoothing``);
* **reference js** (lr_D = lr_G = 2e-4): the shared toy sweep's js runs on ``gaussians25``, read up to
  this claim's step budget (the observers do not change a trajectory, so their first S steps are a
  run of S steps), to show *when* the pattern appears.

Operational definitions, per run over its S steps (the logged scalars are interval means, every
``log_every`` steps; W1 is the exact W1 of ``eval_samples`` points every ``eval_every`` steps):

* **D converges**: the mean of ``Critic/accuracy`` (P(D(real) > D(fake)), the critic's ROC AUC,
  comparable across losses, smoothing and penalties; 0.5 is chance) over the logged points in the
  second half (step > S/2);
* **G diverges**: (a) G's loss grows: the mean of ``Loss/G`` over the last quarter (step > 3S/4)
  divided by log 2, its value when D cannot tell real from fake (D = 1/2 everywhere; the
  non-saturating loss -log D(G(z))); (b) the samples stop improving: the mean exact W1 of the
  evaluations in the last quarter divided by that of the evaluations in the second quarter
  (S/4 < step <= S/2).

Each is summarised over seeds by its IQM with a 95% bootstrap interval. A remedy "changes it" when its
runs' G-loss growth is lower than the fast critic's by the exact Mann-Whitney test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as PlotFigure

from ganlab.claims.base import Check, Context, Figure, Outcome, Sweep, above
from ganlab.claims.sweeps import QUICK_RUN, seeds, sweep_values, toy
from ganlab.compare.runs import FINISHED, Run
from ganlab.compare.scalars import Series, read_scalars
from ganlab.compare.stats import improvement_test, probability_of_improvement, summarize

NUMBER = 8
SLUG = "d_converges_g_diverges"
TITLE = "D converges while G diverges: with a fast discriminator, and what label smoothing, SN and the gradient penalty change"
SOURCE = ("Arjovsky & Bottou 2017, Towards Principled Methods for Training GANs, Sec. 2 (2.2); "
          "remedies: Salimans et al. 2016 Sec. 3.4, Miyato et al. 2018, Gulrajani et al. 2017")
STATEMENT = ("When the JS discriminator trains much faster than the generator it wins: it separates real from generated "
             "samples almost perfectly while the generator's loss climbs and its samples stop improving. Constraining "
             "the discriminator's slope (spectral normalisation, a gradient penalty) should stop this; one-sided label "
             "smoothing, which only caps the target on real data, need not.")

# Verdict thresholds: fixed before the full run; never tuned after it.
D_WINS_ACCURACY = 0.95  # "D converges": it ranks 19 of 20 (real, fake) pairs right on average over the second half
                        # (chance 0.5). A first look at one seed: fast critic 0.97, reference js 0.87, SN 0.70, GP 0.88.
G_LOSS_GROWTH = 2.0  # "G's loss diverges": at the end at least twice its value log 2 at D = 1/2, i.e. D gives the
                     # fakes 0.25 or less on (geometric) average. One seed: fast 5.0, reference 1.7, SN and GP 1.0-1.1.
W1_STALL = 0.9  # "the samples stop improving": W1 falls by less than 10% from the second to the last quarter.
                # One seed: fast 0.96 (modes 15 -> 11), SN 0.78, GP 0.77, reference 0.85 (a seed's W1 wavers by ~10%).
ALPHA = 0.05 / 3  # a remedy changes the G-loss growth by the exact two-sided Mann-Whitney test, Bonferroni over the 3
                  # remedies; 5 seeds a side pass with at most one pair out of order (p = 0.016)

FAST_LR_D = 2e-3  # 10 x the js preset's 2e-4 (DCGAN paper); lr_G stays 2e-4
SMOOTH_REAL_LABEL = 0.9  # Salimans et al. 2016, Sec. 3.4 (one-sided: only the real target)
DATASET = "gaussians25"
TAGS = ("Critic/accuracy", "Loss/D", "Loss/G", "Metrics/w1", "Metrics/modes_covered")

REFERENCE, FAST, SMOOTHING, SN, GP = "reference js", "fast critic", "+ label smoothing", "+ spectral norm", "+ gradient penalty"
VARIANTS = (REFERENCE, FAST, SMOOTHING, SN, GP)
REMEDIES = (SMOOTHING, SN, GP)
LOG2, LOG4 = math.log(2.0), math.log(4.0)


def budget(mode: str) -> tuple[str, ...]:
    """The overrides that size one run of this claim's sweeps: the toy sweep's log and evaluation clocks, fewer steps
    (full: 1000 of its 3000, gpu: 8000 of 20000), so that the toy sweep's js runs serve as the reference."""
    if mode == "quick":
        return QUICK_RUN
    if mode == "full":
        return ("steps=1000", "eval_every=250", "eval_samples=2500")
    return ("steps=8000", "eval_every=1000", "eval_samples=2500")


def steps_of(mode: str) -> int:
    return int(dict(o.split("=", 1) for o in budget(mode))["steps"])


def settings(mode: str) -> dict[str, Any]:
    """Every setting of the protocol at ``mode`` (quick | full | gpu).

    Raises:
        KeyError: an unknown mode.
    """
    return {
        "dataset": DATASET, "seeds": list(seeds(mode)), "budget": list(budget(mode)), "steps": steps_of(mode),
        "fast_critic": {"objective": "js", "lr_D": FAST_LR_D, "lr_G": 2e-4, "n_critic": 1, "betas": [0.5, 0.999]},
        "remedies": {SMOOTHING: f"objective.loss.real_label={SMOOTH_REAL_LABEL}", SN: "objective/constraints=[sn]",
                     GP: "objective/constraints=[gp] (lambda = tuning.gp.weight = 0.1 on the 2-D data)"},
        "reference": "the toy sweep's js runs on gaussians25 (lr_D = 2e-4), read up to the same step",
        "definitions": {
            "D converges": "mean Critic/accuracy over the logged points at step > S/2",
            "G's loss grows": "mean Loss/G over the logged points at step > 3S/4, over log 2",
            "samples stop improving": "mean W1 of the evaluations at step > 3S/4 over that of the evaluations in (S/4, S/2]",
        },
        "thresholds": {"d_wins_accuracy": D_WINS_ACCURACY, "g_loss_growth": G_LOSS_GROWTH, "w1_stall": W1_STALL, "alpha": ALPHA},
    }


def sweeps(mode: str) -> list[Sweep]:
    common = ("objective=js", f"dataset={DATASET}", f"objective.optimizer.lr_D={FAST_LR_D}")
    runs = (f"seed={sweep_values(seeds(mode))}", *budget(mode))
    return [
        toy(mode),  # the reference js
        Sweep("d_vs_g", (*common, "objective/constraints=[],[sn],[gp]", *runs)),
        Sweep("d_vs_g_smoothing", (*common, f"objective.loss.real_label={SMOOTH_REAL_LABEL}", *runs)),
    ]


# ------------------------------------------------------------------------------ the measurement


def variant_of(run: Run) -> str | None:
    """Which variant a run is, from its resolved config: the js loss with one D step per G step, lr_D (fast or not),
    its constraints and its real label; None for a run that is none of them (another objective, dataset or n_critic)."""
    objective = run.config.get("objective") or {}
    loss = objective.get("loss") or {}
    if "losses.js" not in str(loss.get("_target_", "")) or run.dataset != DATASET or int(objective.get("n_critic", 1)) != 1:
        return None
    constraints = set((objective.get("constraints") or {}).keys())
    lr_D = float((objective.get("optimizer") or {}).get("lr_D", math.nan))
    smoothed = float(loss.get("real_label", 1.0)) != 1.0
    if not math.isclose(lr_D, FAST_LR_D):
        return REFERENCE if not constraints and not smoothed and objective.get("name") == "js" else None
    if smoothed:
        return SMOOTHING if not constraints else None
    return {frozenset(): FAST, frozenset({"sn"}): SN, frozenset({"gp"}): GP}.get(frozenset(constraints))


def window_mean(series: Series, low: float, high: float) -> float:
    """The mean of the finite values of ``series`` logged at steps in (low, high]; NaN when there are none."""
    inside = (series.steps > low) & (series.steps <= high) & np.isfinite(series.values)
    return float(series.values[inside].mean()) if inside.any() else math.nan


@dataclass
class Pattern:
    """One run's measures over its first ``steps`` steps (definitions: module docstring)."""

    d_accuracy: float  # mean Critic/accuracy, second half
    g_loss_growth: float  # mean Loss/G, last quarter, over log 2
    w1_change: float  # mean W1, last quarter, over the second quarter's
    d_loss_end: float  # mean Loss/D, last quarter, over log 4 (its value at D = 1/2 with hard labels)
    modes_change: float  # mean modes covered, last quarter, over the second quarter's

    def shows_pattern(self) -> bool:
        """All three parts at once, on this run alone."""
        return self.d_accuracy > D_WINS_ACCURACY and self.g_loss_growth > G_LOSS_GROWTH and self.w1_change > W1_STALL


def pattern(curves: dict[str, Series], steps: int) -> Pattern:
    """The measures of one run's ``curves`` (tag -> Series, at least :data:`TAGS`' first four) over ``steps`` steps.

    Raises:
        ValueError: ``steps`` < 4 (no quarters), or a tag of ``TAGS[:4]`` missing.
    """
    if steps < 4:
        raise ValueError(f"steps={steps}: the measures need at least 4 steps (quarters of the run)")
    missing = [t for t in TAGS[:4] if t not in curves]
    if missing:
        raise ValueError(f"the run logged no {', '.join(missing)}")
    s = float(steps)

    def ratio(tag: str) -> float:
        if tag not in curves:
            return math.nan
        late, middle = window_mean(curves[tag], 0.75 * s, s), window_mean(curves[tag], 0.25 * s, 0.5 * s)
        return late / middle if middle else math.nan

    return Pattern(
        d_accuracy=window_mean(curves["Critic/accuracy"], 0.5 * s, s),
        g_loss_growth=window_mean(curves["Loss/G"], 0.75 * s, s) / LOG2,
        w1_change=ratio("Metrics/w1"),
        d_loss_end=window_mean(curves["Loss/D"], 0.75 * s, s) / LOG4,
        modes_change=ratio("Metrics/modes_covered"),
    )


@dataclass
class VariantRuns:
    """The finished runs of one variant, their curves up to ``steps`` and their measures."""

    name: str
    runs: list[Run]
    curves: list[dict[str, Series]]
    patterns: list[Pattern]

    def values(self, measure: str) -> list[float]:
        return [getattr(p, measure) for p in self.patterns]


def truncated(series: Series, steps: int) -> Series:
    keep = series.steps <= steps
    return Series(series.steps[keep], series.values[keep])


def collect(runs: list[Run], steps: int) -> tuple[dict[str, VariantRuns], int]:
    """The runs of each variant among ``runs`` (finished, trained at least ``steps`` steps), read up to ``steps``;
    and how many runs of a variant were skipped (not finished, too short, or missing a curve)."""
    found = {name: VariantRuns(name, [], [], []) for name in VARIANTS}
    skipped = 0
    for run in runs:
        name = variant_of(run)
        if name is None:
            continue
        if run.status != FINISHED or int(run.config.get("steps") or 0) < steps:
            skipped += 1
            continue
        curves = {tag: truncated(series, steps) for tag, series in read_scalars(run.path, TAGS).items()}
        try:
            measures = pattern(curves, steps)
        except ValueError:
            skipped += 1
            continue
        found[name].runs.append(run)
        found[name].curves.append(curves)
        found[name].patterns.append(measures)
    return found, skipped


def iqm_figure(name: str, values: list[float]) -> Figure:
    """The IQM over seeds with its 95% bootstrap interval (ends None where there is none)."""
    s = summarize([values])
    low, high = s.iqm_ci.low, s.iqm_ci.high
    return Figure(name, s.iqm, None if math.isnan(low) else low, None if math.isnan(high) else high, "",
                  f"IQM, 95% bootstrap ({s.iqm_ci.method}) over {s.n} seeds" + (f"; {s.n_nonfinite} undefined left out" if s.n_nonfinite else ""))


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p-value the exact Mann-Whitney test can give for ``n`` against ``m`` runs: a complete
    separation, 2 of the C(n + m, n) orderings (5 vs 5: 0.0079; 4 vs 4: 0.029; 1 vs 1: 1)."""
    return min(1.0, 2.0 / math.comb(n + m, n)) if n and m else 1.0


def remedy_test(remedy: list[float], fast: list[float]) -> tuple[float, float, bool]:
    """(P(a remedy run's G-loss growth < a fast-critic run's), two-sided Mann-Whitney p, whether the seeds could reach
    p < ALPHA at all); (NaN, NaN, False) without runs on either side."""
    if not remedy or not fast:
        return math.nan, math.nan, False
    p = improvement_test([remedy], [fast], higher_is_better=False)
    decidable = smallest_p(len(remedy), len(fast)) < ALPHA
    return probability_of_improvement([remedy], [fast], higher_is_better=False), float(p), decidable


def remedies_check(tests: dict[str, tuple[float, float, bool]], means: dict[str, tuple[float, float]]) -> Check:
    """Passed when at least one remedy lowers the G-loss growth (its mean below the fast critic's) with p < ALPHA;
    failed when none does and every remedy had seeds enough to show it (:func:`smallest_p` < ALPHA); undecided
    otherwise (too few seeds, no runs). ``tests``: remedy -> :func:`remedy_test`; ``means``: remedy -> (its mean G-loss
    growth, the fast critic's)."""
    what = "at least one remedy changes it (lower G-loss growth than the fast critic)"
    tested = {r: t for r, t in tests.items() if math.isfinite(t[1])}
    if not tested:
        return Check(what, None, "no remedy has finished runs to compare")
    changed = [r for r, (_, p, _) in tested.items() if p < ALPHA and means[r][0] < means[r][1]]
    detail = "; ".join(f"{r}: p = {p:.3g}" for r, (_, p, _) in tested.items())
    if changed:
        return Check(what, True, f"{', '.join(changed)} (p < {ALPHA:.3g}); {detail}")
    if len(tested) < len(tests) or not all(decidable for _, _, decidable in tested.values()):
        return Check(what, None, f"none with p < {ALPHA:.3g}, and too few seeds to reach it: {detail}")
    return Check(what, False, f"none with p < {ALPHA:.3g}: {detail}")


def verdict_checks(accuracy: Figure, growth: Figure, w1: Figure, remedies: Check) -> list[Check]:
    """The fast critic shows the pattern (D wins, G's loss grows, the samples stall: IQM and interval's low end above
    each threshold) and at least one remedy changes it."""
    return [
        above("fast critic: D converges, IQM of mean Critic/accuracy over the second half", accuracy.value, D_WINS_ACCURACY, accuracy.low),
        above("fast critic: G's loss diverges, IQM of Loss/G (last quarter) / log 2", growth.value, G_LOSS_GROWTH, growth.low),
        above("fast critic: samples stop improving, IQM of W1 last quarter / second quarter", w1.value, W1_STALL, w1.low),
        remedies,
    ]


PATTERN_MEASURES = ("d_accuracy", "g_loss_growth", "w1_change")  # the three parts of the pattern (the verdict's)
MEASURES = {
    "d_accuracy": "mean Critic/accuracy, second half",
    "g_loss_growth": "Loss/G (last quarter) / log 2",
    "w1_change": "W1 last quarter / second quarter",
    "d_loss_end": "Loss/D (last quarter) / log 4",
    "modes_change": "modes covered last quarter / second quarter",
}


# -------------------------------------------------------------------------------------- measure


def measure(ctx: Context) -> Outcome:
    steps = steps_of(ctx.mode)
    ctx.progress(f"reading the d_vs_g sweeps and the toy sweep's js runs up to step {steps}")
    runs = [*ctx.runs("toy"), *ctx.runs("d_vs_g"), *ctx.runs("d_vs_g_smoothing")]
    found, skipped = collect(runs, steps)

    cells = {(name, m): iqm_figure(f"{name}: {label}", found[name].values(m)) for name in VARIANTS for m, label in MEASURES.items() if found[name].patterns}
    empty = Figure("", math.nan)
    fast = found[FAST].values("g_loss_growth")
    tests = {r: remedy_test(found[r].values("g_loss_growth"), fast) for r in REMEDIES}
    means = {r: (float(np.mean(found[r].values("g_loss_growth"))) if found[r].patterns else math.nan,
                 float(np.mean(fast)) if fast else math.nan) for r in REMEDIES}
    checks = verdict_checks(cells.get((FAST, "d_accuracy"), empty), cells.get((FAST, "g_loss_growth"), empty),
                            cells.get((FAST, "w1_change"), empty), remedies_check(tests, means))
    figures = [f for (_, m), f in cells.items() if m in PATTERN_MEASURES]  # Loss/D and the modes: in the table
    for r, (poi, p, _) in tests.items():
        figures.append(Figure(f"{r}: P(its G-loss growth < the fast critic's)", poi, interval=f"exact two-sided Mann-Whitney p = {p:.3g}"))
    figures.append(Figure("runs skipped (not finished, shorter than the budget, or a curve missing)", float(skipped)))

    ctx.progress("drawing Critic/accuracy, Loss/D, Loss/G and W1 per variant")
    plot = draw(ctx, found, steps)
    return Outcome(figures=figures, checks=checks, table=table(found, cells, tests), plots=[plot], notes=notes(ctx.mode, skipped))


def table(found: dict[str, VariantRuns], cells: dict[tuple[str, str], Figure], tests: dict[str, tuple[float, float, bool]]) -> str:
    head = ("| variant | seeds | D accuracy, 2nd half | Loss/D end / log 4 | Loss/G end / log 2 | W1 last / 2nd quarter | "
            "modes last / 2nd quarter | runs with the pattern | G-loss growth vs fast critic |")
    rows = [head, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in VARIANTS:
        v = found[name]
        if not v.patterns:
            rows.append(f"| {name} | 0 | - | - | - | - | - | - | - |")
            continue
        text = [cells[(name, m)].text() for m in ("d_accuracy", "d_loss_end", "g_loss_growth", "w1_change", "modes_change")]
        versus = "-"
        if name in tests and math.isfinite(tests[name][1]):
            poi, p, _ = tests[name]
            versus = f"P(lower) = {poi:.2f}, p = {p:.3g}" + (" (changed)" if p < ALPHA and poi > 0.5 else "")
        rows.append(f"| {name} | {len(v.patterns)} | {' | '.join(text)} | {sum(p.shows_pattern() for p in v.patterns)} of {len(v.patterns)} | {versus} |")
    return "\n".join(rows)


def notes(mode: str, skipped: int) -> list[str]:
    return [
        f"Every variant is the js loss with the non-saturating generator loss, ganlab's toy MLP (3 x 128), batch 256, on "
        f"{DATASET}, {steps_of(mode)} generator steps, {len(seeds(mode))} seeds; the fast critic and its remedies have "
        f"lr_D = {FAST_LR_D:g} (10 x lr_G), the reference js lr_D = lr_G = 2e-4.",
        "Loss/D is not comparable across variants (label smoothing raises its floor, the penalty adds to it), hence the "
        "critic's ROC AUC (Critic/accuracy) as the measure of 'D converges'; Loss/D / log 4 is reported (1 at D = 1/2, "
        "0 for a perfect discriminator with hard labels).",
        "The gradient penalty here has ganlab's toy weight lambda = 0.1 (the paper's 10 stalls the 2-D runs), on the "
        "interpolates of the JS discriminator, which is not a WGAN critic: the penalty only limits its slope.",
        "Arjovsky & Bottou argue about a discriminator trained to optimality between generator steps; a 10 x learning "
        "rate is the cheap way to a discriminator that keeps ahead, not their exact setting.",
        f"{skipped} run(s) skipped (not finished, shorter than the budget, or a curve missing)."
        + (" Quick mode: 24 steps, tiny networks: the machinery, not the verdict." if mode == "quick" else ""),
    ]


def min_max_band(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max) over ``series`` at the steps that all of them logged, non-finite values left out. A min-max
    band shows the seeds' spread as it is; a t-interval of 2-5 seeds (t = 12.7 for 2) would fill the panel."""
    steps = series[0].steps
    for s in series[1:]:
        steps = np.intersect1d(steps, s.steps, assume_unique=True)
    values = np.stack([s.values[np.searchsorted(s.steps, steps)] for s in series])  # (runs, m)
    values = np.where(np.isfinite(values), values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step where every seed is non-finite: NaN, drawn as a gap
        return steps, np.nanmean(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def draw(ctx: Context, found: dict[str, VariantRuns], steps: int) -> str:
    """d_vs_g.png: Critic/accuracy, Loss/D, Loss/G and the exact W1 over steps per variant: the mean over seeds with a
    band from the lowest to the highest seed."""
    fig = PlotFigure(figsize=(13, 9), layout="constrained")
    FigureCanvasAgg(fig)
    panels = (("Critic/accuracy", "P(D(real) > D(fake))"), ("Loss/D", "discriminator loss"), ("Loss/G", "generator loss"),
              ("Metrics/w1", "exact W1 of generated vs real"))
    for i, (tag, label) in enumerate(panels):
        ax = fig.add_subplot(2, 2, i + 1)
        for j, name in enumerate(VARIANTS):
            series = [c[tag] for c in found[name].curves if tag in c and len(c[tag])]
            if not series:
                continue
            x, mean, low, high = min_max_band(series)
            marker = "o" if tag.startswith("Metrics/") else None
            (line,) = ax.plot(x, mean, color=f"C{j}", marker=marker, markersize=3, label=f"{name} ({len(series)} seeds)")
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        if tag == "Critic/accuracy":
            ax.axhline(D_WINS_ACCURACY, color="black", linestyle=":", label=f"'D converges' threshold {D_WINS_ACCURACY}")
        if tag == "Loss/G":
            ax.axhline(G_LOSS_GROWTH * LOG2, color="black", linestyle=":", label=f"{G_LOSS_GROWTH:g} x log 2")
        ax.axvspan(steps / 2, steps, color="grey", alpha=0.08)
        ax.set_xlabel("generator step")
        ax.set_ylabel(f"{tag}: {label}")
        ax.set_title(tag)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    fig.suptitle(f"JS GAN with a fast discriminator (lr_D = {FAST_LR_D:g}) and its remedies on {DATASET}: "
                 "mean over seeds, band from min to max; grey: the second half")
    name = "d_vs_g.png"
    fig.savefig(ctx.out / name, dpi=100)
    return name
