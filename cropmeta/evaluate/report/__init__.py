"""The comparison report: report.json, report.md, a self-contained report.html (plots embedded as
base64 PNG) and the PNG plots (matplotlib, Agg backend). Render only: it receives a finished
report dict and imports nothing of the comparison that made it.

Every sentence of the summary is generated from the numbers in the report dict — nothing about who
wins is written by hand.

Modules: :mod:`~cropmeta.evaluate.report.tables` (numbers and tables), ``narrative`` (the summary),
``figures`` (matplotlib, PNG saving), ``plots``, ``render`` (markdown, HTML, strict JSON),
``benchmark`` (the three-target benchmark's tables, plot and pages); this package: :func:`write_report`
and :func:`print_summary`.
"""

from __future__ import annotations

import json
from pathlib import Path

from cropmeta._fs import atomic_write_text
from cropmeta.evaluate.report.narrative import calibration_flags, narrative
from cropmeta.evaluate.report.plots import PLOTS, method_style
from cropmeta.evaluate.report.render import clean_json, json_default, render_html, render_md
from cropmeta.evaluate.report.tables import (shot_label, best_methods, data_table, difference_table, label,
                                             mean_ci_text, results_table, stat_at)

__all__ = ["PLOTS", "best_methods", "calibration_flags", "data_table", "difference_table", "label", "method_style",
           "narrative", "print_summary", "render_html", "render_md", "results_table", "write_report"]


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
    atomic_write_text(out / "report.json", json.dumps(clean_json(body), indent=1, default=json_default,
                                                      allow_nan=False))
    return files


def print_summary(report: dict, console) -> None:
    """Print a finished comparison with Rich (for the CLI): AUC-ROC and F1 per method and shot count
    (mean [95 % CI], best in bold), the plain-language summary and where the files are. A benchmark
    result (``kind == "cropmeta-benchmark"``) prints ours beside the published numbers."""
    from rich.table import Table

    if report.get("kind") == "cropmeta-benchmark":
        from cropmeta.evaluate.report.benchmark import print_table

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
        tab.add_column(f"AUC-ROC @ {shot_label(k)}")
        tab.add_column(f"F1 @ {shot_label(k)}")
    for m in report["config"]["methods"]:
        row = [label(m)]
        for k in shots:
            for met in ("auc_roc", "f1"):
                s = stat_at(report, k, m, met)
                txt = mean_ci_text(s)
                row.append(f"[bold]{txt}[/]" if m in best_methods(report["summary"][k], met) else txt)
        tab.add_row(*row)
    console.print(tab)
    for p in narrative(report):
        console.print(p, markup=False, highlight=False)
    files = report.get("files", {})
    if files:
        console.print(f"report: {files.get('report.html', '')} (also report.md, report.json, PNGs)")
