"""One cell of a comparison (method × seed × shot count: fit, out-of-fold calibration, test metrics)
and the resume caches: cell files, prepared weights, the fingerprints that key them."""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from cropmeta.evaluate.calibration import apply_temperature, checked_temperature, out_of_fold
from cropmeta.evaluate.methods import Method, split_method
from cropmeta.evaluate.names import FIXED_SHOTS, METHOD_INPUTS, is_zero
from cropmeta._fs import atomic_write_text
from cropmeta.metrics import METRIC_NAMES, binary_metrics, expected_calibration_error, f1_threshold
from cropmeta.evaluate.targets import TargetData, shot_indices


def _r(v: float, nd: int = 6):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), nd)


def _counted(fn, count: bool):
    """(result, FLOPs or None) of ``fn()``; FLOPs by ``torch.utils.flop_counter`` (torch ops only)."""
    if not count:
        return fn(), None
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        out = fn()
    return out, int(fc.get_total_flops())


def run_cell(method: Method, data: TargetData, seed: int, k, calib_folds: int = 3, count_flops: bool = False) -> dict:
    """Fit on ``k`` shots, calibrate on out-of-fold predictions, evaluate on the test set. ``k`` = 0
    (zero-shot) or :data:`~cropmeta.evaluate.methods.FIXED_SHOTS` (the oracle rows): no target label
    at all — :meth:`Method.fit_zero_shot`, no calibration.
    ``count_flops``: also count the FLOPs of the fit and of predicting the test set (the adaptation
    cost per task; ``torch.utils.flop_counter``, so only torch work is counted: none for the random
    forest, whose cost is then recorded as unknown)."""
    idx = shot_indices(data.y_train, k, seed)
    x, y = data.x_train[idx], data.y_train[idx]
    no_labels = is_zero(k) or k == FIXED_SHOTS
    t0 = time.perf_counter()
    fit = (lambda: method.fit_zero_shot(seed=seed)) if no_labels else (lambda: method.fit(x, y, seed=seed))
    _, f_fit = _counted(fit, count_flops)
    t_fit = time.perf_counter() - t0
    t1 = time.perf_counter()
    p_test, f_pred = _counted(lambda: np.asarray(method.predict_proba(data.x_test), dtype=np.float64), count_flops)
    t_pred = time.perf_counter() - t1
    flops = None
    if count_flops and (f_fit or f_pred):
        flops = {"fit": f_fit, "predict": f_pred, "adapt_predict": f_fit + f_pred}
    raw = binary_metrics(data.y_test, p_test)
    adapted = adaptation_record(method)  # before the calibration folds refit the method
    t2 = time.perf_counter()
    temperature, calib = None, {"folds": 0, "note": ""}
    threshold = None
    if no_labels:
        calib["note"] = "no target labels: not calibrated"
    elif calib_folds and calib_folds >= 2:
        oof, used = out_of_fold(method, x, y, seed, calib_folds)
        calib["folds"] = used
        if used:
            # F1 at the threshold the method chooses on its own shots (their out-of-fold predictions)
            threshold = f1_threshold(y, oof)
            temperature, calib["note"] = checked_temperature(oof, y)
            if temperature is not None:
                calib["oof_ece_before"] = _r(expected_calibration_error(y, oof))
                calib["oof_ece_after"] = _r(expected_calibration_error(y, apply_temperature(oof, temperature)))
        if temperature is None and not calib["note"]:
            calib["note"] = "too few labels of a class for out-of-fold calibration"
    else:
        calib["note"] = "calibration disabled"
    p_cal = apply_temperature(p_test, temperature)
    cal = binary_metrics(data.y_test, p_cal)
    own = binary_metrics(data.y_test, p_test, threshold=threshold) if threshold is not None else None
    return {
        "method": method.name,
        "seed": int(seed),
        "shots": k,
        "n_train": int(len(idx)),
        "n_train_pos": int(y.sum()),
        "train_ids": [str(v) for v in data.ids_train[idx]] if len(data.ids_train) else [],
        "metrics": {m: _r(raw[m]) for m in METRIC_NAMES} | {"n": raw["n"], "n_pos": raw["n_pos"]},
        "metrics_calibrated": {m: _r(cal[m]) for m in METRIC_NAMES},
        "temperature": _r(temperature),
        # F1 … at the F1-best threshold of the out-of-fold predictions of the shots (None: no calibration folds)
        "threshold": _r(threshold),
        "metrics_own_threshold": None if own is None else {m: _r(own[m]) for m in ("f1", "precision", "recall",
                                                                                  "accuracy", "iou", "kappa")},
        "calibration": calib,
        "prob_test": [round(float(v), 6) for v in p_test],
        "seconds": {"fit": round(t_fit, 3), "predict": round(t_pred, 3),
                    "calibrate": round(time.perf_counter() - t2, 3)},
        "flops": flops,
        "adaptation": adapted,
    }


def adaptation_record(method: Method) -> dict | None:
    """What the fitted model chose from its shots (issue 26), for the report: the fine-tuning budget
    (rule, steps, learning rate, the auto budget's candidates) and an ensemble's weight and its
    members' out-of-fold AUC; presto-ft's precision and trained blocks. A method may say it as
    ``adaptation_info`` (same keys as a model's ``info``); None for a method that records none."""
    info = getattr(method, "adaptation_info", None) or getattr(getattr(method, "model", None), "info", None)
    if not isinstance(info, dict):
        return None
    out = {}
    ft = info.get("finetune") or info.get("prior_finetune")
    if isinstance(ft, dict):
        budget = ft.get("budget") or {"rule": "fixed"}
        out["finetune"] = {"steps": ft.get("steps"), "lr": ft.get("lr"), "rule": budget.get("rule"),
                           "candidates": budget.get("candidates")}
        for k in ("precision", "train_blocks"):  # presto-ft's (issue 29)
            if k in ft:
                out["finetune"][k] = ft[k]
    for k in ("weight_prior", "oof_auc_prior", "oof_auc_forest", "members", "why"):
        if k in info:
            out[k] = info[k]
    return out or None


# --------------------------------------------------------------------------------------------------
# Caching (resume)
# --------------------------------------------------------------------------------------------------
def fingerprint_of(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_path(out: Path, method: str, seed: int, k) -> Path:
    return Path(out) / "cells" / method / f"seed-{seed}" / f"shots-{k}.json"


def read_cell(path: Path, fingerprint: str) -> dict | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return d if d.get("fingerprint") == fingerprint else None


def _prepared_paths(out: Path, method: str, seed: int) -> tuple[Path, Path]:
    base = Path(out) / "prepared" / f"{method}-seed-{seed}"
    return base.with_suffix(".json"), base.with_suffix(".safetensors")


def prepared_workdir(out: Path, method: str, seed: int, fingerprint: str) -> Path:
    """Scratch directory for the resumable training state of one (method, seed, configuration)."""
    return Path(out) / "prepared" / f"{method}-seed-{seed}-{fingerprint}.work"


def prepared_name(method: str) -> str:
    """Whose prepared weights a method uses: ``timl+views`` fits views on TIML's (cached once)."""
    base, variants = split_method(method)
    return "+".join([base] + [v for v in variants if v != "views"])


def save_prepared(out: Path, method: Method, seed: int, fingerprint: str, seconds: float) -> None:
    state = method.prepared_state()
    if state is None:
        return
    meta, arrays = state
    from safetensors.numpy import save_file

    from cropmeta._fs import atomic_path

    jpath, spath = _prepared_paths(out, prepared_name(method.name), seed)
    with atomic_path(spath) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    atomic_write_text(jpath, json.dumps({"fingerprint": fingerprint, "seconds": seconds, "meta": meta}, default=str))


def load_prepared(out: Path, method: Method, seed: int, fingerprint: str) -> float | None:
    jpath, spath = _prepared_paths(out, prepared_name(method.name), seed)
    if not (jpath.exists() and spath.exists()):
        return None
    try:
        d = json.loads(jpath.read_text())
        if d.get("fingerprint") != fingerprint:
            return None
        from safetensors.numpy import load_file

        if method.load_prepared_state(d["meta"], load_file(str(spath))):
            return float(d.get("seconds", 0.0))
    except Exception:  # noqa: BLE001 - a damaged cache is recomputed, never trusted
        return None
    return None


def inputs_fingerprint(method: str, data: TargetData) -> dict:
    """What a method reads beyond the shots (:data:`~cropmeta.evaluate.methods.METHOD_INPUTS`), by hash."""
    need = METHOD_INPUTS.get(split_method(method)[0], ())
    return {f"input:{k}": getattr(data.task.extra.get(k), "hash", None) for k in need}


def backbone_fingerprint(method: str, config: dict) -> dict:
    """The Presto methods' weights by SHA-256 (their ``weights`` option is a path, which says
    nothing of the file's content); empty for every other method, whose fingerprints stay as they were."""
    base = split_method(method)[0]
    if not base.startswith("presto"):
        return {}
    from cropmeta.models.presto_embed import weights_sha256

    opts = (config.get("method_options") or {}).get(method) or (config.get("method_options") or {}).get(base) or {}
    return {"input:presto_weights_sha256": weights_sha256(opts.get("weights"))}
