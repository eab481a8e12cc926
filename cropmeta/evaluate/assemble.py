"""The report of one comparison from its cells: the summary over seeds per method × shot count ×
metric, the paired tests against the reference and the field-clustered bootstrap
(:func:`aggregate`), and the report dict that report.json holds (:func:`make_report`)."""

from __future__ import annotations

import time

import numpy as np

from cropmeta.evaluate import stats
from cropmeta.evaluate.names import FIXED_SHOTS, cell_shots, shot_mode
from cropmeta.metrics import METRIC_NAMES
from cropmeta.evaluate.targets import TargetData


PROTOCOL_VERSION = 1


def versions() -> dict:
    """Versions of the packages behind the numbers (:func:`cropmeta.provenance.software_versions`)."""
    from cropmeta.provenance import software_versions

    return software_versions(("numpy", "scipy", "scikit-learn", "torch", "learn2learn", "matplotlib"),
                             with_platform=True, missing="not installed")


def _key_shots(k) -> str:
    return str(k)


def aggregate(cells: list[dict], methods: list[str], shots: list, reference: str = "timl",
              confidence: float = 0.95, y_test=None, fields=None, n_boot: int = 1000) -> dict:
    """Per method × shot × metric (raw and calibrated): summary over seeds; paired Wilcoxon of
    ``reference`` against every other method (Holm-adjusted over the other methods). With the test
    labels ``y_test`` and their ``fields`` (one cluster id per test sample): a field-clustered
    bootstrap (``n_boot`` resamples of whole fields, the same resamples for every row, so paired) of
    each row's seed-mean AUC-ROC and F1 (``test_ci``) and of its difference to ``reference``
    (``vs_reference``: this row minus the reference). A shot count's rows are the methods that run
    there (:func:`~cropmeta.evaluate.methods.method_shots`; the fixed rows, e.g. the oracle, at every
    shot count)."""
    by = {(c["method"], _key_shots(c["shots"]), c["seed"]): c for c in cells}
    seeds = sorted({c["seed"] for c in cells})
    summary: dict = {}
    tests: dict = {}
    boot = None
    if y_test is not None and len(y_test) and n_boot:
        y_test = np.asarray(y_test).astype(np.int64)
        fields = np.asarray(fields if fields is not None else np.arange(len(y_test))).astype(str)
        boot = {"y": y_test, "w": stats.cluster_weights(fields, n_boot, seed=0), "memo": {}}

    def resampled(m, ks, met):
        """(full-test-set value, [B] resampled values) of row m's seed-mean metric, memoised."""
        key = (m, ks, met)
        if key not in boot["memo"]:
            probs = [by[(m, ks, s)]["prob_test"] for s in seeds if (m, ks, s) in by]
            if not probs or any(len(p) != len(boot["y"]) for p in probs):
                boot["memo"][key] = None
            else:
                one = np.ones((1, len(boot["y"])))
                boot["memo"][key] = (stats.resampled_metric(boot["y"], probs, one, met)[0],
                                     stats.resampled_metric(boot["y"], probs, boot["w"], met))
        return boot["memo"][key]

    for k in shots:
        ks = _key_shots(k)
        summary[ks] = {}
        present = [m for m in methods if cell_shots(m, k) is not None]
        for m in present:
            mk = _key_shots(cell_shots(m, k))
            row = {"cell_shots": mk, "fixed": shot_mode(m) == "fixed"}
            for variant, key in (("raw", "metrics"), ("calibrated", "metrics_calibrated")):
                row[variant] = {}
                for met in METRIC_NAMES:
                    vals = [by[(m, mk, s)][key][met] if (m, mk, s) in by else None for s in seeds]
                    vals = [np.nan if v is None else v for v in vals]
                    row[variant][met] = stats.summarize(vals, confidence=confidence)
            # F1 at the threshold each method chose on its own shots (cells with calibration folds)
            own = [(by[(m, mk, s)].get("metrics_own_threshold") or {}).get("f1") if (m, mk, s) in by else None
                   for s in seeds]
            row["f1_own_threshold"] = (stats.summarize([np.nan if v is None else v for v in own], confidence=confidence)
                                       if any(v is not None for v in own) else None)
            # what the fitted models chose from their shots (fine-tuning steps, an ensemble's weight)
            ad = [by[(m, mk, s)].get("adaptation") or {} for s in seeds if (m, mk, s) in by]
            steps = [a["finetune"]["steps"] for a in ad if (a.get("finetune") or {}).get("steps") is not None]
            weights = [a["weight_prior"] for a in ad if a.get("weight_prior") is not None]
            row["chosen"] = ({"finetune_steps": steps, "weight_prior": weights,
                              "rule": sorted({(a.get("finetune") or {}).get("rule") for a in ad} - {None})}
                             if steps or weights else None)
            temps = [by[(m, mk, s)]["temperature"] for s in seeds if (m, mk, s) in by]
            row["temperature"] = [t for t in temps]
            # wall times: cells whose FLOPs were counted ran under torch's FLOP counter (several times
            # slower), so they are left out whenever cells timed without it exist
            present_cells = [by[(m, mk, s)] for s in seeds if (m, mk, s) in by]
            timed = [c for c in present_cells if not c.get("flops")] or present_cells
            row["seconds_fit"] = stats.summarize([c["seconds"]["fit"] for c in timed])
            # adaptation cost per task: adapting (fit) + predicting the test set
            row["seconds_adapt"] = stats.summarize([c["seconds"]["fit"] + c["seconds"]["predict"] for c in timed])
            fl = [c.get("flops") for c in present_cells]
            fl = [f for f in fl if f]
            row["flops"] = ({key: float(np.mean([f[key] for f in fl])) for key in ("fit", "predict", "adapt_predict")}
                            if fl else None)
            if boot is not None:
                row["test_ci"] = {}
                for met in stats.BOOTSTRAP_METRICS:
                    r = resampled(m, mk, met)
                    row["test_ci"][met] = (None if r is None else
                                           {"mean": float(r[0]), **stats.percentile_interval(r[1], confidence)})
            summary[ks][m] = row
        if boot is not None and reference in present:
            rk = _key_shots(cell_shots(reference, k))
            for m in present:
                if m == reference:
                    continue
                summary[ks][m]["vs_reference"] = {}
                for met in stats.BOOTSTRAP_METRICS:
                    a, b = resampled(m, summary[ks][m]["cell_shots"], met), resampled(reference, rk, met)
                    summary[ks][m]["vs_reference"][met] = (None if a is None or b is None else {
                        "mean_diff": float(a[0] - b[0]), **stats.percentile_interval(a[1] - b[1], confidence)})
        if reference in present:
            tests[ks] = {}
            others = [m for m in present if m != reference]
            rk = _key_shots(cell_shots(reference, k))
            for met in METRIC_NAMES:
                res = {}
                for m in others:
                    mk = summary[ks][m]["cell_shots"]
                    a = [by[(reference, rk, s)]["metrics"][met] if (reference, rk, s) in by else None for s in seeds]
                    b = [by[(m, mk, s)]["metrics"][met] if (m, mk, s) in by else None for s in seeds]
                    a = [np.nan if v is None else v for v in a]
                    b = [np.nan if v is None else v for v in b]
                    res[m] = stats.paired_wilcoxon(a, b)
                adj = stats.holm([res[m]["p_value"] for m in others])
                for m, p in zip(others, adj):
                    res[m]["p_holm"] = p
                tests[ks][met] = res
    return {"seeds": seeds, "summary": summary, "wilcoxon": tests, "reference": reference,
            "confidence": confidence, "test_bootstrap": {"resamples": int(n_boot) if boot is not None else 0,
                                                         "unit": "field", "metrics": list(stats.BOOTSTRAP_METRICS)}}


def make_report(data: TargetData, cells: list[dict], config: dict, run_info: dict | None = None,
                source_summary: dict | None = None) -> dict:
    """The report dict (what report.json holds) from the cells of one target. ``config`` needs at
    least ``methods``, ``shots_run`` and ``seeds``."""
    methods, shots = config["methods"], config["shots_run"]
    agg = aggregate(cells, methods, shots, y_test=data.y_test, fields=data.test_fields(),
                    n_boot=int(config.get("n_boot", 1000)))
    order = [str(k) for k in shots] + [FIXED_SHOTS]
    return {
        "kind": "cropmeta-compare-report",
        "protocol_version": PROTOCOL_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "target": data.summary,
        "task_info": [float(v) for v in data.task.task_info],
        "config": config,
        "source_summary": source_summary or {},
        "versions": versions(),
        "run": run_info or {},
        "y_test": [int(v) for v in data.y_test],
        "test_fields": [str(v) for v in data.test_fields()],
        "cells": sorted(cells, key=lambda c: (methods.index(c["method"]), c["seed"], order.index(str(c["shots"])))),
        **agg,
    }
