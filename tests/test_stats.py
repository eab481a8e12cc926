"""Statistics on hand-made inputs: bootstrap CI against the exact bootstrap distribution, paired
Wilcoxon against hand-computed exact p-values, Holm's correction, ECE on hand-made predictions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cropmeta.errors import InputError
from cropmeta.evaluate.stats import bootstrap_ci, holm, min_wilcoxon_p, paired_wilcoxon, summarize
from cropmeta.metrics import expected_calibration_error


def test_bootstrap_ci_matches_exact_bootstrap_distribution():
    v = np.array([1.0, 2.0, 3.0, 4.0, 7.0])
    # the exact bootstrap distribution of the mean: all 5**5 equally likely resamples
    means = np.array([np.mean(v[list(idx)]) for idx in itertools.product(range(5), repeat=5)])
    lo_exact, hi_exact = np.percentile(means, [2.5, 97.5])
    lo, hi = bootstrap_ci(v, n_resamples=40_000, seed=1)
    assert lo == pytest.approx(lo_exact, abs=0.15)
    assert hi == pytest.approx(hi_exact, abs=0.15)
    assert lo < v.mean() < hi


def test_bootstrap_ci_width_shrinks_like_sqrt_n():
    rng = np.random.default_rng(0)
    v = rng.normal(0.0, 1.0, size=400)
    lo, hi = bootstrap_ci(v, seed=0)
    # normal theory: 2 * 1.96 * s / sqrt(n)
    expected = 2 * 1.96 * v.std(ddof=1) / np.sqrt(len(v))
    assert (hi - lo) == pytest.approx(expected, rel=0.1)


def test_bootstrap_ci_degenerate_cases():
    assert bootstrap_ci([0.7, 0.7, 0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.3]) == (0.3, 0.3)
    lo, hi = bootstrap_ci([np.nan, np.nan])
    assert np.isnan(lo) and np.isnan(hi)
    with pytest.raises(InputError):
        bootstrap_ci([1, 2], confidence=1.5)


def test_summarize_drops_nan_and_reports_n():
    s = summarize([0.5, np.nan, 0.7, 0.9])
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(0.7)
    assert s["std"] == pytest.approx(0.2)
    assert 0.5 <= s["ci_low"] <= 0.7 <= s["ci_high"] <= 0.9
    assert len(s["values"]) == 4 and np.isnan(s["values"][1])


def test_wilcoxon_exact_p_values_by_hand():
    b = np.zeros(5)
    # all five differences positive: W- = 0, exact two-sided p = 2 * 1/32
    r = paired_wilcoxon(np.array([1.0, 2, 3, 4, 5]), b)
    assert r["statistic"] == 0.0
    assert r["p_value"] == pytest.approx(2 / 32)
    assert (r["wins"], r["losses"], r["ties"]) == (5, 0, 0)
    assert r["min_p"] == pytest.approx(0.0625)
    # differences 1, -2, 3, 4, 5: W- = 2; subsets of {1..5} with sum <= 2: {}, {1}, {2} -> 3/32, x2
    r = paired_wilcoxon(np.array([1.0, -2, 3, 4, 5]), b)
    assert r["statistic"] == 2.0
    assert r["p_value"] == pytest.approx(6 / 32)
    assert r["losses"] == 1 and r["median_diff"] == 3.0


def test_wilcoxon_symmetry_zero_and_nan_handling():
    a = np.array([0.8, 0.7, 0.9, 0.6, 0.75])
    b = np.array([0.6, 0.72, 0.5, 0.55, 0.7])
    ab, ba = paired_wilcoxon(a, b), paired_wilcoxon(b, a)
    assert ab["p_value"] == pytest.approx(ba["p_value"])
    assert ab["wins"] == ba["losses"]
    same = paired_wilcoxon(a, a)
    assert same["p_value"] == 1.0 and "zero" in same["note"]
    r = paired_wilcoxon([1.0, np.nan, 3.0], [0.0, 1.0, 1.0])
    assert r["n"] == 2
    with pytest.raises(InputError):
        paired_wilcoxon([1, 2], [1, 2, 3])


def test_min_p_and_holm():
    assert min_wilcoxon_p(5) == pytest.approx(0.0625)
    assert min_wilcoxon_p(10) == pytest.approx(2 / 1024)
    # Holm: sorted p (0.01, 0.02, 0.04) * (3, 2, 1) = 0.03, 0.04, 0.04 (monotone)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    out = holm([0.5, np.nan, 0.6])
    assert np.isnan(out[1]) and out[0] == pytest.approx(1.0) and out[2] == pytest.approx(1.0)


def test_ece_on_hand_made_predictions():
    # bin [0.2, 0.3): p=0.2 x4, 1 positive -> |0.25-0.2| ; bin [0.9, 1]: p=0.9 x4, 4 positives -> |1-0.9|
    y = [1, 0, 0, 0, 1, 1, 1, 1]
    p = [0.2] * 4 + [0.9] * 4
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.05 + 0.5 * 0.1)
    # perfectly calibrated in each bin -> 0
    assert expected_calibration_error([1, 0, 1, 0], [0.5] * 4) == pytest.approx(0.0)
