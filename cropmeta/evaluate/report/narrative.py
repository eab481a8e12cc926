"""The plain-language summary of a comparison report: every sentence generated from its numbers."""

from __future__ import annotations


import numpy as np

from cropmeta.evaluate.report.tables import is_finite, fmt_value, shot_label, label, METRIC_LABELS, rows_at, stat_at


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
        f"shot counts {', '.join(shot_label(k) for k in shots)}."
    )
    sentences = []
    ref_best, baseline_wins = [], []
    for k in shots:
        summ = report["summary"][k]
        for met in ("auc_roc", "f1"):
            means = {m: summ[m]["raw"][met]["mean"] for m in rows_at(report, k)
                     if not summ[m].get("fixed") and is_finite(summ[m]["raw"][met]["mean"])}
            if not means:
                continue
            order = sorted(means, key=lambda m: -means[m])
            best = order[0]
            s = summ[best]["raw"][met]
            ci = (f"95 % CI {fmt_value(s['ci_low'])}–{fmt_value(s['ci_high'])}" if s.get("n", 0) >= 2
                  else "one seed: no interval")
            txt = (f"With {shot_label(k)} labels, {label(best)} had the highest mean {METRIC_LABELS[met]} "
                   f"({fmt_value(s['mean'])}, {ci})")
            if ref in means and best != ref:
                baseline_wins.append((k, met, best, means[best] - means[ref]))
                w = report.get("wilcoxon", {}).get(k, {}).get(met, {}).get(best)
                txt += (f"; {label(ref)} reached {fmt_value(means[ref])}, {means[best] - means[ref]:.3f} lower")
                if w and w["n"] >= 2:
                    txt += (f" ({label(ref)} better on {w['wins']} of {w['n']} seeds, Wilcoxon p = {fmt_value(w['p_value'])})")
            elif ref in means and len(order) > 1:
                ref_best.append((k, met))
                second = order[1]
                w = report.get("wilcoxon", {}).get(k, {}).get(met, {}).get(second)
                txt += f", {means[ref] - means[second]:.3f} above the next best, {label(second)}"
                if w and w["n"] >= 2:
                    txt += (f" ({label(ref)} better on {w['wins']} of {w['n']} seeds, "
                            f"Wilcoxon p = {fmt_value(w['p_value'])})")
            d = (summ.get(best, {}).get("vs_reference") or {}).get(met) if best != ref else None
            if d:
                txt += (f"; {label(best)} − {label(ref)} = {d['mean_diff']:+.3f}, 95 % CI over test fields "
                        f"{fmt_value(d['ci_low'])} to {fmt_value(d['ci_high'])}")
            sentences.append(txt + ".")
    paras.append(" ".join(sentences))
    fixed = [m for m in methods if any(report["summary"][k].get(m, {}).get("fixed") for k in shots)]
    if fixed and shots:
        k0 = shots[-1]
        parts = []
        for m in fixed:
            s, ci = stat_at(report, k0, m, "auc_roc"), (report["summary"][k0][m].get("test_ci") or {}).get("auc_roc")
            parts.append(f"{label(m)} AUC-ROC {fmt_value(s['mean'])}" + (f" (95 % CI over test fields {fmt_value(ci['ci_low'])}–"
                                                                  f"{fmt_value(ci['ci_high'])})" if ci else ""))
        o = report["config"].get("oracle") or {}
        paras.append(f"Oracle (trained on {o.get('n', '?')} correctly labelled samples of the target's test districts "
                     f"and test year, never the test points; no target shots, so the same at every shot count): "
                     + "; ".join(parts) + ".")
    if ref in methods:
        n_cmp = len(shots) * 2
        if baseline_wins:
            wins = "; ".join(f"{label(m)} on {METRIC_LABELS[met]} at {shot_label(k)} labels (by {d:.3f})"
                             for k, met, m, d in baseline_wins)
            paras.append(f"A baseline beat {label(ref)} in {len(baseline_wins)} of {n_cmp} (shot count, metric) "
                         f"settings for AUC-ROC and F1: {wins}.")
        else:
            paras.append(f"{label(ref)} had the best mean AUC-ROC and F1 at every shot count.")
        sig = [(k, met, m) for k in shots for met in ("auc_roc", "f1")
               for m, w in report.get("wilcoxon", {}).get(k, {}).get(met, {}).items()
               if is_finite(w.get("p_holm")) and w["p_holm"] < 0.05]
        min_p = 2.0 / 2**n_seeds
        if sig:
            paras.append("Differences significant at 5 % after Holm's correction: " + "; ".join(
                f"{label(ref)} vs {label(m)} on {METRIC_LABELS[met]} at {shot_label(k)} labels" for k, met, m in sig) + ".")
        else:
            paras.append(
                f"No difference between {label(ref)} and another method is significant at 5 % after Holm's correction"
                + (f" — with {n_seeds} paired seeds the smallest possible two-sided Wilcoxon p-value is {min_p:.3f}, "
                   "so more seeds are needed to tell" if min_p >= 0.05 else "") + "."
            )
    # calibration
    pairs = [(report["summary"][k][m]["raw"]["ece"]["mean"], report["summary"][k][m]["calibrated"]["ece"]["mean"])
             for k in shots for m in rows_at(report, k)]
    pairs = [(a, b) for a, b in pairs if is_finite(a) and is_finite(b)]
    if report["config"].get("calib_folds") == 0:
        paras.append("Calibration: off (calibration folds 0): the calibrated columns repeat the raw ones.")
    elif pairs:
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
