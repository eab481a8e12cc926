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

#: deafrica: the forest on other countries only (the zero-shot row) sees every source label (issue
#: 26: on a random 2,000 of the ~29,000 it was handicapped); the pooled forest, refitted for every
#: shot count, sees a random 5,000 of them (seeded per seed) plus the shots, for compute (about
#: 8 s a fit on 5,000 against ~1 min on all, measured on the 2-core project machine)
DEAFRICA_METHOD_OPTIONS = {"random-forest-source": {"max_source": None}, "random-forest-both": {"max_source": 5000}}
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


#: the fallback reference row of the paired tests (the compare row of the local random forest)
LOCAL_FOREST = "random-forest"


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
        ref = reference if reference in present else (LOCAL_FOREST if LOCAL_FOREST in present else None)
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


#: deafrica's spatially separated split (``split="blocks"``, the default since issue 26): blocks of
#: this many km to the test set, shot-pool points within this many metres of a test point left out
DEAFRICA_BLOCK_KM = 5.0
DEAFRICA_BUFFER_M = 1000.0
SPLITS = ("blocks", "random")


def target_view(samples, country: str, split: str = "blocks"):
    """The sample set for target ``country`` and its split's summary: every other sample is training
    data (the other targets' test halves included, since they are not tested here). ``split``:
    ``"blocks"`` — the country's points split by :func:`cropmeta.evaluate.splits.block_split`
    (5-km blocks to the test set until half the points; pool points within 1 km of a test point
    left out), so no shot lies within 1 km of a test point; ``"random"`` — the loader's random split,
    stratified by class (:func:`cropmeta.io.deafrica.benchmark_split`; the benchmark of issue 16)."""
    from cropmeta.evaluate.splits import block_split

    if split not in SPLITS:
        raise InputError(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    meta = samples.meta.copy()
    own = region_mask(meta, country)
    if not own.any():
        raise InputError(f"DE Africa target {country!r}: no samples; targets: {', '.join(benchmark_countries(meta))}")
    meta.loc[~own, "split"] = "train"
    if split == "random":
        summary = {"rule": "random, stratified by class (50 % test)",
                   "test": int((meta.loc[own, "split"] == "test").sum()),
                   "pool": int((meta.loc[own, "split"] == "train").sum()), "buffer": 0}
        return SampleSet(samples.x, meta, samples.schema), summary
    sp, summary = block_split(meta.loc[own, "lat"].to_numpy(), meta.loc[own, "lon"].to_numpy(), country,
                              DEAFRICA_BLOCK_KM, DEAFRICA_BUFFER_M)
    meta.loc[own, "split"] = sp
    keep = (meta["split"] != "buffer").to_numpy()
    return SampleSet(samples.x, meta, samples.schema).subset(keep), summary
