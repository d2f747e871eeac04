"""Significance statistics of gnnrec compare against scipy.stats and hand-computed cases."""
import math

import numpy as np
import pytest
from scipy import stats

from gnnrec.analysis.stats import cohens_dz, holm, mean_ci, paired_tests


def test_paired_tests_match_scipy_on_hand_made_per_user_arrays():
    baseline = np.array([0.10, 0.20, 0.00, 0.50, 0.30, 0.25, 0.40, 0.05])
    candidate = np.array([0.15, 0.22, 0.10, 0.45, 0.40, 0.25, 0.55, 0.20])
    got = paired_tests(candidate, baseline)
    t = stats.ttest_rel(candidate, baseline)
    w = stats.wilcoxon(candidate, baseline)
    assert got["t"] == pytest.approx(t.statistic) and got["p_t"] == pytest.approx(t.pvalue)
    assert got["w"] == pytest.approx(w.statistic) and got["p_wilcoxon"] == pytest.approx(w.pvalue)
    diff = candidate - baseline
    assert got["mean_diff"] == pytest.approx(diff.mean())
    assert got["d_z"] == pytest.approx(diff.mean() / diff.std(ddof=1))
    assert got["n"] == 8
    # direction matters: swapping the arguments flips the sign of the statistic and the difference
    swapped = paired_tests(baseline, candidate)
    assert swapped["t"] == pytest.approx(-t.statistic) and swapped["mean_diff"] < 0 < got["mean_diff"]


def test_identical_arrays_give_p_one_not_an_error():
    a = np.array([0.1, 0.2, 0.3])
    got = paired_tests(a, a.copy())
    assert got["p_t"] == 1.0 and got["p_wilcoxon"] == 1.0 and math.isnan(got["d_z"])


def test_mean_ci_is_the_t_interval_and_one_seed_has_none():
    values = np.array([0.30, 0.32, 0.35])
    ci = mean_ci(values)
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert ci["mean"] == pytest.approx(values.mean()) and ci["half_width"] == pytest.approx(half)
    assert ci["low"] == pytest.approx(values.mean() - half) and ci["high"] == pytest.approx(values.mean() + half)
    one = mean_ci([0.3])
    assert one["n"] == 1 and one["low"] is None and one["half_width"] is None


def test_holm_against_a_hand_computed_case():
    # sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> running max 0.06)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # capped at 1; NaNs stay out of the family (m = 2 here)
    got = holm([0.6, float("nan"), 0.01])
    assert got[0] == pytest.approx(0.6) and math.isnan(got[1]) and got[2] == pytest.approx(0.02)
    assert holm([0.7, 0.8]) == pytest.approx([1.0, 1.0])


def test_cohens_dz_hand_computed():
    assert cohens_dz([1.0, 2.0, 3.0]) == pytest.approx(2.0)  # mean 2, sd 1
    assert cohens_dz([0.0, 1.0, 5.0]) == pytest.approx(2.0 / np.sqrt(7.0))  # mean 2, var (4 + 1 + 9) / 2
