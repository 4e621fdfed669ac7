"""Sample-quality and mode-coverage metrics for the 2-D toy datasets.

The mixture-of-Gaussians benchmarks (8 Gaussians on a ring, 25 on a grid) are
scored the way Unrolled GAN, VEEGAN and PacGAN do it:

* a generated sample is *high quality* if it lies within 3 standard deviations
  (Euclidean distance) of its nearest mode centre;
* a mode is *covered* if at least one high-quality sample falls in it;
* ``mode_kl`` is KL(p_gen || uniform) between the histogram of high-quality
  samples over the modes and the uniform distribution: 0 when every mode gets
  the same share, log(K) when all of them land in a single mode.

On top of that, ``w1`` is the exact earth mover's distance between the
generated and the real batch (``ganlab.metrics.ot``), which needs no knowledge
of the modes. Typical use at evaluation time::

    metrics = toy_metrics(fake, real, centers=dataset.centers, std=dataset.std)
"""

from __future__ import annotations

import math

import torch

from ganlab.metrics.ot import wasserstein1

# Radius of the high-quality region around each centre, in standard deviations
# (VEEGAN, Sec. 5.1; also used by PacGAN).
HIGH_QUALITY_STDS = 3.0


def toy_metrics(
    fake: torch.Tensor,
    real: torch.Tensor,
    centers: torch.Tensor | None = None,
    std: float | None = None,
) -> dict[str, float]:
    """Score a batch of generated 2-D points against real ones.

    Args:
        fake: generated points, shape (n, 2).
        real: real points, shape (n, 2), the same n as ``fake``.
        centers: mode centres of the real mixture, shape (K, 2).
        std: per-coordinate standard deviation of every mixture component.

    Returns:
        ``w1`` always; with ``centers`` and ``std`` also ``modes_covered``,
        ``modes_total``, ``high_quality`` (share of high-quality samples) and
        ``mode_kl``. All values are Python floats.
    """
    metrics = {"w1": wasserstein1(fake, real)}
    if (centers is None) != (std is None):
        raise ValueError("toy_metrics needs both centers and std, or neither")
    if centers is not None:
        metrics.update(mode_metrics(fake, centers, std))
    return metrics


def mode_metrics(fake: torch.Tensor, centers: torch.Tensor, std: float) -> dict[str, float]:
    """Mode coverage, high-quality share and mode KL of ``fake`` for a Gaussian mixture."""
    if fake.ndim != 2 or fake.shape[0] == 0:
        raise ValueError(f"fake must have shape (n, d) with n > 0, got {tuple(fake.shape)}")
    centers = centers.to(device=fake.device, dtype=fake.dtype)
    counts = high_quality_counts(fake, centers, std)
    return {
        "modes_covered": float((counts > 0).sum()),
        "modes_total": float(len(centers)),
        "high_quality": float(counts.sum()) / fake.shape[0],
        "mode_kl": kl_to_uniform(counts),
    }


def high_quality_counts(fake: torch.Tensor, centers: torch.Tensor, std: float) -> torch.Tensor:
    """Number of high-quality samples assigned to each centre, shape (K,)."""
    dist, nearest = torch.cdist(fake, centers).min(dim=1)
    high_quality = dist <= HIGH_QUALITY_STDS * std
    return torch.bincount(nearest[high_quality], minlength=len(centers))


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(p || uniform) for the histogram ``counts`` over K bins, with 0 log 0 = 0.

    An empty histogram (no high-quality sample at all) has no distribution to
    compare; it is scored log(K), the value for a fully collapsed generator,
    so that the metric stays finite and never rewards producing only garbage.
    """
    num_bins = len(counts)
    total = counts.sum()
    if total == 0:
        return math.log(num_bins)
    p = counts[counts > 0].double() / total
    return float((p * torch.log(p * num_bins)).sum())
