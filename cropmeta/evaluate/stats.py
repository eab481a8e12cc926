"""Statistics over seeds: mean ± std, percentile-bootstrap confidence intervals (``scipy.stats.bootstrap``)
and paired Wilcoxon signed-rank tests (``scipy.stats.wilcoxon``) with Holm's correction; and over the
test set: a field-clustered bootstrap of AUC-ROC and F1 (:func:`cluster_weights`,
:func:`clustered_ci`, :func:`paired_difference_ci`) — whole fields are resampled, not pixels, because
the points of one field are correlated.

Honest-reporting notes (also printed in every report):

- the bootstrap CI is over *seeds* (each seed = a different shot subset, fine-tuning and, for the
  meta-learned methods, a different meta-training run); with few seeds it is narrow-looking and
  optimistic (a percentile bootstrap of n values cannot reach beyond their min/max);
- with n paired seeds the exact two-sided Wilcoxon p-value cannot go below ``2 / 2**n``
  (0.0625 for 5 seeds): "no significant difference" at 5 seeds is often "too few seeds to tell".
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from cropmeta.errors import InputError


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def bootstrap_ci(values, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of ``values`` (NaNs dropped).

    One value → ``(v, v)``; no value → ``(nan, nan)``; identical values → that value twice."""
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    v = _finite(values)
    if len(v) == 0:
        return float("nan"), float("nan")
    if len(v) == 1 or np.ptp(v) == 0:
        return float(v[0]), float(v[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about tiny samples; the caveat is in every report
        res = stats.bootstrap(
            (v,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
            rng=np.random.default_rng(seed), vectorized=True,
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(values, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0) -> dict:
    """``{"mean", "std" (ddof=1), "ci_low", "ci_high", "n", "values"}`` over the finite values.

    ``n`` counts the finite values (e.g. AUC is NaN for a test set with one class)."""
    v = _finite(values)
    lo, hi = bootstrap_ci(v, confidence, n_resamples, seed)
    return {
        # identical values: their value exactly (a float sum can land one ulp away, outside the CI)
        "mean": (float(v[0]) if np.ptp(v) == 0 else float(v.mean())) if len(v) else float("nan"),
        "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
        "n": int(len(v)),
        "values": [float(x) for x in np.asarray(values, dtype=np.float64).ravel()],
    }


def min_wilcoxon_p(n: int) -> float:
    """Smallest exact two-sided Wilcoxon signed-rank p-value reachable with ``n`` non-zero pairs."""
    return min(1.0, 2.0 / 2**n) if n > 0 else 1.0


def paired_wilcoxon(a, b) -> dict:
    """Paired two-sided Wilcoxon signed-rank test of ``a`` against ``b`` (same seeds, same order).

    Pairs with a NaN on either side are dropped. Returns ``statistic`` (scipy's: the smaller of the
    signed-rank sums), ``p_value``, ``n`` (pairs used), ``wins``/``losses``/``ties`` of ``a``,
    ``median_diff`` (a − b) and ``min_p`` (the best p-value ``n`` pairs could give). When every
    difference is zero the test is undefined: ``p_value`` is 1.0 and ``note`` says why."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise InputError(f"paired test needs as many values on both sides ({len(a)} vs {len(b)})")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    out = {
        "n": int(len(d)),
        "wins": int((d > 0).sum()),
        "losses": int((d < 0).sum()),
        "ties": int((d == 0).sum()),
        "median_diff": float(np.median(d)) if len(d) else float("nan"),
        "mean_diff": float(d.mean()) if len(d) else float("nan"),
        "min_p": min_wilcoxon_p(int((d != 0).sum())),
        "statistic": float("nan"),
        "p_value": float("nan"),
        "note": "",
    }
    if len(d) == 0:
        out["note"] = "no paired values"
        return out
    if not (d != 0).any():
        out.update(p_value=1.0, note="all differences are zero")
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample / ties warnings: the caveat is reported
        res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    out["statistic"] = float(res.statistic)
    out["p_value"] = float(res.pvalue)
    return out


def holm(p_values) -> list[float]:
    """Holm–Bonferroni adjusted p-values (family-wise error), NaNs passed through."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.where(np.isfinite(p))[0]
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(x) if math.isfinite(x) else float("nan") for x in out]


# --------------------------------------------------------------------------------------------------
# Test-set uncertainty: field-clustered bootstrap
# --------------------------------------------------------------------------------------------------
def cluster_weights(clusters, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Sample weights ``[n_resamples, N]`` of a cluster bootstrap: each resample draws as many
    clusters as there are, with replacement, and weights every sample by how often its cluster was
    drawn. ``clusters``: one id per sample (each sample its own cluster → the ordinary bootstrap)."""
    _, inv = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    n_c = int(inv.max()) + 1 if len(inv) else 0
    rng = np.random.default_rng([int(seed), 7717])
    counts = np.zeros((int(n_resamples), n_c), dtype=np.float32)
    draws = rng.integers(0, n_c, size=(int(n_resamples), n_c))
    np.add.at(counts, (np.repeat(np.arange(int(n_resamples)), n_c), draws.ravel()), 1.0)
    return counts[:, inv]


def weighted_auc(y, p, w) -> np.ndarray:
    """AUC-ROC (Mann–Whitney, ties counted half) under each row of sample weights ``w [B, N]`` → ``[B]``
    (NaN where a resample holds one class only). Unit weights give scikit-learn's ``roc_auc_score``."""
    y = np.asarray(y).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    order = np.argsort(p, kind="mergesort")
    ps, ys, ws = p[order], y[order], w[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(ps)) + 1]
    pos = np.add.reduceat(ws * (ys == 1), starts, axis=1)
    neg = np.add.reduceat(ws * (ys == 0), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def weighted_f1(y, p, w, threshold: float = 0.5) -> np.ndarray:
    """F1 at ``threshold`` under each row of sample weights ``w [B, N]`` → ``[B]`` (0 when undefined,
    like scikit-learn's ``zero_division=0``)."""
    y = np.asarray(y).astype(np.int64) == 1
    pred = np.asarray(p, dtype=np.float64) >= threshold
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    tp, fp, fn = w @ (y & pred), w @ (~y & pred), w @ (y & ~pred)
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / den, 0.0)


#: the metrics with a field-clustered test-set interval
BOOTSTRAP_METRICS = {"auc_roc": weighted_auc, "f1": weighted_f1}


def resampled_metric(y, probs, weights, metric: str) -> np.ndarray:
    """``[B]``: for each bootstrap resample (a row of ``weights``), ``metric`` averaged over the seeds'
    probability vectors ``probs`` (``[S, N]``, one row per seed) — the test-set distribution of the
    seed-mean score that the results table reports."""
    fn = BOOTSTRAP_METRICS[metric]
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    weights = np.atleast_2d(weights)
    step = max(1, int(4e6 // max(1, weights.shape[1])))  # bounded memory for large test sets
    return np.concatenate([np.mean([fn(y, p, weights[i:i + step]) for p in probs], axis=0)
                           for i in range(0, len(weights), step)])


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> dict:
    """``{"ci_low", "ci_high", "se", "n_resamples"}`` of bootstrap replicates (NaNs dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"ci_low": float("nan"), "ci_high": float("nan"), "se": float("nan"), "n_resamples": 0}
    a = (1 - confidence) / 2
    return {"ci_low": float(np.quantile(v, a)), "ci_high": float(np.quantile(v, 1 - a)),
            "se": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n_resamples": int(len(v))}


def clustered_ci(y, probs, weights, metric: str, confidence: float = 0.95) -> dict:
    """Percentile interval of the seed-mean ``metric`` over the resamples ``weights`` (from
    :func:`cluster_weights`): ``{"mean" (on the full test set), "ci_low", "ci_high", "se", "n_resamples"}``."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    full = resampled_metric(y, probs, np.ones((1, probs.shape[1])), metric)[0]
    return {"mean": float(full), **percentile_interval(resampled_metric(y, probs, weights, metric), confidence)}


def paired_difference_ci(y, probs_a, probs_b, weights, metric: str, confidence: float = 0.95) -> dict:
    """The seed-mean ``metric`` of ``probs_a`` minus that of ``probs_b`` on the same test set, with a
    percentile interval from the same resamples on both sides (paired by field):
    ``{"mean_diff", "ci_low", "ci_high", "se", "n_resamples"}``."""
    a = np.atleast_2d(np.asarray(probs_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(probs_b, dtype=np.float64))
    one = np.ones((1, a.shape[1]))
    full = resampled_metric(y, a, one, metric)[0] - resampled_metric(y, b, one, metric)[0]
    d = resampled_metric(y, a, weights, metric) - resampled_metric(y, b, weights, metric)
    return {"mean_diff": float(full), **percentile_interval(d, confidence)}
