"""Statistics on synthetic samples with known answers."""

import numpy as np

from pymdpbench import stats


def test_summary_of_known_samples():
    s = stats.summarise([1.0, 2.0, 3.0, 4.0, 5.0], unstable_iqr_ratio=1.0)
    assert s["step_time_s"] == 3.0
    assert s["step_time_iqr_s"] == 2.0  # numpy's linear percentiles: 4 - 2
    assert s["ci_low_s"] <= 3.0 <= s["ci_high_s"]
    assert s["stable"]


def test_noisy_samples_are_flagged_unstable():
    rng = np.random.default_rng(0)
    noisy = rng.lognormal(mean=0.0, sigma=1.0, size=50)
    assert not stats.summarise(noisy, unstable_iqr_ratio=0.25)["stable"]
    quiet = 1.0 + rng.normal(0, 0.001, size=50)
    assert stats.summarise(quiet, unstable_iqr_ratio=0.25)["stable"]


def test_speedup_ratio_ci_and_significance():
    rng = np.random.default_rng(1)
    slow = 10.0 * (1 + rng.normal(0, 0.01, 30))
    fast = 1.0 * (1 + rng.normal(0, 0.01, 30))
    s = stats.speedup(slow, fast)
    assert abs(s["speedup"] - 10.0) < 0.3
    assert s["speedup_ci_low"] < s["speedup"] < s["speedup_ci_high"]
    assert s["p_value"] < 1e-6


def test_same_distribution_is_not_significant():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1, 0.1, 30), rng.normal(1, 0.1, 30)
    assert stats.speedup(a, b)["p_value"] > 0.01


def test_benjamini_hochberg_by_hand():
    # p sorted: 0.01, 0.02, 0.03, 0.5 -> BH: min over k>=i of p_k * n / k
    adjusted = stats.adjust_pvalues([0.03, 0.01, 0.5, 0.02, np.nan])
    np.testing.assert_allclose(adjusted[:4], [0.04, 0.04, 0.5, 0.04])
    assert np.isnan(adjusted[4])


def test_geometric_mean_ignores_missing():
    assert abs(stats.geometric_mean([2.0, 8.0, np.nan]) - 4.0) < 1e-12


def test_variance_split_across_processes_by_hand():
    """Two processes of three samples: within = mean(1, 1) = 1; process means 2 and 5, so
    MS_between = 3 * var([2, 5], ddof=1) = 13.5 and between = (13.5 - 1) / 3."""
    s = stats.across_processes([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], unstable_iqr_ratio=10.0)
    assert s["processes"] == 2 and s["sample_process"] == [0, 0, 0, 1, 1, 1]
    assert s["step_time_s"] == 3.5
    assert s["within_process_var_s2"] == 1.0
    assert np.isclose(s["between_process_var_s2"], 12.5 / 3)
    assert np.isclose(s["between_process_share"], (12.5 / 3) / (1 + 12.5 / 3))
    # resampling whole processes: the CI spans the two process medians (2 and 5), not just noise
    assert s["ci_low_s"] <= 2.5 and s["ci_high_s"] >= 4.5


def test_identical_processes_have_no_between_variance():
    s = stats.across_processes([[1.0, 2.0, 3.0]] * 4, unstable_iqr_ratio=10.0)
    assert s["between_process_var_s2"] == 0.0 and s["between_process_share"] == 0.0
