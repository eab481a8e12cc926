"""The three published targets as one benchmark: ``cropmeta compare --benchmark cropharvest|sim``.

- ``cropharvest``: a CropHarvest archive (``--root``): Kenya maize, Brazil coffee and Togo crop vs
  non-crop, trained on the archive's labels and tested on its ``test_features/`` files (their own
  labels), read by :func:`cropmeta.io.cropharvest.read_cropharvest`.
- ``sim``: the same three targets on the simulated world (the default data source).

Each target gets its own full comparison report in ``OUT/<target>/``; ``OUT/benchmark.{json,md,html}``
put our numbers (all training labels, mean over seeds with 95 % CI) beside the published ones.
"""

from __future__ import annotations

import time
from pathlib import Path

from cropmeta._fs import output_dir
from cropmeta.errors import InputError
from cropmeta.evaluate.published import BENCHMARKS, PUBLISHED, PUBLISHED_SOURCE, TARGETS
from cropmeta.evaluate.report.benchmark import comparison_table, write_benchmark_report


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
