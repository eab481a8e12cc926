"""The comparison report: report.json, report.md, a self-contained report.html (plots embedded as
base64 PNG) and the PNG plots (matplotlib, Agg backend).

Every sentence of the summary is generated from the numbers in the report dict — nothing about who
wins is written by hand.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np

from cropmeta.evaluate.methods import method_label
from cropmeta._fs import atomic_path, atomic_write_text
from cropmeta.metrics import METRIC_NAMES

METRIC_LABELS = {
    "auc_roc": "AUC-ROC", "f1": "F1", "precision": "Precision", "recall": "Recall", "accuracy": "Accuracy",
    "iou": "IoU", "kappa": "Cohen's κ", "brier": "Brier", "ece": "ECE",
}
LOWER_IS_BETTER = {"brier", "ece"}


def label(method: str) -> str:
    return method_label(method)


def cost_cells(row: dict) -> list[str]:
    """The adaptation-cost columns of a results row: wall time of adapting to the target's labels and
    predicting its test set (mean over the seeds timed without the FLOP counter) and the FLOPs of the same (first seed; "–" where torch
    did not do the work, e.g. the random forest)."""
    sec = (row.get("seconds_adapt") or {}).get("mean")
    fl = (row.get("flops") or {}).get("adapt_predict") if row.get("flops") else None
    return [_fmt(sec, 2) if sec is not None else "–", f"{fl / 1e9:.3g}" if fl else "–"]


COST_HEADER = ["Adapt + predict (s)", "GFLOP / task"]


def _fmt(v, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{nd}f}"


def _shot_label(k) -> str:
    return {"all": "all", "0": "0 (zero-shot)"}.get(str(k), str(k))


def rows_at(report: dict, k: str) -> list[str]:
    """The methods with a row at shot count ``k`` (report order)."""
    summ = report["summary"][k]
    return [m for m in report["config"]["methods"] if m in summ]


_NAN_STAT = {"mean": float("nan"), "std": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}


def stat_at(report: dict, k: str, m: str, met: str, variant: str = "raw") -> dict:
    """The seed summary of ``met`` for row ``m`` at ``k`` (NaNs where the method has no row there)."""
    row = report["summary"][k].get(m)
    return row[variant][met] if row is not None else _NAN_STAT


def cells_at(report: dict, m: str, k: str) -> list[dict]:
    """The cells shown in row ``m`` at shot count ``k`` (a fixed row's cells at every ``k``)."""
    row = report["summary"][k].get(m)
    if row is None:
        return []
    key = str(row.get("cell_shots", k))
    return [c for c in report["cells"] if c["method"] == m and str(c["shots"]) == key]


def _ci_text(ci: dict | None, signed: bool = False) -> str:
    if not ci:
        return "–"
    v = ci.get("mean_diff", ci.get("mean"))
    head = f"{v:+.3f}" if signed and _finite(v) else _fmt(v)
    return f"{head} [{_fmt(ci['ci_low'])}, {_fmt(ci['ci_high'])}]"


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------
def best_methods(summary_k: dict, metric: str, variant: str = "raw") -> set[str]:
    """Methods with the best mean for ``metric`` at one shot count (ties all bold). Fixed rows (the
    oracle: a ceiling, not a competitor) are never marked best."""
    means = {m: row[variant][metric]["mean"] for m, row in summary_k.items() if not row.get("fixed")}
    means = {m: v for m, v in means.items() if _finite(v)}
    if not means:
        return set()
    target = min(means.values()) if metric in LOWER_IS_BETTER else max(means.values())
    return {m for m, v in means.items() if abs(v - target) < 1e-12}


def results_table(report: dict, k: str, metrics=METRIC_NAMES, variant: str = "raw", fmt: str = "md") -> list[list[str]]:
    """Rows (header first) of the results table at shot count ``k``: mean ± std [CI low, high] over
    seeds, then the field-clustered test-set intervals of AUC-ROC and F1 (when computed)."""
    summ = report["summary"][k]
    methods = rows_at(report, k)
    boot = [met for met in ("auc_roc", "f1") if any((summ[m].get("test_ci") or {}).get(met) for m in methods)]
    rows = [["Method"] + [METRIC_LABELS[m] + (" ↓" if m in LOWER_IS_BETTER else "") for m in metrics]
            + [f"{METRIC_LABELS[met]} [95 % CI, test fields]" for met in boot] + COST_HEADER]
    best = {met: best_methods(summ, met, variant) for met in metrics}
    for m in methods:
        row = [label(m)]
        for met in metrics:
            s = summ[m][variant][met]
            txt = f"{_fmt(s['mean'])} ± {_fmt(s['std'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]"
            if s["n"] < len(report["seeds"]):
                txt += f" (n={s['n']})"
            if m in best[met]:
                txt = f"**{txt}**" if fmt == "md" else f"<b>{html.escape(txt)}</b>"
            elif fmt == "html":
                txt = html.escape(txt)
            row.append(txt)
        row += [_ci_text((summ[m].get("test_ci") or {}).get(met)) for met in boot]
        rows.append(row + cost_cells(summ[m]))
    return rows


def difference_table(report: dict, k: str, metrics=("auc_roc", "f1")) -> list[list[str]]:
    """Rows (header first): each row's seed-mean AUC-ROC / F1 minus the reference's (TIML) on the same
    test set, with a 95 % interval from the field-clustered bootstrap (both sides on the same
    resampled fields). Empty when the reference has no row at ``k`` or no bootstrap was run."""
    summ = report["summary"][k]
    ref = report.get("reference", "timl")
    others = [m for m in rows_at(report, k) if m != ref and summ[m].get("vs_reference")]
    if not others:
        return []
    rows = [["Method"] + [f"Δ {METRIC_LABELS[met]} vs {label(ref)} [95 % CI, test fields]" for met in metrics]]
    for m in others:
        rows.append([label(m)] + [_ci_text(summ[m]["vs_reference"].get(met), signed=True) for met in metrics])
    return rows


def calibration_table(report: dict, k: str) -> list[list[str]]:
    summ = report["summary"][k]
    rows = [["Method", "Temperature (per seed)", "ECE before → after", "Brier before → after", "F1 before → after"]]
    for m in rows_at(report, k):
        r = summ[m]
        temps = ", ".join(_fmt(t, 2) for t in r["temperature"]) or "–"
        rows.append([
            label(m), temps,
            f"{_fmt(r['raw']['ece']['mean'])} → {_fmt(r['calibrated']['ece']['mean'])}",
            f"{_fmt(r['raw']['brier']['mean'])} → {_fmt(r['calibrated']['brier']['mean'])}",
            f"{_fmt(r['raw']['f1']['mean'])} → {_fmt(r['calibrated']['f1']['mean'])}",
        ])
    return rows


def wilcoxon_table(report: dict, k: str, metrics=("auc_roc", "f1")) -> list[list[str]]:
    ref = report.get("reference", "timl")
    tests = report.get("wilcoxon", {}).get(k)
    if not tests:
        return []
    rows = [["Comparison"] + [f"{METRIC_LABELS[m]}: Δ median, wins/losses/ties, p (Holm)" for m in metrics]]
    for other in tests[metrics[0]]:
        row = [f"{label(ref)} vs {label(other)}"]
        for met in metrics:
            t = tests[met][other]
            row.append(f"{t['median_diff']:+.3f}, {t['wins']}/{t['losses']}/{t['ties']}, "
                       f"p={_fmt(t['p_value'])} ({_fmt(t['p_holm'])})" if t["n"] else "–")
        rows.append(row)
    return rows


def data_table(report: dict) -> list[list[str]]:
    t = report["target"]
    pos = t.get("positive_means", "positive")
    rows = [["Split", f"positive ({pos})", "negative", "total", "fields"]]
    for split in ("train", "test"):
        c = t[split]
        rows.append([split, str(c["positive"]), str(c["negative"]), str(c["positive"] + c["negative"]),
                     str(c.get("fields", "–"))])
    return rows


def md_table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def html_table(rows: list[list[str]], escaped: bool = False) -> str:
    if not rows:
        return ""
    esc = (lambda s: s) if escaped else html.escape
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --------------------------------------------------------------------------------------------------
# Plain-language summary
# --------------------------------------------------------------------------------------------------
def narrative(report: dict) -> list[str]:
    """Paragraphs of plain language, generated from the numbers."""
    ref = report.get("reference", "timl")
    methods = report["config"]["methods"]
    shots = [str(k) for k in report["config"]["shots_run"]]
    n_seeds = len(report["seeds"])
    t = report["target"]
    paras = []
    what = f"{t['region']} {t['crop']} vs rest" if t.get("crop") else f"{t['region']} crop vs non-crop"
    n_fields = t["test"].get("fields")
    fields_txt = (f" in {n_fields} fields" if t.get("field_ids") else
                  " (no field ids: each test sample is its own field in the bootstrap)") if n_fields is not None else ""
    paras.append(
        f"Target: {what}; {t['train']['positive'] + t['train']['negative']} training labels "
        f"({t['train']['positive']} positive), {t['test']['positive'] + t['test']['negative']} test labels "
        f"({t['test']['positive']} positive){fields_txt}. {len(methods)} methods, {n_seeds} seed(s), "
        f"shot counts {', '.join(_shot_label(k) for k in shots)}."
    )
    sentences = []
    ref_best, baseline_wins = [], []
    for k in shots:
        summ = report["summary"][k]
        for met in ("auc_roc", "f1"):
            means = {m: summ[m]["raw"][met]["mean"] for m in rows_at(report, k)
                     if not summ[m].get("fixed") and _finite(summ[m]["raw"][met]["mean"])}
            if not means:
                continue
            order = sorted(means, key=lambda m: -means[m])
            best = order[0]
            s = summ[best]["raw"][met]
            txt = (f"With {_shot_label(k)} labels, {label(best)} had the highest mean {METRIC_LABELS[met]} "
                   f"({_fmt(s['mean'])}, 95 % CI {_fmt(s['ci_low'])}–{_fmt(s['ci_high'])})")
            if ref in means and best != ref:
                baseline_wins.append((k, met, best, means[best] - means[ref]))
                w = report.get("wilcoxon", {}).get(k, {}).get(met, {}).get(best)
                txt += (f"; {label(ref)} reached {_fmt(means[ref])}, {means[best] - means[ref]:.3f} lower")
                if w and w["n"]:
                    txt += (f" ({label(ref)} better on {w['wins']} of {w['n']} seeds, Wilcoxon p = {_fmt(w['p_value'])})")
            elif ref in means and len(order) > 1:
                ref_best.append((k, met))
                second = order[1]
                w = report.get("wilcoxon", {}).get(k, {}).get(met, {}).get(second)
                txt += f", {means[ref] - means[second]:.3f} above the next best, {label(second)}"
                if w and w["n"]:
                    txt += (f" ({label(ref)} better on {w['wins']} of {w['n']} seeds, "
                            f"Wilcoxon p = {_fmt(w['p_value'])})")
            d = (summ.get(best, {}).get("vs_reference") or {}).get(met) if best != ref else None
            if d:
                txt += (f"; {label(best)} − {label(ref)} = {d['mean_diff']:+.3f}, 95 % CI over test fields "
                        f"{_fmt(d['ci_low'])} to {_fmt(d['ci_high'])}")
            sentences.append(txt + ".")
    paras.append(" ".join(sentences))
    fixed = [m for m in methods if any(report["summary"][k].get(m, {}).get("fixed") for k in shots)]
    if fixed and shots:
        k0 = shots[-1]
        parts = []
        for m in fixed:
            s, ci = stat_at(report, k0, m, "auc_roc"), (report["summary"][k0][m].get("test_ci") or {}).get("auc_roc")
            parts.append(f"{label(m)} AUC-ROC {_fmt(s['mean'])}" + (f" (95 % CI over test fields {_fmt(ci['ci_low'])}–"
                                                                  f"{_fmt(ci['ci_high'])})" if ci else ""))
        o = report["config"].get("oracle") or {}
        paras.append(f"Oracle (trained on {o.get('n', '?')} correctly labelled samples of the target's test districts "
                     f"and test year, never the test points; no target shots, so the same at every shot count): "
                     + "; ".join(parts) + ".")
    if ref in methods:
        n_cmp = len(shots) * 2
        if baseline_wins:
            wins = "; ".join(f"{label(m)} on {METRIC_LABELS[met]} at {_shot_label(k)} labels (by {d:.3f})"
                             for k, met, m, d in baseline_wins)
            paras.append(f"A baseline beat {label(ref)} in {len(baseline_wins)} of {n_cmp} (shot count, metric) "
                         f"settings for AUC-ROC and F1: {wins}.")
        else:
            paras.append(f"{label(ref)} had the best mean AUC-ROC and F1 at every shot count.")
        sig = [(k, met, m) for k in shots for met in ("auc_roc", "f1")
               for m, w in report.get("wilcoxon", {}).get(k, {}).get(met, {}).items()
               if _finite(w.get("p_holm")) and w["p_holm"] < 0.05]
        min_p = 2.0 / 2**n_seeds
        if sig:
            paras.append("Differences significant at 5 % after Holm's correction: " + "; ".join(
                f"{label(ref)} vs {label(m)} on {METRIC_LABELS[met]} at {_shot_label(k)} labels" for k, met, m in sig) + ".")
        else:
            paras.append(
                f"No difference between {label(ref)} and another method is significant at 5 % after Holm's correction"
                + (f" — with {n_seeds} paired seeds the smallest possible two-sided Wilcoxon p-value is {min_p:.3f}, "
                   "so more seeds are needed to tell" if min_p >= 0.05 else "") + "."
            )
    # calibration
    pairs = [(report["summary"][k][m]["raw"]["ece"]["mean"], report["summary"][k][m]["calibrated"]["ece"]["mean"])
             for k in shots for m in rows_at(report, k)]
    pairs = [(a, b) for a, b in pairs if _finite(a) and _finite(b)]
    if pairs:
        better = sum(b < a - 1e-9 for a, b in pairs)
        worse = sum(b > a + 1e-9 for a, b in pairs)
        a_mean, b_mean = np.mean([a for a, _ in pairs]), np.mean([b for _, b in pairs])
        paras.append(
            f"Calibration: temperature scaling, fitted on out-of-fold predictions on the training shots (never the "
            f"test set), lowered the mean test ECE in {better} and raised it in {worse} of {len(pairs)} "
            f"(method, shot count) settings; averaged over them, ECE went from {a_mean:.3f} to {b_mean:.3f}."
        )
    notes = (report["config"].get("shot_notes") or []) + (report["config"].get("protocol_notes") or [])
    if notes:
        paras.append("Note: " + "; ".join(notes) + ".")
    flagged = calibration_flags(report.get("cells") or [])
    if flagged:
        paras.append("Calibration warnings: " + "; ".join(flagged) + ".")
    return paras


def calibration_flags(cells: list[dict]) -> list[str]:
    """One line per (method, shots) whose calibration was refused or flagged in some seed (a
    temperature at its bound, too few labels), e.g. ``timl @ 20: temperature ran into its bound …``."""
    by: dict[tuple[str, str], list[str]] = {}
    for c in cells:
        note = (c.get("calibration") or {}).get("note") or ""
        if note and note != "calibration disabled":
            by.setdefault((str(c.get("method")), str(c.get("shots"))), []).append(note)
    return [f"{m} @ {k}: {len(v)} seed(s): {v[0]}" for (m, k), v in by.items()]


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    _plt().close(fig)
    return path


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
    plt = _plt()
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
        ax.set_xticks(xs, [_shot_label(k) for k in shots])
        ax.set_title(METRIC_LABELS[met] + (" (lower is better)" if met in LOWER_IS_BETTER else ""), fontsize=9)
        ax.set_xlabel("labelled target samples (shots)", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("k-shot curves: mean over seeds, band = 95 % bootstrap CI", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


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
    plt = _plt()
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
            ax.plot(grid, mean_roc(y[keep], probs, grid), label=f"{label(m)} ({_fmt(auc)})", **method_style(m, methods))
        ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
        ax.set_title(f"ROC, {_shot_label(k)} labels (mean over seeds)", fontsize=9)
        ax.set_xlabel("false-positive rate", fontsize=8)
        ax.set_ylabel("true-positive rate", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def plot_reliability_grid(report: dict, path: Path) -> Path:
    from cropmeta.evaluate.calibration import apply_temperature, plot_reliability, reliability_curve

    plt = _plt()
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
                f"before (ECE {_fmt(s['raw']['ece']['mean'])})": reliability_curve(yy, raw),
                f"after (ECE {_fmt(s['calibrated']['ece']['mean'])})": reliability_curve(yy, cal),
            }, title=f"{label(m)}, {_shot_label(k)} labels")
    fig.suptitle("Reliability diagrams on the test set (seeds pooled), before/after temperature scaling", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_bars(report: dict, path: Path, metrics=("auc_roc", "f1", "ece")) -> Path:
    plt = _plt()
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
        ax.set_xticks(xs, [_shot_label(k) for k in shots])
        ax.set_xlabel("labelled target samples", fontsize=8)
        ax.set_title(METRIC_LABELS[met] + (" (lower is better)" if met in LOWER_IS_BETTER else "") +
                     ", error bar = 95 % CI", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_data_summary(report: dict, path: Path) -> Path:
    plt = _plt()
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
    return _save(fig, path)


PLOTS = {
    "kshot_curves": plot_kshot,
    "roc_curves": plot_roc,
    "reliability": plot_reliability_grid,
    "bars_ci": plot_bars,
    "data_summary": plot_data_summary,
}


# --------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------
def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _clean_json(o):
    """NaN/inf → None so report.json is strict JSON."""
    if isinstance(o, dict):
        return {str(k): _clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_json(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


CAVEATS = [
    "Confidence intervals are percentile bootstraps of the mean over seeds; with few seeds they are "
    "optimistic (they cannot extend beyond the observed min/max).",
    "Each seed draws its own shot subset (nested across shot counts, identical for every method) and, "
    "for the meta-learned and pretrained methods, its own training run: the spread covers both.",
    "Wilcoxon tests are paired by seed, two-sided, Holm-adjusted over the methods compared with the "
    "reference at each shot count and metric.",
    "Test-set intervals ('test fields'): percentile bootstrap of the seed-mean AUC-ROC / F1 over the test set, "
    "resampling whole fields (the points of one field are correlated; samples without a field id are a field "
    "each); the differences to the reference use the same resampled fields on both sides (paired). They cover "
    "the test set's sampling, not the spread over seeds.",
    "Zero-shot rows (0 labelled samples) use no target label: the meta-trained or pretrained model predicts "
    "as it is (TIML with the target's task information), the other-regions random forest is trained on the "
    "other regions' samples only. They are not calibrated. Oracle rows (simulated world only) are trained on "
    "correctly labelled samples from the target's test districts and year, never the test points: a ceiling, "
    "never marked best.",
    "The results table shows uncalibrated probabilities (the published protocol); calibration is reported "
    "separately. Temperature scaling never changes AUC-ROC.",
    "Adaptation cost: wall time of fitting to the target's labels plus predicting its test set (mean over "
    "seeds; meta-training/pretraining excluded; shared machines make it indicative) and the FLOPs of the same, "
    "counted by torch.utils.flop_counter on the first seed (fine-tuning steps for TIML/MAML/pretrained/"
    "scratch, one forward pass over the support and test samples for the in-context learner; the random "
    "forest runs outside torch: –).",
]


def render_md(report: dict, images: dict[str, Path]) -> str:
    shots = [str(k) for k in report["config"]["shots_run"]]
    t = report["target"]
    title = f"cropmeta compare — {t['region']} {t.get('crop') or 'crop vs non-crop'}"
    lines = [f"# {title}", ""]
    lines += ["## Summary", ""] + [p + "\n" for p in narrative(report)]
    lines += ["## Target task data", "", md_table(data_table(report)), "",
              f"![data summary]({images['data_summary'].name})", ""]
    lines += ["## Results (mean ± std over seeds [95 % bootstrap CI]; best in bold)", ""]
    for k in shots:
        lines += [f"### {_shot_label(k)} labelled samples", "", md_table(results_table(report, k)), ""]
        w = wilcoxon_table(report, k)
        if w:
            lines += ["Paired Wilcoxon (by seed):", "", md_table(w), ""]
        d = difference_table(report, k)
        if d:
            lines += ["Paired differences (row − reference, mean over seeds; field-clustered bootstrap):", "",
                      md_table(d), ""]
    lines += ["## k-shot curves", "", f"![k-shot curves]({images['kshot_curves'].name})", "",
              "## Bar chart with confidence intervals", "", f"![bars]({images['bars_ci'].name})", "",
              "## ROC curves", "", f"![ROC]({images['roc_curves'].name})", "",
              "## Calibration", ""]
    for k in shots:
        lines += [f"### {_shot_label(k)} labelled samples", "", md_table(calibration_table(report, k)), ""]
    lines += [f"![reliability]({images['reliability'].name})", "", "## Caveats", ""]
    lines += [f"- {c}" for c in CAVEATS] + [""]
    cfg = report["config"]
    lines += ["## Configuration", "", "```json", json.dumps(cfg, indent=2, default=_json_default), "```", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), ""]
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render_html(report: dict, images: dict[str, Path]) -> str:
    shots = [str(k) for k in report["config"]["shots_run"]]
    t = report["target"]
    title = f"cropmeta compare — {t['region']} {t.get('crop') or 'crop vs non-crop'}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><h2>Summary</h2>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in narrative(report)]
    parts += ["<h2>Target task data</h2>", html_table(data_table(report)), _img(images["data_summary"], "data summary")]
    parts += ["<h2>Results (mean ± std over seeds [95 % bootstrap CI]; best in bold)</h2>"]
    for k in shots:
        parts += [f"<h3>{_shot_label(k)} labelled samples</h3>",
                  html_table(results_table(report, k, fmt="html"), escaped=True)]
        w = wilcoxon_table(report, k)
        if w:
            parts += ["<p>Paired Wilcoxon (by seed):</p>", html_table(w)]
        d = difference_table(report, k)
        if d:
            parts += ["<p>Paired differences (row − reference, mean over seeds; field-clustered bootstrap):</p>",
                      html_table(d)]
    parts += ["<h2>k-shot curves</h2>", _img(images["kshot_curves"], "k-shot curves"),
              "<h2>Bar chart with confidence intervals</h2>", _img(images["bars_ci"], "bars"),
              "<h2>ROC curves</h2>", _img(images["roc_curves"], "ROC curves"), "<h2>Calibration</h2>"]
    for k in shots:
        parts += [f"<h3>{_shot_label(k)} labelled samples</h3>", html_table(calibration_table(report, k))]
    parts += [_img(images["reliability"], "reliability diagrams"), "<h2>Caveats</h2><ul>"]
    parts += [f"<li>{html.escape(c)}</li>" for c in CAVEATS] + ["</ul>"]
    parts += ["<h2>Configuration</h2><pre>", html.escape(json.dumps(report["config"], indent=2, default=_json_default)),
              "</pre><p>Versions: ", html.escape(", ".join(f"{k} {v}" for k, v in report["versions"].items())),
              "</p></body></html>"]
    return "".join(parts)


def write_report(report: dict, out: str | Path) -> dict[str, Path]:
    """Write report.json, the PNGs, report.md and report.html into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    images = {name: fn(report, out / f"{name}.png") for name, fn in PLOTS.items()}
    files.update(images)
    atomic_write_text(out / "report.md", render_md(report, images))
    atomic_write_text(out / "report.html", render_html(report, images))
    files["report.md"] = out / "report.md"
    files["report.html"] = out / "report.html"
    files["report.json"] = out / "report.json"
    body = {k: v for k, v in report.items() if k != "files"}
    body["files"] = {k: Path(v).name for k, v in files.items()}  # relative to the report's folder
    atomic_write_text(out / "report.json", json.dumps(_clean_json(body), indent=1, default=_json_default,
                                                      allow_nan=False))
    return files


def print_summary(report: dict, console) -> None:
    """Print a finished comparison with Rich (for the CLI): AUC-ROC and F1 per method and shot count
    (mean [95 % CI], best in bold), the plain-language summary and where the files are. A benchmark
    result (``kind == "cropmeta-benchmark"``) prints ours beside the published numbers."""
    from rich.table import Table

    if report.get("kind") == "cropmeta-benchmark":
        from cropmeta.evaluate.benchmark import print_table

        print_table(report, console)
        for p in report.get("summary_text", []):
            console.print(p, markup=False, highlight=False)
        console.print(f"report: {report.get('files', {}).get('benchmark.html', '')}")
        return
    shots = [str(k) for k in report["config"]["shots_run"]]
    te = report["target"]["test"]
    fields = f" in {te['fields']} fields" if te.get("fields") is not None else ""
    tab = Table(title=f"{report['target']['region']} {report['target'].get('crop') or 'crop vs non-crop'}: "
                      f"mean over {len(report['seeds'])} seed(s) [95 % CI]; "
                      f"{te['positive'] + te['negative']} test samples{fields}")
    tab.add_column("Method")
    for k in shots:
        tab.add_column(f"AUC-ROC @ {_shot_label(k)}")
        tab.add_column(f"F1 @ {_shot_label(k)}")
    for m in report["config"]["methods"]:
        row = [label(m)]
        for k in shots:
            for met in ("auc_roc", "f1"):
                s = stat_at(report, k, m, met)
                txt = f"{_fmt(s['mean'])} [{_fmt(s['ci_low'])}, {_fmt(s['ci_high'])}]" if s["n"] else "–"
                row.append(f"[bold]{txt}[/]" if m in best_methods(report["summary"][k], met) else txt)
        tab.add_row(*row)
    console.print(tab)
    for p in narrative(report):
        console.print(p, markup=False, highlight=False)
    files = report.get("files", {})
    if files:
        console.print(f"report: {files.get('report.html', '')} (also report.md, report.json, PNGs)")
