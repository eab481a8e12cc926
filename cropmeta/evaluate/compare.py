"""The comparison protocol behind ``cropmeta compare``.

For every seed, method and shot count (a *cell*):

1. the target's training pool (``split == 'train'`` in the target region) is subsampled to ``k``
   labelled samples — the same nested, class-proportional subset for every method (paired design);
2. the method, prepared once per seed on the non-target training data (meta-training / pretraining;
   test samples are removed everywhere before anything sees the data), is fitted on the ``k`` samples
   and predicts the target's test set;
3. calibration: the method is refitted on ``folds`` stratified folds of the same ``k`` samples; the
   out-of-fold predictions fit a temperature (:func:`cropmeta.evaluate.calibration.fit_temperature`),
   which is applied to the test predictions of the model fitted on all ``k`` (scikit-learn's
   ``CalibratedClassifierCV(ensemble=False)`` scheme). The test set is never used to fit anything;
4. metrics (:func:`cropmeta.metrics.binary_metrics`) before and after calibration.

Test-set uncertainty: every report also gives a field-clustered bootstrap interval of each row's
seed-mean AUC-ROC and F1 (whole test fields resampled — the labels' ``field_id``, each sample its
own field where there is none — the same resamples for every row) and each row's paired difference
to TIML on the same resamples; the number of test fields stands beside the number of test samples.

Optional rows, all entries of the method registry (:data:`cropmeta.evaluate.methods.SHOT_MODES`):
``zero_shot`` adds shot count 0, where the meta-trained and pretrained models predict without any
target label or fine-tuning and a random forest is trained on the other regions only
("random-forest-source"); ``oracle`` adds the oracle rows of the simulated benchmark (random forest
and LSTM from scratch trained on correctly labelled samples of the target's test districts and year,
:mod:`cropmeta.evaluate.oracle`), one cell per seed shown at every shot count.

Each finished cell is written atomically as JSON under ``OUT/cells/``; a rerun with the same data,
configuration and protocol reuses it (an interrupted comparison continues where it stopped). The
prepared weights of each (method, seed) are cached under ``OUT/prepared/`` (safetensors + JSON).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cropmeta.errors import InputError
from cropmeta.evaluate import stats
from cropmeta.evaluate.calibration import apply_temperature, checked_temperature, out_of_fold
from cropmeta.evaluate.methods import (
    FIXED_SHOTS,
    METHOD_INPUTS,
    NO_ZERO_SHOT,
    Method,
    TargetTask,
    cell_shots,
    expand_methods,
    is_zero,
    make_method,
    method_label,
    method_shots,
    resolve_methods,
    shot_mode,
    split_method,
)
from cropmeta._fs import atomic_write_text, output_dir
from cropmeta.metrics import METRIC_NAMES, binary_metrics, expected_calibration_error
from cropmeta.tasks import shot_subset

PROTOCOL_VERSION = 1
DEFAULT_SHOTS: tuple = (20, 32, 64, 128, 256, "all")
DEFAULT_METHODS: tuple = ("timl", "maml", "pretrained", "scratch", "random-forest")


# --------------------------------------------------------------------------------------------------
# Target data
# --------------------------------------------------------------------------------------------------
@dataclass
class TargetData:
    """The target task's labelled samples: training pool and held-out test set (raw canonical x)."""

    task: TargetTask
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    ids_train: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    ids_test: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    summary: dict = field(default_factory=dict)
    #: field (cluster) of every test sample (:func:`cropmeta.io.store.field_ids`); empty → one per sample
    fields_test: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))

    def test_fields(self) -> np.ndarray:
        if len(self.fields_test) == len(self.y_test):
            return np.asarray(self.fields_test).astype(str)
        ids = self.ids_test if len(self.ids_test) == len(self.y_test) else np.arange(len(self.y_test))
        return np.array([f"sample:{i}" for i in ids])

    def data_hash(self) -> str:
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def parse_shots(shots) -> list:
    """``"0,20,32,all"`` or a sequence → ``[0, 20, 32, "all"]`` (0 = zero-shot, ints ≥ 4 and "all",
    order kept)."""
    if isinstance(shots, str):
        shots = [s for s in shots.split(",") if s.strip()]
    out: list = []
    for s in shots:
        key = str(s).strip().lower()
        if key == "all":
            val: Any = "all"
        else:
            try:
                val = int(key)
            except ValueError:
                raise InputError(f"--shots: {s!r} is neither a positive integer nor 'all'") from None
            if 0 < val < 4 or val < 0:
                raise InputError(f"--shots: {val} is too few (need at least 4: 2 per class; 0 = zero-shot)")
        if val not in out:
            out.append(val)
    if not out:
        raise InputError("--shots: no shot count given")
    return out


def build_target(samples, region: str, crop: str | None = None) -> TargetData:
    """The target task from a :class:`~cropmeta.io.store.SampleSet` holding (at least) the region.

    Region/crop resolution, labels and task information are :mod:`cropmeta.tasks`' (the same as
    ``cropmeta train``): kenya → maize, brazil → coffee, togo and others → crop vs non-crop."""
    from cropmeta.io.store import field_ids
    from cropmeta.tasks import resolve_target, task_labels

    task = resolve_target(samples, region, crop)
    meta = samples.meta
    y_all = task_labels(meta, task)  # (CropHarvest test files' own "target" labels included)
    split = meta["split"].astype(str).to_numpy()
    tr = (split == "train") & (y_all != -1)
    te = (split == "test") & (y_all != -1)
    for which, m in (("training", tr), ("test", te)):
        pos, neg = int((y_all[m] == 1).sum()), int((y_all[m] == 0).sum())
        if pos < 2 or neg < 2:
            raise InputError(f"target {task.name}: the {which} labels have {pos} positive and {neg} negative "
                             "samples (need at least 2 of each)")
    target = TargetTask(region=task.region, crop=task.crop, task_info=task.info,
                        name=task.id.replace(":", "_").replace(" ", "_").lower(),
                        extra={"task": task, "samples": samples.subset(tr | te)})  # (lat/lon, dates per sample)
    ids = meta["sample_id"].astype(str).to_numpy()
    in_region = y_all != -1

    fields = field_ids(meta)

    def counts(m):
        return {"positive": int((y_all[m] == 1).sum()), "negative": int((y_all[m] == 0).sum()),
                "fields": int(len(set(fields[m])))}

    summary = {
        "region": task.region, "crop": task.crop, "task": task.id, "task_name": task.name,
        "positive_means": task.crop if task.crop else "crop",
        "train": counts(tr), "test": counts(te),
        "task_rows_without_split": int((in_region & ~tr & ~te).sum()),
        "t": int(samples.t),
        "field_ids": bool("field_id" in meta.columns and meta.loc[te, "field_id"].notna().any()),
    }
    return TargetData(target, samples.x[tr], y_all[tr], samples.x[te], y_all[te], ids[tr], ids[te], summary,
                      fields_test=fields[te].astype(str))


def source_samples(samples, target: TargetData):
    """What ``prepare`` may see: every *training* sample (``split == 'train'``); test samples are
    removed everywhere, and so are any samples whose id is in the target's test set. Excluding the
    target task itself from meta-training/pretraining is the training code's job (it receives the
    target task)."""
    meta = samples.meta
    keep = (meta["split"].astype(str).to_numpy() == "train")
    keep &= ~meta["sample_id"].astype(str).isin(set(target.ids_test)).to_numpy()
    return samples.subset(keep)


# --------------------------------------------------------------------------------------------------
# One cell
# --------------------------------------------------------------------------------------------------
def shot_indices(y: np.ndarray, k: int | str, seed: int) -> np.ndarray:
    """Indices of the ``k``-shot training subset of a cell: :func:`cropmeta.tasks.shot_subset` (the
    one sampler, shared with ``cropmeta train --shots``); 0 (zero-shot) or the fixed cells → nothing."""
    if is_zero(k) or k == FIXED_SHOTS:
        return np.zeros(0, dtype=np.int64)
    return shot_subset(y, k, seed)


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
    t2 = time.perf_counter()
    temperature, calib = None, {"folds": 0, "note": ""}
    if no_labels:
        calib["note"] = "no target labels: not calibrated"
    elif calib_folds and calib_folds >= 2:
        oof, used = out_of_fold(method, x, y, seed, calib_folds)
        calib["folds"] = used
        if used:
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
        "calibration": calib,
        "prob_test": [round(float(v), 6) for v in p_test],
        "seconds": {"fit": round(t_fit, 3), "predict": round(t_pred, 3),
                    "calibrate": round(time.perf_counter() - t2, 3)},
        "flops": flops,
    }


# --------------------------------------------------------------------------------------------------
# Caching (resume)
# --------------------------------------------------------------------------------------------------
def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_path(out: Path, method: str, seed: int, k) -> Path:
    return Path(out) / "cells" / method / f"seed-{seed}" / f"shots-{k}.json"


def _read_cell(path: Path, fingerprint: str) -> dict | None:
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


def _prep_name(method: str) -> str:
    """Whose prepared weights a method uses: ``timl+views`` fits views on TIML's (cached once)."""
    base, variants = split_method(method)
    return "+".join([base] + [v for v in variants if v != "views"])


def _save_prepared(out: Path, method: Method, seed: int, fingerprint: str, seconds: float) -> None:
    state = method.prepared_state()
    if state is None:
        return
    meta, arrays = state
    from safetensors.numpy import save_file

    from cropmeta._fs import atomic_path

    jpath, spath = _prepared_paths(out, _prep_name(method.name), seed)
    with atomic_path(spath) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    atomic_write_text(jpath, json.dumps({"fingerprint": fingerprint, "seconds": seconds, "meta": meta}, default=str))


def _load_prepared(out: Path, method: Method, seed: int, fingerprint: str) -> float | None:
    jpath, spath = _prepared_paths(out, _prep_name(method.name), seed)
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


# --------------------------------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------------------------------
def versions() -> dict:
    """Versions of the packages behind the numbers (:func:`cropmeta.provenance.software_versions`)."""
    from cropmeta.provenance import software_versions

    return software_versions(("numpy", "scipy", "scikit-learn", "torch", "learn2learn", "matplotlib"),
                             with_platform=True, missing="not installed")


def resolve_effective_shots(shots: list, n_train: int) -> tuple[list, list[str]]:
    """Drop shot counts that would duplicate "all" (k ≥ training pool); notes say which and why."""
    out, notes, seen = [], [], set()
    for k in shots:
        eff = n_train if k == "all" else min(int(k), n_train)
        if eff in seen:
            notes.append(f"shots {k} skipped: the training pool has only {n_train} labels (same as a larger setting)")
            continue
        if k != "all" and int(k) >= n_train:
            if "all" in shots:
                notes.append(f"shots {k} skipped: the training pool has only {n_train} labels (same as 'all')")
                continue
            notes.append(f"shots {k}: the training pool has only {n_train} labels; reported as 'all'")
            k = "all"
        seen.add(eff)
        out.append(k)
    return out, notes


def run_protocol(
    data: TargetData,
    source: Any,
    methods: list[str],
    seeds: list[int],
    shots: list,
    out: Path,
    method_factory: Callable[[str], Method],
    config: dict,
    calib_folds: int = 3,
    progress: bool = True,
    source_hash: str = "",
    flop_seeds: list[int] | None = None,
) -> tuple[list[dict], dict]:
    """Every (method, seed, shot) cell, cached under ``out``; returns (cells, run info).
    ``flop_seeds``: the seeds whose cells also count FLOPs (None → the first seed of ``seeds``).
    Adaptation FLOPs depend on shapes only, and counting slows the fit several times over."""
    flop_seeds = [seeds[0]] if flop_seeds is None else [int(s) for s in flop_seeds]
    out = Path(out)
    info = {"computed": 0, "reused": 0, "prepared": 0, "prepared_reused": 0, "prepare_seconds": {}}
    cells: list[dict] = []
    base = {"protocol": PROTOCOL_VERSION, "data": data.data_hash(), "source": source_hash,
            "calib_folds": calib_folds, "config": config}
    todo = [(m, s, k) for s in seeds for m in methods for k in method_shots(m, shots)]
    from cropmeta.progress import Progress

    prog = Progress(progress, len(todo), description="compare", lines=100)  # a bar on a terminal, timed lines in a log
    try:
        for s in seeds:
            for m in methods:
                backbone = _backbone_fingerprint(m, config)
                fp = _fingerprint(base | {"method": m, "seed": s} | _inputs_fingerprint(m, data) | backbone)
                # the prepared weights depend on the source data, configuration, target task and seed only
                fp_prep = _fingerprint({"protocol": PROTOCOL_VERSION, "source": source_hash, "config": config,
                                        "task": data.task.name, "method": _prep_name(m), "seed": s} | backbone)
                pending = []
                for k in method_shots(m, shots):
                    c = _read_cell(cell_path(out, m, s, k), fp)
                    if c is not None:
                        cells.append(c)
                        info["reused"] += 1
                        prog.advance()
                    else:
                        pending.append(k)
                if not pending:
                    continue
                method = method_factory(m)
                prog.update(description=f"{method_label(m)} · seed {s} · preparing")
                t0 = time.perf_counter()
                secs = None
                if method.needs_source:
                    method.set_target(data.task, s)
                    secs = _load_prepared(out, method, s, fp_prep)
                if secs is None:
                    method.prepare(source if method.needs_source else None, data.task, s,
                                   workdir=prepared_workdir(out, _prep_name(m), s, fp_prep) if method.needs_source
                                   else None)
                    secs = time.perf_counter() - t0
                    if method.needs_source:
                        info["prepared"] += 1
                        _save_prepared(out, method, s, fp_prep, secs)
                else:
                    info["prepared_reused"] += 1
                info["prepare_seconds"][f"{m}/seed-{s}"] = round(secs, 3)
                for k in pending:
                    prog.update(description=f"{method_label(m)} · seed {s} · {k} shots")
                    # adaptation FLOPs depend on shapes, not on the seed: counted on flop_seeds only
                    c = run_cell(method, data, s, k, calib_folds, count_flops=s in flop_seeds)
                    c["fingerprint"] = fp
                    c["seconds"]["prepare"] = round(secs, 3)
                    atomic_write_text(cell_path(out, m, s, k), json.dumps(c))
                    cells.append(c)
                    info["computed"] += 1
                    prog.advance()
    finally:
        prog.close()
    return cells, info


def _inputs_fingerprint(method: str, data: TargetData) -> dict:
    """What a method reads beyond the shots (:data:`~cropmeta.evaluate.methods.METHOD_INPUTS`), by hash."""
    need = METHOD_INPUTS.get(split_method(method)[0], ())
    return {f"input:{k}": getattr(data.task.extra.get(k), "hash", None) for k in need}


def _backbone_fingerprint(method: str, config: dict) -> dict:
    """The Presto methods' weights by SHA-256 (their ``weights`` option is a path, which says
    nothing of the file's content); empty for every other method, whose fingerprints stay as they were."""
    base = split_method(method)[0]
    if not base.startswith("presto"):
        return {}
    from cropmeta.models.presto_embed import weights_sha256

    opts = (config.get("method_options") or {}).get(method) or (config.get("method_options") or {}).get(base) or {}
    return {"input:presto_weights_sha256": weights_sha256(opts.get("weights"))}


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


def compare(
    region: str | None = None,
    crop: str | None = None,
    seeds: int | list[int] = 5,
    shots=DEFAULT_SHOTS,
    methods=DEFAULT_METHODS,
    out: str | Path | None = None,
    source: str | Path | None = None,
    preset: str = "quick",
    progress: bool = True,
    *,
    samples=None,
    config: str | Path | dict | None = None,
    calib_folds: int = 3,
    method_factory: Callable[[str], Method] | None = None,
    method_options: dict[str, dict] | None = None,
    console=None,
    views: int = 0,
    pretrain_source: str | None = None,
    sim_seed: int = 1,
    flop_seeds: list[int] | None = None,
    zero_shot: bool = False,
    oracle: bool = False,
    world: str | Path | None = None,
    oracle_n: int | None = None,
    n_boot: int = 1000,
    loader: Callable[[], tuple] | None = None,
    load_sim: Callable | None = None,
) -> dict:
    """One target's comparison (:func:`cropmeta.app.compare.compare` documents the options; it
    dispatches ``benchmark=`` to :func:`cropmeta.evaluate.benchmark.run_benchmark` and loads the data).
    ``samples``: the data; else ``loader()`` gives ``(samples, data used)`` — called after
    the options are checked; ``load_sim``: the simulated world's loader of the ``+sim`` rows.
    Returns the report dict (also report.json)."""
    methods, shots = protocol_rows(methods, shots, zero_shot, oracle)
    if views or pretrain_source not in (None, "none"):
        methods, method_options = _variant_methods(methods, method_options, views, pretrain_source, sim_seed)
    if region is None:
        raise InputError("compare: give --region (e.g. kenya) or --benchmark sim|cropharvest|deafrica")
    seed_list = list(range(int(seeds))) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not seed_list:
        raise InputError("--seeds: need at least one seed")
    method_list = resolve_methods(methods)
    shot_list = parse_shots(shots)
    data_used = None
    if samples is None:
        if loader is None:
            raise InputError("compare: give samples= (cropmeta.app.compare.compare loads the workspace's)")
        samples, data_used = loader()
    data = build_target(samples, region, crop)
    out = Path(out) if out is not None else Path("compare-" + data.task.name)
    with output_dir(out):
        return _compare_target(data, samples, out, source, method_list, seed_list, shot_list, preset, config,
                               method_factory, method_options, calib_folds, progress, flop_seeds, views,
                               pretrain_source, data_used, world, oracle_n, n_boot, load_sim)


def _compare_target(data, samples, out, source, method_list, seed_list, shot_list, preset, config, method_factory,
                    method_options, calib_folds, progress, flop_seeds, views, pretrain_source, data_used,
                    world, oracle_n, n_boot, load_sim=None) -> dict:
    protocol_notes, oracle_summary = [], None
    if any(METHOD_INPUTS.get(split_method(m)[0]) == ("oracle",) for m in method_list):
        from cropmeta.evaluate.oracle import ORACLE_N, sim_oracle

        if world is None and source in (None, "sim"):
            world = default_sim_world()
        od, why = sim_oracle(world, data.task.region, data.task.crop, data.ids_test, data.y_test, data.x_test,
                             n=int(oracle_n or ORACLE_N))
        if od is None:
            method_list = [m for m in method_list if not METHOD_INPUTS.get(split_method(m)[0])]
            protocol_notes.append(f"oracle rows absent: {why}")
        else:
            data.task.extra["oracle"] = od
            oracle_summary = od.summary()
    if any(is_zero(k) for k in shot_list):
        for m in method_list:
            if not any(is_zero(k) for k in method_shots(m, shot_list)) and shot_mode(m) == "few":
                base = split_method(m)[0]
                why = NO_ZERO_SHOT.get(base, "it is fitted on the target's labels")
                if "views" in split_method(m)[1]:
                    why = "its generative views are made from the target's labels"
                protocol_notes.append(f"no zero-shot row for {method_label(m)}: {why}")
    eff_shots, shot_notes = resolve_effective_shots(shot_list, len(data.y_train))
    src = source_samples(samples, data)
    cfg_dict, factory = _resolve_config(preset, config, method_factory, method_options, load_sim)
    cells, info = run_protocol(data, src, method_list, seed_list, eff_shots, out, factory, cfg_dict,
                               calib_folds=calib_folds, progress=progress, source_hash=src.content_hash(),
                               flop_seeds=flop_seeds)
    config_rec = {
        "region": data.task.region, "crop": data.task.crop, "seeds": seed_list, "shots": shot_list,
        "shots_run": eff_shots, "shot_notes": shot_notes, "methods": method_list, "preset": preset,
        "calib_folds": calib_folds, "source": str(source) if source is not None else "sim",
        "views": int(views or 0), "pretrain_source": pretrain_source if pretrain_source != "none" else None,
        "training_config": cfg_dict, "method_options": cfg_dict.get("method_options", {}),
        "data": data_used,
        "protocol_notes": protocol_notes, "oracle": oracle_summary, "n_boot": int(n_boot),
    }
    src_summary = {"n_samples": int(len(src)), "n_regions": int(src.meta["region"].nunique()) if len(src) else 0}
    report = make_report(data, cells, config_rec, info, src_summary)
    from cropmeta.evaluate.report import write_report

    report["files"] = {k: str(v) for k, v in write_report(report, out).items()}
    return report


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


def protocol_rows(methods, shots, zero_shot: bool = False, oracle: bool = False) -> tuple[list[str], list]:
    """The methods and shot counts of a comparison with the protocol's optional rows: ``zero_shot``
    adds the zero-shot column (shot count 0) and the other-regions random forest,
    ``oracle`` the two oracle rows."""
    methods, shots = resolve_methods(methods), parse_shots(shots)
    extra = []
    if zero_shot:
        shots = shots if any(is_zero(k) for k in shots) else [0] + shots
        extra.append("random-forest-source")
    if oracle:
        extra += ["oracle-rf", "oracle-lstm"]
    return methods + [m for m in extra if m not in methods], shots


def default_sim_world() -> Path:
    """The simulated world the default data source ingests (seed 0 of the workspace: what
    :func:`cropmeta.app.samples.load_samples` reads when nothing else is stored)."""
    from cropmeta.sim import ensure_world

    return Path(ensure_world(seed=0))


def _variant_methods(methods, method_options, views: int, pretrain_source, sim_seed: int) -> tuple[list[str], dict]:
    """The expanded method rows (:func:`cropmeta.evaluate.methods.expand_methods`) and their options:
    a variant gets its base method's options plus ``n_views`` / ``sim_seed`` (which therefore enter
    the cache fingerprints)."""
    rows = expand_methods(methods, int(views or 0), pretrain_source)
    given = {resolve_methods([k])[0]: dict(v) for k, v in (method_options or {}).items()}
    opts = dict(given)
    for m in rows:
        base, variants = split_method(m)
        if not variants:
            continue
        o = {**given.get(base, {}), **given.get(m, {})}
        if "views" in variants:
            o.setdefault("n_views", int(views or 4))
        if "sim" in variants:
            o.setdefault("sim_seed", int(sim_seed))
        opts[m] = o
    return rows, opts


def _resolve_config(preset: str, config, method_factory, method_options=None,
                    load_sim=None) -> tuple[dict, Callable[[str], Method]]:
    """The deep methods' training configuration (resolved, JSON-able; it enters the cache keys) and
    the method factory."""
    opts = {resolve_methods([k])[0]: dict(v) for k, v in (method_options or {}).items()}
    if method_factory is not None:
        return {"preset": preset, "config": config if isinstance(config, dict) else str(config),
                "method_options": opts}, method_factory
    from cropmeta.evaluate.deep import resolve_train_config

    cfg, cfg_dict = resolve_train_config(preset, config)
    return cfg_dict | {"method_options": opts}, lambda name: make_method(name, cfg=cfg, load_sim=load_sim,
                                                                 **opts.get(name, {}))

