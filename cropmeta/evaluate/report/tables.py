"""Numbers and tables of a comparison report: labels, formatting, the per-shot results, difference,
calibration, Wilcoxon and data tables, as rows, and as markdown or HTML."""

from __future__ import annotations

import html
import math

from cropmeta.evaluate.names import method_label
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
    return [fmt_value(sec, 2) if sec is not None else "–", f"{fl / 1e9:.3g}" if fl else "–"]


COST_HEADER = ["Adapt + predict (s)", "GFLOP / task"]


def fmt_value(v, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{nd}f}"


def shot_label(k) -> str:
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
    head = f"{v:+.3f}" if signed and is_finite(v) else fmt_value(v)
    return f"{head} [{fmt_value(ci['ci_low'])}, {fmt_value(ci['ci_high'])}]"


def mean_ci_text(s: dict, with_std: bool = False) -> str:
    """A seed summary as text: "mean ± std [low, high]", or "mean [n/a: one seed]" — one seed gives
    no interval (its bounds would both be the mean)."""
    if not s.get("n"):
        return "–"
    if s["n"] < 2:
        return f"{fmt_value(s['mean'])} [n/a: one seed]"
    std = f" ± {fmt_value(s['std'])}" if with_std and "std" in s else ""
    return f"{fmt_value(s['mean'])}{std} [{fmt_value(s['ci_low'])}, {fmt_value(s['ci_high'])}]"


def is_finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------
def best_methods(summary_k: dict, metric: str, variant: str = "raw") -> set[str]:
    """Methods with the best mean for ``metric`` at one shot count (ties all bold). Fixed rows (the
    oracle: a ceiling, not a competitor) are never marked best."""
    means = {m: row[variant][metric]["mean"] for m, row in summary_k.items() if not row.get("fixed")}
    means = {m: v for m, v in means.items() if is_finite(v)}
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
            txt = mean_ci_text(s, with_std=True)
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
    rows = [["Method", "Temperature (per seed)", "ECE before → after", "Brier before → after", "F1 before → after",
             "F1 at its own threshold"]]
    for m in rows_at(report, k):
        r = summ[m]
        temps = ", ".join(fmt_value(t, 2) for t in r["temperature"]) or "–"
        rows.append([
            label(m), temps,
            f"{fmt_value(r['raw']['ece']['mean'])} → {fmt_value(r['calibrated']['ece']['mean'])}",
            f"{fmt_value(r['raw']['brier']['mean'])} → {fmt_value(r['calibrated']['brier']['mean'])}",
            f"{fmt_value(r['raw']['f1']['mean'])} → {fmt_value(r['calibrated']['f1']['mean'])}",
            fmt_value((r.get("f1_own_threshold") or {}).get("mean")) if r.get("f1_own_threshold") else "–",
        ])
    return rows


def chosen_table(report: dict) -> list[list[str]]:
    """What each learner chose from its own shots, per shot count (issue 26): the fine-tuning steps
    of each seed (rule "auto": chosen by inner cross-validation) and an ensemble's weight of its
    prior. Empty when no row recorded a choice."""
    shots = [k for k in report["summary"]]
    rows = []
    for m in dict.fromkeys(m for k in shots for m in report["summary"][k]):
        cells, any_choice = [], False
        for k in shots:
            ch = (report["summary"][k].get(m) or {}).get("chosen")
            if not ch:
                cells.append("–")
                continue
            any_choice = True
            parts = []
            if ch.get("finetune_steps"):
                parts.append("steps " + "/".join(str(v) for v in ch["finetune_steps"]))
            if ch.get("weight_prior"):
                parts.append("w " + "/".join(f"{v:.1f}" for v in ch["weight_prior"]))
            cells.append("; ".join(parts))
        if any_choice:
            rows.append([label(m)] + cells)
    return [["Method"] + [shot_label(k) for k in shots]] + rows if rows else []


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
                       f"p={fmt_value(t['p_value'])} ({fmt_value(t['p_holm'])})" if t["n"] >= 2 else
                       ("n/a (one seed: no test)" if t["n"] == 1 else "–"))
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
