"""Claim 1: with a discriminator that wins, the minimax generator loss gives vanishing gradients;
the non-saturating loss keeps them large, but noisy.

Protocol (Arjovsky & Bottou 2017, Sec. 2.2, Figs. 2 and 3, on the 25 Gaussians): a generator G as
initialised ("early in learning, when G is poor", Goodfellow 2014, Sec. 3) is FIXED, and a
discriminator D is trained from scratch against it with the JS loss
(:func:`ganlab.objectives.losses.js.js_critic`, Adam at the js preset's settings). At checkpoints
along D's training the generator's gradient ||d L / d theta_G|| is measured for both generator
losses of :mod:`ganlab.objectives.losses.js`, on the same fixed minibatches of z:

* (a) the minimax loss E[log(1 - D(G(z)))] (:func:`~ganlab.objectives.losses.js.js_generator_saturating`),
* (b) the non-saturating loss -E[log D(G(z))] (:func:`~ganlab.objectives.losses.js.js_generator`),

their mean over the minibatches and their spread (the coefficient of variation, std / mean, over
the minibatches). Reported over seeds: the decay of (a) from start to end, the ratio (b) / (a) at
the end, and how (b)'s relative spread changed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as PlotFigure

from ganlab.claims.base import Check, Context, Figure, Outcome, Sweep, above, below, precondition
from ganlab.claims.critic import band, fit_critic, geometric_figure, mean_figure, parameter_gradient_norm, scores, seeded_generator
from ganlab.data.toy import Gaussians25
from ganlab.models.mlp import build_mlp
from ganlab.objectives.losses.js import js_critic, js_generator, js_generator_saturating

NUMBER = 1
SLUG = "saturating_loss"
TITLE = "The minimax generator loss saturates when the discriminator wins; the non-saturating loss does not, but is noisy"
SOURCE = ("Goodfellow et al. 2014, Sec. 3; Arjovsky & Bottou 2017, Sec. 2.2 (Theorems 2.4 and 2.6, "
          "Figs. 2 and 3)")
STATEMENT = ("When the discriminator becomes (nearly) optimal against a fixed generator, the gradient of the minimax "
             "generator loss log(1 - D(G(z))) vanishes, while the non-saturating loss -log D(G(z)) keeps a large "
             "gradient whose spread over minibatches grows: the generator gets no signal from the first and a noisy "
             "one from the second.")

# The verdict's thresholds: fixed before the full run; never tuned after it.
WINS_BELOW = 0.1  # precondition: mean D(G(z)) at the end below 0.1, D rejects the fakes "with high confidence"
# (Goodfellow 2014, Sec. 3); if D did not win, the claim was not put to the test and the verdict is inconclusive.
VANISHING_DECAY = 1e-2  # (a) end / start below 1e-2: two orders of magnitude; Arjovsky & Bottou's Fig. 2 (log scale)
# shows several within 4000 discriminator iterations against a fixed DCGAN, so two is a lenient reading of "vanishing".
RATIO_MIN = 10.0  # (b) / (a) at the end above 10: per sample the two score gradients are (1 - D) and D (d/ds of
# -log sigmoid(s) and log(1 - sigmoid(s))), so their ratio is (1 - D) / D, 10 at D(G(z)) = 1/11, the precondition.
SPREAD_GROWTH_MIN = 1.0  # (b)'s coefficient of variation over minibatches, end / start, above 1: Arjovsky & Bottou
# (Fig. 3) "the variance of the gradients is also increasing" for -log D as D trains; a relative spread (std / mean)
# that grows means more than the norm itself growing.


def settings(mode: str) -> dict[str, Any]:
    """Every setting of the protocol at ``mode`` (quick | full | gpu)."""
    common = {
        "dataset": "gaussians25",
        "z_dim": 1,  # dim z < dim x: G's support is a curve in the plane, Arjovsky & Bottou's setting (Sec. 2.1, Lemma 1)
        "depth": 3,  # hidden layers of G and D: ganlab's toy MLP (gan_toy.py)
        "activation": "relu",
        "init": "he_uniform",
        "lr_D": 2e-4,  # the js preset (DCGAN paper, Sec. 4)
        "betas_D": [0.5, 0.999],
        "generator": "as initialised, fixed",
    }
    if mode == "quick":
        return {**common, "seeds": 2, "width": 32, "batch_size": 64, "d_steps": 60, "checkpoints": [0, 20, 60],
                "minibatches": 4}
    if mode == "full":
        return {**common, "seeds": 5, "width": 128, "batch_size": 256, "d_steps": 4000,  # Arjovsky & Bottou: 4000
                "checkpoints": [0, 10, 25, 50, 100, 200, 400, 700, 1000, 1500, 2000, 2500, 3000, 3500, 4000],
                "minibatches": 20}
    if mode == "gpu":
        return {**common, "seeds": 10, "width": 512, "batch_size": 256, "d_steps": 10000,  # width 512: gan_toy.py
                "checkpoints": [0, 10, 25, 50, 100, 200, 400, 700, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000],
                "minibatches": 50}
    raise ValueError(f"mode must be one of quick, full, gpu, got {mode!r}")


def sweeps(mode: str) -> list[Sweep]:
    """None: the protocol trains its own discriminator in :func:`measure`."""
    return []


def generator_gradients(G: torch.nn.Module, D: torch.nn.Module, z_batches: torch.Tensor) -> dict[str, np.ndarray]:
    """For each minibatch z of ``z_batches`` (m, n, z_dim): the norms of G's parameter gradients of
    (a) the minimax loss log(1 - D(G(z))) and (b) the non-saturating -log D(G(z)) (each a mean over
    the n samples), and the mean of D(G(z)) = sigmoid(score). Returns float64 arrays of shape (m,)
    under "saturating", "non_saturating" and "d_fake"."""
    sat, non_sat, d_fake = [], [], []
    for z in z_batches:
        score = D(G(z)).float()
        sat.append(parameter_gradient_norm(js_generator_saturating(score), G.parameters(), retain_graph=True))
        non_sat.append(parameter_gradient_norm(js_generator(score), G.parameters()))
        d_fake.append(float(torch.sigmoid(score.detach()).mean()))
    return {"saturating": np.array(sat), "non_saturating": np.array(non_sat), "d_fake": np.array(d_fake)}


def run_seed(config: dict[str, Any], seed: int, device: str) -> dict[str, np.ndarray]:
    """One seed of the protocol: fixed G as initialised, D trained from scratch with the JS loss.

    Returns arrays over the checkpoints (k of them) and minibatches (m): "steps" (k,),
    "saturating" and "non_saturating" (k, m) gradient norms, "d_fake" (k,) the mean D(G(z)).
    """
    torch.manual_seed(seed)  # the networks' initial weights
    data = Gaussians25(device, seed)
    G, D = build_mlp(data.shape, None, z_dim=config["z_dim"], width=config["width"], depth=config["depth"],
                     activation=config["activation"], init=config["init"], critic_norm="none")
    G, D = G.to(device), D.to(device)
    noise = seeded_generator(device, seed)
    n, z_dim = config["batch_size"], config["z_dim"]
    # The same minibatches of z at every checkpoint: the curves differ by D's training alone.
    z_eval = torch.randn(config["minibatches"], n, z_dim, device=device, generator=seeded_generator(device, 10_000 + seed))
    optimizer = torch.optim.Adam(D.parameters(), lr=config["lr_D"], betas=tuple(config["betas_D"]))
    checkpoints = sorted(set(config["checkpoints"]))

    def loss(D, real, fake):
        return js_critic(*scores(D, real, fake))

    def fake():
        return G(torch.randn(n, z_dim, device=device, generator=noise))

    rows = []
    step = 0
    for target in checkpoints:
        fit_critic(D, loss, lambda: data.sample(n), fake, target - step, optimizer)
        step = target
        rows.append(generator_gradients(G, D, z_eval))
    return {
        "steps": np.array(checkpoints),
        "saturating": np.stack([r["saturating"] for r in rows]),
        "non_saturating": np.stack([r["non_saturating"] for r in rows]),
        "d_fake": np.array([r["d_fake"].mean() for r in rows]),
    }


def coefficient_of_variation(x: np.ndarray) -> np.ndarray:
    """std / mean over the last axis (sample std, ddof = 1)."""
    return x.std(axis=-1, ddof=1) / x.mean(axis=-1)


def per_seed_figures(result: dict[str, np.ndarray]) -> dict[str, float]:
    """The figures of one seed's result (:func:`run_seed`)."""
    a, b = result["saturating"].mean(axis=1), result["non_saturating"].mean(axis=1)
    cv_a, cv_b = coefficient_of_variation(result["saturating"]), coefficient_of_variation(result["non_saturating"])
    return {
        "decay_a": a[-1] / a[0], "end_over_peak_a": a[-1] / a.max(), "growth_b": b[-1] / b[0], "ratio_end": b[-1] / a[-1], "ratio_start": b[0] / a[0],
        "cv_a_end": cv_a[-1], "cv_b_end": cv_b[-1], "cv_b_start": cv_b[0], "spread_growth_b": cv_b[-1] / cv_b[0],
        "d_fake_end": result["d_fake"][-1], "a_start": a[0], "a_end": a[-1], "b_start": b[0], "b_end": b[-1],
    }


def figures_and_checks(per_seed: list[dict[str, float]]) -> tuple[list[Figure], list[Check]]:
    """The claim's figures over seeds and the verdict's checks, from :func:`per_seed_figures` of each seed."""
    def col(key: str) -> list[float]:
        return [s[key] for s in per_seed]

    wins = mean_figure("mean D(G(z)) at the end", col("d_fake_end"))
    decay = geometric_figure("(a) minimax gradient norm, end / start", col("decay_a"))
    ratio = geometric_figure("(b) / (a) gradient norm at the end", col("ratio_end"))
    spread = geometric_figure("(b) coefficient of variation over minibatches, end / start", col("spread_growth_b"))
    figures = [
        wins, decay, ratio, spread,
        geometric_figure("(b) / (a) gradient norm at the start", col("ratio_start")),
        geometric_figure("(a) minimax gradient norm, end / its largest value along the way", col("end_over_peak_a")),
        geometric_figure("(b) non-saturating gradient norm, end / start", col("growth_b")),
        geometric_figure("(a) minimax gradient norm at the start", col("a_start")),
        geometric_figure("(a) minimax gradient norm at the end", col("a_end")),
        geometric_figure("(b) non-saturating gradient norm at the start", col("b_start")),
        geometric_figure("(b) non-saturating gradient norm at the end", col("b_end")),
        mean_figure("(a) coefficient of variation at the end", col("cv_a_end")),
        mean_figure("(b) coefficient of variation at the start", col("cv_b_start")),
        mean_figure("(b) coefficient of variation at the end", col("cv_b_end")),
    ]
    checks = [
        precondition(below("the discriminator wins: mean D(G(z)) at the end", wins.value, WINS_BELOW, wins.high)),
        below("(a) vanishes: minimax gradient norm end / start", decay.value, VANISHING_DECAY, decay.high),
        above("(b) stays large: non-saturating / minimax gradient norm at the end", ratio.value, RATIO_MIN, ratio.low),
        above("(b) grows noisier: its coefficient of variation end / start", spread.value, SPREAD_GROWTH_MIN, spread.low),
    ]
    return figures, checks


def plot(results: list[dict[str, np.ndarray]], path, config: dict[str, Any]) -> None:
    """Both gradient norms (geometric mean over seeds with its 95% band, log scale) and their
    coefficients of variation (mean over seeds) against discriminator steps."""
    fig = PlotFigure(figsize=(7.5, 7), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    steps = results[0]["steps"]
    labels = {"saturating": "(a) minimax log(1 - D(G(z)))", "non_saturating": "(b) non-saturating -log D(G(z))"}
    for key, label in labels.items():
        norms = np.stack([r[key].mean(axis=1) for r in results])
        x, mean, lower, upper = band(steps, norms, log=True)
        (line,) = top.plot(x, mean, marker="o", markersize=3, label=label)
        top.fill_between(x, lower, upper, color=line.get_color(), alpha=0.2, linewidth=0)
        cv = np.stack([coefficient_of_variation(r[key]) for r in results])
        x, mean, lower, upper = band(steps, cv)
        bottom.plot(x, mean, marker="o", markersize=3, color=line.get_color(), label=label)
        bottom.fill_between(x, lower, upper, color=line.get_color(), alpha=0.2, linewidth=0)
    top.set_yscale("log")
    top.set_ylabel("||grad_theta_G L|| (mean over minibatches)")
    top.set_title(f"Generator gradient norms as D trains against a fixed G\n({config['dataset']}, {len(results)} seeds: "
                  "geometric mean and 95% t-band; spread: mean and 95% t-band)", fontsize="medium")
    top.grid(alpha=0.3, which="both")
    top.legend(fontsize="small")
    bottom.set_ylabel("std / mean over minibatches")
    bottom.set_xlabel("discriminator steps")
    bottom.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def table(results: list[dict[str, np.ndarray]]) -> str:
    """A Markdown table: per checkpoint, the geometric means over seeds of both norms and their
    ratio, the mean coefficients of variation and the mean D(G(z))."""
    steps = results[0]["steps"]
    a = np.stack([r["saturating"].mean(axis=1) for r in results])
    b = np.stack([r["non_saturating"].mean(axis=1) for r in results])
    cv_a = np.stack([coefficient_of_variation(r["saturating"]) for r in results]).mean(axis=0)
    cv_b = np.stack([coefficient_of_variation(r["non_saturating"]) for r in results]).mean(axis=0)
    d_fake = np.stack([r["d_fake"] for r in results]).mean(axis=0)

    def geo(x: np.ndarray) -> np.ndarray:
        return np.exp(np.log(x).mean(axis=0))

    lines = ["| D steps | (a) minimax norm | (b) non-saturating norm | (b) / (a) | CV (a) | CV (b) | mean D(G(z)) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for i, step in enumerate(steps):
        lines.append(f"| {step} | {geo(a[:, i]):.3g} | {geo(b[:, i]):.3g} | {geo(b[:, i] / a[:, i]):.3g} | "
                     f"{cv_a[i]:.3g} | {cv_b[i]:.3g} | {d_fake[i]:.3g} |")
    return "\n".join(lines)


def measure(ctx: Context) -> Outcome:
    """Run the protocol over ``ctx.seed + k``, k < seeds, on ``ctx.device``; draw the PNG into ``ctx.out``."""
    config = settings(ctx.mode)
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for k in range(config["seeds"]):
        ctx.progress(f"seed {k + 1}/{config['seeds']}: D trained {config['d_steps']} steps against a fixed G")
        results.append(run_seed(config, ctx.seed + k, ctx.device))
    figures, checks = figures_and_checks([per_seed_figures(r) for r in results])
    plot_name = "gradient_norms.png"
    plot(results, ctx.out / plot_name, config)
    notes = [
        f"Protocol: {config['dataset']}, G an MLP ({config['depth']} x {config['width']}, z of dimension "
        f"{config['z_dim']}) as initialised and fixed; D the same MLP trained from scratch with the JS loss "
        f"(Adam {config['lr_D']}, betas {tuple(config['betas_D'])}, batch {config['batch_size']}) for "
        f"{config['d_steps']} steps; at each checkpoint both generator losses' gradient norms on the same "
        f"{config['minibatches']} minibatches of {config['batch_size']} z. Measured in {time.perf_counter() - started:.0f} s ({time.process_time() - cpu_started:.0f} s of CPU time).",
        "Differences from Arjovsky & Bottou (Figs. 2 and 3): there, a DCGAN trained for 1, 10 and 25 epochs on LSUN "
        "bedrooms, then fixed; here a 2-D toy generator as initialised (Goodfellow's 'early in learning'), with z of "
        "dimension 1 so that its samples lie on a curve, a lower-dimensional support as their theory assumes.",
        "Per sample, d/ds log(1 - sigmoid(s)) = -D and d/ds -log sigmoid(s) = -(1 - D): the two gradients differ by "
        "the factor (1 - D) / D, so the ratio (b) / (a) follows D(G(z)); whether (a) itself vanishes also depends on "
        "how steep D becomes around the fakes (its input gradient), which Theorem 2.4 bounds only as D's Jacobian "
        "approaches the optimal D's.",
        "Spread: the coefficient of variation (std / mean) of the gradient norm over the minibatches at one checkpoint.",
    ]
    return Outcome(figures=figures, checks=checks, table=table(results), plots=[plot_name], notes=notes)

