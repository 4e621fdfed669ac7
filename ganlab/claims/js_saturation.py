"""Claim 2: once the supports stop overlapping, the (nearly) optimal JS discriminator's loss sits at
its floor whatever the distance, while a WGAN-GP critic's estimate keeps tracking the distance.

Protocol (Arjovsky et al. 2017, Example 1 and Fig. 2; Arjovsky & Bottou 2017, Sec. 2): real =
the 8 Gaussians (:class:`ganlab.data.toy.Gaussians8`), fake = the same distribution translated by
d along a fixed direction, for shifts d from 0 to twice the ring's diameter. A translation moves
every point by d, so the exact W1 between the two is d (Example 1's W(P_0, P_theta) = |theta|;
:func:`ganlab.metrics.ot.wasserstein1` of a set and its translate gives the same, see the tests).
For each d and seed, from the same initial weights and the same data stream:

* a discriminator trained with the JS loss (:func:`ganlab.objectives.losses.js.js_critic`); its
  loss on held-out points is 2 log 2 - 2 JS(P_r, P_f) at the optimum: 2 log 2 at d = 0, and 0
  (its floor) once the supports are disjoint, for every larger d;
* a critic trained with the Wasserstein loss and ganlab's gradient penalty
  (:class:`ganlab.objectives.constraints.gradient_penalty.GradientPenalty`, lambda = 10); its
  estimate E[D(real)] - E[D(fake)] on held-out points.

"Separated" shifts are computed, not chosen: those where every translated mode centre lies more
than :data:`SEPARATED_SIGMAS` standard deviations from every original centre.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as PlotFigure
from scipy import stats

from ganlab.claims.base import Context, Figure, Outcome, Sweep, above, below
from ganlab.claims.critic import band, fit_critic, mean_figure, scores, seeded_generator
from ganlab.data.toy import Gaussians8
from ganlab.models.mlp import build_mlp
from ganlab.objectives.constraints.gradient_penalty import GradientPenalty
from ganlab.objectives.losses.js import js_critic
from ganlab.objectives.losses.wasserstein import wasserstein_critic
from ganlab.precision import Precision

NUMBER = 2
SLUG = "js_saturation"
TITLE = "The JS discriminator's loss saturates once the supports are disjoint; the Wasserstein estimate tracks the distance"
SOURCE = ("Arjovsky, Chintala & Bottou 2017 (WGAN), Sec. 2, Example 1 and Fig. 2; Arjovsky & Bottou 2017, "
          "Sec. 2 (Theorems 2.1-2.3)")
STATEMENT = ("When the real and generated distributions have disjoint supports, an (almost) optimal discriminator's "
             "JS loss sits at its floor (the JS divergence at its maximum log 2) however far apart they are, so it "
             "says nothing about the distance; a Wasserstein critic's estimate E[D(real)] - E[D(fake)] keeps growing "
             "with the distance.")

LOG4 = 2 * math.log(2.0)  # the JS discriminator's loss when it cannot tell the two apart (JS = 0)

# The verdict's thresholds: fixed before the full run; never tuned after it.
SEPARATED_SIGMAS = 8.0  # a shift separates the supports when every translated centre is > 8 std from every centre:
# two such Gaussians share 2 Phi(-4) ~ 6e-5 of their mass, so JS = log 2 to that precision (Example 1's theta != 0).
FLOOR = 0.05 * LOG4  # the JS loss "at its floor" beyond the separating shift: below 5% of its range [0, 2 log 2],
# i.e. the JS divergence it implies within 5% of log 2; at the optimum it is exactly 0 (WGAN paper, Example 1), the
# 5% allows for a discriminator trained a finite number of steps. Flat follows: the loss is >= 0, so its range over
# those shifts is below the same 5% of 2 log 2 (reported as a figure).
RHO_MIN = 0.9  # the W estimate keeps increasing with d beyond the separating shift: Spearman's rho over those shifts
# above 0.9. W1 = d is strictly increasing (rho = 1); one swap of neighbouring shifts among 7 gives rho = 0.96.
DIRECTION = math.pi / 16  # the shift's angle: the ring's centre differences point at multiples of pi / 8
# (22.5 degrees), so a shift at 11.25 degrees never lands one mode on another (computed: separation()).
LAMBDA = 10.0  # the gradient penalty's weight: WGAN-GP, Alg. 1 (ganlab's gp default)


def settings(mode: str) -> dict[str, Any]:
    """Every setting of the protocol at ``mode`` (quick | full | gpu)."""
    common = {
        "dataset": "gaussians8",
        "direction_rad": DIRECTION,
        "depth": 3,
        "activation": "relu",
        "init": "he_uniform",
        "lr": 1e-3,  # both critics: a fit to (near) optimum against fixed sets, not a GAN's pace
        "betas_js": [0.5, 0.999],  # the js preset's betas (DCGAN paper)
        "betas_gp": [0.5, 0.9],  # gan_toy.py's betas for the WGAN-GP critic
        "gp_lambda": LAMBDA,
    }
    if mode == "quick":
        return {**common, "seeds": 2, "shifts": [0.0, 0.5, 2.0, 6.0], "width": 16, "batch_size": 32,
                "js_steps": 40, "gp_steps": 30, "eval_samples": 256}
    if mode == "full":
        return {**common, "seeds": 5, "shifts": [0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0], "width": 64,
                "batch_size": 128, "js_steps": 1000, "gp_steps": 800, "eval_samples": 4096}
    if mode == "gpu":
        return {**common, "seeds": 10, "shifts": [0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0],
                "width": 128, "batch_size": 256, "js_steps": 4000, "gp_steps": 4000, "eval_samples": 8192}
    raise ValueError(f"mode must be one of quick, full, gpu, got {mode!r}")


def sweeps(mode: str) -> list[Sweep]:
    """None: the protocol trains its own critics in :func:`measure`."""
    return []


def direction(device: torch.device | str = "cpu") -> torch.Tensor:
    """The unit vector (2,) of the shifts, at angle :data:`DIRECTION`."""
    return torch.tensor([math.cos(DIRECTION), math.sin(DIRECTION)], device=device)


def separation(data: Gaussians8, shift: float) -> float:
    """The smallest distance between a translated mode centre and any original centre, in units
    of the modes' standard deviation (inf for no centres)."""
    centers = data.centers.double().cpu()
    moved = centers + shift * direction().double()
    return float(torch.cdist(moved, centers).min() / data.std)


def fit_js(config: dict[str, Any], seed: int, shift: float, device: str) -> float:
    """The held-out JS loss of a discriminator trained with the JS loss against the data shifted by ``shift``."""
    D, data, real, fake, optimizer = _critic_setup(config, seed, shift, device, config["betas_js"])

    def loss(D, real_batch, fake_batch):
        return js_critic(*scores(D, real_batch, fake_batch))

    fit_critic(D, loss, real, fake, config["js_steps"], optimizer)
    real_eval, fake_eval = _held_out(config, data, seed, shift, device)
    with torch.no_grad():
        return float(js_critic(*scores(D, real_eval, fake_eval)))


def fit_wgan_gp(config: dict[str, Any], seed: int, shift: float, device: str) -> float:
    """The held-out estimate E[D(real)] - E[D(fake)] of a WGAN-GP critic trained against the data shifted by ``shift``."""
    D, data, real, fake, optimizer = _critic_setup(config, seed, shift, device, config["betas_gp"])
    gp = GradientPenalty(weight=config["gp_lambda"], every=1)
    precision = Precision("fp32", device)

    def loss(D, real_batch, fake_batch):
        return wasserstein_critic(*scores(D, real_batch, fake_batch)) + gp.penalty(D, real_batch, fake_batch, precision)

    fit_critic(D, loss, real, fake, config["gp_steps"], optimizer)
    real_eval, fake_eval = _held_out(config, data, seed, shift, device)
    with torch.no_grad():
        d_real, d_fake = scores(D, real_eval, fake_eval)
    return float(d_real.mean() - d_fake.mean())


def _critic_setup(config: dict[str, Any], seed: int, shift: float, device: str, betas):
    """A fresh critic (the same initial weights for every shift of a seed), its data, the two
    samplers (the same draws for every shift: only the translation differs) and its Adam."""
    torch.manual_seed(seed)
    data = Gaussians8(device, seed)
    _, D = build_mlp(data.shape, None, z_dim=2, width=config["width"], depth=config["depth"],
                     activation=config["activation"], init=config["init"], critic_norm="none")
    D = D.to(device)
    offset = shift * direction(device)
    n = config["batch_size"]
    optimizer = torch.optim.Adam(D.parameters(), lr=config["lr"], betas=tuple(betas))
    return D, data, (lambda: data.sample(n)), (lambda: data.sample(n) + offset), optimizer


def _held_out(config: dict[str, Any], data: Gaussians8, seed: int, shift: float, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out real and shifted sets of ``eval_samples`` points, drawn from their own generator."""
    generator = seeded_generator(device, 20_000 + seed)
    n = config["eval_samples"]
    return data.sample(n, generator), data.sample(n, generator) + shift * direction(device)


def run_seed(config: dict[str, Any], seed: int, device: str) -> dict[str, np.ndarray]:
    """One seed: the JS loss and the W estimate at every shift: arrays (S,) under "js" and "w"."""
    js = [fit_js(config, seed, d, device) for d in config["shifts"]]
    w = [fit_wgan_gp(config, seed, d, device) for d in config["shifts"]]
    return {"js": np.array(js), "w": np.array(w)}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (``scipy.stats.spearmanr``); NaN for fewer than 3 points or a constant input."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def figures_and_checks(shifts: np.ndarray, separated: np.ndarray, results: list[dict[str, np.ndarray]]):
    """The figures over seeds and the verdict's checks. ``shifts`` (S,), ``separated`` (S,) bool,
    ``results``: one :func:`run_seed` result per seed."""
    js = np.stack([r["js"] for r in results])  # (seeds, S)
    w = np.stack([r["w"] for r in results])
    sep = shifts[separated]
    floor = mean_figure("JS loss beyond the separating shift: its largest value", js[:, separated].max(axis=1), "nats")
    rho = mean_figure("Spearman rho of the W estimate with d beyond the separating shift",
                      [spearman(sep, row[separated]) for row in w])
    zero = np.flatnonzero(shifts == 0)
    figures = [
        floor, rho,
        mean_figure("JS loss range (max - min) beyond the separating shift", np.ptp(js[:, separated], axis=1), "nats"),
        mean_figure(f"JS loss at the largest shift d = {shifts[-1]:g}", js[:, -1], "nats"),
        mean_figure("Spearman rho of the JS loss with d beyond the separating shift",
                    [spearman(sep, row[separated]) for row in js]),
        mean_figure("Spearman rho of the W estimate with d, all shifts", [spearman(shifts, row) for row in w]),
        mean_figure(f"W estimate / exact W1 at d = {shifts[-1]:g}", w[:, -1] / shifts[-1]),
        mean_figure("W estimate / exact W1, mean over the separated shifts", (w[:, separated] / sep).mean(axis=1)),
        Figure("separating shift (smallest separated d)", float(sep.min()) if sep.size else math.nan,
               unit="", interval=f"every translated centre > {SEPARATED_SIGMAS:g} std from every centre"),
    ]
    if zero.size:
        figures.insert(2, mean_figure("JS loss at d = 0 / 2 log 2", js[:, zero[0]] / LOG4))
    checks = [
        below("JS loss at its floor (and so flat) beyond the separating shift: its largest value", floor.value, FLOOR, floor.high),
        above("W estimate keeps increasing with d beyond the separating shift: Spearman rho", rho.value, RHO_MIN, rho.low),
    ]
    return figures, checks


def plot(shifts: np.ndarray, separated: np.ndarray, results: list[dict[str, np.ndarray]], path) -> None:
    """The JS loss (left) and the W estimate with the exact W1 (right) against the shift, mean over seeds with 95% t-bands."""
    fig = PlotFigure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    x = np.arange(len(shifts))  # band() takes integer steps: index the shifts, label them below
    for ax, key, label, color in ((left, "js", "JS discriminator loss (held out)", "C0"),
                                  (right, "w", "WGAN-GP critic: E[D(real)] - E[D(fake)]", "C1")):
        _, mean, lower, upper = band(x, np.stack([r[key] for r in results]))
        ax.plot(shifts, mean, marker="o", color=color, label=f"{label}, {len(results)} seeds")
        ax.fill_between(shifts, lower, upper, color=color, alpha=0.2, linewidth=0)
        if separated.any():
            ax.axvspan(shifts[separated].min(), shifts.max(), color="grey", alpha=0.1, label="supports disjoint")
        ax.set_xlabel("shift distance d")
        ax.grid(alpha=0.3)
    left.axhline(LOG4, color="k", linestyle="--", linewidth=1, label="2 log 2 (JS = 0)")
    left.axhline(FLOOR, color="r", linestyle=":", linewidth=1, label=f"floor threshold {FLOOR:.3g}")
    left.set_ylabel("loss (nats)")
    left.set_title("JS discriminator loss vs shift (its floor is 0)", fontsize="medium")
    right.plot(shifts, shifts, color="k", linestyle="--", linewidth=1, label="exact W1 = d")
    right.plot(shifts, shifts + shifts**2 / (2 * LAMBDA), color="grey", linestyle=":", linewidth=1,
               label="best linear critic under the penalty: d + d^2 / (2 lambda)")
    right.set_ylabel("Wasserstein-1")
    right.set_title("Wasserstein estimate vs shift (gradient penalty, lambda = 10)", fontsize="medium")
    left.legend(fontsize="small")
    right.legend(fontsize="small")
    fig.savefig(path, dpi=100)


def table(shifts: np.ndarray, separations: list[float], results: list[dict[str, np.ndarray]]) -> str:
    """A Markdown table: per shift, the mode separation, the JS loss and the W estimate (means and
    standard deviations over seeds) and the estimate's ratio to the exact W1."""
    js = np.stack([r["js"] for r in results])
    w = np.stack([r["w"] for r in results])
    ddof = 1 if len(results) > 1 else 0
    lines = ["| shift d = exact W1 | separation (std) | JS loss (mean +- sd) | W estimate (mean +- sd) | W estimate / W1 |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for i, d in enumerate(shifts):
        ratio = f"{w[:, i].mean() / d:.3g}" if d > 0 else "-"
        lines.append(f"| {d:g} | {separations[i]:.3g} | {js[:, i].mean():.4g} +- {js[:, i].std(ddof=ddof):.2g} | "
                     f"{w[:, i].mean():.4g} +- {w[:, i].std(ddof=ddof):.2g} | {ratio} |")
    return "\n".join(lines)


def measure(ctx: Context) -> Outcome:
    """Run the protocol over ``ctx.seed + k``, k < seeds, on ``ctx.device``; draw the PNG into ``ctx.out``."""
    config = settings(ctx.mode)
    ctx.out.mkdir(parents=True, exist_ok=True)
    shifts = np.array(config["shifts"], dtype=np.float64)
    data = Gaussians8("cpu")
    separations = [separation(data, d) for d in shifts]
    separated = np.array([s > SEPARATED_SIGMAS for s in separations])
    started, cpu_started = time.perf_counter(), time.process_time()
    results = []
    for k in range(config["seeds"]):
        ctx.progress(f"seed {k + 1}/{config['seeds']}: a JS discriminator and a WGAN-GP critic at {len(shifts)} shifts")
        results.append(run_seed(config, ctx.seed + k, ctx.device))
    figures, checks = figures_and_checks(shifts, separated, results)
    plot_name = "js_vs_wasserstein.png"
    plot(shifts, separated, results, ctx.out / plot_name)
    notes = [
        f"Protocol: {config['dataset']} against its translate by d at {math.degrees(DIRECTION):.2f} degrees; per shift "
        f"and seed a fresh MLP critic ({config['depth']} x {config['width']}, the same initial weights for every shift) "
        f"trained with Adam {config['lr']} on batches of {config['batch_size']}: the JS discriminator "
        f"{config['js_steps']} steps (betas {tuple(config['betas_js'])}), the WGAN-GP critic {config['gp_steps']} steps "
        f"(betas {tuple(config['betas_gp'])}, lambda {config['gp_lambda']:g}); both evaluated on "
        f"{config['eval_samples']} held-out points of each set. Measured in {time.perf_counter() - started:.0f} s ({time.process_time() - cpu_started:.0f} s of CPU time).",
        "The exact W1 between a distribution and its translate by a vector t is |t| (the translation is an optimal "
        "coupling, and |E[x] - E[y]| = |t| bounds every coupling from below), so W1 = d here without sampling error.",
        "The gradient penalty biases the estimate upwards for large d: among linear critics f(x) = k u.x the penalised "
        "objective k d - lambda (k - 1)^2 peaks at k = 1 + d / (2 lambda), an estimate of d + d^2 / (2 lambda) "
        "(7.8 at d = 6, lambda = 10); a critic trained a finite number of steps may underestimate small shifts. Neither bias "
        "changes the ranking that the claim is about.",
        "Beyond the separating shift the JS loss of a discriminator trained for a fixed number of steps still falls "
        "slightly with d (a wider gap lets it reach larger logits sooner), so its rank correlation with d can be strongly "
        "negative while its values all sit near 0: the floor check reads the values, not their order.",
        "Differences from the papers: WGAN's Example 1 uses two segments in the plane and the exact divergences; here "
        "the divergences are estimated by trained critics on the 8-Gaussian ring.",
    ]
    return Outcome(figures=figures, checks=checks, table=table(shifts, separations, results), plots=[plot_name], notes=notes)
