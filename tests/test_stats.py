"""Statistics on hand-made inputs: bootstrap CI against the exact bootstrap distribution, paired
Wilcoxon against hand-computed exact p-values, Holm's correction, ECE on hand-made predictions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cropmeta.errors import InputError
from cropmeta.evaluate import stats
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


# --------------------------------------------------------------------------------------------------
# Field-clustered test-set bootstrap
# --------------------------------------------------------------------------------------------------
def _fields_data(n_fields=120, per_field=6, seed=0):
    """Test points in fields: label and a score shared by the field (plus a little pixel noise), so the
    points of one field are strongly correlated."""
    rng = np.random.default_rng(seed)
    fy = rng.integers(0, 2, n_fields)
    fscore = 0.5 + 0.15 * (2 * fy - 1) + 0.25 * rng.normal(size=n_fields)
    field = np.repeat(np.arange(n_fields), per_field)
    y = fy[field]
    p = np.clip(fscore[field] + 0.02 * rng.normal(size=len(field)), 0.001, 0.999)
    return y, p, field


def test_weighted_metrics_match_scikit_learn_and_repeated_samples():
    from sklearn.metrics import f1_score, roc_auc_score

    y, p, field = _fields_data(40, 3)
    p = np.round(p, 2)  # ties
    one = np.ones((1, len(y)))
    assert stats.weighted_auc(y, p, one)[0] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert stats.weighted_f1(y, p, one)[0] == pytest.approx(f1_score(y, p >= 0.5), abs=1e-12)
    w = stats.cluster_weights(field, 5, seed=1)
    assert w.shape == (5, len(y)) and np.allclose(w.sum(axis=1), len(y))
    # every sample of a field has its field's weight
    assert all(len(np.unique(w[0][field == f])) == 1 for f in np.unique(field))
    idx = np.repeat(np.arange(len(y)), w[2].astype(int))
    assert stats.weighted_auc(y, p, w[2:3])[0] == pytest.approx(roc_auc_score(y[idx], p[idx]), abs=1e-12)
    assert stats.weighted_f1(y, p, w[2:3])[0] == pytest.approx(f1_score(y[idx], p[idx] >= 0.5), abs=1e-12)
    # a resample holding one class has no AUC
    assert np.isnan(stats.weighted_auc(np.ones(4, int), np.arange(4) / 4, np.ones((1, 4)))[0])


def test_field_clustered_interval_is_wider_than_the_pixel_one_for_correlated_fields():
    y, p, field = _fields_data()
    by_field = stats.cluster_weights(field, 2000, seed=0)
    by_pixel = stats.cluster_weights(np.arange(len(y)), 2000, seed=0)
    for met in ("auc_roc", "f1"):
        f = stats.clustered_ci(y, [p], by_field, met)
        px = stats.clustered_ci(y, [p], by_pixel, met)
        assert f["mean"] == px["mean"] and f["ci_low"] < f["mean"] < f["ci_high"]
        # 6 nearly identical points per field: the effective sample is the 120 fields, ~√6 times wider
        assert (f["ci_high"] - f["ci_low"]) > 1.8 * (px["ci_high"] - px["ci_low"]), (met, f, px)


def test_paired_difference_interval_resamples_the_same_fields_on_both_sides():
    y, p, field = _fields_data()
    w = stats.cluster_weights(field, 1000, seed=0)
    same = stats.paired_difference_ci(y, [p, p], [p, p], w, "auc_roc")
    assert same["mean_diff"] == 0 and same["ci_low"] == same["ci_high"] == 0
    # a better scorer on every field: its difference interval excludes 0 although the two single
    # intervals overlap (pairing removes the test set's shared variation)
    better = np.clip(p + 0.08 * (2 * y - 1), 0.001, 0.999)
    d = stats.paired_difference_ci(y, [better], [p], w, "auc_roc")
    a, b = stats.clustered_ci(y, [better], w, "auc_roc"), stats.clustered_ci(y, [p], w, "auc_roc")
    assert d["mean_diff"] == pytest.approx(a["mean"] - b["mean"]) and d["ci_low"] > 0
    assert a["ci_low"] < b["ci_high"]
