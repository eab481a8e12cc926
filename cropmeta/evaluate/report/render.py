"""report.md and the self-contained report.html (plots embedded as base64 PNG) of a comparison, and
the strict-JSON conversion of its numbers."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np

from cropmeta.evaluate.report.narrative import narrative
from cropmeta.evaluate.report.tables import (shot_label, calibration_table, chosen_table, data_table, difference_table, html_table,
                                             md_table, results_table, wilcoxon_table)


def json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def clean_json(o):
    """NaN/inf → None so report.json is strict JSON."""
    if isinstance(o, dict):
        return {str(k): clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean_json(v) for v in o]
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
        lines += [f"### {shot_label(k)} labelled samples", "", md_table(results_table(report, k)), ""]
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
    chosen = chosen_table(report)
    if chosen:
        lines[-2:-2] = ["## What each learner chose from its shots", "",
                        "Fine-tuning steps per seed (the auto budget's choice by inner cross-validation on the "
                        "shots) and the ensemble's weight `w` of its prior against its forest.", "",
                        md_table(chosen), ""]
    for k in shots:
        lines += [f"### {shot_label(k)} labelled samples", "", md_table(calibration_table(report, k)), ""]
    lines += [f"![reliability]({images['reliability'].name})", "", "## Caveats", ""]
    lines += [f"- {c}" for c in CAVEATS] + [""]
    cfg = report["config"]
    lines += ["## Configuration", "", "```json", json.dumps(cfg, indent=2, default=json_default), "```", "",
              "Versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), ""]
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}th,td{border:1px solid #ccc;padding:3px 6px}
th{background:#f3f3f3}img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}"""


def img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render_html(report: dict, images: dict[str, Path]) -> str:
    shots = [str(k) for k in report["config"]["shots_run"]]
    t = report["target"]
    title = f"cropmeta compare — {t['region']} {t.get('crop') or 'crop vs non-crop'}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><h2>Summary</h2>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in narrative(report)]
    parts += ["<h2>Target task data</h2>", html_table(data_table(report)), img_tag(images["data_summary"], "data summary")]
    parts += ["<h2>Results (mean ± std over seeds [95 % bootstrap CI]; best in bold)</h2>"]
    for k in shots:
        parts += [f"<h3>{shot_label(k)} labelled samples</h3>",
                  html_table(results_table(report, k, fmt="html"), escaped=True)]
        w = wilcoxon_table(report, k)
        if w:
            parts += ["<p>Paired Wilcoxon (by seed):</p>", html_table(w)]
        d = difference_table(report, k)
        if d:
            parts += ["<p>Paired differences (row − reference, mean over seeds; field-clustered bootstrap):</p>",
                      html_table(d)]
    parts += ["<h2>k-shot curves</h2>", img_tag(images["kshot_curves"], "k-shot curves"),
              "<h2>Bar chart with confidence intervals</h2>", img_tag(images["bars_ci"], "bars"),
              "<h2>ROC curves</h2>", img_tag(images["roc_curves"], "ROC curves"), "<h2>Calibration</h2>"]
    chosen = chosen_table(report)
    if chosen:
        parts[-1:-1] = ["<h2>What each learner chose from its shots</h2>", html_table(chosen)]
    for k in shots:
        parts += [f"<h3>{shot_label(k)} labelled samples</h3>", html_table(calibration_table(report, k))]
    parts += [img_tag(images["reliability"], "reliability diagrams"), "<h2>Caveats</h2><ul>"]
    parts += [f"<li>{html.escape(c)}</li>" for c in CAVEATS] + ["</ul>"]
    parts += ["<h2>Configuration</h2><pre>", html.escape(json.dumps(report["config"], indent=2, default=json_default)),
              "</pre><p>Versions: ", html.escape(", ".join(f"{k} {v}" for k, v in report["versions"].items())),
              "</p></body></html>"]
    return "".join(parts)
