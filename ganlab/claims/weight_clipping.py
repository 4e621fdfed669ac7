"""Claim 4: weight clipping piles the critic's weights up at +-c, makes its gradients explode or vanish
with depth as c changes, and trains worse with a momentum optimizer (Adam) than with RMSProp.

Two parts, each with its own checks; the claim's verdict is :func:`ganlab.claims.base.verdict_from`
over all of them: it held when every check of both parts passed, did not hold when a check failed,
and is inconclusive when none failed but one could not decide (an interval straddling its
threshold, or a test without significance).

**(a) The critic protocol** (WGAN-GP paper, Sec. 3.2 and Fig. 1), in process on ``ctx.device``: a
deep critic ("12-layer ReLU MLPs without batch normalization": ganlab's MLP critic with 12 hidden
ReLU layers and its linear output, He-uniform init) is trained with the Wasserstein loss against a
*fixed*, untrained generator of the same shape on the Swiss roll, once per clip bound c in {0.1,
0.01, 0.001} (ganlab's ``clip`` constraint, RMSProp 5e-5 as in WGAN's Alg. 1 and ``gan_toy.py``,
starting from the clipped initial weights as the official WGAN code does) and once with the gradient
penalty (lambda = 10, Adam 1e-4, betas (0.5, 0.9): ganlab's ``wgan_gp`` preset) as the contrast. The
paper trains generator and critic together; a fixed generator keeps the critic's problem the same
for every c. After training, on fresh batches:

* the share of the critic's parameters within :data:`AT_BOUND_TOLERANCE` of +-c;
* the norm of the gradient of the critic's Wasserstein loss with respect to the activations of each
  hidden layer (the quantity of Fig. 1a: "the norm of the gradient of the critic loss with respect
  to successive layers of activations"), from the input side (layer 1) to the output side, and its
  ratio first / last hidden layer (explode: >> 1, vanish: << 1). Computed in float64, so that the
  1e-20-sized gradients of c = 0.001 do not underflow;
* for the record, the norm of the gradient with respect to each layer's *weights*: for a chain of
  ReLU layers the weight gradient of layer l is (the backward signal at l) x (the forward activation
  into l), and clipping shrinks (or grows) both by the same factor per layer in opposite directions,
  so it stays flat across layers even where the activation gradient spans 20 decades
  (tests/test_claims_weight_clipping.py shows it on a chain of scalar layers). Not in the verdict.

**(b) Momentum** (WGAN paper, Sec. 3: training "becomes unstable at times when one uses a momentum
based optimizer such as Adam (with beta1 > 0) on the critic"): the shared toy sweep's ``wgan_clip``
runs (RMSProp 5e-5, the paper's) against this module's sweep ``clip_adam``: the same preset with
Adam at the same learning rate and betas (0.5, 0.99), so that it differs from RMSProp (smoothing
0.99) only by the momentum beta1 = 0.5 (WGAN-GP's and DCGAN's beta1) and Adam's bias correction.
Both networks use Adam, as WGAN switched both to RMSProp. Data: the 25 Gaussians only (the toy
sweep's harder dataset; both datasets would double the sweep beyond its CPU budget), same seeds
and steps as the toy sweep. Final ``Metrics/w1_ratio`` (lower is better): IQM with bootstrap
intervals, the probability that an RMSProp run beats an Adam run and the exact two-sided
Mann-Whitney test; modes covered is reported beside it.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as PlotFigure
from torch import nn

from ganlab.claims.base import Check, Context, Figure, Outcome, Sweep, above, below
from ganlab.claims.sweeps import run_budget, seeds, sweep_values, toy
from ganlab.compare.runs import DIVERGED, FINISHED, Run
from ganlab.compare.stats import Summary, improvement_interval, improvement_test, probability_of_improvement, summarize
from ganlab.data.toy import SwissRoll, ToyData
from ganlab.logger.stats import Stats
from ganlab.models.mlp import build_mlp
from ganlab.objectives import Objective
from ganlab.objectives.constraints.gradient_penalty import GradientPenalty
from ganlab.objectives.constraints.weight_clip import WeightClip
from ganlab.objectives.losses.wasserstein import Wasserstein, wasserstein_critic
from ganlab.objectives.objective import split_scores
from ganlab.precision import Precision
from ganlab.train.optim import build_optimizers

Tensor = torch.Tensor

NUMBER = 4
SLUG = "weight_clipping"
TITLE = "Weight clipping: weights pile up at +-c, gradients explode or vanish, momentum hurts"
SOURCE = ("Gulrajani et al. 2017, Improved Training of Wasserstein GANs, Sec. 3.2 and Fig. 1; "
          "Arjovsky et al. 2017, Wasserstein GAN, Sec. 3 (momentum optimizers)")
STATEMENT = ("A critic whose weights are clipped to [-c, c] ends up with most weights at +-c, and its gradients "
             "grow or decay exponentially through the layers (explode for c = 0.1, vanish for c = 0.001), while "
             "a gradient-penalty critic's stay level. With clipping, Adam (momentum) trains worse than RMSProp.")

# Verdict thresholds: fixed before the full run; never tuned after it. Each is read off the papers'
# text and figures, not off ganlab's measurements.
AT_BOUND_TOLERANCE = 0.01  # "at +-c" means |w| >= (1 - 0.01) c: the bound up to float32 rounding and, for c >= 0.01, a
                           # last RMSProp step inwards (about lr = 5e-5, half a percent of c = 0.01)
MIN_FRACTION_AT_BOUND = 0.5  # c = 0.01: most weights at +-c (Fig. 1b, top: clipping "pushes weights towards two values
                             # (the extremes of the clipping range)")
EXPLODE_LOG10 = 1.0  # c = 0.1: log10(first / last hidden layer's gradient norm) > 1. Sec. 3.2: the gradient "grows or
                     # decays exponentially as we move farther back in the network" (Fig. 1a: c = 0.1 grows); over 11
                     # layers a factor 10 is the least growth one could call exponential
VANISH_LOG10 = -1.0  # c = 0.001: log10 ratio < -1 (Fig. 1a: c = 0.001 decays), the same margin the other way
EITHER_WAY_LOG10 = 1.0  # c = 0.01: |log10 ratio| > 1, growing or decaying: the text says so "for each of these values"
GP_LEVEL_LOG10 = 1.0  # gradient penalty: |log10 ratio| < 1, within [0.1, 10] (Fig. 1a and Sec. 3.2: its gradients
                      # "neither vanish nor explode")
P_LEVEL = 0.05  # (b): the two-sided Mann-Whitney p-value below which RMSProp or Adam counts as better

CLIP_BOUNDS = (0.1, 0.01, 0.001)  # WGAN-GP, Sec. 3.2
GP_WEIGHT = 10.0  # WGAN-GP, Alg. 1
TRACE_POINTS = 4  # the gradient ratio is also taken at 1/4, 1/2, 3/4 of the critic's training (the table)
SWEEP = "clip_adam"
W1_RATIO, MODES_COVERED = "Metrics/w1_ratio", "Metrics/modes_covered"


def settings(mode: str) -> dict[str, Any]:
    """Every setting of both parts at ``mode`` (quick | full | gpu), JSON-serialisable.

    Raises:
        KeyError: an unknown mode.
    """
    size = {
        # quick: the machinery in a few seconds, not the verdicts.
        "quick": dict(seeds=2, critic_steps=4, width=16, batch_size=32, measure_batches=1),
        # full: 5 seeds x 4 critics x 200 steps of a 12 x 128 critic, ~2-3 min on one CPU thread. The c = 0.1 critic's
        # gradient ratio climbs past 10 within ~100 steps; the clipped critics' pile-up is there from the first step.
        "full": dict(seeds=5, critic_steps=200, width=128, batch_size=256, measure_batches=4),
        # gpu: gan_toy.py's width 512 and longer training.
        "gpu": dict(seeds=10, critic_steps=1000, width=512, batch_size=256, measure_batches=8),
    }[mode]
    return {
        "critic": {
            **size,
            "dataset": "swissroll",  # Fig. 1
            "depth": 12,  # hidden ReLU layers of critic and (fixed) generator, Sec. 3.2; no normalisation
            "activation": "relu", "init": "he_uniform", "z_dim": 2,  # ganlab's toy MLP
            "generator": "fixed: the untrained MLP generator of the same depth and width",
            "clip_bounds": list(CLIP_BOUNDS),
            "clip_optimizer": {"name": "rmsprop", "lr": 5e-5, "alpha": 0.99},  # WGAN Alg. 1, gan_toy.py
            "gp_weight": GP_WEIGHT,
            "gp_optimizer": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.9]},  # ganlab's wgan_gp preset (gan_toy.py)
            "at_bound_tolerance": AT_BOUND_TOLERANCE,
            "gradient": "of the Wasserstein critic loss w.r.t. each hidden layer's activations, float64",
        },
        "optimizers": {
            "rmsprop": "sweep toy, objective=wgan_clip (RMSProp 5e-5)",
            "adam": {"sweep": SWEEP, "lr": 5e-5, "betas": [0.5, 0.99]},
            "dataset": "gaussians25", "seeds": list(seeds(mode)), "budget": list(run_budget(mode)),
            "metric": W1_RATIO, "p_level": P_LEVEL,
        },
    }


def clip_adam(mode: str) -> Sweep:
    """wgan_clip with Adam (lr 5e-5, betas (0.5, 0.99)) for G and D on the 25 Gaussians, over the toy sweep's seeds."""
    return Sweep(SWEEP, (
        "objective=wgan_clip", "objective.optimizer.name=adam", "objective.optimizer.lr_G=5e-5", "objective.optimizer.lr_D=5e-5",
        "objective.optimizer.betas=[0.5,0.99]", "dataset=gaussians25", f"seed={sweep_values(seeds(mode))}", *run_budget(mode),
    ))


def sweeps(mode: str) -> list[Sweep]:
    return [toy(mode), clip_adam(mode)]


# ------------------------------------------------------------------------------ the critic protocol


@contextlib.contextmanager
def seeded(seed: int, device: str | torch.device) -> Iterator[None]:
    """The global RNGs (CPU, and ``device``'s when it is a GPU) seeded with ``seed`` inside, restored after."""
    device = torch.device(device)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def networks(seed: int, device: str | torch.device, *, width: int, depth: int, z_dim: int = 2, activation: str = "relu",
             init: str = "he_uniform") -> tuple[nn.Module, nn.Module]:
    """ganlab's toy MLP pair (G, D) for 2-D points, built from ``seed``, on ``device``; G frozen (a fixed generator)."""
    with seeded(seed, "cpu"):
        G, D = build_mlp((2,), None, z_dim=z_dim, width=width, depth=depth, activation=activation, init=init, critic_norm="none")
    G.requires_grad_(False)
    return G.to(device), D.to(device)


def train_critic(D: nn.Module, G: nn.Module, data: ToyData, objective: Objective, optimizer: str, lr: float, *, steps: int,
                 batch_size: int, seed: int, betas: Iterable[float] = (0.5, 0.9), alpha: float = 0.99,
                 on_step: Callable[[int, nn.Module], None] | None = None) -> dict[str, float]:
    """Train the critic ``D`` for ``steps`` steps against the fixed generator ``G``, as ganlab's loop does.

    Each step: a fresh real batch from ``data`` and a fake batch G(z) (``batch_size`` each, z from a
    generator seeded by ``seed``), ``objective.critic_loss`` (the Wasserstein loss plus any penalty),
    one ``optimizer`` step (``adam`` or ``rmsprop``, ganlab's :func:`build_optimizers`), then
    ``objective.after_critic_step`` (weight clipping). ``on_step(step, D)`` is called after step 1,
    2, ..., ``steps``. Penalty interpolates use the global RNG, seeded with ``seed`` inside.

    Returns:
        The means over the training of what the objective reports (``Wasserstein/estimate``, ``Loss/D``, ...).
    """
    device = next(D.parameters()).device
    precision = Precision("fp32", device)
    stats = Stats()
    objective.attach(D)
    _, opt_D = build_optimizers(G, D, optimizer, lr, lr, list(betas), alpha)
    z_generator = torch.Generator(device).manual_seed(seed + 1)
    D.train()
    with seeded(seed, device):
        for step in range(1, steps + 1):
            real = data.sample(batch_size)
            with torch.no_grad():
                fake = G(torch.randn(batch_size, G.z_dim, device=device, generator=z_generator))
            loss_D = objective.critic_loss(D, real, fake, precision, stats)
            opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            opt_D.step()
            objective.after_critic_step(D)
            if on_step is not None:
                on_step(step, D)
    return stats.collect()


def fraction_at_bound(params: Iterable[Tensor], c: float, tolerance: float = AT_BOUND_TOLERANCE) -> float:
    """The share of the entries of ``params`` with |w| >= (1 - ``tolerance``) * ``c``: at the clip bound +-c.

    Raises:
        ValueError: ``params`` is empty or ``c`` <= 0.
    """
    if c <= 0:
        raise ValueError(f"the clip bound c must be > 0, got {c}")
    flat = [p.detach().flatten() for p in params]
    if not flat or sum(t.numel() for t in flat) == 0:
        raise ValueError("fraction_at_bound needs at least one parameter")
    values = torch.cat(flat)
    # The bound in the parameters' own precision: clamp_(-c, c) leaves float32(c), which is below the float64 c.
    bound = torch.tensor(c * (1 - tolerance), dtype=values.dtype, device=values.device)
    return float((values.abs() >= bound).double().mean())


def layer_gradient_norms(D: nn.Module, real: Tensor, fake: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer gradient norms of the Wasserstein critic loss E[D(fake)] - E[D(real)], in float64.

    ``D`` is ganlab's MLP critic (its layers in ``D.net``, an ``nn.Sequential``); ``real`` and
    ``fake`` are (n, 2) batches. D is copied to float64 (so that 1e-30-sized gradients stay
    representable); D itself is not changed.

    Returns:
        ``activations``: (L,) the Frobenius norm over the batch of d loss / d h_l, h_l the
        activation that enters linear layer l + 1 (the output of hidden layer l), l = 1 (input side)
        .. L (output side): the quantity of WGAN-GP Fig. 1a;
        ``weights``: (L + 1,) the norm of d loss / d W of every linear layer, input side first.
    """
    D64 = copy.deepcopy(D).double()
    linears = [m for m in D64.net if isinstance(m, nn.Linear)]
    h = torch.cat([real, fake]).double().flatten(1)
    hidden = []
    for module in D64.net:
        if isinstance(module, nn.Linear) and module is not linears[0]:
            hidden.append(h)  # the activation that enters this linear layer
        h = module(h)
    loss = wasserstein_critic(*split_scores(h.squeeze(1), real, fake))
    grads = torch.autograd.grad(loss, [*hidden, *(m.weight for m in linears)])
    norms = np.array([float(g.norm()) for g in grads])
    return norms[:len(hidden)], norms[len(hidden):]


def log10_ratio(norms: np.ndarray) -> float:
    """log10(norms[0] / norms[-1]): the first (input-side) layer's gradient norm over the last's (-inf for a 0)."""
    with np.errstate(divide="ignore"):
        return float(np.log10(norms[0]) - np.log10(norms[-1]))


@dataclass
class CriticResult:
    """What one trained critic (one variant, one seed) gives."""

    variant: str  # "c=0.1", ..., "gp"
    seed: int
    activation_norms: np.ndarray  # (L,) float64, input side first
    weight_norms: np.ndarray  # (L + 1,)
    fraction_at_bound: float  # after training; NaN for gp
    fraction_at_bound_start: float  # the initial weights, clipped; NaN for gp
    ratio_trace: list[tuple[int, float]]  # (critic step, log10 activation-gradient ratio) over the training
    w_estimate: float  # the trained critic's E[D(real)] - E[D(fake)] on the held-out batches
    weights: np.ndarray = field(repr=False)  # every weight matrix entry, flattened (for the histogram)


def variant_label(c: float | None) -> str:
    return "gp" if c is None else f"c={c:g}"


def run_critic(c: float | None, seed: int, s: dict[str, Any], device: str) -> CriticResult:
    """Train one critic of the protocol (clip bound ``c``, or the gradient penalty for None) and measure it.

    ``s`` is ``settings(mode)["critic"]``. A clipped critic starts from its initial weights clipped, as
    the official WGAN code clamps the weights before every critic step (ganlab clips after each step:
    the same but for the first step, whose unclipped gradients would otherwise fill RMSProp's running
    average with values 10^4 times those of the clipped critic and slow its first hundred steps).
    """
    G, D = networks(seed, device, width=s["width"], depth=s["depth"], z_dim=s["z_dim"], activation=s["activation"], init=s["init"])
    data = SwissRoll(device, seed)
    if c is None:
        objective = Objective(Wasserstein(), {"gp": GradientPenalty(weight=s["gp_weight"], every=1)})
        opt = s["gp_optimizer"]
        extra: dict[str, Any] = {"betas": opt["betas"]}
        start = math.nan
    else:
        objective = Objective(Wasserstein(), {"clip": WeightClip(c=c)})
        opt = s["clip_optimizer"]
        extra = {"alpha": opt["alpha"]}
        objective.after_critic_step(D)
        start = fraction_at_bound(D.parameters(), c, s["at_bound_tolerance"])
    trace_generator = torch.Generator(device).manual_seed(seed + 3)
    every = max(1, s["critic_steps"] // TRACE_POINTS)
    trace: list[tuple[int, float]] = []

    def record(step: int, D: nn.Module) -> None:
        if step % every == 0 or step == s["critic_steps"]:
            real, fake = held_out(data, G, s["batch_size"], trace_generator)
            trace.append((step, log10_ratio(layer_gradient_norms(D, real, fake)[0])))

    record(0, D)
    train_critic(D, G, data, objective, opt["name"], opt["lr"], steps=s["critic_steps"], batch_size=s["batch_size"], seed=seed,
                 on_step=record, **extra)
    generator = torch.Generator(device).manual_seed(seed + 2)  # held-out batches
    acts, weights, estimates = [], [], []
    for _ in range(s["measure_batches"]):
        real, fake = held_out(data, G, s["batch_size"], generator)
        with torch.no_grad():
            estimates.append(float(D(real).mean() - D(fake).mean()))
        a, w = layer_gradient_norms(D, real, fake)
        acts.append(a)
        weights.append(w)
    return CriticResult(
        variant=variant_label(c), seed=seed, activation_norms=np.mean(acts, axis=0), weight_norms=np.mean(weights, axis=0),
        fraction_at_bound=math.nan if c is None else fraction_at_bound(D.parameters(), c, s["at_bound_tolerance"]),
        fraction_at_bound_start=start, ratio_trace=trace, w_estimate=float(np.mean(estimates)),
        weights=torch.cat([m.weight.detach().flatten() for m in D.net if isinstance(m, nn.Linear)]).cpu().numpy(),
    )


def held_out(data: ToyData, G: nn.Module, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` real and ``n`` generated points drawn with ``generator`` (not the training's draws)."""
    real = data.sample(n, generator=generator)
    with torch.no_grad():
        fake = G(torch.randn(n, G.z_dim, device=real.device, generator=generator))
    return real, fake


# ------------------------------------------------------------------------------------ the verdict


def summary_figure(name: str, values: list[float], unit: str = "") -> tuple[Figure, Summary]:
    """The IQM over seeds of ``values`` with its 95% stratified-bootstrap interval, as a Figure (and the Summary)."""
    summary = summarize([values])
    low, high = summary.iqm_ci.low, summary.iqm_ci.high
    interval = f"IQM, 95% bootstrap ({summary.iqm_ci.method}) over {summary.n} seeds"
    if summary.n_nonfinite:
        interval += f", {summary.n_nonfinite} non-finite left out"
    return Figure(name, summary.iqm, None if math.isnan(low) else low, None if math.isnan(high) else high, unit, interval), summary


def outside(what: str, figure: Figure, bound: float) -> Check:
    """Passed when ``figure``'s value and interval lie outside [-bound, bound] (on one side), failed when the
    value and interval lie inside it, undecided when the interval reaches across -bound or bound."""
    value = figure.value
    if not math.isfinite(value):
        return Check(what, None, f"{value} (not finite)")
    low = figure.low if figure.low is not None else value
    high = figure.high if figure.high is not None else value
    if low > bound or high < -bound:
        return Check(what, True, f"{value:.3g} outside [{-bound:g}, {bound:g}]")
    if -bound <= low and high <= bound:
        return Check(what, False, f"{value:.3g} inside [{-bound:g}, {bound:g}]")
    return Check(what, None, f"{value:.3g}, its interval [{low:.3g}, {high:.3g}], reaches across +-{bound:g}")


def critic_checks(fraction: Figure, ratios: dict[str, Figure]) -> list[Check]:
    """The checks of part (a): ``fraction`` at +-c for c = 0.01, ``ratios[variant]`` the log10 gradient ratios."""
    gp = ratios["gp"]
    return [
        above("(a) fraction of critic parameters at +-c, c = 0.01", fraction.value, MIN_FRACTION_AT_BOUND, fraction.low),
        above("(a) log10 gradient ratio first/last layer, c = 0.1 (explodes)", ratios["c=0.1"].value, EXPLODE_LOG10, ratios["c=0.1"].low),
        outside("(a) log10 gradient ratio first/last layer, c = 0.01 (explodes or vanishes)", ratios["c=0.01"], EITHER_WAY_LOG10),
        below("(a) log10 gradient ratio first/last layer, c = 0.001 (vanishes)", ratios["c=0.001"].value, VANISH_LOG10, ratios["c=0.001"].high),
        above("(a) log10 gradient ratio, gradient penalty, above -1 (level)", gp.value, -GP_LEVEL_LOG10, gp.low),
        below("(a) log10 gradient ratio, gradient penalty, below 1 (level)", gp.value, GP_LEVEL_LOG10, gp.high),
    ]


def optimizer_check(p_better: float, p_value: float | None) -> Check:
    """Part (b): held when RMSProp beats Adam (P(RMSProp run better) > 0.5) with the test's p < :data:`P_LEVEL`,
    failed when Adam beats RMSProp so, undecided otherwise (no test, or p >= the level)."""
    what = "(b) RMSProp beats Adam with clipping (final W1 ratio, Mann-Whitney)"
    if p_value is None or not math.isfinite(p_value) or not math.isfinite(p_better):
        return Check(what, None, "no test: too few finished runs, or runs on several datasets")
    detail = f"P(RMSProp better) = {p_better:.2f}, p = {p_value:.3g}"
    if p_value >= P_LEVEL or p_better == 0.5:
        return Check(what, None, f"{detail} (not below {P_LEVEL:g})")
    return Check(what, p_better > 0.5, f"{detail} < {P_LEVEL:g}, {'RMSProp' if p_better > 0.5 else 'Adam'} better")


# -------------------------------------------------------------------------------------- the sweeps


def optimizer_of(run: Run) -> str:
    return str(((run.config.get("objective") or {}).get("optimizer") or {}).get("name", ""))


def clip_runs(runs: list[Run], optimizer: str, datasets: set[str]) -> tuple[list[Run], int]:
    """The wgan_clip runs with ``optimizer`` on ``datasets`` that count: finished or diverged (a diverged run's
    metrics count as non-finite, worse than any); and how many others were skipped (failed, unfinished)."""
    ours = [r for r in runs if r.choices.get("objective") == "wgan_clip" and optimizer_of(r) == optimizer and r.dataset in datasets]
    kept = [r for r in ours if r.status in (FINISHED, DIVERGED)]
    return kept, len(ours) - len(kept)


def final_value(run: Run, metric: str) -> float:
    return run.final.get(metric, math.nan) if run.status == FINISHED else math.nan


# -------------------------------------------------------------------------------------- measure


def measure(ctx: Context) -> Outcome:
    s = settings(ctx.mode)
    cs = s["critic"]
    variants: list[float | None] = [*CLIP_BOUNDS, None]
    results: dict[str, list[CriticResult]] = {variant_label(c): [] for c in variants}
    for k in range(cs["seeds"]):
        for c in variants:
            ctx.progress(f"(a) critic {variant_label(c)}, seed {k + 1} of {cs['seeds']} ({cs['critic_steps']} steps)")
            results[variant_label(c)].append(run_critic(c, ctx.seed + k, cs, ctx.device))

    figures: list[Figure] = []
    fractions: dict[str, Figure] = {}
    ratios: dict[str, Figure] = {}
    weight_ratios: dict[str, Figure] = {}
    for c in CLIP_BOUNDS:
        label = variant_label(c)
        fractions[label], _ = summary_figure(f"(a) fraction of critic parameters at +-c, {label}", [r.fraction_at_bound for r in results[label]])
        figures.append(fractions[label])
    for label, rs in results.items():
        ratios[label], _ = summary_figure(f"(a) log10 activation-gradient ratio, first/last hidden layer, {label}",
                                          [log10_ratio(r.activation_norms) for r in rs], "log10")
        weight_ratios[label], _ = summary_figure(f"(a) log10 weight-gradient ratio, first/last layer, {label} (not in the verdict)",
                                                 [log10_ratio(r.weight_norms) for r in rs], "log10")
    figures += [ratios[label] for label in results] + [weight_ratios[label] for label in results]
    checks = critic_checks(fractions["c=0.01"], ratios)

    ctx.progress("(b) reading the sweeps: wgan_clip with RMSProp (toy) and Adam (clip_adam)")
    datasets = {s["optimizers"]["dataset"]}
    rms, rms_skipped = clip_runs(ctx.runs("toy"), "rmsprop", datasets)
    adam, adam_skipped = clip_runs(ctx.runs(SWEEP), "adam", datasets)
    by_optimizer = {"rmsprop": rms, "adam": adam}
    for name, runs in by_optimizer.items():
        for metric, label in ((W1_RATIO, "final W1 ratio"), (MODES_COVERED, "final modes covered")):
            fig, _ = summary_figure(f"(b) {label}, wgan_clip with {name}", [final_value(r, metric) for r in runs])
            figures.append(fig)
    p_better, p_value = math.nan, None
    if len(rms) >= 2 and len(adam) >= 2:
        a = [[final_value(r, W1_RATIO) for r in rms]]
        b = [[final_value(r, W1_RATIO) for r in adam]]
        p_better = probability_of_improvement(a, b, higher_is_better=False)
        interval = improvement_interval(a, b, higher_is_better=False)
        p_value = improvement_test(a, b, higher_is_better=False)
        figures.append(Figure("(b) P(an RMSProp run has a lower final W1 ratio than an Adam run)", p_better,
                              None if math.isnan(interval.low) else interval.low, None if math.isnan(interval.high) else interval.high,
                              "", f"95% bootstrap ({interval.method}) over {len(rms)} and {len(adam)} runs"))
        figures.append(Figure("(b) Mann-Whitney two-sided p-value, RMSProp vs Adam (final W1 ratio)", math.nan if p_value is None else p_value))
    figures.append(Figure("(b) runs skipped (failed or unfinished)", float(rms_skipped + adam_skipped)))
    checks.append(optimizer_check(p_better, p_value))

    plots = [draw_gradient_norms(ctx, results), draw_weights(ctx, results), draw_optimizers(ctx, by_optimizer)]
    return Outcome(figures=figures, checks=checks, table=table(results, fractions, ratios, weight_ratios, by_optimizer),
                   plots=plots, notes=notes(s, rms, adam, rms_skipped + adam_skipped))


def table(results: dict[str, list[CriticResult]], fractions: dict[str, Figure], ratios: dict[str, Figure],
          weight_ratios: dict[str, Figure], by_optimizer: dict[str, list[Run]]) -> str:
    """Markdown: part (a) one row per critic, part (b) one row per optimizer."""
    steps = [step for step, _ in next(iter(results.values()))[0].ratio_trace]
    rows = ["| critic | params at +-c, start | params at +-c, end | log10 activation-gradient ratio (first/last) "
            f"| its median at steps {', '.join(map(str, steps))} | log10 weight-gradient ratio | Wasserstein estimate |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, rs in results.items():
        start = f"{np.mean([r.fraction_at_bound_start for r in rs]):.3f}" if label in fractions else "-"
        end = fractions[label].text() if label in fractions else "-"
        trace = np.median([[ratio for _, ratio in r.ratio_trace] for r in rs], axis=0)
        rows.append(f"| {label} | {start} | {end} | {ratios[label].text()} | {', '.join(f'{v:.2g}' for v in trace)} | "
                    f"{weight_ratios[label].text()} | {np.mean([r.w_estimate for r in rs]):.3g} |")
    rows += ["", "| wgan_clip optimizer | finished runs | final W1 ratio (median) | modes covered (median) |", "| --- | --- | --- | --- |"]
    for name, runs in by_optimizer.items():
        w1 = [final_value(r, W1_RATIO) for r in runs]
        modes = [final_value(r, MODES_COVERED) for r in runs]
        finished = sum(r.status == FINISHED for r in runs)
        rows.append(f"| {name} | {finished} of {len(runs)} | {np.nanmedian(w1) if finished else math.nan:.3g} | "
                    f"{np.nanmedian(modes) if finished else math.nan:.3g} |")
    return "\n".join(rows)


def notes(s: dict[str, Any], rms: list[Run], adam: list[Run], skipped: int) -> list[str]:
    cs = s["critic"]
    factor = {c: c * math.sqrt(cs["width"] / 2) for c in CLIP_BOUNDS}
    return [
        f"(a) Protocol: a critic of {cs['depth']} hidden ReLU layers x {cs['width']} units trained for {cs['critic_steps']} steps "
        f"(batch {cs['batch_size']}) on the Swiss roll against a fixed, untrained generator of the same shape, {cs['seeds']} seeds; "
        "the paper trains generator and critic together (width not stated; gan_toy.py uses 512).",
        "(a) The gradient is taken with respect to each hidden layer's activations, as in the paper's Fig. 1a, in float64. "
        "The gradient with respect to the weights (reported, not in the verdict) stays level under clipping: the backward signal "
        "shrinks layer by layer towards the input as much as the forward activations grow towards it.",
        "(a) Why the pattern depends on c and the width n: a layer whose weights sit at +-c with unrelated signs scales a "
        f"gradient by about c*sqrt(n/2) ({', '.join(f'c={c:g}: {f:.2g}' for c, f in factor.items())} at n = {cs['width']}); "
        "training aligns the signs, which lets c = 0.1 explode. At another width the same c can fall on the other side.",
        "(a) He-uniform initial weights (up to sqrt(6/fan_in)) exceed c = 0.01 and 0.001 almost everywhere, so most weights "
        "sit at +-c from the first clip on (the table's 'start' column: the initial weights clipped, as the official WGAN code "
        "clamps before each critic step); the 'end' column shows whether training keeps them there.",
        "(a) The gradient ratio is not a property of c alone: it changes as the critic trains (the table's column of its "
        "median at a few steps); the verdict reads it at the end of the critic's training.",
        f"(b) RMSProp: the toy sweep's wgan_clip runs ({len(rms)}); Adam: sweep {SWEEP} ({len(adam)} runs), lr 5e-5 and "
        "betas (0.5, 0.99) for G and D, so that Adam differs from RMSProp (smoothing 0.99) by its momentum and bias correction "
        f"only; 25 Gaussians, the toy sweep's seeds and steps. Diverged runs count as worse than any finished one; {skipped} "
        "failed or unfinished runs were skipped.",
        f"(b) With 5 seeds a side the exact two-sided Mann-Whitney test needs at most 2 of the 25 pairs reversed for p < {P_LEVEL:g}; "
        "a smaller difference is reported as inconclusive, not as no difference.",
    ]


# ------------------------------------------------------------------------------------------ plots


def _figure(*size: float) -> PlotFigure:
    fig = PlotFigure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def draw_gradient_norms(ctx: Context, results: dict[str, list[CriticResult]]) -> str:
    """gradient_norms.png: log10 gradient norm per hidden layer for each c and GP (median, min-max band over seeds), like Fig. 1a."""
    fig = _figure(7, 4.5)
    ax = fig.add_subplot()
    for label, rs in results.items():
        logs = np.log10(np.maximum(np.stack([r.activation_norms for r in rs]), 1e-300))  # (seeds, L)
        layers = np.arange(1, logs.shape[1] + 1)
        (line,) = ax.plot(layers, np.median(logs, axis=0), marker="o", markersize=3,
                          label=f"{'gradient penalty' if label == 'gp' else 'weight clipping ' + label} ({len(rs)} seeds)")
        ax.fill_between(layers, logs.min(axis=0), logs.max(axis=0), color=line.get_color(), alpha=0.2, linewidth=0)
    ax.invert_xaxis()  # as Fig. 1a: from the output side (left) back towards the input (right)
    ax.set_xlabel("critic hidden layer (output side -> input side)")
    ax.set_ylabel("log10 ||d loss / d activations||")
    ax.set_title("Critic gradient norm per layer: median and min-max over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    name = "gradient_norms.png"
    fig.savefig(ctx.out / name, dpi=100)
    return name


def draw_weights(ctx: Context, results: dict[str, list[CriticResult]]) -> str:
    """weights_histogram.png: the critic's weights, c = 0.01 (top) and the gradient penalty (bottom), like Fig. 1b."""
    fig = _figure(7, 5)
    for row, label in enumerate(("c=0.01", "gp")):
        ax = fig.add_subplot(2, 1, row + 1)
        weights = np.concatenate([r.weights for r in results[label]])
        ax.hist(weights, bins=80, color="C1" if row == 0 else "C3", label=f"{'weight clipping ' + label if row == 0 else 'gradient penalty'} "
                f"({len(results[label])} seeds)")
        ax.set_xlabel("critic weight")
        ax.set_ylabel("count")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.suptitle("Critic weights after training: clipped (top) vs gradient penalty (bottom)")
    name = "weights_histogram.png"
    fig.savefig(ctx.out / name, dpi=100)
    return name


def draw_optimizers(ctx: Context, by_optimizer: dict[str, list[Run]]) -> str:
    """optimizers.png: each run's final W1 ratio, RMSProp vs Adam (diverged runs marked at the top)."""
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    finite = [v for runs in by_optimizer.values() for v in (final_value(r, W1_RATIO) for r in runs) if math.isfinite(v)]
    top = max(finite) * 1.1 if finite else 1.0
    for i, (name, runs) in enumerate(by_optimizer.items()):
        values = np.array([final_value(r, W1_RATIO) for r in runs])
        jitter = np.linspace(-0.1, 0.1, len(values)) if len(values) > 1 else np.zeros(len(values))
        ok = np.isfinite(values)
        ax.scatter(i + jitter[ok], values[ok], color=f"C{i}", label=f"{name} ({ok.sum()} finished)")
        if (~ok).any():
            ax.scatter(i + jitter[~ok], np.full((~ok).sum(), top), marker="x", color=f"C{i}", label=f"{name}: diverged")
    ax.set_xticks(range(len(by_optimizer)), [f"wgan_clip, {name}" for name in by_optimizer])
    ax.set_xlim(-0.5, len(by_optimizer) - 0.5)
    ax.set_ylabel("final W1 ratio (lower is better)")
    ax.set_title("Weight clipping with RMSProp vs Adam: one point per seed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    name = "optimizers.png"
    fig.savefig(ctx.out / name, dpi=100)
    return name
