"""The benchmark's pages: ours beside the published numbers as a table, a plot, the summary text,
benchmark.{md,html,json} (:func:`write_benchmark_report`) and the Rich table of the CLI. Render only:
:func:`cropmeta.evaluate.benchmark.run_benchmark` hands it the finished result."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from cropmeta._fs import atomic_write_text
from cropmeta.evaluate.names import shot_mode
from cropmeta.io.cropharvest_rules import PUBLISHED_SOURCE
from cropmeta.evaluate.report.figures import pyplot, save_figure
from cropmeta.evaluate.report.narrative import narrative
from cropmeta.evaluate.report.render import CSS, clean_json, img_tag
from cropmeta.evaluate.report.tables import html_table, label, md_table


def _f(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"

def _mean_ci(r: dict) -> str:
    """"mean [low, high]", or "mean [n/a]" where one seed gives no interval."""
    n = r.get("n")
    if (n is not None and n < 2) or r.get("ci_low") is None or r.get("ci_low") == r.get("ci_high"):
        return f"{_f(r['mean'])} [n/a: one seed]" if (n is not None and n < 2) else f"{_f(r['mean'])} [n/a]"
    return f"{_f(r['mean'])} [{_f(r['ci_low'])}, {_f(r['ci_high'])}]"


def comparison_table(result: dict) -> list[list[str]]:
    """Rows (header first): target, method, our F1 and AUC (mean [CI]), published F1 and AUC."""
    rows = [["Target", "Method", "F1 (ours)", "AUC-ROC (ours)", "F1 (published)", "AUC-ROC (published)"]]
    for key, t in result["targets"].items():
        name = f"{t['target']['region']} {t['target']['crop'] or 'crop vs non-crop'}"
        for m, r in t["methods"].items():
            pub = result["published"].get(key, {}).get(m, {})
            rows.append([
                name, label(m),
                _mean_ci(r["f1"]), _mean_ci(r["auc_roc"]),
                _f(pub.get("f1")), _f(pub.get("auc_roc")),
            ])
    if not result.get("published"):  # no published numbers (deafrica): no empty columns
        rows = [r[:4] for r in rows]
    return rows

def plot_benchmark(result: dict, path: Path) -> Path:
    plt = pyplot()
    keys = list(result["targets"])
    methods = list(next(iter(result["targets"].values()))["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(max(12, 0.55 * len(keys) * 2), 4.4))
    width = 0.8 / max(1, len(methods))
    xs = np.arange(len(keys))
    for ax, met in zip(axes, ("f1", "auc_roc")):
        for j, m in enumerate(methods):
            nan = {"mean": None, "ci_low": None, "ci_high": None}
            vals = [result["targets"][k]["methods"].get(m, {}).get(met, nan) for k in keys]
            mean = np.array([v["mean"] if v["mean"] is not None else np.nan for v in vals], dtype=float)
            lo = np.array([v["ci_low"] if v["ci_low"] is not None else np.nan for v in vals], dtype=float)
            hi = np.array([v["ci_high"] if v["ci_high"] is not None else np.nan for v in vals], dtype=float)
            pos = xs + (j - (len(methods) - 1) / 2) * width
            ax.bar(pos, mean, width, yerr=np.clip(np.vstack([np.nan_to_num(mean - lo), np.nan_to_num(hi - mean)]), 0, None),
                   capsize=2, label=label(m))
            pub = [result["published"].get(k, {}).get(m, {}).get(met) for k in keys]
            if any(p is not None for p in pub):
                ax.scatter(pos, [np.nan if p is None else p for p in pub], marker="D", color="black", s=18, zorder=3,
                           label="published" if j == 0 else None)
        names = [f"{result['targets'][k]['target']['region']} {result['targets'][k]['target']['crop'] or ''}".strip()
                 for k in keys]
        ax.set_xticks(xs, names, rotation=35 if len(keys) > 4 else 0, ha="right" if len(keys) > 4 else "center",
                      fontsize=7 if len(keys) > 8 else 8)
        ax.set_ylim(0, 1.05)
        has_pub = any(result["published"].get(k) for k in keys)
        ax.set_title(("F1" if met == "f1" else "AUC-ROC") + " with all training labels"
                     + (" (◆ = published)" if has_pub else ""), fontsize=9)
    handles, labels_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="lower center", ncol=min(5, len(labels_)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return save_figure(fig, path)

def benchmark_narrative(result: dict, reports: dict) -> list[str]:
    paras = []
    for key, t in result["targets"].items():
        # the oracle rows are a ceiling, not a competitor: never named best
        ms = {m: r for m, r in t["methods"].items() if shot_mode(m) != "fixed"} or t["methods"]
        best = max(ms, key=lambda m: -np.inf if ms[m]["auc_roc"]["mean"] is None or not np.isfinite(ms[m]["auc_roc"]["mean"])
                   else ms[m]["auc_roc"]["mean"])
        te = t["target"].get("test", {})
        n_te = te.get("positive", 0) + te.get("negative", 0)
        where = f"{n_te} test samples" + (f" in {te['fields']} fields" if te.get("fields") is not None else "")
        txt = (f"{t['target']['region']} {t['target']['crop'] or 'crop vs non-crop'} (all training labels, {where}): "
               f"best mean AUC-ROC {label(best)} {_f(ms[best]['auc_roc']['mean'])}.")
        for m in [m for m in t["methods"] if shot_mode(m) == "fixed"]:
            txt += f" {label(m)} (a ceiling, no target shots): AUC {_f(t['methods'][m]['auc_roc']['mean'])}."
        pub = result["published"].get(key, {})
        for m in ("timl", "random-forest"):
            if m in ms and m in pub:
                txt += (f" {label(m)}: ours F1 {_f(ms[m]['f1']['mean'])} / AUC {_f(ms[m]['auc_roc']['mean'])}, "
                        f"published {_f(pub[m]['f1'])} / {_f(pub[m]['auc_roc'])}.")
        paras.append(txt)
    if result["benchmark"] == "deafrica":
        paras.append("Real labels (Digital Earth Africa crop mask), leave one country out: each target's labels are split "
                     "once 50/50 by class into the shot pool and the test set; every other sample is source data. "
                     "There are no fields: each test point is its own cluster in the bootstrap intervals. No published "
                     "numbers exist for these targets; an earlier random-forest run on this data is quoted for orientation.")
    if result["benchmark"] == "sim":
        paras.append("These are simulated targets: the published numbers are real-data results, shown only as the "
                     "reference the simulator's difficulty was calibrated against (random-forest AUC), not as "
                     "something our numbers should reproduce.")
    for key, rep in reports.items():
        paras.append(f"[{key}] " + " ".join(narrative(rep)[1:3]))
    return paras

def across_targets_tables(result: dict) -> list[tuple[str, list[list[str]]]]:
    """(title, rows) tables of :func:`across_targets` for the report: mean AUC and F1 per method and
    shot count, wins, and the paired tests across targets."""
    acr = result.get("across_targets")
    if not acr:
        return []
    shots, n = acr["shots"], len(acr["targets"])
    head = ["Method"] + [("zero-shot" if k == "0" else k) for k in shots]
    tables = []
    orient = result.get("orientation", {})
    for met, name in (("auc_roc", "AUC-ROC"), ("f1", "F1")):
        rows, wins = [head], [head]
        for m in acr["methods"]:
            cells, wcells = [], []
            for k in shots:
                r = acr["summary"][k].get(m)
                v = None if r is None else r[met]["mean"]
                cells.append(_f(v))
                wcells.append("–" if r is None else f"{r[met]['wins']:g}")
            if met == "auc_roc" and m in orient:
                cells = [c + (f" (orient. {orient[m][k]:.2f})" if k in orient[m] else "") for c, k in zip(cells, shots)]
            rows.append([label(m)] + cells)
            wins.append([label(m)] + wcells)
        tables.append((f"Mean {name} over the {n} targets (each target: mean over seeds)", rows))
        tables.append((f"Targets won on {name} (best seed-mean per target; ties shared)", wins))
    for k in [k for k in ("20", "all") if k in shots]:  # every target's own numbers at few and at all labels
        col = acr["summary"][k]
        ms = [m for m in acr["methods"] if m in col]
        rows = [["Target"] + [label(m) for m in ms]]
        for key in acr["targets"]:
            rows.append([key] + [_f(col[m]["auc_roc"]["per_target"].get(key)) for m in ms])
        tables.append((f"AUC-ROC per target, {'all' if k == 'all' else k} labels (mean over seeds)", rows))
    rows = [["Shots", "Metric", "Method", "mean diff vs ref.", "wins/losses (targets)", "p (Holm)"]]
    for k, t in acr["tests"].items():
        for met in ("auc_roc", "f1"):
            for m, r in t[met].items():
                rows.append([("zero-shot" if k == "0" else k), met, f"{label(m)} − {label(t['reference'])}",
                             _f(r["mean_diff"]) if np.isfinite(r["mean_diff"]) else "–",
                             f"{r['wins']}/{r['losses']}", _f(r.get("p_holm"))])
    tables.append(("Paired Wilcoxon signed-rank tests across targets (one pair a target)", rows))
    return tables


def _table_heading(result: dict) -> tuple[str, str]:
    """The all-labels table's heading and note: beside the published numbers, or (a benchmark without
    any, such as deafrica) ours alone."""
    ours = "Ours: mean over seeds [95 % bootstrap CI], uncalibrated, all training labels."
    if result.get("published"):
        return "Ours beside the published numbers", f"{ours} Published: {PUBLISHED_SOURCE}."
    return "All training labels, per target", f"{ours} No published numbers exist for these targets."


def _target_page(out: Path, key: str) -> tuple[str, str]:
    """(HTML link, Markdown link) to a target's report: its report.html where it exists (a run's
    folder), else its report.md (a published results folder keeps only that)."""
    has_html = (Path(out) / key / "report.html").exists()
    return (f"{key}/report.html" if has_html else f"{key}/report.md"), f"{key}/report.md"


def write_benchmark_report(result: dict, reports: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    img = plot_benchmark(result, out / "benchmark.png")
    paras = benchmark_narrative(result, reports)
    result["summary_text"] = paras
    title = f"cropmeta benchmark — {result['benchmark']}"
    extra = across_targets_tables(result)
    # the answer first: the tables and the chart; the generated prose after them (collapsed in HTML)
    table_name, table_note = _table_heading(result)
    links = {k: _target_page(out, k) for k in result["targets"]}
    md = [f"# {title}", ""]
    for name, rows in extra:
        md += [f"## {name}", "", md_table(rows), ""]
    md += [f"## {table_name}", "", table_note, "", md_table(result["table"]), "", f"![benchmark]({img.name})", "",
           "## Per-target reports", ""]
    md += [f"- [{k}]({links[k][1]})" for k in result["targets"]] + [""]
    md += ["## Notes (generated)", "", *[p + "\n" for p in paras]]
    atomic_write_text(out / "benchmark.md", "\n".join(md))
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style>"
         f"</head><body><h1>{html.escape(title)}</h1>"]
    for name, rows in extra:
        h += [f"<h2>{html.escape(name)}</h2>", html_table(rows)]
    h += [f"<h2>{html.escape(table_name)}</h2>", f"<p>{html.escape(table_note)}</p>", html_table(result["table"]),
          img_tag(img, "benchmark"),
          "<h2>Per-target reports</h2><ul>"]
    h += [f"<li><a href='{html.escape(links[k][0])}'>{html.escape(k)}</a></li>" for k in result["targets"]] + ["</ul>"]
    h += ["<details><summary>Notes (generated text)</summary>", *[f"<p>{html.escape(p)}</p>" for p in paras],
          "</details></body></html>"]
    atomic_write_text(out / "benchmark.html", "".join(h))
    files = {"benchmark.png": img, "benchmark.md": out / "benchmark.md", "benchmark.html": out / "benchmark.html",
             "benchmark.json": out / "benchmark.json"}
    body = dict(result)
    body["files"] = {k: Path(v).name for k, v in files.items()}  # relative to the benchmark folder
    atomic_write_text(out / "benchmark.json", json.dumps(clean_json(body), indent=1, allow_nan=False, default=str))
    return files

def print_table(result: dict, console: Any) -> None:
    """Print ours beside the published numbers with Rich (for the CLI)."""
    from rich.table import Table

    rows = result["table"] if "table" in result else []
    if not rows:
        return
    title = f"ours vs published ({PUBLISHED_SOURCE})" if result.get("published") else "ours, all training labels"
    tab = Table(title=f"{result['benchmark']} benchmark — {title}")
    for c in rows[0]:
        tab.add_column(c)
    for r in rows[1:]:
        tab.add_row(*r)
    console.print(tab)
