"""Benchmarks of several targets: ``cropmeta compare --benchmark cropharvest|sim|deafrica``.

- ``cropharvest``: a CropHarvest archive (``--root``): Kenya maize, Brazil coffee and Togo crop vs
  non-crop, trained on the archive's labels and tested on its ``test_features/`` files (their own
  labels), read by :func:`cropmeta.io.cropharvest.read_cropharvest`.
- ``sim``: the same three targets on the simulated world (the default data source).
- ``deafrica``: Digital Earth Africa's real crop/non-crop labels (:mod:`cropmeta.io.deafrica`;
  ``--root`` the ``deafrica_cropmask`` folder, default ``../shared``): leave-one-country-out over
  the 16 countries with ≥ 30 labels of each class, each target's labels split once 50/50 by class
  into a shot pool and a test set, everything else meta-training / pretraining data. Its summary
  also averages every method over the targets at every shot count, counts per-target wins and tests
  each method against TIML across targets (:func:`across_targets`).

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
from cropmeta.evaluate import stats
from cropmeta.io.atomic import atomic_write_text, output_dir
from cropmeta.regions import slugify

#: (key, region, crop) of the published targets
TARGETS = [("kenya", "Kenya", "maize"), ("brazil", "Brazil", "coffee"), ("togo", "Togo", None)]
#: published F1 / AUC-ROC with all training labels — Presto paper (Tseng et al. 2023), tables 2 and 12
PUBLISHED = {
    "kenya": {"timl": {"f1": 0.838, "auc_roc": 0.794}, "random-forest": {"f1": 0.559, "auc_roc": 0.578}},
    "brazil": {"timl": {"f1": 0.835, "auc_roc": 0.988}, "random-forest": {"f1": 0.000, "auc_roc": 0.941}},
    "togo": {"timl": {"f1": 0.732, "auc_roc": 0.890}, "random-forest": {"f1": 0.756, "auc_roc": 0.892}},
}
PUBLISHED_SOURCE = "Presto paper (Tseng et al. 2023), tables 2 and 12"
BENCHMARKS = ("cropharvest", "sim", "deafrica")
#: deafrica: the forests trained on other countries see a random subset of this many of their ~29,000
#: labels (seeded per seed): every fit of the pooled forest trains a new one, and a forest on
#: all of them takes about a minute a fit on the shared project machine (5,000: ~8 s)
DEAFRICA_METHOD_OPTIONS = {"random-forest-source": {"max_source": 2000}, "random-forest-both": {"max_source": 2000}}
#: for orientation (issue 16): a random forest on DE Africa, one split, 21 country/region targets, mean AUC
DEAFRICA_ORIENTATION = {"random-forest": {"20": 0.70, "all": 0.89}, "random-forest-source": {"0": 0.72},
                        "random-forest-both": {"20": 0.73}}


def load_benchmark_samples(benchmark: str, root=None, progress: bool = True):
    if benchmark == "deafrica":
        from cropmeta.io.deafrica import load_deafrica

        return load_deafrica(root)
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
    if benchmark == "deafrica" and samples is None:
        samples = load_benchmark_samples(benchmark, root, progress)
    every = benchmark_targets(benchmark, samples)
    want = None if targets is None else [slugify(t) for t in targets]
    chosen = every if want is None else [t for w in dict.fromkeys(want) for t in every if t[0] == w]  # (order asked)
    if not chosen or (want is not None and len(chosen) < len(set(want))):
        unknown = sorted(set(want or []) - {t[0] for t in every})
        raise InputError(f"unknown benchmark target(s) {unknown or targets}; targets: {', '.join(t[0] for t in every)}")
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
    if benchmark == "deafrica":
        method_options = {**DEAFRICA_METHOD_OPTIONS, **(method_options or {})}
    for key, region, crop in chosen:
        if console is not None:
            console.print(f"[bold]benchmark {benchmark}: {region} {crop or 'crop vs non-crop'}[/]")
        reports[key] = compare(region, crop, seeds=seeds, shots=shots or DEFAULT_SHOTS,
                               methods=methods or DEFAULT_METHODS, out=out / key, preset=preset, progress=progress,
                               samples=target_samples(benchmark, samples, region), config=config,
                               calib_folds=calib_folds, method_factory=method_factory,
                               method_options=method_options, flop_seeds=flop_seeds,
                               source=_source_name(benchmark, root), world=world, oracle_n=oracle_n, n_boot=n_boot)
    return assemble(benchmark, root, reports, out, round(time.perf_counter() - t0, 1))


def assemble(benchmark: str, root, reports: dict, out: Path, seconds: float | None = None) -> dict:
    """The benchmark result and its files (``OUT/benchmark.{json,md,html,png}``) from the targets'
    comparison reports (key → report dict, in order)."""
    result = {
        "kind": "cropmeta-benchmark",
        "benchmark": benchmark,
        "root": str(root) if root is not None else None,
        "published_source": PUBLISHED_SOURCE,
        "published": {k: PUBLISHED[k] for k in reports if k in PUBLISHED and benchmark != "deafrica"},
        "targets": {k: summarize_target(r) for k, r in reports.items()},
        "seconds": seconds,
    }
    if benchmark == "deafrica":
        result["across_targets"] = across_targets(reports)
        result["orientation"] = DEAFRICA_ORIENTATION
    result["table"] = comparison_table(result)
    result["files"] = {k: str(v) for k, v in write_benchmark_report(result, reports, Path(out)).items()}
    return result


def assemble_from_reports(benchmark: str, out, keys: list[str], root=None) -> dict:
    """:func:`assemble` over the finished targets ``keys`` of a benchmark folder (their
    ``OUT/<key>/report.json``), without computing anything: e.g. the targets an interrupted run finished."""
    out = Path(out)
    reports = {}
    for k in keys:
        p = out / k / "report.json"
        if not p.exists():
            raise InputError(f"{p}: no report for target {k!r} (not finished?)")
        reports[k] = json.loads(p.read_text())
    return assemble(benchmark, root, reports, out)


def benchmark_targets(benchmark: str, samples=None) -> list[tuple[str, str, str | None]]:
    """(key, region, crop) of every target of ``benchmark``: the published three, or for
    ``deafrica`` one crop-vs-non-crop target per benchmark country of ``samples``."""
    if benchmark != "deafrica":
        return list(TARGETS)
    from cropmeta.io.deafrica import benchmark_countries

    return [(slugify(c), c, "crop") for c in benchmark_countries(samples.meta)]


def target_samples(benchmark: str, samples, region: str):
    """The sample set one target is compared on: deafrica's leave-one-country-out view
    (:func:`cropmeta.io.deafrica.target_view`), the shared one otherwise."""
    if benchmark != "deafrica":
        return samples
    from cropmeta.io.deafrica import target_view

    return target_view(samples, region)


def _source_name(benchmark: str, root):
    if benchmark == "cropharvest":
        return root
    return f"deafrica:{root or 'shared'}" if benchmark == "deafrica" else None


def _target_values(report: dict, k: str) -> dict[str, dict[str, float]]:
    """Seed-mean AUC-ROC and F1 (uncalibrated) of every row of one report at shot count ``k``; a
    shot count the target skipped (its pool is smaller) takes the target's "all" cell."""
    summ = report["summary"]
    col = summ.get(k) if k in summ else summ.get("all")
    if col is None:
        return {}
    out = {}
    for m, row in col.items():
        out[m] = {met: row["raw"][met]["mean"] for met in ("auc_roc", "f1")}
        out[m]["fixed"] = bool(row.get("fixed"))
    return out


def across_targets(reports: dict, reference: str = "timl") -> dict:
    """Every method at every shot count over the targets: mean (and median) of the targets' seed-mean
    AUC-ROC and F1, how many targets it was best on (highest seed-mean among the non-fixed rows;
    ties shared), and a paired Wilcoxon signed-rank test across targets (one pair a target) of each
    method against ``reference`` (else the local random forest), Holm-adjusted within a shot count
    and metric. Shot counts a target skipped (pool smaller than k) use its "all" cell."""
    shots: list[str] = []
    for rep in reports.values():
        for k in [str(v) for v in rep["config"]["shots"]]:
            if k not in shots:
                shots.append(k)
    methods: list[str] = []
    for rep in reports.values():
        methods += [m for m in rep["config"]["methods"] if m not in methods]
    keys = list(reports)
    out: dict = {"targets": keys, "shots": shots, "methods": methods, "summary": {}, "tests": {},
                 "note": "a shot count larger than a target's pool uses that target's 'all' cell"}
    for k in shots:
        vals = {key: _target_values(reports[key], k if k in reports[key]["summary"] else "all") for key in keys}
        present = [m for m in methods if any(m in v for v in vals.values())]
        ref = reference if reference in present else ("random-forest" if "random-forest" in present else None)
        col, wins = {}, {met: {m: 0.0 for m in present} for met in ("auc_roc", "f1")}
        for met in ("auc_roc", "f1"):
            for key in keys:
                cand = {m: v[met] for m, v in vals[key].items() if not v["fixed"] and v[met] is not None
                        and np.isfinite(v[met])}
                if cand:
                    best = max(cand.values())
                    top = [m for m, v in cand.items() if v == best]
                    for m in top:
                        wins[met][m] += 1.0 / len(top)
        for m in present:
            row = {"n_targets": int(sum(m in vals[key] for key in keys))}
            for met in ("auc_roc", "f1"):
                xs = np.array([vals[key][m][met] if m in vals[key] and vals[key][m][met] is not None else np.nan
                               for key in keys], dtype=float)
                fin = xs[np.isfinite(xs)]
                row[met] = {"mean": float(fin.mean()) if len(fin) else None,
                            "median": float(np.median(fin)) if len(fin) else None,
                            "per_target": {key: (None if not np.isfinite(v) else float(v)) for key, v in zip(keys, xs)},
                            "wins": wins[met][m]}
            col[m] = row
        out["summary"][k] = col
        if ref is not None:
            others = [m for m in present if m != ref]
            out["tests"][k] = {"reference": ref}
            for met in ("auc_roc", "f1"):
                a = [col[ref][met]["per_target"][key] for key in keys]
                res = {m: stats.paired_wilcoxon([np.nan if v is None else v for v in
                                                 [col[m][met]["per_target"][key] for key in keys]],
                                                [np.nan if v is None else v for v in a]) for m in others}
                for m, p in zip(others, stats.holm([res[m]["p_value"] for m in others])):
                    res[m]["p_holm"] = p
                out["tests"][k][met] = res
    return out


def across_targets_tables(result: dict) -> list[tuple[str, list[list[str]]]]:
    """(title, rows) tables of :func:`across_targets` for the report: mean AUC and F1 per method and
    shot count, wins, and the paired tests across targets."""
    from cropmeta.evaluate.report import label

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
    rows = [["Shots", "Metric", "Method", "mean diff vs ref.", "wins/losses (targets)", "p (Holm)"]]
    for k, t in acr["tests"].items():
        for met in ("auc_roc", "f1"):
            for m, r in t[met].items():
                rows.append([("zero-shot" if k == "0" else k), met, f"{label(m)} − {label(t['reference'])}",
                             _f(r["mean_diff"]) if np.isfinite(r["mean_diff"]) else "–",
                             f"{r['wins']}/{r['losses']}", _f(r.get("p_holm"))])
    tables.append(("Paired Wilcoxon signed-rank tests across targets (one pair a target)", rows))
    return tables


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
    if result["benchmark"] == "deafrica":
        paras.append("Real labels (Digital Earth Africa crop mask), leave one country out: each target's labels are split "
                     "once 50/50 by class into the shot pool and the test set; every other sample is source data. "
                     "There are no fields: each test point is its own cluster in the bootstrap intervals. No published "
                     "numbers exist for these targets; the issue's random-forest run is quoted for orientation.")
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
    extra = across_targets_tables(result)
    md = [f"# {title}", "", *[p + "\n" for p in paras]]
    for name, rows in extra:
        md += [f"## {name}", "", md_table(rows), ""]
    md += ["## Ours beside the published numbers", "",
           f"Ours: mean over seeds [95 % bootstrap CI], uncalibrated, all training labels. Published: {PUBLISHED_SOURCE}.",
           "", md_table(result["table"]), "", f"![benchmark]({img.name})", "", "## Per-target reports", ""]
    md += [f"- [{k}]({k}/report.md)" for k in result["targets"]] + [""]
    atomic_write_text(out / "benchmark.md", "\n".join(md))
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style>"
         f"</head><body><h1>{html.escape(title)}</h1>"]
    h += [f"<p>{html.escape(p)}</p>" for p in paras]
    for name, rows in extra:
        h += [f"<h2>{html.escape(name)}</h2>", html_table(rows)]
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
