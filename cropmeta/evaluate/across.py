"""Every method over the targets of a multi-target benchmark (``--benchmark deafrica``): mean AUC and
F1 per shot count, per-target wins and paired tests across targets; and the DE Africa benchmark's
fixed options and the issue's orientation numbers."""

from __future__ import annotations

import numpy as np

from cropmeta.errors import InputError
from cropmeta.evaluate import stats
from cropmeta.io.deafrica import benchmark_countries
from cropmeta.io.store import SampleSet
from cropmeta.tasks import region_mask

#: deafrica: the forests trained on other countries see a random subset of this many of their ~29,000
#: labels (seeded per seed): every fit of the pooled forest trains a new one, and a forest on
#: all of them takes about a minute a fit on the shared project machine (5,000: ~8 s)
DEAFRICA_METHOD_OPTIONS = {"random-forest-source": {"max_source": 2000}, "random-forest-both": {"max_source": 2000}}
#: for orientation (issue 16): a random forest on DE Africa, one split, 21 country/region targets, mean AUC
DEAFRICA_ORIENTATION = {"random-forest": {"20": 0.70, "all": 0.89}, "random-forest-source": {"0": 0.72},
                        "random-forest-both": {"20": 0.73}}


def _target_values(report: dict, k: str) -> dict[str, dict[str, float]]:
    """Seed-mean AUC-ROC and F1 (uncalibrated) of every row of one report at shot count ``k``; a
    shot count the target skipped (its pool is smaller) takes the target's "all" cell."""
    summ = report["summary"]
    col = summ.get(k) if k in summ else summ.get("all")
    if col is None:
        return {}
    out = {}
    for m, row in col.items():
        out[m] = {met: row["raw"][met]["mean"] for met in ("auc_roc", "f1")}
        out[m]["fixed"] = bool(row.get("fixed"))
    return out


def across_targets(reports: dict, reference: str = "timl") -> dict:
    """Every method at every shot count over the targets: mean (and median) of the targets' seed-mean
    AUC-ROC and F1, how many targets it was best on (highest seed-mean among the non-fixed rows;
    ties shared), and a paired Wilcoxon signed-rank test across targets (one pair a target) of each
    method against ``reference`` (else the local random forest), Holm-adjusted within a shot count
    and metric. Shot counts a target skipped (pool smaller than k) use its "all" cell."""
    shots: list[str] = []
    for rep in reports.values():
        for k in [str(v) for v in rep["config"]["shots"]]:
            if k not in shots:
                shots.append(k)
    methods: list[str] = []
    for rep in reports.values():
        methods += [m for m in rep["config"]["methods"] if m not in methods]
    keys = list(reports)
    out: dict = {"targets": keys, "shots": shots, "methods": methods, "summary": {}, "tests": {},
                 "note": "a shot count larger than a target's pool uses that target's 'all' cell"}
    for k in shots:
        vals = {key: _target_values(reports[key], k if k in reports[key]["summary"] else "all") for key in keys}
        present = [m for m in methods if any(m in v for v in vals.values())]
        ref = reference if reference in present else ("random-forest" if "random-forest" in present else None)
        col, wins = {}, {met: {m: 0.0 for m in present} for met in ("auc_roc", "f1")}
        for met in ("auc_roc", "f1"):
            for key in keys:
                cand = {m: v[met] for m, v in vals[key].items() if not v["fixed"] and v[met] is not None
                        and np.isfinite(v[met])}
                if cand:
                    best = max(cand.values())
                    top = [m for m, v in cand.items() if v == best]
                    for m in top:
                        wins[met][m] += 1.0 / len(top)
        for m in present:
            row = {"n_targets": int(sum(m in vals[key] for key in keys))}
            for met in ("auc_roc", "f1"):
                xs = np.array([vals[key][m][met] if m in vals[key] and vals[key][m][met] is not None else np.nan
                               for key in keys], dtype=float)
                fin = xs[np.isfinite(xs)]
                row[met] = {"mean": float(fin.mean()) if len(fin) else None,
                            "median": float(np.median(fin)) if len(fin) else None,
                            "per_target": {key: (None if not np.isfinite(v) else float(v)) for key, v in zip(keys, xs)},
                            "wins": wins[met][m]}
            col[m] = row
        out["summary"][k] = col
        if ref is not None:
            others = [m for m in present if m != ref]
            out["tests"][k] = {"reference": ref}
            for met in ("auc_roc", "f1"):
                a = [col[ref][met]["per_target"][key] for key in keys]
                res = {m: stats.paired_wilcoxon([np.nan if v is None else v for v in
                                                 [col[m][met]["per_target"][key] for key in keys]],
                                                [np.nan if v is None else v for v in a]) for m in others}
                for m, p in zip(others, stats.holm([res[m]["p_value"] for m in others])):
                    res[m]["p_holm"] = p
                out["tests"][k][met] = res
    return out


def target_view(samples, country: str):
    """The sample set for target ``country``: its own split kept, every other sample training data
    (the other targets' test halves included, since they are not tested here)."""
    meta = samples.meta.copy()
    own = region_mask(meta, country)
    if not own.any():
        raise InputError(f"DE Africa target {country!r}: no samples; targets: {', '.join(benchmark_countries(meta))}")
    meta.loc[~own, "split"] = "train"
    return SampleSet(samples.x, meta, samples.schema)
