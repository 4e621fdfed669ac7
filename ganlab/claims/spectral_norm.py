"""Claim 6: spectral normalisation holds the largest singular value of every critic layer's
reshaped weight at 1, with one power iteration per step.

Protocol (Miyato et al. 2018, Sec. 2.1 and Alg. 1): the DCGAN critic on the digits
(:mod:`ganlab.models.dcgan`, :class:`ganlab.data.digits.Digits`) with ganlab's spectral norm
constraint (:class:`ganlab.objectives.constraints.spectral_norm.SpectralNorm`, one power
iteration per forward pass) is trained with the spectral_norm preset's hinge loss against a
co-trained generator. Every few generator steps, for every normalised layer:

* sigma of the effective weight W / sigma_hat reshaped to (out, in * k * k), exactly
  (``torch.linalg.matrix_norm(W.flatten(1), 2)``), where sigma_hat = u^T W v is what the power
  iteration has reached (the weight the next forward pass uses: one more iteration, as training
  would run it, undone afterwards by :func:`ganlab.train.observe.observing`);
* the lag of the one-iteration estimate: 1 - sigma_hat / sigma(W), sigma(W) the exact (converged)
  largest singular value of the raw weight; the effective sigma is 1 / (1 - lag);
* for a convolution, the operator norm of the convolution itself with the effective kernel, on
  the layer's input shape (power iteration with ``conv2d`` and its adjoint ``conv_transpose2d``):
  Miyato normalises the reshaped matrix, not this operator, whose norm can differ from it.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as PlotFigure
from torch import nn

from ganlab.claims.base import Context, Outcome, Sweep, below
from ganlab.claims.critic import band, mean_figure, seeded_generator
from ganlab.data.digits import Digits
from ganlab.logger.stats import Stats
from ganlab.models.dcgan import build_dcgan
from ganlab.objectives.constraints.spectral_norm import SpectralNorm
from ganlab.objectives.objective import build_objective
from ganlab.precision import Precision
from ganlab.train.observe import observing

NUMBER = 6
SLUG = "spectral_norm"
TITLE = "Spectral normalisation holds each layer's reshaped weight matrix at largest singular value 1"
SOURCE = "Miyato, Kataoka, Koyama & Yoshida 2018 (SN-GAN), Sec. 2.1, Alg. 1 and Appendix A"
STATEMENT = ("Dividing each critic layer's weight by an estimate of its largest singular value, one power iteration per "
             "training step, keeps the largest singular value of every layer's weight matrix (a convolution's kernel "
             "reshaped to out x in*k*k) at 1 throughout training, which bounds the critic's Lipschitz constant.")

# The verdict's threshold: fixed before the full run; never tuned after it.
TOLERANCE = 0.05  # every layer's reshaped sigma within 1 +- 0.05 after the first steps: a per-layer excess of 5%
# compounds to at most 1.05^L over the critic's L layers (1.16 for the 3-layer digits critic), a bound still of
# order 1, whereas an unnormalised layer's sigma is free to grow without bound.
WARMUP = 0.1  # "after the first steps": evaluations in the first 10% of the generator steps are left out of the check
# (the power iteration starts from a random u, converged by 15 iterations at attach, then tracks W as it moves).

PRESET = {  # the spectral_norm preset (conf/objective/spectral_norm.yaml): SN-GAN's setting with betas (0, 0.9)
    "loss": {"_target_": "ganlab.objectives.losses.hinge.Hinge"},
    "constraints": {"sn": {"_target_": "ganlab.objectives.constraints.spectral_norm.SpectralNorm", "power_iterations": 1}},
    "n_critic": 5,
}


def settings(mode: str) -> dict[str, Any]:
    """Every setting of the protocol at ``mode`` (quick | full | gpu)."""
    common = {
        "dataset": "digits",
        "model": "dcgan",
        "critic_norm": "none",  # SN-GAN's critics have no other normalisation
        "z_dim": 100,  # DCGAN paper
        "objective": "spectral_norm (hinge loss, sn with 1 power iteration, n_critic 5)",
        "n_critic": PRESET["n_critic"],
        "power_iterations": PRESET["constraints"]["sn"]["power_iterations"],
        "lr": 2e-4,  # the spectral_norm preset (SN-GAN)
        "betas": [0.0, 0.9],
        "warmup_fraction": WARMUP,
    }
    if mode == "quick":
        return {**common, "seeds": 2, "resolution": 16, "width": 8, "batch_size": 16, "g_steps": 6, "eval_every": 2,
                "conv_iterations": 20}
    if mode == "full":
        return {**common, "seeds": 5, "resolution": 16, "width": 32, "batch_size": 64, "g_steps": 150, "eval_every": 5,
                "conv_iterations": 50}
    if mode == "gpu":
        return {**common, "seeds": 10, "resolution": 32, "width": 64, "batch_size": 64, "g_steps": 2000,
                "eval_every": 50, "conv_iterations": 100}
    raise ValueError(f"mode must be one of quick, full, gpu, got {mode!r}")


def sweeps(mode: str) -> list[Sweep]:
    """None: the protocol trains its own critic in :func:`measure`."""
    return []


def conv_operator_norm(weight: torch.Tensor, conv: nn.Conv2d, input_shape: tuple[int, int, int], iterations: int,
                       start: torch.Tensor | None = None, generator: torch.Generator | None = None) -> tuple[float, torch.Tensor]:
    """The largest singular value of the linear map x -> conv2d(x, ``weight``) (no bias) on inputs of
    ``input_shape`` = (C, H, W), with ``conv``'s stride, padding, dilation and groups, by ``iterations``
    power iterations on A^T A (A^T = ``conv_transpose2d``, its adjoint). Returns (sigma, the last
    unit input vector, (1, C, H, W)): pass it as ``start`` to resume the iteration (a warm start).

    Power iteration approaches sigma from below; with a gap between the two largest singular
    values it converges geometrically.

    Raises:
        ValueError: a padding given as a string or a padding mode other than zeros.
    """
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise ValueError(f"conv_operator_norm needs integer zero padding, got padding={conv.padding!r}, padding_mode={conv.padding_mode!r}")
    weight = weight.detach().double()
    options = {"stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation, "groups": conv.groups}
    x = start if start is not None else torch.randn((1, *input_shape), dtype=torch.float64, device=weight.device, generator=generator)
    x = x.double() / x.norm()
    y = F.conv2d(x, weight, **options)
    output_padding = tuple(
        size - ((out - 1) * s - 2 * p + d * (k - 1) + 1)
        for size, out, s, p, d, k in zip(input_shape[1:], y.shape[2:], conv.stride, conv.padding, conv.dilation, weight.shape[2:])
    )
    for _ in range(iterations):
        x = F.conv_transpose2d(y, weight, output_padding=output_padding, **options)
        x = x / x.norm()
        y = F.conv2d(x, weight, **options)
    return float(y.norm()), x


def layer_inputs(D: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The input shape (without the batch) of every spectrally normalised layer of ``D`` on ``x``,
    recorded by one forward pass inside :func:`observing` (so the power iteration it runs is undone)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:  # returns None: the output stays
            shapes[name] = tuple(args[0].shape[1:])
        return hook

    hooks = [module.register_forward_hook(record(name)) for name, module in SpectralNorm.layers(D)]
    try:
        with observing(D), torch.no_grad():
            D(x[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def layer_sigmas(D: nn.Module, shapes: dict[str, tuple[int, ...]], iterations: int, starts: dict[str, torch.Tensor],
                 generator: torch.Generator) -> dict[str, dict[str, float]]:
    """For every normalised layer of ``D`` (in training mode): "sigma" of its effective weight
    reshaped to (out, in * k * k), "lag" = 1 - sigma_hat / sigma(W_raw), "raw" = sigma(W_raw) and,
    for a Conv2d, "conv" = the operator norm of the convolution with the effective kernel on its
    input shape (warm-started from ``starts[name]``, updated in place). Changes nothing in ``D``."""
    out: dict[str, dict[str, float]] = {}
    with observing(D), torch.no_grad():
        for name, module in SpectralNorm.layers(D):
            raw = module.parametrizations.weight.original
            effective = module.weight  # runs the power iteration as the next forward pass would (undone on exit)
            estimate = float(module.parametrizations.weight[0].sigma(raw))  # u^T W v after that iteration
            exact = float(torch.linalg.matrix_norm(raw.detach().double().flatten(1), 2))
            row = {
                "sigma": float(torch.linalg.matrix_norm(effective.detach().double().flatten(1), 2)),
                "lag": 1.0 - estimate / exact,
                "raw": exact,
            }
            if isinstance(module, nn.Conv2d):
                row["conv"], starts[name] = conv_operator_norm(effective, module, shapes[name], iterations,
                                                               starts.get(name), generator)
            out[name] = row
    return out


def run_seed(config: dict[str, Any], seed: int, device: str) -> dict[str, Any]:
    """One seed: the critic trained with the spectral_norm objective against a co-trained G.

    Returns "steps" (E,) critic steps at each evaluation, "layers" (names, in order), "shapes"
    (each layer's reshaped matrix shape), and per quantity ("sigma", "lag", "raw", "conv") an array
    (E, layers) (NaN for "conv" where a layer is not a convolution).
    """
    torch.manual_seed(seed)
    data = Digits(config["resolution"], device, seed)
    G, D = build_dcgan(data.shape, (-1.0, 1.0), z_dim=config["z_dim"], width=config["width"],
                       critic_norm=config["critic_norm"], init="dcgan")
    G, D = G.to(device), D.to(device)
    objective = build_objective(PRESET)
    objective.attach(D)
    precision, stats = Precision("fp32", device), Stats()
    opt_D = torch.optim.Adam(D.parameters(), lr=config["lr"], betas=tuple(config["betas"]))
    opt_G = torch.optim.Adam(G.parameters(), lr=config["lr"], betas=tuple(config["betas"]))
    noise = seeded_generator(device, seed)
    n = config["batch_size"]
    layers = [name for name, _ in SpectralNorm.layers(D)]
    shapes = layer_inputs(D, data.sample(1, seeded_generator(device, 30_000 + seed)))
    starts: dict[str, torch.Tensor] = {}
    probe = seeded_generator(device, 40_000 + seed)
    steps, rows = [], []

    def evaluate(critic_steps: int) -> None:
        iterations = config["conv_iterations"] * (4 if not starts else 1)  # a cold start needs more
        steps.append(critic_steps)
        rows.append(layer_sigmas(D, shapes, iterations, starts, probe))

    evaluate(0)
    for g_step in range(1, config["g_steps"] + 1):
        for k in range(objective.n_critic):
            real = data.sample(n)
            with torch.no_grad():
                fake = G(torch.randn(n, config["z_dim"], device=device, generator=noise))
            loss_D = objective.critic_loss(D, real, fake, precision, stats, k)
            opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            opt_D.step()
            objective.after_critic_step(D)
        D.requires_grad_(False)
        loss_G = objective.generator_loss(D, G(torch.randn(n, config["z_dim"], device=device, generator=noise)), precision, stats)
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()
        D.requires_grad_(True)
        if g_step % config["eval_every"] == 0 or g_step == config["g_steps"]:
            evaluate(g_step * objective.n_critic)
    modules = dict(SpectralNorm.layers(D))
    return {
        "steps": np.array(steps),
        "layers": layers,
        "shapes": [tuple(modules[name].parametrizations.weight.original.flatten(1).shape) for name in layers],
        **{key: np.array([[row[name].get(key, math.nan) for name in layers] for row in rows]) for key in ("sigma", "lag", "raw", "conv")},
    }


def after_warmup(result: dict[str, Any], fraction: float) -> np.ndarray:
    """The evaluations (bool mask over "steps") after the first ``fraction`` of the critic steps."""
    steps = result["steps"]
    return steps > fraction * steps[-1]


def figures_and_checks(results: list[dict[str, Any]], warmup: float):
    """The figures over seeds and the verdict's check, from one :func:`run_seed` result per seed."""
    def over_seeds(fn) -> list[float]:
        return [float(fn(r)) for r in results]

    held = mean_figure(f"max over layers and evaluations after the first {warmup:.0%} of steps of |sigma - 1|",
                       over_seeds(lambda r: np.abs(r["sigma"][after_warmup(r, warmup)] - 1).max()))
    conv_cols = [i for i, name in enumerate(results[0]["layers"]) if np.isfinite(results[0]["conv"][-1, i])]
    figures = [
        held,
        mean_figure("max over layers of |sigma - 1| at the end", over_seeds(lambda r: np.abs(r["sigma"][-1] - 1).max())),
        mean_figure("max over layers and all evaluations of |sigma - 1|", over_seeds(lambda r: np.abs(r["sigma"] - 1).max())),
        mean_figure(f"one-iteration lag 1 - sigma_hat / sigma(W): max after the first {warmup:.0%}",
                    over_seeds(lambda r: r["lag"][after_warmup(r, warmup)].max())),
        mean_figure(f"one-iteration lag: mean over layers and evaluations after the first {warmup:.0%}",
                    over_seeds(lambda r: r["lag"][after_warmup(r, warmup)].mean())),
        mean_figure("largest sigma of a raw (unnormalised) weight at the end", over_seeds(lambda r: r["raw"][-1].max())),
    ]
    for i in conv_cols:
        name = results[0]["layers"][i]
        figures.append(mean_figure(f"layer {name}: convolution operator norm at the end",
                                   over_seeds(lambda r, i=i: r["conv"][-1, i])))
        figures.append(mean_figure(f"layer {name}: convolution operator norm / reshaped-matrix sigma at the end",
                                   over_seeds(lambda r, i=i: r["conv"][-1, i] / r["sigma"][-1, i])))
    checks = [below(f"every layer's reshaped-matrix sigma within {TOLERANCE:g} of 1 after the first {warmup:.0%} of steps: "
                    "the largest |sigma - 1|", held.value, TOLERANCE, held.high)]
    return figures, checks


def plot(results: list[dict[str, Any]], path, config: dict[str, Any]) -> None:
    """sigma of each layer's effective reshaped weight (top) and each convolution's operator norm
    (bottom) against critic steps: mean over seeds with the 95% t-band."""
    fig = PlotFigure(figsize=(8, 7), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    steps, layers = results[0]["steps"], results[0]["layers"]
    for i, name in enumerate(layers):
        shape = results[0]["shapes"][i]
        x, mean, lower, upper = band(steps, np.stack([r["sigma"][:, i] for r in results]))
        (line,) = top.plot(x, mean, marker="o", markersize=3, label=f"{name} ({shape[0]} x {shape[1]})")
        top.fill_between(x, lower, upper, color=line.get_color(), alpha=0.2, linewidth=0)
        conv = np.stack([r["conv"][:, i] for r in results])
        if np.isfinite(conv).all():
            x, mean, lower, upper = band(steps, conv)
            bottom.plot(x, mean, marker="o", markersize=3, color=line.get_color(), label=f"{name}: conv operator norm")
            bottom.fill_between(x, lower, upper, color=line.get_color(), alpha=0.2, linewidth=0)
    for ax in (top, bottom):
        ax.axhline(1.0, color="k", linestyle="--", linewidth=1, label="1")
        ax.grid(alpha=0.3)
    top.axhline(1 + TOLERANCE, color="r", linestyle=":", linewidth=1, label=f"1 + {TOLERANCE:g} (tolerance)")
    top.axvline(WARMUP * steps[-1], color="grey", linestyle=":", linewidth=1, label="end of warm-up")
    top.set_ylabel("sigma_max(W_eff.flatten(1))")
    top.set_title(f"Spectral norm, one power iteration per step: DCGAN critic on {config['dataset']} "
                  f"{config['resolution']} px\n({len(results)} seeds: mean and 95% t-band)", fontsize="medium")
    top.legend(fontsize="small")
    bottom.set_ylabel("operator norm of the convolution")
    bottom.set_xlabel("critic steps")
    bottom.legend(fontsize="small")
    fig.savefig(path, dpi=100)


def table(results: list[dict[str, Any]], warmup: float) -> str:
    """A Markdown table: per layer, its reshaped shape, its sigma at the end, the largest |sigma - 1|
    and lag after the warm-up, and its convolution operator norm at the end (means over seeds)."""
    lines = ["| layer | W.flatten(1) | sigma at the end | max abs(sigma - 1) after warm-up | lag: mean / max after warm-up | "
             "conv operator norm at the end | raw sigma(W) at the end |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for i, name in enumerate(results[0]["layers"]):
        shape = results[0]["shapes"][i]

        def mean(fn) -> float:
            return round(float(np.mean([fn(r) for r in results])), 6) + 0.0  # + 0.0: no "-0.0000" for a rounding error

        conv = mean(lambda r: r["conv"][-1, i])
        lines.append(
            f"| {name} | {shape[0]} x {shape[1]} | {mean(lambda r: r['sigma'][-1, i]):.4f} | "
            f"{mean(lambda r: np.abs(r['sigma'][after_warmup(r, warmup), i] - 1).max()):.4f} | "
            f"{mean(lambda r: r['lag'][after_warmup(r, warmup), i].mean()):.4f} / {mean(lambda r: r['lag'][after_warmup(r, warmup), i].max()):.4f} | "
            f"{'-' if not math.isfinite(conv) else f'{conv:.3f}'} | {mean(lambda r: r['raw'][-1, i]):.3g} |")
    return "\n".join(lines)


def measure(ctx: Context) -> Outcome:
    """Run the protocol over ``ctx.seed + k``, k < seeds, on ``ctx.device``; draw the PNG into ``ctx.out``."""
    config = settings(ctx.mode)
    ctx.out.mkdir(parents=True, exist_ok=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    results = []
    for k in range(config["seeds"]):
        ctx.progress(f"seed {k + 1}/{config['seeds']}: SN critic, {config['g_steps']} generator steps x {config['n_critic']} critic steps")
        results.append(run_seed(config, ctx.seed + k, ctx.device))
    figures, checks = figures_and_checks(results, config["warmup_fraction"])
    plot_name = "spectral_norm_sigma.png"
    plot(results, ctx.out / plot_name, config)
    notes = [
        f"Protocol: DCGAN (width {config['width']}, no normalisation in the critic) on the digits at "
        f"{config['resolution']} px, the spectral_norm preset (hinge loss, spectral norm of every critic layer with "
        f"{config['power_iterations']} power iteration per forward pass, {config['n_critic']} critic steps per generator "
        f"step, Adam {config['lr']} betas {tuple(config['betas'])}, batch {config['batch_size']}), {config['g_steps']} "
        f"generator steps; every {config['eval_every']} generator steps each layer measured as in the module docstring. "
        f"Measured in {time.perf_counter() - started:.0f} s ({time.process_time() - cpu_started:.0f} s of CPU time).",
        "sigma is the exact largest singular value of the weight the critic uses, reshaped to (out, in*k*k), as Miyato "
        "normalises it; sigma = 1 / (1 - lag), so any lag of the power iteration (which approaches sigma(W) from below) "
        "shows as sigma > 1. The lag is largest for a layer whose top singular values are close (a nearly flat "
        "spectrum, as random weights have), where one power iteration per step converges slowly, and while the "
        "weights move fast relative to their size: Adam moves each weight by up to about lr per step, and DCGAN's "
        "N(0, 0.02) initial weights are only 100 such steps in size, so a longer run (larger weights, smaller relative "
        "steps) may track sigma more closely than this budget shows.",
        "Miyato et al. normalise the kernel reshaped to a matrix, not the convolution as a linear map on its input; the "
        "two norms differ (the table and the lower panel of the figure give both), so a reshaped sigma of 1 does not "
        "by itself make each convolution 1-Lipschitz.",
        "Differences from the paper: SN-GAN's CIFAR-10/STL-10 CNN and ResNet critics at 32-48 px over 100k+ updates; "
        f"here ganlab's DCGAN critic at {config['resolution']} px over {config['g_steps'] * config['n_critic']} critic steps.",
    ]
    return Outcome(figures=figures, checks=checks, table=table(results, config["warmup_fraction"]), plots=[plot_name], notes=notes)
