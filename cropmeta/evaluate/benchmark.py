"""Benchmarks of several targets: ``cropmeta compare --benchmark cropharvest|sim|deafrica|worldcrops|cawa``.

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
- ``worldcrops``: WorldCrops' real Sentinel-2 field series (:mod:`cropmeta.evaluate.worldcrops`):
  five crop-type targets in four regions, leave one region out, spatially separated test sets.
- ``cawa``: CAWa's real MODIS NDVI field series in Central Asia (:mod:`cropmeta.evaluate.cawa`):
  cotton in five regions, leave one region out, spatially separated test sets.

Each target gets its own full comparison report in ``OUT/<target>/``; ``OUT/benchmark.{json,md,html}``
put our numbers (all training labels, mean over seeds with 95 % CI) beside the published ones.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

from cropmeta._fs import atomic_write_bytes, output_dir
from cropmeta.errors import InputError
from cropmeta.evaluate.across import DEAFRICA_METHOD_OPTIONS, DEAFRICA_ORIENTATION, across_targets, target_view
from cropmeta.evaluate.published import BENCHMARKS, TARGETS
from cropmeta.io.cropharvest_rules import PUBLISHED, PUBLISHED_SOURCE
from cropmeta.evaluate.report.benchmark import comparison_table, write_benchmark_report
from cropmeta.regions import slugify

#: benchmarks on real labels read from ../shared: their samples load once, and the summary compares
#: every method across the targets
REAL_BENCHMARKS = ("deafrica", "worldcrops", "cawa")
#: benchmarks whose targets' regions are no method's source data (leave one region out)
HOLD_OUT_REGION = ("worldcrops", "cawa")


def load_benchmark_samples(benchmark: str, root=None, progress: bool = True, loader=None):
    """The benchmark's samples; ``sim``: ``loader(root, progress)`` (the app layer's
    :func:`cropmeta.app.samples.load_samples`: the workspace's data, ``root`` ingested first)."""
    if benchmark == "deafrica":
        from cropmeta.io.deafrica import load_deafrica

        return load_deafrica(root)
    if benchmark == "worldcrops":
        from cropmeta.io.worldcrops import load_worldcrops

        return load_worldcrops(root)[0]
    if benchmark == "cawa":
        from cropmeta.io.cawa import load_cawa

        return load_cawa(root)[0]
    if benchmark == "cropharvest":
        if root is None:
            raise InputError("--benchmark cropharvest needs --root PATH (a CropHarvest archive: labels.geojson, "
                             "features/, test_features/)")
        from cropmeta.io.cropharvest import read_cropharvest

        samples, _ = read_cropharvest(Path(root))
        return samples
    if loader is None:
        raise InputError(f"--benchmark {benchmark}: no sample loader given (cropmeta.app.compare.compare passes one)")
    return loader(root, progress)


def run_benchmark(benchmark: str, root=None, seeds=5, shots=None, methods=None, out=None, preset: str = "quick",
                  progress: bool = True, config=None, calib_folds: int = 3, method_factory=None, console=None,
                  samples=None, targets: list[str] | None = None, method_options: dict | None = None,
                  flop_seeds: list[int] | None = None, world=None, oracle_n: int | None = None,
                  n_boot: int = 1000, loader=None, load_sim=None, split: str | None = None) -> dict:
    """Run :func:`cropmeta.evaluate.compare.compare` on each published target and write the
    benchmark summary. ``targets``: a subset of kenya, brazil, togo (default all three). ``methods``
    may hold the protocol's zero-shot and oracle rows (``world``, ``oracle_n``: where they come from;
    see :func:`~cropmeta.app.compare.compare`). ``loader``: see :func:`load_benchmark_samples`; ``load_sim``: as compare's.
    ``split``: deafrica's test split, "blocks" (spatially separated, the default) or "random"."""

    benchmark = str(benchmark).strip().lower()
    if benchmark not in BENCHMARKS:
        raise InputError(f"--benchmark {benchmark!r}: expected one of {', '.join(BENCHMARKS)}")
    if benchmark in REAL_BENCHMARKS and samples is None:
        samples = load_benchmark_samples(benchmark, root, progress, loader)
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
                            n_boot, loader, load_sim, split)


def _run_targets(benchmark, root, seeds, shots, methods, out, preset, progress, config, calib_folds,
                 method_factory, console, samples, chosen, method_options, flop_seeds, world, oracle_n,
                 n_boot, loader=None, load_sim=None, split=None) -> dict:
    from cropmeta.evaluate.compare import DEFAULT_METHODS, DEFAULT_SHOTS, compare

    if samples is None:
        samples = load_benchmark_samples(benchmark, root, progress, loader)
    reports = {}
    t0 = time.perf_counter()
    if benchmark == "deafrica":
        method_options = {**DEAFRICA_METHOD_OPTIONS, **(method_options or {})}
    splits = {}
    for key, region, crop in chosen:
        if console is not None:
            console.print(f"[bold]benchmark {benchmark}: {region} {crop or 'crop vs non-crop'}[/]")
        view = target_samples(benchmark, samples, region, split)
        if isinstance(view, tuple):  # (samples, the split's summary)
            view, splits[key] = view
        reports[key] = compare(region, crop, seeds=seeds, shots=shots or DEFAULT_SHOTS,
                               methods=methods or DEFAULT_METHODS, out=out / key, preset=preset, progress=progress,
                               samples=view, config=config, hold_out_region=benchmark in HOLD_OUT_REGION,
                               calib_folds=calib_folds, method_factory=method_factory,
                               method_options=method_options, flop_seeds=flop_seeds,
                               source=_source_name(benchmark, root), world=world, oracle_n=oracle_n, n_boot=n_boot,
                               load_sim=load_sim)
    return assemble(benchmark, root, reports, out, round(time.perf_counter() - t0, 1), splits=splits)


def assemble(benchmark: str, root, reports: dict, out: Path, seconds: float | None = None,
             splits: dict | None = None) -> dict:
    """The benchmark result and its files (``OUT/benchmark.{json,md,html,png}``) from the targets'
    comparison reports (key → report dict, in order); ``splits``: each target's test split summary."""
    result = {
        "kind": "cropmeta-benchmark",
        "benchmark": benchmark,
        "root": str(root) if root is not None else None,
        "published_source": PUBLISHED_SOURCE,
        "published": {k: PUBLISHED[k] for k in reports if k in PUBLISHED and benchmark != "deafrica"},
        "targets": {k: summarize_target(r) for k, r in reports.items()},
        "seconds": seconds,
    }
    if splits:
        result["splits"] = splits
    if benchmark in REAL_BENCHMARKS:
        result["across_targets"] = across_targets(reports)
    if benchmark == "deafrica":
        result["orientation"] = DEAFRICA_ORIENTATION
    result["table"] = comparison_table(result)
    result["files"] = {k: str(v) for k, v in write_benchmark_report(result, reports, Path(out)).items()}
    return result


def assemble_from_reports(benchmark: str, out, keys: list[str], root=None) -> dict:
    """:func:`assemble` over the finished targets ``keys`` of a benchmark folder (their
    ``OUT/<key>/report.json``, or ``report.json.gz`` as a published results folder keeps it), without
    computing anything: e.g. the targets an interrupted run finished."""
    out = Path(out)
    reports = {}
    for k in keys:
        p = out / k / "report.json"
        gz = p.with_name("report.json.gz")
        if p.exists():
            reports[k] = json.loads(p.read_text())
        elif gz.exists():
            with gzip.open(gz, "rt") as fh:
                reports[k] = json.load(fh)
        else:
            raise InputError(f"{p}: no report for target {k!r} (not finished?)")
    prior = {}
    if (out / "benchmark.json").exists():  # what the run recorded beside the reports: its splits and duration
        prior = json.loads((out / "benchmark.json").read_text())
    return assemble(benchmark, root, reports, out, prior.get("seconds"), splits=prior.get("splits"))


def publish_results(src, dst, keys: list[str] | None = None) -> list[Path]:
    """Copy a finished benchmark folder ``src`` into a results folder ``dst`` for the repository,
    compactly: the benchmark's own files as they are; per target its ``report.md`` and figures, and
    its ``report.json`` gzipped (``report.json.gz``, byte-reproducible: no timestamp in the gzip
    header) — the complete record, from which :func:`cropmeta.evaluate.report.write_report`
    renders the HTML again and :func:`assemble_from_reports` the benchmark. ``keys``: the targets
    (default: every sub-folder with a report.json). Returns the files written."""
    src, dst = Path(src), Path(dst)
    if keys is None:
        keys = sorted(p.parent.name for p in src.glob("*/report.json"))
    written = []
    for name in ("benchmark.md", "benchmark.json", "benchmark.html", "benchmark.png"):
        if (src / name).exists():
            atomic_write_bytes(dst / name, (src / name).read_bytes())
            written.append(dst / name)
    for k in keys:
        rep = src / k / "report.json"
        if not rep.exists():
            raise InputError(f"{rep}: no report for target {k!r} (not finished?)")
        for f in sorted((src / k).glob("*.png")) + [src / k / "report.md"]:
            atomic_write_bytes(dst / k / f.name, f.read_bytes())
            written.append(dst / k / f.name)
        atomic_write_bytes(dst / k / "report.json.gz", gzip.compress(rep.read_bytes(), compresslevel=9, mtime=0))
        written.append(dst / k / "report.json.gz")
    return written


def benchmark_targets(benchmark: str, samples=None) -> list[tuple[str, str, str | None]]:
    """(key, region, crop) of every target of ``benchmark``: the published three, or for
    ``deafrica`` one crop-vs-non-crop target per benchmark country of ``samples``."""
    if benchmark in ("worldcrops", "cawa"):
        return _region_benchmark(benchmark).targets(samples)
    if benchmark != "deafrica":
        return list(TARGETS)
    from cropmeta.io.deafrica import benchmark_countries

    return [(slugify(c), c, "crop") for c in benchmark_countries(samples.meta)]


def target_samples(benchmark: str, samples, region: str, split: str | None = None):
    """The sample set one target is compared on: deafrica's leave-one-country-out view
    (:func:`cropmeta.evaluate.across.target_view`), worldcrops' and cawa's spatially split view with its
    split's summary (:meth:`cropmeta.evaluate.splits.RegionBenchmark.view`), the shared one otherwise.
    ``split``: deafrica's test split, "blocks" (default) or "random" (:func:`~cropmeta.evaluate.across.target_view`)."""
    if benchmark in ("worldcrops", "cawa"):
        return _region_benchmark(benchmark).view(samples, region)
    if benchmark != "deafrica":
        return samples
    return target_view(samples, region, split or "blocks")


def _region_benchmark(benchmark: str):
    """The :class:`~cropmeta.evaluate.splits.RegionBenchmark` of ``worldcrops`` or ``cawa``."""
    if benchmark == "cawa":
        from cropmeta.evaluate.cawa import CAWA

        return CAWA
    from cropmeta.evaluate.worldcrops import WORLDCROPS

    return WORLDCROPS


def _source_name(benchmark: str, root):
    if benchmark == "cropharvest":
        return root
    return f"{benchmark}:{root or 'shared'}" if benchmark in REAL_BENCHMARKS else None


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
