"""Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks") for binary
classifiers, and reliability diagrams.

A temperature ``T`` rescales the logit: ``p' = sigmoid(logit(p) / T)``; ``T > 1`` softens over-confident
probabilities, ``T < 1`` sharpens under-confident ones. It never changes the ranking (AUC) — only the
probabilities and hence metrics at a 0.5 threshold, Brier score and ECE.

``T`` is fitted by minimising the negative log-likelihood on *held-out support data*: out-of-fold
predictions on the target's training labels (:func:`out_of_fold`, used by :mod:`cropmeta.evaluate.compare`),
never the test set.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from cropmeta.errors import InputError
from cropmeta.evaluate.methods import Method

#: probabilities are clipped to [EPS, 1 − EPS] before taking logits (random-forest votes are 0/1)
EPS = 1e-4
T_BOUNDS = (0.05, 50.0)


def logit(p, eps: float = EPS) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def sigmoid(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def apply_temperature(p, temperature: float | None) -> np.ndarray:
    """Calibrated probabilities ``sigmoid(logit(p) / T)``; ``None`` → ``p`` unchanged."""
    p = np.asarray(p, dtype=np.float64)
    if temperature is None:
        return p
    if not np.isfinite(temperature) or temperature <= 0:
        raise InputError(f"temperature must be a positive number, got {temperature}")
    return sigmoid(logit(p) / temperature)


def _nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    s = z / t
    # −[y log σ(s) + (1−y) log(1−σ(s))] = softplus(s) − y s
    return float(np.mean(np.logaddexp(0.0, s) - y * s))


def fit_temperature(p, y, min_per_class: int = 2, bounds: tuple[float, float] = T_BOUNDS) -> float | None:
    """Temperature minimising the NLL of ``sigmoid(logit(p)/T)`` on labels ``y`` (−1 ignored).

    Returns ``None`` (not calibrated) when there are fewer than ``min_per_class`` labelled examples of
    either class — a temperature fitted to one class only would just push every probability to it."""
    p = np.asarray(p, dtype=np.float64).ravel()
    y = np.asarray(y).astype(np.int64).ravel()
    if p.shape != y.shape:
        raise InputError(f"calibration: {len(p)} probabilities for {len(y)} labels")
    keep = y != -1
    p, y = p[keep], y[keep]
    if not np.isfinite(p).all():
        raise InputError("calibration: probabilities contain NaN or inf")
    if (y == 1).sum() < min_per_class or (y == 0).sum() < min_per_class:
        return None
    z = logit(p)
    # search over log T: the NLL is smooth and unimodal in practice; bounded Brent is robust
    res = optimize.minimize_scalar(lambda lt: _nll(z, y, float(np.exp(lt))), bounds=np.log(bounds),
                                   method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


#: fewer training labels of a class than this: a fitted temperature is flagged as uncertain
MIN_LABELS_PER_CLASS = 10


def at_bound(temperature: float | None, bounds: tuple[float, float] = T_BOUNDS) -> bool:
    """The fit ran into a bound of the search (within 1 % in log space): no real optimum."""
    if temperature is None:
        return False
    span = np.log(bounds[1]) - np.log(bounds[0])
    return bool(min(abs(np.log(temperature) - np.log(b)) for b in bounds) < 0.01 * span)


def checked_temperature(p, y, bounds: tuple[float, float] = T_BOUNDS) -> tuple[float | None, str]:
    """:func:`fit_temperature` plus what a report must say about it: ``(T or None, note)``. A
    temperature at a search bound is *not* used (at the upper bound it flattens every probability to
    ~0.5); fewer than :data:`MIN_LABELS_PER_CLASS` labels of a class is flagged."""
    y = np.asarray(y).astype(np.int64).ravel()
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    t = fit_temperature(p, y, bounds=bounds)
    if t is None:
        return None, f"too few labels of a class for out-of-fold calibration ({n_pos} positive, {n_neg} negative)"
    if at_bound(t, bounds):
        return None, (f"temperature ran into its bound {t:.2f} (search {bounds[0]:g}..{bounds[1]:g}) with "
                      f"{n_pos} positive / {n_neg} negative labels: not applied (uncalibrated)")
    if min(n_pos, n_neg) < MIN_LABELS_PER_CLASS:
        return t, (f"temperature {t:.2f} fitted on only {n_pos} positive / {n_neg} negative labels "
                   f"(fewer than {MIN_LABELS_PER_CLASS} of a class): uncertain")
    return t, ""


def reliability_curve(y, p, n_bins: int = 10) -> dict:
    """Equal-width bins over [0, 1] (the same bins as :func:`cropmeta.metrics.expected_calibration_error`):
    per bin ``count``, ``mean_pred`` and ``frac_pos`` (NaN for empty bins)."""
    y = np.asarray(y).astype(np.int64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    keep = y != -1
    y, p = y[keep], p[keep]
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    s_pred = np.bincount(bins, weights=p, minlength=n_bins)
    s_pos = np.bincount(bins, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.where(count > 0, s_pred / np.maximum(count, 1), np.nan)
        frac_pos = np.where(count > 0, s_pos / np.maximum(count, 1), np.nan)
    return {
        "edges": np.linspace(0, 1, n_bins + 1).tolist(),
        "count": count.astype(int).tolist(),
        "mean_pred": mean_pred.tolist(),
        "frac_pos": frac_pos.tolist(),
    }


def plot_reliability(ax, curves: dict[str, dict], title: str = "") -> None:
    """Draw reliability curves (label → :func:`reliability_curve` output) on a matplotlib axis."""
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfect")
    for label, c in curves.items():
        mp = np.asarray(c["mean_pred"], dtype=float)
        fp = np.asarray(c["frac_pos"], dtype=float)
        ok = np.isfinite(mp) & np.isfinite(fp)
        ax.plot(mp[ok], fp[ok], marker="o", ms=3, lw=1.2, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed fraction positive")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def out_of_fold(method: Method, x: np.ndarray, y: np.ndarray, seed: int, folds: int) -> tuple[np.ndarray, int]:
    """Out-of-fold probabilities on (x, y) with stratified folds; returns (probabilities, folds used;
    0 = too few labels of a class, probabilities NaN)."""
    from sklearn.model_selection import StratifiedKFold

    n_min = int(min((y == 1).sum(), (y == 0).sum()))
    folds = min(int(folds), n_min)
    oof = np.full(len(y), np.nan)
    if folds < 2:
        return oof, 0
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(seed))
    for i, (a, b) in enumerate(skf.split(np.zeros(len(y)), y)):
        method.fit(x[a], y[a], seed=seed * 1000 + 17 + i)
        oof[b] = method.predict_proba(x[b])
    return oof, folds


def calibrate_run(run_dir, samples=None, folds: int = 3, progress: bool = False, loader=None) -> dict:
    """Fit and save the calibration temperature of a ``cropmeta train`` run directory, so that
    :func:`cropmeta.train.checkpoint.load_predictor` (and hence ``cropmeta export``) returns
    calibrated probabilities.

    The held-out support data are out-of-fold predictions on the run's own *training* labels (the
    same ``shots`` subset and seed as the run): the meta-trained weights in ``RUN/meta/`` are
    fine-tuned on ``folds − 1`` folds with the run's configuration and predict the remaining fold.
    The test set is only used afterwards, to report ECE before/after. Writes ``calibration.json``
    and ``calibration.png`` (reliability diagram) into the run directory and returns the record.
    ``samples``: the data the run was trained on (default: the run's source, as ``cropmeta train``
    loads it, through ``loader`` — the app layer's :func:`cropmeta.app.samples.load_samples`)."""
    import json
    from pathlib import Path

    from cropmeta._fs import atomic_write_text, json_text
    from cropmeta.evaluate.deep import LearnerMethod
    from cropmeta.metrics import binary_metrics
    from cropmeta.tasks import Task, target_data
    from cropmeta.train.checkpoint import load_model, save_temperature
    from cropmeta.train.run import load_meta_model

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise InputError(f"{run_dir}: not a cropmeta run directory (no config.json)")
    run_cfg = json.loads(cfg_path.read_text())
    model, meta = load_model(run_dir)
    if getattr(model, "platt", None) is not None:
        raise InputError(f"{run_dir}: a {model.kind!r} model's probabilities are already calibrated (Platt scaling on "
                         "out-of-fold predictions of its shots); `cropmeta calibrate` fits a temperature to the "
                         "LSTM learners (timl, maml, concat, pretrained, scratch)")
    try:
        base = load_meta_model(run_dir)
    except InputError as e:
        raise InputError(f"{run_dir}: calibration needs the meta-trained weights in meta/ ({e})") from e
    task = Task.from_dict(run_cfg["target"])
    seed, shots = int(run_cfg.get("seed", 0)), run_cfg.get("shots")
    if samples is None:
        # the datasets the run trained on (its config's ``data``), not whatever the workspace holds now
        used = [d["dataset"] for d in run_cfg.get("data") or [] if d.get("pixels") in ("simulated", "real")]
        if loader is None:
            raise InputError(f"{run_dir}: give samples= or loader= (cropmeta.app.samples.load_samples)")
        samples = loader(None if used else run_cfg.get("source"), seed, progress=progress, datasets=used or None)
    td = target_data(samples, task, shots=shots, seed=seed)
    method = LearnerMethod("timl", cfg=model.config)
    method.name = base.kind
    method.base, method.task_info, method.seed = base, np.asarray(task.info, dtype=np.float32), seed
    oof, used = out_of_fold(method, td.x_train, td.y_train, seed, folds)
    temperature, note = checked_temperature(oof, td.y_train) if used else (None, "")
    if temperature is None:
        raise InputError(f"{run_dir}: --folds {folds} calibration refused: "
                         + (note or f"too few training labels of a class ({int(td.y_train.sum())} positive, "
                                    f"{int((td.y_train == 0).sum())} negative)") + "; nothing saved")
    if note:
        import logging

        logging.getLogger("cropmeta").warning("%s: %s", run_dir, note)
    from cropmeta.train.trained import predict_proba

    p_test = predict_proba(model, td.x_test)
    before, after = binary_metrics(td.y_test, p_test), binary_metrics(td.y_test, apply_temperature(p_test, temperature))
    record = {
        "temperature": temperature, "folds": used, "n_calibration": int(len(td.y_train)), "note": note,
        "fitted_on": "out-of-fold predictions on the run's training labels (never the test set)",
        "oof_ece_before": float(binary_metrics(td.y_train, oof)["ece"]),
        "oof_ece_after": float(binary_metrics(td.y_train, apply_temperature(oof, temperature))["ece"]),
        "test": {"ece_before": before["ece"], "ece_after": after["ece"], "brier_before": before["brier"],
                 "brier_after": after["brier"], "f1_before": before["f1"], "f1_after": after["f1"],
                 "n": before["n"]},
    }
    from cropmeta.evaluate.report.figures import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    plot_reliability(ax, {f"before (test ECE {before['ece']:.3f})": reliability_curve(td.y_test, p_test),
                          f"after T={temperature:.2f} (test ECE {after['ece']:.3f})":
                              reliability_curve(td.y_test, apply_temperature(p_test, temperature))},
                     title=f"{task.name}: reliability on the test set")
    save_figure(fig, run_dir / "calibration.png")
    atomic_write_text(run_dir / "calibration.json", json_text(record))
    save_temperature(run_dir, temperature)
    return record
