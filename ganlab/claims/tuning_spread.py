"""Claim 10: WGAN-GP needs almost no hyperparameter tuning: over one grid of learning rates and Adam
betas, its final quality spreads less than the original GAN's.

Gulrajani et al. (2017, Sec. 1 and 5) present WGAN-GP as training "a wide variety of GAN architectures
with almost no hyperparameter tuning"; Lucic et al. (2018, "Are GANs Created Equal?", Sec. 5 and Fig. 4)
judge such claims by the *distribution* of a model's quality over hyperparameter settings, not by its best
run. Here both objectives train on the 25 Gaussians over the same grid (sweep ``tuning_grid``):

* learning rate (both players) in {1e-4, 3e-4, 1e-3}: log-spaced over the "narrow" range of Lucic et al.'s
  code, log10 lr in [-4, -3] (google/compare_gan @aecc6e7, compare_gan/src/params.py line 86; their wide
  range is [-5, -2], line 71);
* Adam's beta1 in {0.5, 0} x beta2 in {0.9, 0.999}: beta1 = 0.5 is their narrow range's value (line 84) and
  DCGAN's, 0 lies in their wide range [0, 1] (line 69) and is WGAN-GP's Algorithm 1 and SN-GAN's; beta2 =
  0.999 is theirs (TensorFlow's default, never swept: compare_gan/src/gans/GAN.py lines 81-86) and DCGAN's,
  0.9 is WGAN-GP's. The four pairs include the presets' own: (0.5, 0.9) for wgan_gp (gan_toy.py) and
  (0.5, 0.999) for js (DCGAN).

Everything else is each preset's: wgan_gp with 5 critic steps and lambda = 0.1 (gan_toy.py's value for 2-D
data, conf/tuning/toy.yaml), js with 1 discriminator step and the non-saturating loss; ganlab's 3 x 128 MLP,
batch 256. 12 settings x 2 objectives x :func:`settings`'s seeds, each run's final ``Metrics/w1_ratio``
(exact W1 to the data over the W1 between two real sets; lower is better).

**Figures.** Per objective, over all its runs of the grid (settings x seeds): the interquartile range
(``scipy.stats.iqr``) and the standard deviation of the final W1 ratio, each with a 95% bootstrap interval
(runs resampled within each objective, ``ganlab.compare.stats.bootstrap_interval``); the median with its
interval and the best run; the share of runs that diverged. Then the ratio wgan_gp / js of the IQRs (the
verdict's figure) and of the standard deviations, each with its bootstrap interval (both objectives
resampled independently), the Brown-Forsythe test of equal spread (``scipy.stats.levene``, median-centred)
and, for the record, the IQR ratio on log10 of the W1 ratio (a spread relative to the level). A diverged
run (non-finite W1) counts as the worst finished run of the whole grid: it is the bad end of the
distribution, not a missing value.

**Verdict**: held when the IQR ratio's interval lies below 1 (wgan_gp's spread significantly smaller);
did not hold when it lies above 1 (js's significantly smaller); inconclusive when it contains 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as PlotFigure
from scipy import stats

from ganlab.claims.base import Check, Context, Figure, Outcome, Sweep
from ganlab.claims.sweeps import QUICK_RUN, sweep_values
from ganlab.compare.runs import DIVERGED, FINISHED, Run
from ganlab.compare.stats import CONFIDENCE, RESAMPLES, Interval, bootstrap_interval

NUMBER = 10
SLUG = "tuning_spread"
TITLE = "WGAN-GP needs almost no hyperparameter tuning: its quality spreads less over a grid than the GAN's"
SOURCE = ("Gulrajani et al. 2017, Improved Training of Wasserstein GANs, Sec. 1 and 5; the protocol: Lucic et al. 2018, "
          "Are GANs Created Equal? A Large-Scale Study, Sec. 5 and Fig. 4 (quality distributions over hyperparameters)")
STATEMENT = ("Trained over the same grid of learning rates and Adam betas, WGAN-GP's final sample quality varies less "
             "from setting to setting than the original (JS, non-saturating) GAN's: it needs less tuning.")

# ---- Thresholds: fixed before the full run; never tuned after it.
EQUAL_SPREAD = 1.0  # the IQR ratio wgan_gp / js that separates "smaller" from "larger"; the interval must exclude it
# The interval's level is ganlab.compare.stats.CONFIDENCE (95%), its method BCa (percentile where BCa is undefined).

SWEEP = "tuning_grid"
OBJECTIVES = ("wgan_gp", "js")
DATASET = "gaussians25"
W1_RATIO = "Metrics/w1_ratio"
LEARNING_RATES = (1e-4, 3e-4, 1e-3)  # compare_gan params.py line 86: log10 lr in [-4, -3]
BETA1 = (0.5, 0.0)  # compare_gan params.py lines 69, 84; WGAN-GP Alg. 1 (0), DCGAN (0.5)
BETA2 = (0.9, 0.999)  # WGAN-GP (0.9); compare_gan and DCGAN (TensorFlow's 0.999)


def settings(mode: str) -> dict[str, Any]:
    """Every setting of the grid at ``mode`` (quick | full | gpu), JSON-serialisable.

    full: 12 settings x 2 objectives x 1 seed = 24 runs of 2000 steps, evaluated at 1000 and 2000 (more seeds
    or the default run's 5000 steps would not fit the full mode's ~2 hours: a 2000-step wgan_gp run takes
    ~90 s of one core, a js run ~40 s, with start-up and evaluations: ~26 core-minutes in all, ~13 min with
    two jobs at once).

    Raises:
        KeyError: an unknown mode.
    """
    size = {
        # quick: the machinery only: 2 learning rates x 2 beta2, one seed (8 runs of 24 steps).
        "quick": dict(seeds=[0], learning_rates=[LEARNING_RATES[0], LEARNING_RATES[-1]], beta1=[BETA1[0]], beta2=list(BETA2),
                      steps=24, eval_every=8, eval_samples=200),
        "full": dict(seeds=[0], learning_rates=list(LEARNING_RATES), beta1=list(BETA1), beta2=list(BETA2),
                     steps=2000, eval_every=1000, eval_samples=2500),
        "gpu": dict(seeds=[0, 1, 2], learning_rates=list(LEARNING_RATES), beta1=list(BETA1), beta2=list(BETA2),
                    steps=5000, eval_every=1000, eval_samples=2500),
    }[mode]
    return {
        **size, "objectives": list(OBJECTIVES), "dataset": DATASET, "metric": W1_RATIO,
        "both_players": "one learning rate for G and D (lr_D follows lr_G)",
        "kept": "each preset's n_critic (wgan_gp 5, js 1), loss and lambda (wgan_gp: 0.1 on 2-D data); mlp 3 x 128, batch 256",
        "diverged": "a diverged run counts as the worst finished run of the grid",
        "thresholds": {"equal_spread": EQUAL_SPREAD, "confidence": CONFIDENCE},
    }


def sweeps(mode: str) -> list[Sweep]:
    """``tuning_grid``: both objectives x learning rates x beta1 x beta2 x seeds on the 25 Gaussians."""
    s = settings(mode)
    budget = dict(o.split("=", 1) for o in QUICK_RUN) if mode == "quick" else {}
    budget.update(steps=str(s["steps"]), eval_every=str(s["eval_every"]), eval_samples=str(s["eval_samples"]))
    return [Sweep(SWEEP, (
        f"objective={sweep_values(OBJECTIVES)}", f"dataset={DATASET}",
        f"objective.optimizer.lr_G={sweep_values(s['learning_rates'])}",
        "objective.optimizer.lr_D=${objective.optimizer.lr_G}",  # one learning rate for both players
        f"objective.optimizer.betas.0={sweep_values(s['beta1'])}", f"objective.optimizer.betas.1={sweep_values(s['beta2'])}",
        f"seed={sweep_values(s['seeds'])}", *(f"{k}={v}" for k, v in budget.items()),
    ))]


# ------------------------------------------------------------------------------------ the runs


@dataclass(frozen=True)
class GridRun:
    """One run of the grid: its objective, setting, seed, state and final W1 ratio (NaN when it diverged)."""

    objective: str
    lr: float
    betas: tuple[float, float]
    seed: int
    status: str
    w1_ratio: float


def grid_run(run: Run) -> GridRun:
    optimizer = (run.config.get("objective") or {}).get("optimizer") or {}
    betas = tuple(float(b) for b in optimizer.get("betas", (math.nan, math.nan)))
    value = run.final.get(W1_RATIO, math.nan) if run.status == FINISHED else math.nan
    return GridRun(str(run.choices.get("objective")), float(optimizer.get("lr_G", math.nan)), betas, int(run.seed or 0), run.status, value)


def with_worst(values: np.ndarray, worst: float) -> np.ndarray:
    """``values`` with every non-finite entry replaced by ``worst`` (a diverged run counts as the worst)."""
    return np.where(np.isfinite(values), values, worst)


# ---------------------------------------------------------------------------------- statistics


def iqr(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile range along ``axis`` (``scipy.stats.iqr``: 75th minus 25th percentile, linear interpolation)."""
    return stats.iqr(values, axis=axis)


def std(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sample standard deviation (ddof = 1) along ``axis``."""
    return np.std(values, axis=axis, ddof=1)


def spread_ratio(spread):
    """The statistic ``spread(a) / spread(b)`` of two samples, for :func:`bootstrap_interval` (vectorised)."""

    def statistic(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return spread(a, axis=axis) / spread(b, axis=axis)

    return statistic


def one_sample(statistic):
    def wrapped(a: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(a, axis=axis)

    return wrapped


def interval_of(samples: list[np.ndarray], statistic, seed: int) -> Interval:
    """The 95% bootstrap interval of ``statistic(*samples)``, each sample resampled on its own."""
    return bootstrap_interval(samples, statistic, CONFIDENCE, RESAMPLES, seed)


def figure(name: str, value: float, interval: Interval | None = None, what: str = "", unit: str = "") -> Figure:
    if interval is None or math.isnan(interval.low) or math.isnan(interval.high):
        return Figure(name, value, unit=unit, interval=(what.rstrip("; ,") + "; no interval").lstrip("; "))
    return Figure(name, value, interval.low, interval.high, unit, f"{what}95% bootstrap ({interval.method})")


def spread_check(ratio: float, interval: Interval) -> Check:
    """Held when the IQR ratio wgan_gp / js and its interval lie below :data:`EQUAL_SPREAD`, failed when they lie
    above it, undecided when the interval contains it (or is missing)."""
    what = "IQR of the final W1 ratio, wgan_gp / js"
    if not math.isfinite(ratio):
        return Check(what, None, f"{ratio} (not finite: a spread of 0 or no runs)")
    if math.isnan(interval.low) or math.isnan(interval.high):
        return Check(what, None, f"{ratio:.3g}, no interval (too few runs)")
    text = f"{ratio:.3g} [{interval.low:.3g}, {interval.high:.3g}]"
    if interval.high < EQUAL_SPREAD:
        return Check(what, True, f"{text} < {EQUAL_SPREAD:g}: wgan_gp spreads less")
    if interval.low > EQUAL_SPREAD:
        return Check(what, False, f"{text} > {EQUAL_SPREAD:g}: js spreads less")
    return Check(what, None, f"{text} contains {EQUAL_SPREAD:g}")


# -------------------------------------------------------------------------------------- measure


def measure(ctx: Context) -> Outcome:
    s = settings(ctx.mode)
    ctx.progress("reading the grid's runs")
    runs = [grid_run(r) for r in ctx.runs(SWEEP) if r.dataset == DATASET]
    counted = [r for r in runs if r.status in (FINISHED, DIVERGED) and r.objective in OBJECTIVES]
    skipped = len(runs) - len(counted)
    finite = [r.w1_ratio for r in counted if math.isfinite(r.w1_ratio)]
    worst = max(finite) if finite else math.nan
    values = {o: with_worst(np.array([r.w1_ratio for r in counted if r.objective == o], dtype=float), worst) for o in OBJECTIVES}

    ctx.progress("bootstrap intervals of the spreads")
    figures: list[Figure] = []
    for k, o in enumerate(OBJECTIVES):
        v = values[o]
        n_diverged = sum(r.status == DIVERGED for r in counted if r.objective == o)
        runs_text = f"over {v.size} runs ({len(s['learning_rates']) * len(s['beta1']) * len(s['beta2'])} settings x seeds); "
        figures += [
            figure(f"{o}: IQR of the final W1 ratio", float(iqr(v)) if v.size else math.nan,
                   interval_of([v], one_sample(iqr), ctx.seed + k) if v.size else None, runs_text),
            figure(f"{o}: std of the final W1 ratio", float(std(v)) if v.size > 1 else math.nan,
                   interval_of([v], one_sample(std), ctx.seed + k) if v.size else None, runs_text),
            figure(f"{o}: median final W1 ratio", float(np.median(v)) if v.size else math.nan,
                   interval_of([v], one_sample(np.median), ctx.seed + k) if v.size else None, runs_text),
            Figure(f"{o}: best final W1 ratio (the tuned result)", float(v.min()) if v.size else math.nan, interval=f"the best of {v.size} runs"),
            Figure(f"{o}: share of runs diverged", n_diverged / v.size if v.size else math.nan, unit=f"of {v.size} runs",
                   interval="each counted as the grid's worst finished run"),
        ]
    a, b = values["wgan_gp"], values["js"]
    ratio = float(spread_ratio(iqr)(a, b)) if a.size and b.size else math.nan
    ratio_interval = interval_of([a, b], spread_ratio(iqr), ctx.seed) if a.size and b.size else Interval(math.nan, math.nan, "none")
    figures.append(figure("IQR ratio wgan_gp / js", ratio, ratio_interval, "both objectives' runs resampled independently, "))
    std_ratio = float(spread_ratio(std)(a, b)) if a.size > 1 and b.size > 1 else math.nan
    figures.append(figure("std ratio wgan_gp / js", std_ratio,
                          interval_of([a, b], spread_ratio(std), ctx.seed) if a.size > 1 and b.size > 1 else None, "both resampled, "))
    if a.size > 1 and b.size > 1 and (np.ptp(a) > 0 or np.ptp(b) > 0):
        figures.append(Figure("Brown-Forsythe test of equal spread, p", float(stats.levene(a, b, center="median").pvalue),
                              interval="scipy.stats.levene(center='median'); not in the verdict"))
    if a.size and b.size:
        la, lb = np.log10(a), np.log10(b)
        figures.append(figure("IQR ratio wgan_gp / js of log10 W1 ratio (relative spread)", float(spread_ratio(iqr)(la, lb)),
                              interval_of([la, lb], spread_ratio(iqr), ctx.seed), "not in the verdict; "))
    figures.append(Figure("grid runs skipped (failed or unfinished)", float(skipped)))
    checks = [spread_check(ratio, ratio_interval)]
    ctx.progress("drawing")
    plots = [draw(ctx, counted, worst)]
    return Outcome(figures=figures, checks=checks, table=table(counted, s), plots=plots, notes=notes(s, counted, skipped, worst))


def setting_label(lr: float, betas: tuple[float, float]) -> str:
    return f"lr {lr:g}, betas ({betas[0]:g}, {betas[1]:g})"


def table(counted: list[GridRun], s: dict[str, Any]) -> str:
    rows = ["| learning rate | betas | " + " | ".join(f"{o}: final W1 ratio per seed" for o in OBJECTIVES) + " |",
            "| --- | --- | " + " | ".join("---" for _ in OBJECTIVES) + " |"]
    for lr in s["learning_rates"]:
        for b1 in s["beta1"]:
            for b2 in s["beta2"]:
                cells = []
                for o in OBJECTIVES:
                    found = sorted((r for r in counted if r.objective == o and math.isclose(r.lr, lr) and r.betas == (b1, b2)), key=lambda r: r.seed)
                    cells.append(", ".join("diverged" if r.status == DIVERGED else f"{r.w1_ratio:.3g}" for r in found) or "-")
                rows.append(f"| {lr:g} | ({b1:g}, {b2:g}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def notes(s: dict[str, Any], counted: list[GridRun], skipped: int, worst: float) -> list[str]:
    diverged = sum(r.status == DIVERGED for r in counted)
    return [
        f"Grid: learning rate {s['learning_rates']} (G and D alike) x beta1 {s['beta1']} x beta2 {s['beta2']}, seeds {s['seeds']}, "
        f"{s['steps']} steps per run on {DATASET} (the default run is 5000: the grid's CPU budget), evaluated on "
        f"{s['eval_samples']} samples. Lucic et al. sample 100 settings per model from wider ranges (also the critic steps, "
        "lambda and batch norm) on image data and score FID; here the critic steps and lambda stay the presets'.",
        f"{diverged} run(s) diverged and count as the grid's worst finished run (W1 ratio {worst:.3g}); {skipped} run(s) were "
        "skipped (failed or unfinished).",
        "The spread is measured on the W1 ratio itself, as Lucic et al. plot FID; an objective whose runs are all worse "
        "can have a wider spread for that alone, so the IQR ratio of log10 W1 ratio (a relative spread) is given beside it.",
        "Intervals: the runs of each objective are resampled independently (the grid's settings are shared, so a "
        "bootstrap paired by setting would be narrower; the independent one is the cautious choice).",
    ]


# ------------------------------------------------------------------------------------------ plots


def draw(ctx: Context, counted: list[GridRun], worst: float) -> str:
    """spread.png: left, each objective's final W1 ratios over the grid (box plot and one point per run,
    coloured by learning rate, shaped by betas; diverged runs as crosses at the grid's worst); right, the
    median over seeds of each setting, per objective (learning rate x betas)."""
    fig = PlotFigure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, width_ratios=(1.1, 1))
    ax = fig.add_subplot(grid[:, 0])
    lrs = sorted({r.lr for r in counted})
    betas = sorted({r.betas for r in counted}, key=lambda b: (-b[0], b[1]))  # (0.5, 0.9), (0.5, 0.999), (0, 0.9), ...
    markers = ("o", "s", "^", "D")
    data = [with_worst(np.array([r.w1_ratio for r in counted if r.objective == o], dtype=float), worst) for o in OBJECTIVES]
    if any(d.size for d in data):
        ax.boxplot([d if d.size else [np.nan] for d in data], positions=range(len(OBJECTIVES)), widths=0.5, showfliers=False,
                   medianprops={"color": "k"})
    for i, o in enumerate(OBJECTIVES):
        ours = [r for r in counted if r.objective == o]
        jitter = np.linspace(-0.18, 0.18, len(ours)) if len(ours) > 1 else np.zeros(len(ours))
        for x, r in zip(jitter, sorted(ours, key=lambda r: (r.lr, r.betas, r.seed))):
            colour = f"C{lrs.index(r.lr)}" if r.lr in lrs else "k"
            if r.status == DIVERGED:
                ax.scatter(i + x, worst, marker="x", color=colour, zorder=3)
            else:
                ax.scatter(i + x, r.w1_ratio, marker=markers[betas.index(r.betas) % len(markers)], color=colour, alpha=0.8, zorder=3)
    for k, lr in enumerate(lrs):
        ax.scatter([], [], color=f"C{k}", label=f"lr {lr:g}")
    for k, b in enumerate(betas):
        ax.scatter([], [], color="grey", marker=markers[k % len(markers)], label=f"betas ({b[0]:g}, {b[1]:g})")
    if any(r.status == DIVERGED for r in counted):
        ax.scatter([], [], color="grey", marker="x", label="diverged (at the worst)")
    ax.set_xticks(range(len(OBJECTIVES)), list(OBJECTIVES))
    ax.set_yscale("log")
    ax.set_ylabel("final W1 ratio (lower is better)")
    ax.set_title("Final quality over the grid: one point per run")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    medians = {o: np.full((len(lrs), len(betas)), np.nan) for o in OBJECTIVES}
    for o in OBJECTIVES:
        for i, lr in enumerate(lrs):
            for j, b in enumerate(betas):
                v = [worst if r.status == DIVERGED else r.w1_ratio for r in counted if r.objective == o and r.lr == lr and r.betas == b]
                if v:
                    medians[o][i, j] = np.median(v)
    logs = np.log10(np.concatenate([m.ravel() for m in medians.values()]))
    low, high = (np.nanmin(logs), np.nanmax(logs)) if np.isfinite(logs).any() else (0.0, 1.0)
    for row, o in enumerate(OBJECTIVES):
        hax = fig.add_subplot(grid[row, 1])
        image = hax.imshow(np.log10(medians[o]), vmin=low, vmax=max(high, low + 1e-6), cmap="viridis_r", aspect="auto")
        for i in range(len(lrs)):
            for j in range(len(betas)):
                if np.isfinite(medians[o][i, j]):
                    hax.text(j, i, f"{medians[o][i, j]:.3g}", ha="center", va="center", fontsize="small",
                             bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 1})
        hax.set_xticks(range(len(betas)), [f"({b[0]:g}, {b[1]:g})" for b in betas], fontsize="small")
        hax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        hax.set_ylabel("learning rate")
        hax.set_xlabel("Adam betas")
        hax.set_title(f"{o}: median final W1 ratio per setting", fontsize="medium")
        fig.colorbar(image, ax=hax, label="log10 W1 ratio")
    fig.suptitle("Spread of final quality over a grid of learning rates and betas (25 Gaussians)")
    name = "spread.png"
    fig.savefig(ctx.out / name, dpi=100)
    return name
