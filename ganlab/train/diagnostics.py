"""What a researcher looks at when the critic wins: computed once per log interval, changing nothing.

:func:`critic_diagnostics` runs on the last critic batch of the interval and returns

* scalars: the constraint's own diagnostics (``Clip/fraction_at_bound``, ``SpectralNorm/sigma/*``),
  the critic's input-gradient norms ``CriticGrad/{real,fake,interp}_{mean,max}`` (the quantity the
  gradient penalty acts on, for every objective: WGAN-GP paper, Sec. 4 and Fig. 1) and
  ``Critic/accuracy``;
* histograms: ``Histogram/D_real`` and ``Histogram/D_fake``, the critic's scores, which show a
  critic that separates the two sets long before the means do.

``Critic/accuracy`` is the share of (real, fake) pairs that the critic ranks the right way round,
P(D(real) > D(fake)) (ties count one half): the area under the ROC curve of D as a real-vs-fake
detector. It needs no threshold, so it means the same for every loss family (a JS discriminator's
logits, a Wasserstein critic's unbounded scores, hinge and least squares): 0.5 is a critic that
cannot tell them apart, 1 one that separates them completely.

Everything runs inside :func:`ganlab.train.observe.observing` with its own step-seeded generator, so
the run continues exactly as it would have without it.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.objectives import Objective
from ganlab.objectives.gradients import input_gradient_norm, interpolates
from ganlab.objectives.objective import split_scores
from ganlab.train.observe import observer_generator, observing

Tensor = torch.Tensor

CRITIC_GRAD_STREAM = 1  # observer_generator stream of the interpolation points


def critic_input_gradients(D: nn.Module, real: Tensor, fake: Tensor, step: int) -> dict[str, Tensor]:
    """Mean and max of ||dD/dx|| at real, fake and interpolated points, in fp32 (device tensors).

    ``real`` and ``fake`` are (n, ...) batches. The critic runs as in training (its batch-norm and
    spectral-norm layers behave as the penalty sees them), inside :func:`observing`, and the
    interpolation weights come from a generator seeded by ``step``: a step's figures do not
    depend on ``log_every``.
    """
    with observing(D):
        return _input_gradient_norms(D, real, fake, step)


def _input_gradient_norms(D: nn.Module, real: Tensor, fake: Tensor, step: int) -> dict[str, Tensor]:
    """:func:`critic_input_gradients` without its own :func:`observing` (the caller holds one)."""
    out = {}
    x_hat = interpolates(real, fake, generator=observer_generator(real.device, step, CRITIC_GRAD_STREAM))
    for name, x in (("real", real), ("fake", fake), ("interp", x_hat)):
        norm = input_gradient_norm(D, x)
        out[f"CriticGrad/{name}_mean"] = norm.mean()
        out[f"CriticGrad/{name}_max"] = norm.max()
    return out


def ranking_accuracy(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """P(D(real) > D(fake)) over all (real, fake) pairs, ties counted one half (a device scalar).

    ``d_real`` (n,) and ``d_fake`` (m,) are critic scores; n * m comparisons, chunked so that a
    large batch needs at most 2^22 booleans at a time. This is the Mann-Whitney U statistic
    divided by n * m, i.e. the ROC AUC of the scores as a real-vs-fake detector.
    """
    d_real, d_fake = d_real.flatten().float(), d_fake.flatten().float()
    chunk = max(1, (1 << 22) // max(d_fake.numel(), 1))
    wins = sum(((r[:, None] > d_fake).sum() + 0.5 * (r[:, None] == d_fake).sum()) for r in d_real.split(chunk))
    return wins / (d_real.numel() * d_fake.numel())


def critic_diagnostics(objective: Objective, D: nn.Module, real: Tensor, fake: Tensor, step: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(scalars, histograms) for the log interval ending at ``step``, from its last critic batch.

    ``real`` and ``fake`` are (n, ...) batches on D's device; returned values are device tensors
    (scalars of shape (), histograms of shape (n,)), read once with the interval's statistics.
    """
    # Two blocks: the scores and the input gradients each see the critic as training left it
    # (a forward pass in training mode advances spectral norm's power iteration).
    with observing(D), torch.no_grad():
        scores = D(torch.cat([real, fake])).float().flatten()
    d_real, d_fake = split_scores(scores, real, fake)
    with observing(D):
        D.requires_grad_(True)  # the generator step froze it; its input gradients need its graph
        scalars = {**objective.diagnostics(D), **_input_gradient_norms(D, real, fake, step)}
    scalars["Critic/accuracy"] = ranking_accuracy(d_real, d_fake)
    return scalars, {"Histogram/D_real": d_real, "Histogram/D_fake": d_fake}
