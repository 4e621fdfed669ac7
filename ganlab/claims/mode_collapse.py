"""Claim 7: mode collapse. The original GAN covers fewer modes of a mixture than WGAN-GP and SN-GAN.

Sources: Metz et al. 2017 (Unrolled GAN), Sec. 3.1 and Fig. 1-2 (the ring of 8 Gaussians); Srivastava
et al. 2017 (VEEGAN), Sec. 5.1, Table 1 (ring and grid) and Table 2 (Stacked MNIST); Lin et al. 2018
(PacGAN), Table 1 (ring and grid) and Table 2 (Stacked MNIST).

Protocol: the final metrics of the shared toy sweep (:func:`ganlab.claims.sweeps.toy`: js, wgan_clip,
wgan_gp and spectral_norm on ``gaussians8``, the papers' "2D ring", and ``gaussians25``, their "2D
grid"). Every run scores ``eval_samples`` generated points (2500 in full mode, as VEEGAN and PacGAN)
with :mod:`ganlab.metrics.toy`: a sample is high quality within 3 standard deviations of its nearest
centre, a mode is covered by one high-quality sample, and ``mode_kl`` is KL(generated mode histogram ||
uniform), PacGAN's "reverse KL". Per objective and dataset: the mean over seeds with a 95% bootstrap
interval (:func:`ganlab.compare.stats.summarize`), beside the papers' rows (constants below).

The ring and grid have the papers' geometry relative to the noise: PacGAN's ring has radius 1 and
std 0.01 (neighbouring centres 77 std apart), ganlab's (the WGAN-GP toy data) radius sqrt(2) and std
0.02/1.414 (also 77 std); PacGAN's grid spacing 2 and std 0.05 (40 std), ganlab's the same divided by
2.828. The networks, optimisers, steps and losses are not theirs (:func:`notes`).

Stacked MNIST (1000 modes) runs only where the MNIST files are present and the mode is ``gpu``:
a DCGAN on 32 x 32 x 3 images for 3 objectives and 10 seeds does not fit the CPU budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as PlotFigure

from ganlab.claims.base import Check, Context, Figure, Outcome, Sweep
from ganlab.claims.sweeps import TOY_OBJECTIVES, run_budget, seeds, sweep_values, toy
from ganlab.compare.runs import FINISHED, Run
from ganlab.compare.stats import improvement_test, probability_of_improvement, summarize

NUMBER = 7
SLUG = "mode_collapse"
TITLE = "Mode collapse: the original GAN covers fewer modes than WGAN-GP and SN-GAN"
SOURCE = ("Metz et al. 2017, Unrolled GANs, Sec. 3.1; Srivastava et al. 2017, VEEGAN, Sec. 5.1, Tables 1-2; "
          "Lin et al. 2018, PacGAN, Tables 1-2")
STATEMENT = ("Trained on a mixture of well separated Gaussians, the original (JS) GAN's generator puts its samples on "
             "fewer of the mixture's modes than a generator trained against a Lipschitz critic (WGAN-GP's gradient "
             "penalty, SN-GAN's spectral normalisation), which spreads them over (nearly) all modes.")

# Verdict thresholds: fixed before the full run; never tuned after it.
ALPHA = 0.05  # two-sided Mann-Whitney test of js's modes covered against each opponent's, per dataset (scipy: exact
              # without ties, the normal approximation with tied counts); 5 seeds each reach p = 0.008-0.012 at a
              # complete separation. No correction for the 4 comparisons: the verdict needs every one of them to
              # pass, which is stricter than any one.

BASELINE = "js"
OPPONENTS = ("wgan_gp", "spectral_norm")
METRICS = {"modes": "Metrics/modes_covered", "high_quality": "Metrics/high_quality", "kl": "Metrics/mode_kl"}
MODES_TOTAL = {"gaussians8": 8, "gaussians25": 25, "stacked_mnist": 1000}
PAPER_NAMES = {"gaussians8": "2D ring", "gaussians25": "2D grid", "stacked_mnist": "Stacked MNIST"}
STACKED_OBJECTIVES = ("js", "wgan_gp", "spectral_norm")
Key = tuple  # (dataset, objective, metric key) of the summaries


@dataclass(frozen=True)
class PaperRow:
    """One method's numbers in a paper's table: modes covered, high-quality share (%) and KL, NaN where not reported;
    ``spread``: what follows a value there (e.g. "± s.e. over 10 trials")."""

    source: str
    method: str
    dataset: str
    modes: float
    high_quality: float = math.nan
    kl: float = math.nan
    spread: str = ""


# The papers' rows, as printed (PacGAN: github.com/fjxmlzn/PacGAN results/Table1.png and Table2.png, mean ± standard
# error over 10 trials, the standard errors in `spread`; VEEGAN: akashgit/VEEGAN tab.png, the average of 5 runs).
_PACGAN_T1 = "PacGAN (Lin et al. 2018), Table 1"
_PACGAN_T2 = "PacGAN (Lin et al. 2018), Table 2"
_VEEGAN_T1 = "VEEGAN (Srivastava et al. 2017), Table 1"
_VEEGAN_T2 = "VEEGAN (Srivastava et al. 2017), Table 2"
PAPER_ROWS = (
    PaperRow(_PACGAN_T1, "GAN", "gaussians8", 6.3, 98.2, 0.45, "± 0.5, 0.2, 0.09"),
    PaperRow(_PACGAN_T1, "ALI", "gaussians8", 6.6, 97.6, 0.36, "± 0.3, 0.4, 0.04"),
    PaperRow(_PACGAN_T1, "PacGAN2", "gaussians8", 7.9, 95.6, 0.07, "± 0.1, 2.0, 0.03"),
    PaperRow(_PACGAN_T1, "PacGAN3", "gaussians8", 7.8, 97.7, 0.10, "± 0.1, 0.3, 0.02"),
    PaperRow(_PACGAN_T1, "PacGAN4", "gaussians8", 7.8, 95.9, 0.07, "± 0.1, 1.4, 0.02"),
    PaperRow(_PACGAN_T1, "GAN", "gaussians25", 17.3, 94.8, 0.70, "± 0.8, 0.7, 0.07"),
    PaperRow(_PACGAN_T1, "ALI", "gaussians25", 24.1, 95.7, 0.14, "± 0.4, 0.6, 0.03"),
    PaperRow(_PACGAN_T1, "PacGAN2", "gaussians25", 23.8, 91.3, 0.13, "± 0.7, 0.8, 0.04"),
    PaperRow(_PACGAN_T1, "PacGAN3", "gaussians25", 24.6, 94.2, 0.06, "± 0.4, 0.4, 0.02"),
    PaperRow(_PACGAN_T1, "PacGAN4", "gaussians25", 24.8, 93.6, 0.04, "± 0.2, 0.6, 0.01"),
    PaperRow(_VEEGAN_T1, "GAN", "gaussians8", 1, 99.3),
    PaperRow(_VEEGAN_T1, "ALI", "gaussians8", 2.8, 0.13),
    PaperRow(_VEEGAN_T1, "Unrolled GAN", "gaussians8", 7.6, 35.6),
    PaperRow(_VEEGAN_T1, "VEEGAN", "gaussians8", 8, 52.9),
    PaperRow(_VEEGAN_T1, "GAN", "gaussians25", 3.3, 0.5),
    PaperRow(_VEEGAN_T1, "ALI", "gaussians25", 15.8, 1.6),
    PaperRow(_VEEGAN_T1, "Unrolled GAN", "gaussians25", 23.6, 16),
    PaperRow(_VEEGAN_T1, "VEEGAN", "gaussians25", 24.6, 40),
    PaperRow(_VEEGAN_T2, "DCGAN", "stacked_mnist", 99, kl=3.4),
    PaperRow(_VEEGAN_T2, "ALI", "stacked_mnist", 16, kl=5.4),
    PaperRow(_VEEGAN_T2, "Unrolled GAN", "stacked_mnist", 48.7, kl=4.32),
    PaperRow(_VEEGAN_T2, "VEEGAN", "stacked_mnist", 150, kl=2.95),
    PaperRow(_PACGAN_T2, "DCGAN (their implementation)", "stacked_mnist", 78.9, kl=4.50, spread="± 6.46, 0.127"),
    PaperRow(_PACGAN_T2, "PacDCGAN2", "stacked_mnist", 1000, kl=0.06, spread="± 0.00, 0.003"),
    PaperRow(_PACGAN_T2, "PacDCGAN4", "stacked_mnist", 1000, kl=0.07, spread="± 0.00, 0.005"),
)


def mnist_files_present() -> bool:
    """Whether the four MNIST idx files are where ganlab's datasets look (``$GANLAB_DATA`` or ~/.cache/ganlab/data).
    Imports torchvision (seconds): called in gpu mode only."""
    from ganlab.data.images import resolve_root
    from ganlab.data.mnist import IDX_FILES

    raw = resolve_root(None) / "MNIST" / "raw"
    return all((raw / name).is_file() for name in IDX_FILES)


def settings(mode: str) -> dict[str, Any]:
    """The sweeps read, the metrics' definition and the comparison at ``mode`` (quick | full | gpu).

    Raises:
        KeyError: an unknown mode.
    """
    stacked = stacked_mnist_runs(mode)
    return {
        "sweep": {"name": "toy", "objectives": list(TOY_OBJECTIVES), "datasets": ["gaussians8", "gaussians25"],
                  "seeds": list(seeds(mode)), "budget": list(run_budget(mode))},
        "metrics": {"samples": "eval_samples of the budget (2500 in full and gpu mode, as VEEGAN/PacGAN)",
                    "high_quality": "within 3 standard deviations of the nearest centre (ganlab.metrics.toy)",
                    "covered": "at least one high-quality sample", "kl": "KL(generated mode histogram || uniform)"},
        "comparison": {"baseline": BASELINE, "opponents": list(OPPONENTS), "test": "two-sided Mann-Whitney (scipy.stats.mannwhitneyu) on modes covered, per dataset",
                       "alpha": ALPHA},
        "stacked_mnist": stacked,
        "stacked_mnist_sweep": list(stacked_sweep(mode).overrides) if stacked else None,
    }


def stacked_mnist_runs(mode: str) -> bool:
    """Stacked MNIST is part of the claim in gpu mode where the MNIST files are present."""
    return mode == "gpu" and mnist_files_present()


def stacked_sweep(mode: str) -> Sweep:
    """js, wgan_gp and spectral_norm on Stacked MNIST with ganlab's CPU-sized DCGAN (experiment=digits_dcgan), 10k steps,
    26,000 samples scored at the end (VEEGAN, Sec. 5.2)."""
    return Sweep("stacked_mnist", (
        "experiment=digits_dcgan", "dataset=stacked_mnist", f"objective={sweep_values(STACKED_OBJECTIVES)}",
        f"seed={sweep_values(seeds(mode))}", "steps=10000", "eval_every=10000", "eval_samples=26000", "sample_every=2500",
    ))


def sweeps(mode: str) -> list[Sweep]:
    return [toy(mode)] + ([stacked_sweep(mode)] if stacked_mnist_runs(mode) else [])


# ------------------------------------------------------------------------------ the measurement


def final_values(runs: list[Run], metric: str) -> dict[tuple[str, str], list[float]]:
    """The finished runs' final ``metric`` by (dataset, objective), in run order (NaN where a run recorded none)."""
    out: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        if run.status == FINISHED:
            out.setdefault((run.dataset, str(run.choices.get("objective"))), []).append(run.final.get(metric, math.nan))
    return out


def mean_figure(name: str, values: list[float], unit: str = "") -> Figure:
    """The mean of ``values`` over seeds with its 95% bootstrap interval (ends None when there is none)."""
    s = summarize([values])
    low, high = s.mean_ci.low, s.mean_ci.high
    return Figure(name, s.mean, None if math.isnan(low) else low, None if math.isnan(high) else high, unit,
                  f"mean, 95% bootstrap ({s.mean_ci.method}) over {s.n} seeds" + (f"; {s.n_nonfinite} non-finite left out" if s.n_nonfinite else ""))


def fewer_modes_check(dataset: str, opponent: str, js: list[float], other: list[float]) -> tuple[Check, Figure]:
    """Whether js covers fewer modes than ``opponent`` on ``dataset``: passed when js's mean is lower and the
    Mann-Whitney test (:func:`ganlab.compare.stats.improvement_test`) gives p < ALPHA; failed when js's mean is as high or higher; undecided otherwise (fewer, not
    significantly, or no runs). Returns the check and the figure P(opponent covers more than js) with the p-value."""
    what = f"{dataset}: js covers fewer modes than {opponent}"
    name = f"{dataset}: P({opponent} covers more modes than js)"
    js_f, other_f = [v for v in js if math.isfinite(v)], [v for v in other if math.isfinite(v)]
    if not js_f or not other_f:
        return Check(what, None, f"no finished runs (js {len(js_f)}, {opponent} {len(other_f)})"), Figure(name, math.nan)
    p = improvement_test([other], [js], higher_is_better=True)
    poi = probability_of_improvement([other], [js], higher_is_better=True)
    figure = Figure(name, poi, interval=f"two-sided Mann-Whitney p = {p:.3g}, {len(js_f)} vs {len(other_f)} seeds")
    m_js, m_other = float(np.mean(js_f)), float(np.mean(other_f))
    detail = f"mean {m_js:.3g} vs {m_other:.3g}, p = {p:.3g}"
    if m_js >= m_other:
        return Check(what, False, f"{detail}: js covers as many or more"), figure
    if p < ALPHA:
        return Check(what, True, f"{detail} < {ALPHA}"), figure
    return Check(what, None, f"{detail} >= {ALPHA}: fewer, not significantly"), figure


def summaries(values: dict[str, dict[tuple[str, str], list[float]]]) -> dict[Key, Figure]:
    """The mean [95% bootstrap interval] of every (dataset, objective, metric) that has finite values, computed once
    (each is a 10,000-resample bootstrap); high-quality shares in %."""
    out = {}
    for key, by_group in values.items():
        scale, unit = (100.0, "%") if key == "high_quality" else (1.0, "")
        for (dataset, objective), vals in by_group.items():
            finite = [scale * v for v in vals if math.isfinite(v)]
            if finite:
                label = {"modes": f"modes covered (of {MODES_TOTAL.get(dataset, '?')})", "high_quality": "high-quality samples",
                         "kl": "KL(mode histogram || uniform)"}[key]
                out[(dataset, objective, key)] = mean_figure(f"{dataset}, {objective}: {label}", finite, unit)
    return out


def measure(ctx: Context) -> Outcome:
    ctx.progress("reading the toy sweep's final mode coverage")
    runs = list(ctx.runs("toy"))
    stacked = stacked_mnist_runs(ctx.mode) and "stacked_mnist" in ctx.sweep_dirs
    if stacked:
        runs += ctx.runs("stacked_mnist")
    skipped = sum(r.status != FINISHED for r in runs)
    values = {key: final_values(runs, tag) for key, tag in METRICS.items()}
    datasets = [d for d in MODES_TOTAL if any(k[0] == d for k in values["modes"])]
    cells = summaries(values)

    figures, checks = [], []
    for dataset in datasets:
        figures += [cells[(dataset, o, key)] for o in TOY_OBJECTIVES for key in METRICS if (dataset, o, key) in cells]
        for opponent in OPPONENTS:
            check, figure = fewer_modes_check(dataset, opponent, values["modes"].get((dataset, BASELINE), []),
                                              values["modes"].get((dataset, opponent), []))
            checks.append(check)
            figures.append(figure)
    figures.append(Figure("runs skipped (not finished)", float(skipped)))

    ctx.progress("drawing the modes covered and the high-quality share")
    plot = draw(ctx, cells, datasets)
    return Outcome(figures=figures, checks=checks, table=table(cells, values, datasets), plots=[plot],
                   notes=notes(ctx.mode, skipped, stacked))


def _paper(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:g}"


def table(cells: dict[Key, Figure], values: dict[str, dict[tuple[str, str], list[float]]], datasets: list[str]) -> str:
    """The VEEGAN/PacGAN-style table: per dataset, modes covered, % high-quality samples and KL; ganlab's rows (mean
    [95% bootstrap interval] over seeds) first, then the papers' rows as printed (PacGAN's standard errors apart)."""
    blocks = []
    for dataset in datasets:
        rows = [f"**{PAPER_NAMES[dataset]} ({dataset})**", "",
                f"| source | method | seeds | modes (max {MODES_TOTAL[dataset]}) | high-quality samples (%) | KL to uniform | ± (s.e.) |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for objective in TOY_OBJECTIVES:
            if (dataset, objective) not in values["modes"]:
                continue
            text = [cells[(dataset, objective, k)].text().replace(" %", "") if (dataset, objective, k) in cells else "-" for k in METRICS]
            rows.append(f"| ganlab (this run) | {objective} | {len(values['modes'][(dataset, objective)])} | {' | '.join(text)} | |")
        for row in PAPER_ROWS:
            if row.dataset == dataset:
                rows.append(f"| {row.source} | {row.method} | {'10' if 'PacGAN' in row.source else '5'} | {_paper(row.modes)} | "
                            f"{_paper(row.high_quality)} | {_paper(row.kl)} | {row.spread} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def notes(mode: str, skipped: int, stacked: bool) -> list[str]:
    budget = dict(o.split("=", 1) for o in run_budget(mode))
    out = [
        f"ganlab's protocol: MLP 3 x 128 ReLU (He-uniform) for G and D, batch 256, {budget.get('steps')} generator steps, "
        f"{budget.get('eval_samples')} samples scored at the end, {len(seeds(mode))} seeds; each objective at its preset "
        "(js: Adam 2e-4 (0.5, 0.999), 1 D step; wgan_gp: lambda 0.1 on 2-D data, Adam 1e-4 (0.5, 0.9), 5 critic steps; "
        "spectral_norm: hinge loss, Adam 2e-4 (0, 0.9), 5 critic steps; wgan_clip: c = 0.01, RMSProp 5e-5, 5 steps).",
        "PacGAN's protocol (its code's config.py): G with 400 ReLU units a layer, a maxout critic of 200 units (5 pieces), "
        "Adam 1e-4 with beta1 0.8, batch 100, 400 epochs of 100,000 points (about 400k steps), 2500 samples, 10 trials "
        "(mean ± standard error). VEEGAN: 2500 samples, the average of 5 runs, its own architectures. Their 'GAN' is the "
        "original GAN like our js, but the two papers' GAN rows differ widely (17.3 vs 3.3 grid modes, 94.8% vs 0.5% "
        "high quality): the numbers depend on the protocol, so compare the ordering of the objectives, not the values.",
        "Our objectives are not theirs: neither paper ran WGAN-GP or SN-GAN on these tables; the papers' rows are the "
        "reference for what the original GAN does under their protocols.",
        "'mean [interval]' is the mean over seeds with a 95% bootstrap interval (BCa, or percentile where BCa is undefined); "
        "with 5 seeds these intervals undercover (ganlab.compare.stats: about 85% for a nominal 95%).",
        f"{skipped} run(s) skipped (not finished).",
    ]
    if stacked:
        out.append("Stacked MNIST: ganlab's CPU-sized DCGAN (experiment=digits_dcgan: width 32, batch 64, G_ema 0.999), 10k steps, "
                   "26,000 samples classified per channel by ganlab's own MNIST classifier; VEEGAN and PacGAN use larger "
                   "DCGANs and a pretrained classifier.")
    elif mode == "gpu":
        out.append("Stacked MNIST did not run: the MNIST files are not under $GANLAB_DATA or ~/.cache/ganlab/data/MNIST/raw "
                   "(nothing can be downloaded here); put the four idx files there to include it.")
    else:
        out.append(f"Stacked MNIST did not run: it runs in gpu mode only (a DCGAN on 32 x 32 x 3 images for 3 objectives x "
                   f"seeds does not fit the {mode} budget), and only where the MNIST files are present (nothing can be "
                   "downloaded here).")
    return out


def draw(ctx: Context, cells: dict[Key, Figure], datasets: list[str]) -> str:
    """mode_collapse.png: per dataset, bars of the mean modes covered (top) and high-quality share (bottom) per
    objective with their 95% bootstrap intervals, the dataset's number of modes and the papers' GAN rows as lines."""
    fig = PlotFigure(figsize=(5 * max(len(datasets), 1), 8), layout="constrained")
    FigureCanvasAgg(fig)
    for j, dataset in enumerate(datasets or ["(none)"]):
        for i, (key, label) in enumerate((("modes", "modes covered"), ("high_quality", "high-quality samples (%)"))):
            ax = fig.add_subplot(2, max(len(datasets), 1), i * max(len(datasets), 1) + j + 1)
            names, means, errors = [], [], [[], []]
            for objective in TOY_OBJECTIVES:
                f = cells.get((dataset, objective, key))
                if f is None:
                    continue
                names.append(objective)
                means.append(f.value)
                errors[0].append(f.value - f.low if f.low is not None else 0.0)
                errors[1].append(f.high - f.value if f.high is not None else 0.0)
            x = np.arange(len(names))
            ax.bar(x, means, yerr=np.array(errors) if names else None, capsize=4,
                   color=[f"C{TOY_OBJECTIVES.index(n)}" for n in names], label="ganlab, mean and 95% bootstrap interval")
            ax.set_xticks(x, names)
            if key == "modes" and dataset in MODES_TOTAL:
                ax.axhline(MODES_TOTAL[dataset], color="black", linestyle=":", label=f"all {MODES_TOTAL[dataset]} modes")
            for k, row in enumerate(r for r in PAPER_ROWS if r.dataset == dataset and r.method == "GAN"):
                reference = row.modes if key == "modes" else row.high_quality
                if math.isfinite(reference):
                    ax.axhline(reference, color=f"C{5 + k}", linestyle="--", label=f"GAN in {row.source.split(',')[0]}: {reference:g}")
            ax.set_ylabel(label)
            ax.set_title(f"{PAPER_NAMES.get(dataset, dataset)} ({dataset}): {label}")
            ax.grid(alpha=0.3, axis="y")
            ax.legend(fontsize="x-small")
    fig.suptitle("Mode coverage at the end of training, per objective (bars: mean over seeds, whiskers: 95% bootstrap)")
    name = "mode_collapse.png"
    fig.savefig(ctx.out / name, dpi=100)
    return name
