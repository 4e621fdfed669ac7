"""The training sweeps that several claims read, defined once so that they run once.

``toy(mode)`` is the four classic objectives at their paper settings on the 8- and 25-Gaussian
data over seeds, with frequent evaluations: claim 3 (the Wasserstein estimate as a progress curve)
reads its curves, claim 5 its critics' input-gradient norms, claim 7 its mode coverage, claim 4
its clipped critics. Budgets by mode:

* ``quick``: 2 seeds, 24 steps, tiny networks: the machinery in CI, not the verdicts;
* ``full``: 5 seeds, 3000 steps (the default run's 5000 would not fit ~2 hours: 40 runs of ~2 min of one core
  each, ~45 min with two jobs at once), an evaluation every 250 steps (12 per run);
* ``gpu``: 10 seeds, 20000 steps.
"""

from __future__ import annotations

from ganlab.claims.base import Sweep

TOY_OBJECTIVES = ("js", "wgan_clip", "wgan_gp", "spectral_norm")

# What a tiny run needs: every interval reached at least a few times in 24 steps, small networks.
QUICK_RUN = ("steps=24", "batch_size=32", "model.width=16", "log_every=4", "sample_every=24", "eval_every=8",
             "eval_samples=200", "checkpoint_every=24")


def seeds(mode: str) -> tuple[int, ...]:
    """The seeds of the training sweeps: 2 (quick), 5 (full), 10 (gpu)."""
    return tuple(range({"quick": 2, "full": 5, "gpu": 10}[mode]))


def run_budget(mode: str) -> tuple[str, ...]:
    """The overrides that size one toy training run for ``mode``."""
    if mode == "quick":
        return QUICK_RUN
    if mode == "full":
        return ("steps=3000", "eval_every=250", "eval_samples=2500")
    return ("steps=20000", "eval_every=1000", "eval_samples=2500")


def sweep_values(values: tuple | list) -> str:
    """A Hydra sweep of ``values``: ``a,b,c``."""
    return ",".join(str(v) for v in values)


def toy(mode: str) -> Sweep:
    """js, wgan_clip, wgan_gp and spectral_norm on gaussians8 and gaussians25, over :func:`seeds`."""
    return Sweep("toy", (
        f"objective={sweep_values(TOY_OBJECTIVES)}", "dataset=gaussians8,gaussians25", f"seed={sweep_values(seeds(mode))}",
        *run_budget(mode),
    ))
