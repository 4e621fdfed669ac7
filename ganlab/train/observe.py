"""Observing a run without changing it.

Everything that only *looks at* a run — the per-interval diagnostics, pictures, metrics,
checkpoints, the metric classifier — must leave the run's trajectory exactly as it was, so that
``log_every``, ``sample_every``, ``eval_every``, ``checkpoint_every``, ``eval_samples`` and G_ema can
be changed (also on resume) without changing what is trained. Two things can leak from an
observer into training:

* **random draws**: a draw from a global RNG shifts every later noise and data draw;
* **module state**: a critic run in training mode advances spectral norm's power iteration and
  moves batch-norm running statistics; a flag (``training``, ``requires_grad``) left changed
  alters the next step.

Observers draw from their own generators; :func:`observing` makes that a guarantee rather than a
convention, for the whole block::

    with observing(G, D):
        metrics = run.evaluate(step, G, D)

It saves every global RNG (Python, numpy, torch CPU and every CUDA device), each module's buffers,
``training`` flags and parameters' ``requires_grad``, and puts them back on exit, also when the block
raises. Parameters themselves are not saved: an observer that changed a weight would be a bug,
not an observation, and copying every weight at every interval would cost as much as a step.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from ganlab.train.state import rng_state, set_rng_state


@contextlib.contextmanager
def observing(*modules: nn.Module | None) -> Iterator[None]:
    """Run the block as an observer: global RNGs and the modules' buffers and flags are restored after it.

    Args:
        modules: networks the block may run (``None`` entries are skipped, e.g. an absent G_ema).
            Their buffers (spectral norm's ``u``/``v``, batch-norm statistics) are copied on entry
            and copied back on exit; that is one small copy per buffer, once per interval.
    """
    rng = rng_state()
    saved = [
        (
            module,
            [(buffer, buffer.detach().clone()) for buffer in module.buffers()],
            [(sub, sub.training) for sub in module.modules()],
            [(p, p.requires_grad) for p in module.parameters()],
        )
        for module in dict.fromkeys(m for m in modules if m is not None)  # G_ema may be G's only stand-in: once each
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for _, buffers, modes, flags in saved:
                for buffer, copy in buffers:
                    buffer.copy_(copy)
                for sub, training in modes:
                    sub.training = training
                for p, requires_grad in flags:
                    p.requires_grad_(requires_grad)
        set_rng_state(rng)


def observer_generator(device: torch.device, step: int, stream: int) -> torch.Generator:
    """A generator for an observer's draws at ``step``, independent of training and of the interval.

    Seeded by (``stream``, ``step``) only, so the figure an observer reports for a step is the same
    whether it logs every step or every thousand, and after a resume.
    """
    return torch.Generator(device).manual_seed(stream * 1_000_003 + step)
