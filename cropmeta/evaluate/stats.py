"""Statistics over seeds: mean ± std, percentile-bootstrap confidence intervals (``scipy.stats.bootstrap``)
and paired Wilcoxon signed-rank tests (``scipy.stats.wilcoxon``) with Holm's correction.

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
