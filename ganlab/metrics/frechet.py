"""The Fréchet distance between two Gaussians fitted to feature sets (the "F" of FID and FCD).

Heusel et al. (2017) score a generator by fitting a Gaussian to the features of real and of
generated images and taking the Fréchet (2-Wasserstein) distance between the two::

    d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})

Typical use, with any feature network (Inception for FID, ganlab's own classifier for FCD)::

    mu_fake, sigma_fake = gaussian_stats(features_fake)
    mu_real, sigma_real = gaussian_stats(features_real)
    fcd = frechet_distance(mu_fake, sigma_fake, mu_real, sigma_real)

Numerics. The reference implementations take ``scipy.linalg.sqrtm(S1 @ S2)``: ``S1 S2`` is not
symmetric, its square root is computed by a Schur decomposition, and rounding leaves small
imaginary parts (and, for singular covariances, a warning and an eps-offset retry). Only the
*trace* of the square root is needed, and that has a symmetric form: ``S1^{1/2} S2 S1^{1/2}``
is symmetric positive semi-definite and has the same eigenvalues as ``S1 S2`` (``AB`` and
``BA`` share their non-zero eigenvalues, with ``A = S1^{1/2}``, ``B = S2 S1^{1/2}``), so

    tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(S1^{1/2} S2 S1^{1/2}))

Both steps use ``torch.linalg.eigh`` in float64, which is exact for symmetric matrices up to
rounding, works unchanged for rank-deficient covariances (fewer samples than dimensions, dead
features), and needs neither scipy nor complex numbers. Eigenvalues that rounding pushes
slightly below zero are clamped to 0 before the square root. The statistics live on the CPU:
the matrices are small (one row per feature), float64 is not available on every accelerator,
and the CPU result does not depend on the device the features came from.
"""

from __future__ import annotations

import torch


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and unbiased covariance (d, d) of ``features`` (n, d), float64 on the CPU.

    The covariance divides by n - 1, like ``numpy.cov`` in the reference FID code.
    """
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must have shape (n, d) with n >= 2, got {tuple(features.shape)}")
    x = features.detach().to(device="cpu", dtype=torch.float64)
    mu = x.mean(dim=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu, sigma


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clamped at 0)."""
    eigvals, eigvecs = torch.linalg.eigh(matrix)
    return (eigvecs * eigvals.clamp(min=0).sqrt()) @ eigvecs.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), as a Python float.

    Computed in float64 on the CPU through the symmetric form described in the module
    docstring. The exact value is never negative; a rounding residue below 0 (identical
    statistics) is returned as 0.
    """
    mu1, mu2, sigma1, sigma2 = (t.detach().to(device="cpu", dtype=torch.float64) for t in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(f"shapes do not match: mu {tuple(mu1.shape)}, {tuple(mu2.shape)}; sigma {tuple(sigma1.shape)}, {tuple(sigma2.shape)}")
    # Symmetrise first: a covariance computed as X^T X / (n-1) is symmetric only up to rounding,
    # and eigh reads one triangle, so an asymmetric input would give a slightly different answer.
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eigvals = torch.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = eigvals.clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * trace_sqrt
    return max(float(value), 0.0)
