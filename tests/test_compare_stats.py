"""ganlab.compare.stats: summaries over seeds, the stratified bootstrap, the probability of improvement."""

import math

import numpy as np
import pytest

from ganlab.compare.stats import Interval, improvement_interval, improvement_test, iqm, probability_of_improvement, summarize


def test_mean_std_median_and_iqm_are_exact():
    values = [8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0]
    summary = summarize([values])
    assert summary.n == 8 and summary.n_nonfinite == 0
    assert summary.mean == pytest.approx(4.5)
    assert summary.std == pytest.approx(np.std(values, ddof=1))
    assert summary.median == pytest.approx(4.5)
    assert summary.iqm == pytest.approx((3 + 4 + 5 + 6) / 4)  # 2 of 8 trimmed at each end


def test_iqm_trims_a_quarter_at_each_end():
    assert iqm(np.array([0.0, 1.0, 2.0, 100.0])) == pytest.approx(1.5)  # the outlier and the lowest trimmed
    assert iqm(np.array([0.0, 1.0, 100.0])) == pytest.approx(101 / 3)  # fewer than 4 runs: nothing trimmed, the mean


def test_the_interval_is_reproducible_with_its_seed():
    values = [list(np.random.default_rng(5).normal(size=20))]  # enough distinct resample means that the seed shows
    first, again, other = summarize(values, seed=3), summarize(values, seed=3), summarize(values, seed=4)
    assert first.mean_ci == again.mean_ci and first.iqm_ci == again.iqm_ci
    assert first.mean_ci != other.mean_ci  # the seed is what fixes it
    assert first.mean_ci.method == "BCa"
    assert first.mean_ci.low < first.mean < first.mean_ci.high


def test_bca_covers_the_true_mean_of_normal_data_at_about_its_level():
    """Over 300 draws of 10 seeds from N(0, 1), the 95% interval of the mean holds 0 in 90-99% of them
    (BCa undercovers a little with few samples: 90% over 1000 draws, scripts/check_bootstrap_coverage.py)."""
    rng = np.random.default_rng(2021)
    covered = sum(summarize([rng.normal(size=10)], resamples=2000, seed=i).mean_ci.contains(0.0) for i in range(300))
    assert 0.90 <= covered / 300 <= 0.99


def test_the_bootstrap_resamples_within_each_stratum():
    """Two datasets whose values are constant within each: every stratified resample keeps 3 runs of
    each, so the pooled mean cannot move; resampling across strata would spread it."""
    low, high = [0.0, 0.0, 0.0], [100.0, 100.0, 100.0]
    summary = summarize([low, high])
    assert summary.mean == pytest.approx(50.0)
    assert (summary.mean_ci.low, summary.mean_ci.high) == pytest.approx((50.0, 50.0))
    pooled = summarize([low + high])
    assert pooled.mean_ci.high - pooled.mean_ci.low > 20


def test_equal_values_give_the_percentile_interval_and_one_value_none():
    same = summarize([[2.0, 2.0, 2.0]])
    assert same.mean_ci == Interval(2.0, 2.0, "percentile")
    one = summarize([[2.0]])
    assert one.mean_ci.method == "none" and math.isnan(one.std)
    assert summarize([[1.0, 2.0], [5.0]]).mean_ci.method == "none"  # a stratum of one run: nothing to resample
    assert improvement_interval([[1.0]], [[2.0]], higher_is_better=True).method == "none"  # one seed each: no verdict


def test_non_finite_values_are_left_out_and_counted():
    summary = summarize([[1.0, float("nan"), 3.0, float("inf")]])
    assert (summary.n, summary.n_nonfinite) == (2, 2)
    assert summary.mean == pytest.approx(2.0)


def test_probability_of_improvement_equals_a_hand_count():
    a, b = [[1.0, 2.0, 3.0]], [[2.0, 2.0]]
    # pairs: 1<2 twice (0), 2=2 twice (0.5 each), 3>2 twice (1 each): (0 + 1 + 2) / 6
    assert probability_of_improvement(a, b, higher_is_better=True) == pytest.approx(3 / 6)
    a, b = [[1.0, 5.0]], [[2.0, 3.0, 4.0]]
    assert probability_of_improvement(a, b, higher_is_better=True) == pytest.approx(3 / 6)
    assert probability_of_improvement(a, b, higher_is_better=False) == pytest.approx(3 / 6)
    a, b = [[1.0, 2.0]], [[3.0, 4.0]]
    assert probability_of_improvement(a, b, higher_is_better=False) == 1.0
    assert probability_of_improvement(a, b, higher_is_better=True) == 0.0


def test_probability_of_improvement_averages_strata_and_a_diverged_run_loses():
    a = [[1.0, 2.0], [10.0]]
    b = [[3.0], [5.0, 20.0]]
    # lower is better: stratum 1: A beats B in 2/2; stratum 2: 10 < 20 only: 1/2
    assert probability_of_improvement(a, b, higher_is_better=False) == pytest.approx((1.0 + 0.5) / 2)
    assert probability_of_improvement([[float("nan")]], [[1e9]], higher_is_better=False) == 0.0
    assert probability_of_improvement([[float("nan")]], [[float("nan")]], higher_is_better=True) == 0.5


def test_improvement_interval_holds_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    a, b = [rng.normal(0.0, 1.0, 8)], [rng.normal(1.0, 1.0, 8)]
    p = probability_of_improvement(a, b, higher_is_better=False)
    interval = improvement_interval(a, b, higher_is_better=False, seed=1)
    assert interval.low <= p <= interval.high
    assert interval == improvement_interval(a, b, higher_is_better=False, seed=1)
    separated = improvement_interval([[1.0, 2.0, 3.0]], [[10.0, 11.0, 12.0]], higher_is_better=False)
    assert separated == Interval(1.0, 1.0, "percentile")  # every resample: A beats B in every pair


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="confidence"):
        summarize([[1.0, 2.0]], confidence=95)
    with pytest.raises(ValueError, match="strata"):
        probability_of_improvement([[1.0]], [[1.0], [2.0]], higher_is_better=True)


def test_the_exact_test_of_no_improvement_on_one_dataset():
    assert improvement_test([[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]], higher_is_better=False) == pytest.approx(0.1)
    assert improvement_test([[1.0, 2.0, 3.0, 4.0]], [[5.0, 6.0, 7.0, 8.0]], higher_is_better=True) == pytest.approx(2 / 70)
    assert improvement_test([[1.0], [2.0]], [[3.0], [4.0]], higher_is_better=True) is None  # strata: the bootstrap decides
