"""The three published targets as one benchmark: ``cropmeta compare --benchmark cropharvest|sim``.

- ``cropharvest``: a CropHarvest archive (``--root``): Kenya maize, Brazil coffee and Togo crop vs
  non-crop, trained on the archive's labels and tested on its ``test_features/`` files (their own
  labels), read by :func:`cropmeta.io.cropharvest.read_cropharvest`.
- ``sim``: the same three targets on the simulated world (the default data source).

Each target gets its own full comparison report in ``OUT/<target>/``; ``OUT/benchmark.{json,md,html}``
put our numbers (all training labels, mean over seeds with 95 % CI) beside the published ones.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from cropmeta.errors import InputError
from cropmeta.io.atomic import atomic_write_text, output_dir
from cropmeta.io.cropharvest_rules import BENCHMARK_TARGETS, PUBLISHED, PUBLISHED_SOURCE

#: (key, region, crop) of the published targets (CropHarvest's rules, :mod:`cropmeta.io.cropharvest_rules`)
TARGETS = [(key, region, crop) for key, (region, crop) in BENCHMARK_TARGETS.items()]
BENCHMARKS = ("cropharvest", "sim")


def load_benchmark_samples(benchmark: str, root=None, progress: bool = True):
    if benchmark == "cropharvest":
        if root is None:
            raise InputError("--benchmark cropharvest needs --root PATH (a CropHarvest archive: labels.geojson, "
                             "features/, test_features/)")
        from cropmeta.io.cropharvest import read_cropharvest

        samples, _ = read_cropharvest(Path(root))
        return samples
    from cropmeta.evaluate.compare import load_samples

    return load_samples(root, progress=progress)


def run_benchmark(benchmark: str, root=None, seeds=5, shots=None, methods=None, out=None, preset: str = "quick",
                  progress: bool = True, config=None, calib_folds: int = 3, method_factory=None, console=None,
                  samples=None, targets: list[str] | None = None, method_options: dict | None = None,
                  flop_seeds: list[int] | None = None, world=None, oracle_n: int | None = None,
                  n_boot: int = 1000) -> dict:
    """Run :func:`cropmeta.evaluate.compare.compare` on each published target and write the
    benchmark summary. ``targets``: a subset of kenya, brazil, togo (default all three). ``methods``
    may hold the protocol's zero-shot and oracle rows (``world``, ``oracle_n``: where they come from;
    see :func:`~cropmeta.evaluate.compare.compare`)."""

    benchmark = str(benchmark).strip().lower()
    if benchmark not in BENCHMARKS:
        raise InputError(f"--benchmark {benchmark!r}: expected one of {', '.join(BENCHMARKS)}")
    chosen = [t for t in TARGETS if targets is None or t[0] in targets]
    if not chosen:
        raise InputError(f"no benchmark target among {targets}; targets: {', '.join(t[0] for t in TARGETS)}")
    out = Path(out) if out is not None else Path(f"benchmark-{benchmark}")
    with output_dir(out):
        return _run_targets(benchmark, root, seeds, shots, methods, out, preset, progress, config, calib_folds,
                            method_factory, console, samples, chosen, method_options, flop_seeds, world, oracle_n,
                            n_boot)


def _run_targets(benchmark, root, seeds, shots, methods, out, preset, progress, config, calib_folds,
                 method_factory, console, samples, chosen, method_options, flop_seeds, world, oracle_n,
                 n_boot) -> dict:
    from cropmeta.evaluate.compare import DEFAULT_METHODS, DEFAULT_SHOTS, compare

    if samples is None:
        samples = load_benchmark_samples(benchmark, root, progress)
    reports = {}
    t0 = time.perf_counter()
    for key, region, crop in chosen:
        if console is not None:
            console.print(f"[bold]benchmark {benchmark}: {region} {crop or 'crop vs non-crop'}[/]")
        reports[key] = compare(region, crop, seeds=seeds, shots=shots or DEFAULT_SHOTS,
                               methods=methods or DEFAULT_METHODS, out=out / key, preset=preset, progress=progress,
                               samples=samples, config=config, calib_folds=calib_folds,
                               method_factory=method_factory, method_options=method_options, flop_seeds=flop_seeds,
                               source=root if benchmark == "cropharvest" else None, world=world, oracle_n=oracle_n,
                               n_boot=n_boot)
    result = {
        "kind": "cropmeta-benchmark",
        "benchmark": benchmark,
        "root": str(root) if root is not None else None,
        "published_source": PUBLISHED_SOURCE,
        "published": {k: PUBLISHED[k] for k, _, _ in chosen},
        "targets": {k: summarize_target(reports[k]) for k, _, _ in chosen},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    result["table"] = comparison_table(result)
    result["files"] = {k: str(v) for k, v in write_benchmark_report(result, reports, out).items()}
    return result


def _reference_shot(report: dict) -> str:
    """The published numbers use every training label: our "all" column (else the largest shot count)."""
    shots = [str(k) for k in report["config"]["shots_run"]]
    return "all" if "all" in shots else shots[-1]


def summarize_target(report: dict) -> dict:
    k = _reference_shot(report)
    rows = {}
    for m in [m for m in report["config"]["methods"] if m in report["summary"][k]]:
        s = report["summary"][k][m]["raw"]
        rows[m] = {met: {"mean": s[met]["mean"], "ci_low": s[met]["ci_low"], "ci_high": s[met]["ci_high"],
                         "n": s[met]["n"]} for met in ("f1", "auc_roc")}
    return {"shots": k, "target": report["target"], "methods": rows,
            "report_dir": Path(report["files"]["report.json"]).parent.name if report.get("files") else None}


def _f(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"


def comparison_table(result: dict) -> list[list[str]]:
    """Rows (header first): target, method, our F1 and AUC (mean [CI]), published F1 and AUC."""
    from cropmeta.evaluate.report import label

    rows = [["Target", "Method", "F1 (ours)", "AUC-ROC (ours)", "F1 (published)", "AUC-ROC (published)"]]
    for key, t in result["targets"].items():
        name = f"{t['target']['region']} {t['target']['crop'] or 'crop vs non-crop'}"
        for m, r in t["methods"].items():
            pub = result["published"].get(key, {}).get(m, {})
            rows.append([
                name, label(m),
                f"{_f(r['f1']['mean'])} [{_f(r['f1']['ci_low'])}, {_f(r['f1']['ci_high'])}]",
                f"{_f(r['auc_roc']['mean'])} [{_f(r['auc_roc']['ci_low'])}, {_f(r['auc_roc']['ci_high'])}]",
                _f(pub.get("f1")), _f(pub.get("auc_roc")),
            ])
    return rows


def plot_benchmark(result: dict, path: Path) -> Path:
    from cropmeta.evaluate.report import _plt, _save, label

    plt = _plt()
    keys = list(result["targets"])
    methods = list(next(iter(result["targets"].values()))["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
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
        ax.set_xticks(xs, [result["targets"][k]["target"]["region"] for k in keys])
        ax.set_ylim(0, 1.05)
        ax.set_title(("F1" if met == "f1" else "AUC-ROC") + " with all training labels (◆ = published)", fontsize=9)
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return _save(fig, path)


def benchmark_narrative(result: dict, reports: dict) -> list[str]:
    from cropmeta.evaluate.report import label, narrative

    from cropmeta.evaluate.methods import shot_mode

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
    if result["benchmark"] == "sim":
        paras.append("These are simulated targets: the published numbers are real-data results, shown only as the "
                     "reference the simulator's difficulty was calibrated against (random-forest AUC), not as "
                     "something our numbers should reproduce.")
    for key, rep in reports.items():
        paras.append(f"[{key}] " + " ".join(narrative(rep)[1:3]))
    return paras


def write_benchmark_report(result: dict, reports: dict, out: Path) -> dict[str, Path]:
    from cropmeta.evaluate.report import CSS, _clean_json, _img, html_table, md_table

    out = Path(out)
    img = plot_benchmark(result, out / "benchmark.png")
    paras = benchmark_narrative(result, reports)
    result["summary_text"] = paras
    title = f"cropmeta benchmark — {result['benchmark']}"
    md = [f"# {title}", "", *[p + "\n" for p in paras], "## Ours beside the published numbers", "",
          f"Ours: mean over seeds [95 % bootstrap CI], uncalibrated, all training labels. Published: {PUBLISHED_SOURCE}.",
          "", md_table(result["table"]), "", f"![benchmark]({img.name})", "", "## Per-target reports", ""]
    md += [f"- [{k}]({k}/report.md)" for k in result["targets"]] + [""]
    atomic_write_text(out / "benchmark.md", "\n".join(md))
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style>"
         f"</head><body><h1>{html.escape(title)}</h1>"]
    h += [f"<p>{html.escape(p)}</p>" for p in paras]
    h += ["<h2>Ours beside the published numbers</h2>",
          f"<p>Ours: mean over seeds [95 % bootstrap CI], uncalibrated, all training labels. Published: "
          f"{html.escape(PUBLISHED_SOURCE)}.</p>", html_table(result["table"]), _img(img, "benchmark"),
          "<h2>Per-target reports</h2><ul>"]
    h += [f"<li>{html.escape(k)}/report.html</li>" for k in result["targets"]] + ["</ul></body></html>"]
    atomic_write_text(out / "benchmark.html", "".join(h))
    files = {"benchmark.png": img, "benchmark.md": out / "benchmark.md", "benchmark.html": out / "benchmark.html",
             "benchmark.json": out / "benchmark.json"}
    body = dict(result)
    body["files"] = {k: Path(v).name for k, v in files.items()}  # relative to the benchmark folder
    atomic_write_text(out / "benchmark.json", json.dumps(_clean_json(body), indent=1, allow_nan=False, default=str))
    return files


def print_table(result: dict, console: Any) -> None:
    """Print ours beside the published numbers with Rich (for the CLI)."""
    from rich.table import Table

    rows = result["table"] if "table" in result else []
    if not rows:
        return
    tab = Table(title=f"{result['benchmark']} benchmark — ours vs published ({PUBLISHED_SOURCE})")
    for c in rows[0]:
        tab.add_column(c)
    for r in rows[1:]:
        tab.add_row(*r)
    console.print(tab)
