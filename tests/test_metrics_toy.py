"""Tests for the exact optimal-transport solver and the 2-D toy-data metrics."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from ganlab.metrics.ot import wasserstein1
from ganlab.metrics.toy import toy_metrics

# Share of a 2-D isotropic Gaussian within 3 standard deviations of its mean:
# the squared radius over sigma^2 is chi-square with 2 dof, P(r <= 3) = 1 - exp(-9/2).
P_WITHIN_3_STD = 1 - math.exp(-4.5)


def grid_centers() -> torch.Tensor:
    """The 25-mode grid of the Unrolled GAN / VEEGAN benchmarks: {-4, -2, 0, 2, 4}^2."""
    axis = torch.arange(-4.0, 5.0, 2.0)
    return torch.cartesian_prod(axis, axis)


def mixture_samples(centers: torch.Tensor, std: float, per_mode: int, seed: int) -> torch.Tensor:
    """``per_mode`` Gaussian samples around every centre (equal counts, so the histogram is flat)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(centers), per_mode, 2, generator=generator) * std
    return (centers[:, None, :] + noise).reshape(-1, 2)


# --- wasserstein1 -------------------------------------------------------------


def test_wasserstein1_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((100, 2))
    assert wasserstein1(x, x[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_wasserstein1_of_a_translated_copy_is_the_translation_length():
    # Translating every point by t is optimal (the cost of any plan is at least
    # |mean(y) - mean(x)| = |t|), so W1 equals |t| exactly.
    x = np.random.default_rng(1).standard_normal((150, 3))
    shift = np.array([0.3, -0.4, 1.2])
    assert wasserstein1(x, x + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-12)


def test_wasserstein1_between_a_set_and_a_point_mass_is_the_mean_distance():
    # Every transport plan to a single point costs the same: the mean distance.
    x = np.random.default_rng(2).standard_normal((80, 2))
    y = np.tile([[1.0, -2.0]], (80, 1))
    assert wasserstein1(x, y) == pytest.approx(np.linalg.norm(x - y, axis=1).mean(), rel=1e-12)


@pytest.mark.parametrize("n", [1, 7, 200])
def test_wasserstein1_in_one_dimension_matches_scipy_cdf_formula(n):
    # In 1-D, W1 is the area between the two empirical CDFs, which scipy computes without any
    # assignment; the optimal matching pairs the sorted points, so ties do not matter.
    rng = np.random.default_rng(n)
    x, y = rng.standard_normal(n), rng.integers(0, 3, n).astype(float)  # integer points: many ties
    assert wasserstein1(x[:, None], y[:, None]) == pytest.approx(wasserstein_distance(x, y), rel=1e-12)


def test_wasserstein1_accepts_torch_tensors_of_any_dtype():
    x = torch.randn(60, 2, generator=torch.Generator().manual_seed(3))
    y = x.flip(0) + torch.tensor([3.0, 4.0])
    assert wasserstein1(x.half(), y.double()) == pytest.approx(5.0, abs=1e-2)  # half precision
    assert wasserstein1(x, y) == pytest.approx(5.0, rel=1e-6)


def test_wasserstein1_rejects_unequal_sizes():
    with pytest.raises(ValueError, match="equal size"):
        wasserstein1(np.zeros((3, 2)), np.zeros((4, 2)))


def test_wasserstein1_rejects_empty_input():
    with pytest.raises(ValueError, match="empty"):
        wasserstein1(np.zeros((0, 2)), np.zeros((0, 2)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_wasserstein1_rejects_non_finite_points(bad):
    x = np.zeros((3, 2))
    x[1, 0] = bad
    with pytest.raises(ValueError, match="x has NaN or infinite coordinates"):
        wasserstein1(x, np.ones((3, 2)))


# --- toy_metrics ----------------------------------------------------------------


def test_toy_metrics_on_samples_from_the_true_mixture():
    centers, std = grid_centers(), 0.05
    per_mode = 40
    fake = mixture_samples(centers, std, per_mode, seed=0)
    real = mixture_samples(centers, std, per_mode, seed=1)

    metrics = toy_metrics(fake, real, centers=centers, std=std)

    assert metrics["modes_covered"] == 25
    assert metrics["modes_total"] == 25
    # Four binomial standard errors: fails for a 2.5-sigma radius (share 0.956).
    n = len(fake)
    tolerance = 4 * math.sqrt(P_WITHIN_3_STD * (1 - P_WITHIN_3_STD) / n)
    assert metrics["high_quality"] == pytest.approx(P_WITHIN_3_STD, abs=tolerance)
    # Equal counts per mode: only the ~1% rejected samples unbalance the histogram.
    assert metrics["mode_kl"] == pytest.approx(0.0, abs=5e-3)


def test_high_quality_is_a_euclidean_three_sigma_disc():
    centers, std = torch.tensor([[0.0, 0.0]]), 0.1
    # Inside radius 3 std; outside it; inside the 3-std box but outside the disc.
    fake = torch.tensor([[0.299, 0.0], [0.0, -0.301], [0.25, 0.25]])

    metrics = toy_metrics(fake, fake.clone(), centers=centers, std=std)

    assert metrics["high_quality"] == pytest.approx(1 / 3)


def test_toy_metrics_for_a_generator_collapsed_to_one_mode():
    centers, std = grid_centers(), 0.05
    real = mixture_samples(centers, std, per_mode=8, seed=2)
    fake = centers[7].expand(len(real), 2).clone()

    metrics = toy_metrics(fake, real, centers=centers, std=std)

    assert metrics["modes_covered"] == 1
    assert metrics["high_quality"] == pytest.approx(1.0)
    assert metrics["mode_kl"] == pytest.approx(math.log(25))
    # W1 to a point mass is the mean distance to it.
    expected_w1 = torch.linalg.vector_norm(real - centers[7], dim=1).mean().item()
    assert metrics["w1"] == pytest.approx(expected_w1, rel=1e-5)


def test_toy_metrics_for_samples_far_from_every_mode():
    centers, std = grid_centers(), 0.05
    real = mixture_samples(centers, std, per_mode=4, seed=3)
    fake = real + 1.0  # lands between the modes, 1.41 away from each: 28 std

    metrics = toy_metrics(fake, real, centers=centers, std=std)

    assert metrics["modes_covered"] == 0
    assert metrics["high_quality"] == 0.0
    # No high-quality sample at all is scored like a complete collapse.
    assert metrics["mode_kl"] == pytest.approx(math.log(25))
    assert metrics["w1"] == pytest.approx(math.sqrt(2), rel=1e-6)


def test_w1_separates_the_true_mixture_from_a_wrong_distribution():
    centers, std = grid_centers(), 0.05
    real = mixture_samples(centers, std, per_mode=20, seed=4)
    other_real = mixture_samples(centers, std, per_mode=20, seed=5)
    # A single wide Gaussian with the mixture's overall scale but none of its modes.
    wrong = torch.randn(len(real), 2, generator=torch.Generator().manual_seed(6)) * 2.8

    w1_same = toy_metrics(other_real, real)["w1"]
    w1_wrong = toy_metrics(wrong, real)["w1"]

    # Matching two samples of the mixture moves points by about one std.
    assert w1_same == pytest.approx(std, rel=0.5)
    assert w1_same < 0.1 * w1_wrong


def test_toy_metrics_without_modes_returns_only_w1():
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(7))
    assert toy_metrics(x, x) == {"w1": pytest.approx(0.0, abs=1e-12)}


def test_toy_metrics_needs_both_centers_and_std():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="both centers and std"):
        toy_metrics(x, x, centers=grid_centers())
