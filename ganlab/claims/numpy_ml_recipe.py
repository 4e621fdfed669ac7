"""Claim 9: the WGAN-GP recipe of numpy-ml's tutorial model trains stably without tuning.

numpy-ml (ddbourgin/numpy-ml, ``numpy_ml/neural_nets/models/wgan_gp.py``) teaches WGAN-GP with one fixed
recipe: MLP generator and critic of 3 hidden ReLU layers x 512 units, He-uniform initialisation, RMSProp
1e-4 (decay 0.9), lambda = 10, 5 critic steps per generator step, batch 128. ganlab has it as the objective
preset ``numpy_ml`` (conf/objective/numpy_ml.yaml: the loss, penalty and optimizer, lambda = 10 on every
dataset) and the experiment ``numpy_ml`` (conf/experiment/numpy_ml.yaml: the network and batch); both
files cite the lines of numpy-ml they follow and the differences of ganlab's loop.

**Protocol.** The recipe is trained unchanged on two kinds of data, beside the WGAN-GP paper's settings:

* the 25 Gaussians (sweep ``numpy_ml_toy``), against the shared toy sweep's ``wgan_gp`` runs
  (:func:`ganlab.claims.sweeps.toy`: gan_toy.py's Adam 1e-4 (0.5, 0.9), lambda = 0.1, batch 256, ganlab's
  3 x 128 MLP), same seeds. The recipe's 512-wide networks cost ~8x the toy sweep's per step on a CPU, so
  in full mode it trains for 1000 of the toy sweep's 3000 steps and is compared with the ``wgan_gp`` runs'
  evaluation *at the same step* (read from their curves): the same budget in generator steps. Figures:
  the W1 ratio (``Metrics/w1_ratio``, exact W1 to the data over the W1 between two real sets; lower is
  better), modes covered and the share of high-quality samples;
* scikit-learn's digits at 16 x 16 px (sweeps ``numpy_ml_digits`` and ``numpy_ml_digits_paper``), where
  the recipe (z of the data's size, 256, as numpy-ml draws it) meets the WGAN-GP paper's MNIST settings
  (gan_mnist.py: Adam 1e-4 (0.5, 0.9), lambda = 10, 5 critic steps, batch 50, z of 128) on the same
  3 x 512 He-uniform MLP. The paper's MNIST critic is a DCGAN-like convolutional net; a CPU run of ganlab's
  DCGAN with 5 critic steps takes ~10 min for 1500 steps, so both sides keep the recipe's MLP and the
  comparison is between the two training recipes on one network. Figure: the Fréchet classifier distance
  (``Metrics/fcd``, ganlab's own digits classifier; lower is better), at the last step; fewer steps and
  seeds than on the toy data (the CPU budget), said in :func:`settings`.

Per dataset and recipe: the IQM of the final quality over seeds with its 95% bootstrap interval, the
share of runs that diverged (a non-finite loss stopped them) or failed, and a stability figure, the
**worst setback**: over the evaluations in the second half of the run, the largest relative rise of the
(lower-is-better) quality metric from one evaluation to the next, max(0, q[i+1] / q[i] - 1). A run that
keeps improving scores 0; one whose metric doubles between two evaluations scores 1. Beside them
the probability that a recipe run beats a paper run, with its interval and the exact two-sided
Mann-Whitney test (``ganlab.compare.stats``).

**Verdict** ("trains stably without tuning"): held when no recipe run diverged or failed, and on each
dataset neither its final quality nor its worst setback is significantly worse than the paper settings'
(p < :data:`ALPHA`); did not hold when a recipe run diverged or failed, or one of them is significantly
worse; inconclusive when the runs are too few for the test to reach p < :data:`ALPHA` at all (e.g.
3 seeds against 3) or too few finished. "Not significantly worse" is the claim's own bar: the recipe need
not beat the paper, only train as well at the paper's budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as PlotFigure
from scipy.special import comb

from ganlab.claims.base import Check, Context, Figure, Outcome, Sweep
from ganlab.claims.sweeps import QUICK_RUN, run_budget, seeds, sweep_values, toy
from ganlab.compare.curves import seed_band
from ganlab.compare.runs import DIVERGED, FAILED, FINISHED, UNFINISHED, Run
from ganlab.compare.scalars import Series, read_scalars
from ganlab.compare.stats import improvement_interval, improvement_test, probability_of_improvement, summarize

NUMBER = 9
SLUG = "numpy_ml_recipe"
TITLE = "The numpy-ml WGAN-GP recipe trains stably without tuning"
SOURCE = ("numpy-ml (ddbourgin/numpy-ml), numpy_ml/neural_nets/models/wgan_gp.py (WGAN_GP: 512 hidden units, "
          "he_uniform, RMSProp(lr=0.0001); fit: batchsize=128, c_updates_per_epoch=5) and losses.py "
          "(WGAN_GPLoss, lambda_=10); compared with Gulrajani et al. 2017's settings (gan_toy.py, gan_mnist.py)")
STATEMENT = ("numpy-ml's fixed WGAN-GP recipe (MLP 3 x 512, He-uniform, RMSProp 1e-4, lambda = 10, 5 critic steps, "
             "batch 128) trains stably on new data without any tuning: no run diverges, and its quality is not "
             "worse than the WGAN-GP paper's own settings on the toy data and on digits.")

# ---- Thresholds: fixed before the full run; never tuned after it.
MAX_BAD_SHARE = 0.0  # share of recipe runs that may diverge or fail: "stably" allows none
ALPHA = 0.05  # "significantly worse": the exact two-sided Mann-Whitney U test at the conventional 5% level
SETBACK_WINDOW = 0.5  # the worst setback is taken over the evaluations after this share of the run's steps

TOY_DATASET = "gaussians25"  # the toy sweep's harder dataset; the 8-Gaussian ring too would double the recipe's runs
RECIPE, PAPER = "numpy_ml", "wgan_gp"
TOY_SWEEP, DIGITS_SWEEP, DIGITS_PAPER_SWEEP = "numpy_ml_toy", "numpy_ml_digits", "numpy_ml_digits_paper"
W1_RATIO, MODES, HIGH_QUALITY, FCD = "Metrics/w1_ratio", "Metrics/modes_covered", "Metrics/high_quality", "Metrics/fcd"
ACCURACY = "Metrics/classifier_accuracy"
PAPER_DIGITS = {"batch_size": 50, "z_dim": 128}  # gan_mnist.py lines 24 and 56 (BATCH_SIZE, noise of 128)


def settings(mode: str) -> dict[str, Any]:
    """Every setting of the protocol at ``mode`` (quick | full | gpu), JSON-serialisable.

    full: the recipe's toy runs train 1000 steps (the toy sweep's 3000 cut: a 512-wide run takes ~6 min of one
    core for 1000 steps, ~8x the toy sweep's 3 x 128 per step) and are compared with the toy sweep's wgan_gp at
    step 1000; digits: 4 seeds x 600 steps per recipe (~12 core-minutes for both sides). Together ~45
    core-minutes: ~28 min with two jobs at once (5 toy runs take three rounds).

    Raises:
        KeyError: an unknown mode.
    """
    toy_steps = {"quick": 24, "full": 1000, "gpu": 20000}[mode]
    toy_eval = {"quick": 8, "full": 250, "gpu": 1000}[mode]  # the toy sweep's eval_every: its curves hold step toy_steps
    digits = {
        "quick": dict(seeds=2, steps=24, eval_every=8, eval_samples=200, resolution=8),
        "full": dict(seeds=4, steps=600, eval_every=100, eval_samples=2000, resolution=16),
        "gpu": dict(seeds=10, steps=5000, eval_every=500, eval_samples=2000, resolution=16),
    }[mode]
    resolution = digits["resolution"]
    return {
        "recipe": {
            "objective": "numpy_ml (Wasserstein + gp, lambda 10 on every dataset, RMSProp 1e-4 decay 0.9, 5 critic steps)",
            "model": "mlp 3 x 512, relu, he_uniform", "batch_size": 128, "z_dim": "the data's dimension (2; digits: pixels)",
        },
        "toy": {
            "dataset": TOY_DATASET, "seeds": list(seeds(mode)), "steps": toy_steps, "eval_every": toy_eval,
            "paper": f"sweep toy, objective={PAPER} (Adam 1e-4 (0.5, 0.9), lambda 0.1, batch 256, mlp 3 x 128), "
                     f"evaluated at step {toy_steps}",
            "metric": W1_RATIO, "also": [MODES, HIGH_QUALITY],
        },
        "digits": {
            **digits, "seeds": list(range(digits["seeds"])), "recipe_z_dim": resolution * resolution,
            "paper": {"objective": PAPER, "optimizer": "Adam 1e-4 (0.5, 0.9)", "lambda": 10, "n_critic": 5, **PAPER_DIGITS,
                      "model": "the recipe's mlp 3 x 512, he_uniform"},
            "metric": FCD,
        },
        "thresholds": {"max_bad_share": MAX_BAD_SHARE, "alpha": ALPHA, "setback_window": SETBACK_WINDOW},
    }


def _budget(steps: int, eval_every: int, eval_samples: int, mode: str) -> dict[str, str]:
    if mode == "quick":
        return dict(o.split("=", 1) for o in QUICK_RUN)
    return {"steps": str(steps), "eval_every": str(eval_every), "eval_samples": str(eval_samples)}


def _overrides(values: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{k}={v}" for k, v in values.items())


def recipe_toy(mode: str) -> Sweep:
    """The recipe (experiment=numpy_ml) on the 25 Gaussians over the toy sweep's seeds."""
    s = settings(mode)["toy"]
    budget = _budget(s["steps"], s["eval_every"], 2500, mode)
    toy_steps = int(dict(o.split("=", 1) for o in run_budget(mode))["steps"])
    if s["steps"] > toy_steps:
        raise ValueError(f"the recipe's {s['steps']} toy steps must lie within the toy sweep's {toy_steps}: it is compared at that step")
    return Sweep(TOY_SWEEP, _overrides({"experiment": RECIPE, "dataset": TOY_DATASET, "seed": sweep_values(s["seeds"]), **budget}))


def _digits_budget(mode: str) -> dict[str, str]:
    d = settings(mode)["digits"]
    return {"dataset": "digits", "dataset.resolution": str(d["resolution"]), "seed": sweep_values(d["seeds"]),
            **_budget(d["steps"], d["eval_every"], d["eval_samples"], mode), "sample_every": str(d["steps"])}


def recipe_digits(mode: str) -> Sweep:
    """The recipe on digits, z of the image's size (numpy-ml: noise of the data's shape)."""
    d = settings(mode)["digits"]
    return Sweep(DIGITS_SWEEP, _overrides({"experiment": RECIPE, **_digits_budget(mode), "model.z_dim": str(d["recipe_z_dim"])}))


def paper_digits(mode: str) -> Sweep:
    """The WGAN-GP paper's MNIST settings (wgan_gp preset, batch 50, z of 128) on the recipe's MLP."""
    budget = _digits_budget(mode)
    values = {"objective": PAPER, "model": "mlp", "model.width": "512", "model.depth": "3", "model.init": "he_uniform",
              **budget, "model.z_dim": str(PAPER_DIGITS["z_dim"]), "batch_size": str(PAPER_DIGITS["batch_size"])}
    if mode == "quick":
        values.update({"model.width": budget["model.width"], "batch_size": budget["batch_size"]})
    return Sweep(DIGITS_PAPER_SWEEP, _overrides(values))


def sweeps(mode: str) -> list[Sweep]:
    return [toy(mode), recipe_toy(mode), recipe_digits(mode), paper_digits(mode)]


# ------------------------------------------------------------------------------------ the runs


@dataclass
class RunResult:
    """One run, read at ``step``: its state there, its quality (NaN when it diverged before), the extra
    metrics, its quality curve up to ``step`` and its worst setback."""

    status: str  # finished (reached the step) | diverged | failed | unfinished
    quality: float = math.nan
    extra: dict[str, float] = field(default_factory=dict)
    curve: Series | None = None
    setback: float = math.nan
    reason: str = ""


def worst_setback(steps: np.ndarray, values: np.ndarray, last_step: int, window: float = SETBACK_WINDOW) -> float:
    """The largest relative rise of a lower-is-better metric between consecutive evaluations after
    ``window * last_step``: max(0, max_i values[i+1] / values[i] - 1) over those evaluations.

    ``steps`` (n,) increasing, ``values`` (n,) positive. NaN with fewer than 2 evaluations in the window;
    inf when a value in the window is not finite (the run lost its quality altogether).
    """
    kept = values[(steps > window * last_step) & (steps <= last_step)]
    if kept.size < 2:
        return math.nan
    if not np.isfinite(kept).all():
        return math.inf
    return float(max(0.0, np.max(kept[1:] / kept[:-1] - 1.0)))


def read_run_at(run: Run, metric: str, step: int, extra: tuple[str, ...] = ()) -> RunResult:
    """``run``'s ``metric`` (and ``extra``) at ``step`` from its TensorBoard curves.

    A run that diverged before ``step`` has NaN quality (worse than any: a divergence is not hidden); one
    that diverged after it counts as having reached it. Failed and unfinished runs come back without values.
    """
    if run.status not in (FINISHED, DIVERGED):
        return RunResult(run.status, reason=run.reason)
    curves = read_scalars(run.path, [metric, *extra])
    curve = curves.get(metric)
    if curve is None or step not in curve.steps:
        if run.status == DIVERGED:
            return RunResult(DIVERGED, reason=run.reason)
        return RunResult(UNFINISHED, reason=f"no {metric} at step {step} (its steps: {run.config.get('steps')})")
    index = int(np.searchsorted(curve.steps, step))
    kept = Series(curve.steps[:index + 1], curve.values[:index + 1])
    values = {tag: float(c.values[np.searchsorted(c.steps, step)]) for tag, c in curves.items() if tag != metric and step in c.steps}
    quality = float(kept.values[-1])
    status = FINISHED if math.isfinite(quality) else DIVERGED
    return RunResult(status, quality, values, kept, worst_setback(kept.steps, kept.values, step))


def is_paper_toy(run: Run) -> bool:
    return run.choices.get("objective") == PAPER and run.dataset == TOY_DATASET


# ------------------------------------------------------------------------------------ the verdict


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p-value the exact Mann-Whitney U test can give for n and m runs (no ties):
    2 / C(n + m, n), e.g. 0.1 for 3 and 3, 0.029 for 4 and 4, 0.0079 for 5 and 5."""
    return min(1.0, 2.0 / comb(n + m, n, exact=True)) if n and m else 1.0


def not_worse_check(what: str, recipe: list[float], paper: list[float], alpha: float = ALPHA) -> tuple[Check, float, float | None]:
    """Passed when the recipe's runs are not significantly worse than the paper's (lower values are better;
    NaN counts as worst): failed when P(recipe better) < 0.5 with the exact two-sided Mann-Whitney p < alpha;
    undecided when the runs are too few for any p < alpha. Returns the check, P(recipe better) and p."""
    if not recipe or not paper:
        return Check(what, None, f"{len(recipe)} recipe and {len(paper)} paper runs: nothing to compare"), math.nan, None
    p_better = probability_of_improvement([recipe], [paper], higher_is_better=False)
    p_value = improvement_test([recipe], [paper], higher_is_better=False)
    detail = f"P(recipe better) = {p_better:.2f}, p = {p_value:.3g}"
    if p_better < 0.5 and p_value < alpha:
        return Check(what, False, f"{detail} < {alpha:g}: significantly worse"), p_better, p_value
    floor = smallest_p(len(recipe), len(paper))
    if floor >= alpha:
        return Check(what, None, f"{detail}; {len(recipe)} vs {len(paper)} runs cannot reach p < {alpha:g} "
                                 f"(smallest p {floor:.3g})"), p_better, p_value
    return Check(what, True, f"{detail}: not significantly worse at {alpha:g}"), p_better, p_value


def bad_runs_check(bad: int, counted: int) -> Check:
    """Passed when the share of recipe runs that diverged or failed is at most :data:`MAX_BAD_SHARE`."""
    what = "recipe runs that diverged or failed (all data)"
    if counted == 0:
        return Check(what, None, "no recipe run finished, diverged or failed")
    share = bad / counted
    return Check(what, share <= MAX_BAD_SHARE, f"{bad} of {counted} ({share:.0%}) {'<=' if share <= MAX_BAD_SHARE else '>'} {MAX_BAD_SHARE:.0%}")


def iqm_figure(name: str, values: list[float], unit: str = "") -> Figure:
    """The IQM over runs of ``values`` with its 95% bootstrap interval (non-finite values left out and counted)."""
    summary = summarize([values])
    interval = f"IQM, 95% bootstrap ({summary.iqm_ci.method}) over {summary.n} runs"
    if summary.n_nonfinite:
        interval += f", {summary.n_nonfinite} non-finite left out"
    low, high = summary.iqm_ci.low, summary.iqm_ci.high
    return Figure(name, summary.iqm, None if math.isnan(low) else low, None if math.isnan(high) else high, unit, interval)


# -------------------------------------------------------------------------------------- measure


@dataclass
class Side:
    """One recipe on one dataset: its runs read at the comparison step."""

    dataset: str
    recipe: str
    metric: str
    results: list[RunResult]

    def counted(self) -> list[RunResult]:
        """Runs that reached the step or diverged (failed and unfinished ones are skipped)."""
        return [r for r in self.results if r.status in (FINISHED, DIVERGED)]

    def qualities(self) -> list[float]:
        return [r.quality for r in self.counted()]

    def setbacks(self) -> list[float]:
        """Worst setbacks of the runs that have one; a diverged run's is inf (the worst)."""
        return [math.inf if r.status == DIVERGED else r.setback for r in self.counted() if r.status == DIVERGED or not math.isnan(r.setback)]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


def measure(ctx: Context) -> Outcome:
    s = settings(ctx.mode)
    toy_step, digits_step = s["toy"]["steps"], s["digits"]["steps"]
    ctx.progress("reading the recipe's and the paper settings' runs (curves from TensorBoard)")
    sides = {
        ("toy", RECIPE): Side(TOY_DATASET, RECIPE, W1_RATIO, [read_run_at(r, W1_RATIO, toy_step, (MODES, HIGH_QUALITY))
                                                              for r in ctx.runs(TOY_SWEEP) if r.dataset == TOY_DATASET]),
        ("toy", PAPER): Side(TOY_DATASET, PAPER, W1_RATIO, [read_run_at(r, W1_RATIO, toy_step, (MODES, HIGH_QUALITY))
                                                            for r in ctx.runs(toy(ctx.mode)) if is_paper_toy(r)]),
        ("digits", RECIPE): Side("digits", RECIPE, FCD, [read_run_at(r, FCD, digits_step, (ACCURACY,)) for r in ctx.runs(DIGITS_SWEEP)]),
        ("digits", PAPER): Side("digits", PAPER, FCD, [read_run_at(r, FCD, digits_step, (ACCURACY,)) for r in ctx.runs(DIGITS_PAPER_SWEEP)]),
    }
    ctx.progress("statistics over seeds")
    figures: list[Figure] = []
    checks: list[Check] = []
    bad = sum(side.count(DIVERGED) + side.count(FAILED) for (_, who), side in sides.items() if who == RECIPE)
    counted = sum(len(side.counted()) + side.count(FAILED) for (_, who), side in sides.items() if who == RECIPE)
    checks.append(bad_runs_check(bad, counted))
    for data in ("toy", "digits"):
        recipe, paper = sides[(data, RECIPE)], sides[(data, PAPER)]
        label = f"{recipe.dataset} ({'W1 ratio' if recipe.metric == W1_RATIO else 'FCD'})"
        for side in (recipe, paper):
            figures += side_figures(side)
        check, p_better, p_value = not_worse_check(f"{label}: recipe's final quality not significantly worse than the paper's",
                                                   recipe.qualities(), paper.qualities())
        checks.append(check)
        if recipe.counted() and paper.counted():
            interval = improvement_interval([recipe.qualities()], [paper.qualities()], higher_is_better=False)
            figures.append(Figure(f"{recipe.dataset}: P(recipe run beats paper run), final quality", p_better,
                                  None if math.isnan(interval.low) else interval.low, None if math.isnan(interval.high) else interval.high,
                                  "", f"95% bootstrap ({interval.method}); exact Mann-Whitney p = {p_value:.3g}"))
        setback_check, _, _ = not_worse_check(f"{label}: recipe's worst setback not significantly larger than the paper's",
                                              recipe.setbacks(), paper.setbacks())
        checks.append(setback_check)
    ctx.progress("drawing")
    plots = [draw(ctx, sides)]
    quick = ["Quick mode: tiny networks (width 16, batch 32) and 24 steps on both sides: it checks the machinery, "
             "not the claim."] if ctx.mode == "quick" else []
    return Outcome(figures=figures, checks=checks, table=table(sides), plots=plots, notes=quick + notes(s, sides))


def side_figures(side: Side) -> list[Figure]:
    """The figures of one recipe on one dataset: final quality (IQM), extras, the share that diverged or
    failed, the worst setback."""
    name = f"{side.dataset}, {side.recipe}"
    metric = "W1 ratio" if side.metric == W1_RATIO else "FCD"
    out = [iqm_figure(f"{name}: final {metric}", side.qualities())]
    finished = [r for r in side.counted() if r.status == FINISHED]
    if side.metric == W1_RATIO:
        out.append(iqm_figure(f"{name}: modes covered (of 25)", [r.extra.get(MODES, math.nan) for r in finished]))
        out.append(iqm_figure(f"{name}: share of high-quality samples", [r.extra.get(HIGH_QUALITY, math.nan) for r in finished]))
    total = len(side.counted()) + side.count(FAILED)
    bad = side.count(DIVERGED) + side.count(FAILED)
    out.append(Figure(f"{name}: share of runs diverged or failed", bad / total if total else math.nan,
                      unit=f"of {total} runs", interval=f"{side.count(DIVERGED)} diverged, {side.count(FAILED)} failed, "
                                                        f"{side.count(UNFINISHED)} unfinished (skipped)"))
    out.append(iqm_figure(f"{name}: worst setback in the second half", [r.setback for r in finished]))
    return out


def table(sides: dict[tuple[str, str], Side]) -> str:
    rows = ["| data | recipe | runs: reached / diverged / failed / skipped | final quality, IQM | modes, IQM | high quality, IQM "
            "| worst setback, IQM |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for side in sides.values():
        finished = [r for r in side.counted() if r.status == FINISHED]
        modes = iqm_figure("", [r.extra.get(MODES, math.nan) for r in finished]).text() if side.metric == W1_RATIO else "-"
        hq = iqm_figure("", [r.extra.get(HIGH_QUALITY, math.nan) for r in finished]).text() if side.metric == W1_RATIO else "-"
        quality = iqm_figure("", side.qualities()).text()
        metric = "W1 ratio" if side.metric == W1_RATIO else "FCD"
        rows.append(f"| {side.dataset} | {side.recipe} | {side.count(FINISHED)} / {side.count(DIVERGED)} / {side.count(FAILED)} / "
                    f"{side.count(UNFINISHED)} | {metric} {quality} | {modes} | {hq} | "
                    f"{iqm_figure('', [r.setback for r in finished]).text()} |")
    return "\n".join(rows)


def notes(s: dict[str, Any], sides: dict[tuple[str, str], Side]) -> list[str]:
    toy_s, digits_s = s["toy"], s["digits"]
    out = [
        f"Toy data: the recipe trains {toy_s['steps']} steps on {TOY_DATASET} over seeds {toy_s['seeds']}; the paper side is the "
        f"shared toy sweep's wgan_gp runs (same seeds) read at step {toy_s['steps']} from their curves, so both had the same "
        "number of generator steps. The paper side is gan_toy.py's recipe (Adam 1e-4 (0.5, 0.9), lambda 0.1, batch 256) on "
        "ganlab's 3 x 128 MLP (gan_toy.py: 3 x 512); the recipe keeps its lambda = 10 on the toy data, where conf/tuning/toy.yaml "
        "lowers the paper preset's to 0.1: \"without tuning\" means the recipe's own value.",
        f"Digits: {digits_s['resolution']} x {digits_s['resolution']} px, {len(digits_s['seeds'])} seeds x {digits_s['steps']} steps per "
        "recipe (the CPU budget: far from converged; the FCD still falls), evaluated every "
        f"{digits_s['eval_every']} steps on {digits_s['eval_samples']} samples. Both recipes train the same 3 x 512 He-uniform MLP "
        "(the paper's MNIST critic is convolutional); the paper side has gan_mnist.py's batch 50 and z of 128, the recipe "
        "numpy-ml's batch 128 and z of the image's size.",
        "Worst setback: the largest relative rise of the quality metric (lower is better) between consecutive evaluations "
        f"after {SETBACK_WINDOW:.0%} of the run; 0 for a run that keeps improving. A diverged run counts as the worst in the tests "
        "(non-finite quality and setback).",
        "numpy-ml's own training loop differs from WGAN-GP's Algorithm 1 (conf/objective/numpy_ml.yaml): its generator step "
        "passes -1/n straight into G's backward after G's stored inputs were flushed, so by a reading of the code its G gets "
        "no gradient from the critic; ganlab runs the recipe's settings in a correct WGAN-GP loop. Other differences: "
        "RMSProp's eps (1e-7 there, 1e-8 here), G's output (affine there; tanh on images here), unshuffled batches there.",
    ]
    skipped = sum(side.count(FAILED) + side.count(UNFINISHED) for side in sides.values() if side.recipe == PAPER)
    skipped += sum(side.count(UNFINISHED) for side in sides.values() if side.recipe == RECIPE)
    out.append(f"{skipped} run(s) were skipped (paper side failed, or unfinished on either side); failed recipe runs count against "
               "the recipe.")
    accuracy = [r.extra.get(ACCURACY) for key in (("digits", RECIPE), ("digits", PAPER)) for r in sides[key].counted() if r.extra.get(ACCURACY)]
    if accuracy:
        out.append(f"The digits classifier behind the FCD: accuracy {min(accuracy):.3f} on held-out digits.")
    return out


# ------------------------------------------------------------------------------------------ plots


def draw(ctx: Context, sides: dict[tuple[str, str], Side]) -> str:
    """quality.png: top, the quality over training per recipe (mean over seeds with a 95% t-band, cut at half the
    lowest mean on the log axis), one panel per dataset; bottom, each run's final quality (diverged runs marked at
    the top)."""
    fig = PlotFigure(figsize=(11, 8), layout="constrained")
    FigureCanvasAgg(fig)
    for column, data in enumerate(("toy", "digits")):
        curves_ax = fig.add_subplot(2, 2, column + 1)
        finals_ax = fig.add_subplot(2, 2, column + 3)
        metric_name = "W1 ratio" if data == "toy" else "FCD"
        finite = [q for who in (RECIPE, PAPER) for q in sides[(data, who)].qualities() if math.isfinite(q)]
        top = max(finite) * 1.2 if finite else 1.0
        for i, who in enumerate((RECIPE, PAPER)):
            side = sides[(data, who)]
            label = "numpy-ml recipe" if who == RECIPE else "paper settings (wgan_gp)"
            curves = [r.curve for r in side.counted() if r.status == FINISHED and r.curve is not None and len(r.curve)]
            if curves:
                band = seed_band(curves)
                curves_ax.plot(band.steps, band.mean, marker="o", markersize=3, color=f"C{i}", label=f"{label} ({len(curves)} runs)")
                floor = 0.5 * np.nanmin(band.mean)  # a log axis cannot show a t-band's end below 0
                curves_ax.fill_between(band.steps, np.maximum(band.lower, floor), band.upper, color=f"C{i}", alpha=0.2, linewidth=0)
            values = np.array(side.qualities(), dtype=float)
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(len(values))
            ok = np.isfinite(values)
            finals_ax.scatter(i + jitter[ok], values[ok], color=f"C{i}", label=f"{label}: {ok.sum()} runs")
            if (~ok).any():
                finals_ax.scatter(i + jitter[~ok], np.full((~ok).sum(), top), marker="x", color=f"C{i}", label=f"{label}: diverged")
        curves_ax.set_yscale("log")
        curves_ax.set_xlabel("generator step")
        curves_ax.set_ylabel(f"{metric_name} (lower is better)")
        curves_ax.set_title(f"{sides[(data, RECIPE)].dataset}: {metric_name} over training")
        curves_ax.grid(alpha=0.3)
        curves_ax.legend(fontsize="small")
        finals_ax.set_xticks([0, 1], ["numpy-ml recipe", "paper settings"])
        finals_ax.set_xlim(-0.6, 1.6)
        finals_ax.set_yscale("log")
        finals_ax.set_ylabel(f"final {metric_name}")
        finals_ax.set_title(f"{sides[(data, RECIPE)].dataset}: final {metric_name}, one point per seed")
        finals_ax.grid(alpha=0.3)
        finals_ax.legend(fontsize="small")
    fig.suptitle("numpy-ml's WGAN-GP recipe beside the WGAN-GP paper's settings")
    name = "quality.png"
    fig.savefig(ctx.out / name, dpi=100)
    return name

