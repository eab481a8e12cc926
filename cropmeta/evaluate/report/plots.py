"""The PNG plots of a comparison report: k-shot curves, ROC curves, reliability diagrams, bars with
confidence intervals and the data summary (:data:`PLOTS`: name → plotting function)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cropmeta.evaluate.report.figures import pyplot, save_figure
from cropmeta.evaluate.report.tables import fmt_value, shot_label, cells_at, label, LOWER_IS_BETTER, METRIC_LABELS, stat_at
from cropmeta.metrics import METRIC_NAMES


def method_style(method: str, methods: list[str]) -> dict:
    """Line colour and style of a method in the plots: one colour per base method (tab10, so up to
    ten bases stay distinct), variants drawn in their base's colour with their own line style
    ("+sim" dashed, "+views" dotted, both dash-dot) — a report with more than ten rows stays readable."""
    from cropmeta.evaluate.methods import split_method

    bases = []
    for m in methods:
        b = split_method(m)[0]
        if b not in bases:
            bases.append(b)
    base, variants = split_method(method)
    colour = f"C{bases.index(base) % 10}" if base in bases else "0.3"
    ls = {(): "-", ("sim",): "--", ("views",): ":", ("sim", "views"): "-."}.get(tuple(variants), "-")
    return {"color": colour, "ls": ls}


#: bar-chart hatch of a variant (by its line style in :func:`method_style`)
BAR_HATCH = {"-": None, "--": "//", ":": "..", "-.": "xx"}


def plot_kshot(report: dict, path: Path) -> Path:
    plt = pyplot()
    shots = [str(k) for k in report["config"]["shots_run"]]
    methods = report["config"]["methods"]
    fig, axes = plt.subplots(3, 3, figsize=(12, 9))
    xs = np.arange(len(shots))
    for ax, met in zip(axes.ravel(), METRIC_NAMES):
        for m in methods:
            s = [stat_at(report, k, m, met) for k in shots]
            mean = np.array([v["mean"] for v in s], dtype=float)
            lo = np.array([v["ci_low"] for v in s], dtype=float)
            hi = np.array([v["ci_high"] for v in s], dtype=float)
            ax.plot(xs, mean, marker="o", ms=3, label=label(m), **method_style(m, methods))
            ax.fill_between(xs, lo, hi, alpha=0.15, color=method_style(m, methods)["color"])
        ax.set_xticks(xs, [shot_label(k) for k in shots])
        ax.set_title(METRIC_LABELS[met] + (" (lower is better)" if met in LOWER_IS_BETTER else ""), fontsize=9)
        ax.set_xlabel("labelled target samples (shots)", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("k-shot curves: mean over seeds, band = 95 % bootstrap CI", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def mean_roc(y: np.ndarray, probs: list[np.ndarray], grid: np.ndarray) -> np.ndarray:
    """Vertical averaging of ROC curves over seeds at fixed false-positive rates."""
    from sklearn.metrics import roc_curve

    tprs = []
    for p in probs:
        fpr, tpr, _ = roc_curve(y, p)
        tprs.append(np.interp(grid, fpr, tpr))
    out = np.mean(tprs, axis=0)
    out[0] = 0.0
    return out


def plot_roc(report: dict, path: Path) -> Path:
    plt = pyplot()
    shots = [str(k) for k in report["config"]["shots_run"]]
    methods = report["config"]["methods"]
    y = np.asarray(report["y_test"])
    keep = y != -1
    grid = np.linspace(0, 1, 101)
    n = len(shots)
    ncol = min(3, n)
    nrow = int(math.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3.8 * nrow), squeeze=False)
    for ax, k in zip(axes.ravel(), shots):
        for m in methods:
            probs = [np.asarray(c["prob_test"])[keep] for c in cells_at(report, m, k)]
            if not probs or len(np.unique(y[keep])) < 2:
                continue
            auc = report["summary"][k][m]["raw"]["auc_roc"]["mean"]
            ax.plot(grid, mean_roc(y[keep], probs, grid), label=f"{label(m)} ({fmt_value(auc)})", **method_style(m, methods))
        ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
        ax.set_title(f"ROC, {shot_label(k)} labels (mean over seeds)", fontsize=9)
        ax.set_xlabel("false-positive rate", fontsize=8)
        ax.set_ylabel("true-positive rate", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_reliability_grid(report: dict, path: Path) -> Path:
    from cropmeta.evaluate.calibration import apply_temperature, plot_reliability, reliability_curve

    plt = pyplot()
    shots = [str(k) for k in report["config"]["shots_run"]]
    sel = [shots[0]] if len(shots) == 1 else [shots[0], shots[-1]]
    methods = report["config"]["methods"]
    y = np.asarray(report["y_test"])
    fig, axes = plt.subplots(len(sel), len(methods), figsize=(3.2 * len(methods), 3.2 * len(sel)), squeeze=False)
    for i, k in enumerate(sel):
        for j, m in enumerate(methods):
            cells = cells_at(report, m, k)
            if not cells:
                axes[i, j].axis("off")
                continue
            raw = np.concatenate([np.asarray(c["prob_test"]) for c in cells])
            cal = np.concatenate([apply_temperature(c["prob_test"], c["temperature"]) for c in cells])
            yy = np.tile(y, len(cells))
            s = report["summary"][k][m]
            plot_reliability(axes[i, j], {
                f"before (ECE {fmt_value(s['raw']['ece']['mean'])})": reliability_curve(yy, raw),
                f"after (ECE {fmt_value(s['calibrated']['ece']['mean'])})": reliability_curve(yy, cal),
            }, title=f"{label(m)}, {shot_label(k)} labels")
    fig.suptitle("Reliability diagrams on the test set (seeds pooled), before/after temperature scaling", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_bars(report: dict, path: Path, metrics=("auc_roc", "f1", "ece")) -> Path:
    plt = pyplot()
    shots = [str(k) for k in report["config"]["shots_run"]]
    methods = report["config"]["methods"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    width = 0.8 / max(1, len(methods))
    xs = np.arange(len(shots))
    for ax, met in zip(axes[0], metrics):
        for j, m in enumerate(methods):
            s = [stat_at(report, k, m, met) for k in shots]
            mean = np.array([v["mean"] for v in s], dtype=float)
            lo = np.array([v["ci_low"] for v in s], dtype=float)
            hi = np.array([v["ci_high"] for v in s], dtype=float)
            # a percentile CI need not contain the sample mean (and float rounding): clip at 0
            err = np.clip(np.vstack([np.nan_to_num(mean - lo), np.nan_to_num(hi - mean)]), 0, None)
            st = method_style(m, methods)
            ax.bar(xs + (j - (len(methods) - 1) / 2) * width, mean, width, yerr=err, capsize=2, label=label(m),
                   color=st["color"], hatch=BAR_HATCH[st["ls"]], edgecolor="white", linewidth=0)
        ax.set_xticks(xs, [shot_label(k) for k in shots])
        ax.set_xlabel("labelled target samples", fontsize=8)
        ax.set_title(METRIC_LABELS[met] + (" (lower is better)" if met in LOWER_IS_BETTER else "") +
                     ", error bar = 95 % CI", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_data_summary(report: dict, path: Path) -> Path:
    plt = pyplot()
    t = report["target"]
    fig, ax = plt.subplots(figsize=(4.5, 3))
    splits = ["train", "test"]
    pos = [t[s]["positive"] for s in splits]
    neg = [t[s]["negative"] for s in splits]
    ax.bar(splits, neg, label="negative", color="#bbbbbb")
    ax.bar(splits, pos, bottom=neg, label=f"positive ({t.get('positive_means', '')})", color="#2a9d4b")
    for i in range(2):
        ax.text(i, pos[i] + neg[i], f"{pos[i]} / {neg[i]}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("labelled samples")
    ax.set_title(f"Target task data: {t['region']} {t.get('crop') or 'crop vs non-crop'}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


PLOTS = {
    "kshot_curves": plot_kshot,
    "roc_curves": plot_roc,
    "reliability": plot_reliability_grid,
    "bars_ci": plot_bars,
    "data_summary": plot_data_summary,
}
