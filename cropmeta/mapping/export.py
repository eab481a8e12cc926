"""``cropmeta export``: a trained run + inputs → a Cloud-Optimised GeoTIFF map (or a VRT mosaic of
per-tile COGs), a PNG quick-look and, with truth, an accuracy report.

Flow (one code path for serial and Dask runs):
1. check the output path is writable, load the model once (driver), open and validate every input
   (band layout, T = model's T, CRS), place the region of interest on each input;
2. plan 512×512 blocks (the COG's tiling); blocks entirely outside the region are never computed;
3. resume: blocks listed in the work directory's manifest are skipped; the rest run serially or
   on Dask, each result saved as a part and appended to the manifest;
4. assemble each input's blocks into a tiled GeoTIFF, copy it to a COG (atomic rename: a previous
   map is replaced only by a complete, checked one), mosaic, quick-look, accuracy, clean up.

What it reads (inputs, schemas, the run's scene) is in :mod:`cropmeta.mapping.inputs`, the output
checks and bookkeeping helpers in :mod:`cropmeta.mapping.outputs`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cropmeta.errors import DataError, InputError
from cropmeta._fs import atomic_dir, output_dir, sigterm_as_interrupt
from cropmeta.mapping.provenance import map_provenance, write_stac_item
from cropmeta.mapping.cog import GTiffWriter, check_writable, copy_to_cog, iter_blocks, write_vrt
from cropmeta.mapping.dask_exec import Bundle, make_executor
from cropmeta.mapping.infer import DEFAULT_BATCH, Job, ModelSpec, part_path, read_pixels_for_budget
from cropmeta.mapping.manifest import Manifest, load_part, work_dir_for
from cropmeta.mapping.model import DEFAULT_LOADER, get_predictor, model_tags
from cropmeta.mapping.precision import BF16_LOADER, resolve_precision
from cropmeta.models.inference import PRECISIONS
from cropmeta.mapping.roi import overlaps, project_region
from cropmeta.mapping.sources import check_consistent_t, open_source, window_source
from cropmeta.mapping.validate import check_cog
from cropmeta.mapping.inputs import expand_inputs, model_schema, scene_for_run, source_schema, window_months
from cropmeta.mapping.outputs import (
    BlockProgress, check_mosaic_size, check_not_an_input, mosaic_mode, no_valid_pixel_message, refuse_existing,
    renamed_output, source_signature, tiles_dir_for, valid_counts, window_touches,
)

MOSAICS = ("auto", "vrt", "cog", "none")
MAP_SUFFIXES = (".tif", ".tiff", ".vrt")
#: largest one-COG mosaic (uncompressed GB) written without --max-mosaic-gb
MAX_MOSAIC_GB = 4.0


class ExportFailed(DataError):
    """Some blocks failed after their retries; the finished ones are kept for a rerun."""


# ------------------------------------------------------------------------------------------------
# the entry point
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportOptions:
    """Everything ``cropmeta export`` can be told besides the run, the output and the inputs (the
    meaning of each field: :func:`export`). Built once by the CLI or the API and handed down whole."""

    region: str | None = None
    region_file: Any = None
    bbox: Any = None
    threshold: float = 0.5
    as_float: bool = False
    workers: int | None = None
    scheduler: str | None = None
    truth: Any = None
    mosaic: str = "auto"
    progress: bool = True
    world: Any = None
    loader: str | None = None
    batch_size: int = DEFAULT_BATCH
    retries: int = 2
    quicklook: bool = True
    keep_work: bool = False
    device: str = "cpu"
    gdal_cache_mb: int = 256
    overwrite: bool = False
    max_mosaic_gb: float = MAX_MOSAIC_GB
    start_month: int | None = None
    truth_options: dict | None = None
    months: str | None = None
    dask_processes: bool = False
    read_budget_mb: float | None = None
    precision: str = "fp32"

    @classmethod
    def make(cls, base: "ExportOptions | None" = None, **given) -> "ExportOptions":
        """``base`` (default: the defaults) with ``given`` replaced; an unknown name is refused with the
        closest known one."""
        names = [f.name for f in dataclasses.fields(cls)]
        for k in given:
            if k not in names:
                close = difflib.get_close_matches(k, names, n=1)
                raise InputError(f"export: unknown option {k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        return dataclasses.replace(base or cls(), **given)


def export(run_dir, out, inputs=None, options: ExportOptions | None = None, **given) -> dict[str, Any]:
    """Write the prediction map of ``run_dir``'s model over ``inputs``.

    inputs: EE-layout GeoTIFF path(s) or folder(s), netCDF datacube path(s), xarray object(s); None →
    the simulated scene of the run's target (and its truth raster). Region (``region`` name,
    ``region_file`` or ``bbox``): pixels outside are nodata. ``out``: the map, ``.tif`` (one COG) or
    ``.vrt`` (several inputs: a VRT over per-tile COGs in ``<stem>.tiles/``); ``mosaic``: ``auto``
    (from ``out``'s suffix), ``cog``, ``vrt`` or ``none`` (only the per-tile COGs in
    ``<stem>.tiles/``). ``out`` must not be, or lie inside, an input, and an existing map is replaced
    only with ``overwrite=True``. A one-COG mosaic larger than ``max_mosaic_gb`` (uncompressed) is
    refused before any work. ``start_month``: with inputs holding more time steps than the model,
    the model's window starting at that step (1-based); ``months`` (``YYYY-MM:YYYY-MM``): the window
    of those calendar months. A folder (or list file) of dated one-band images is one input on its
    own grid (:func:`cropmeta.mapping.stacks.open_stack`); every input must hold the model's band schema
    (the error names the missing and extra bands). ``workers``: local Dask
    cluster of N one-thread workers (threads of this process; worker processes with
    ``dask_processes=True``); ``scheduler``: an existing Dask scheduler address (``tcp://HOST:PORT``),
    same tasks; neither: serial, in-process. ``truth``: raster or label file → accuracy report
    ``<stem>.accuracy.json`` (a label file is read with ``truth_options``; the run's training points are left out and counted).
    ``loader``: ``"module:function"`` returning a predictor for ``run_dir`` (default: cropmeta's).
    ``device``: where inference runs (``cpu``, ``cuda``); ``batch_size``: pixels per model call;
    ``retries``: attempts after a block fails; ``keep_work``: keep the parts after success;
    ``gdal_cache_mb``: GDAL's block cache cap during the export (GDAL's default, 5 % of RAM, would
    otherwise let the cache — and the process — grow with the size of the input);
    ``read_budget_mb``: working memory of one read strip per worker (None: strips of 16,384 px,
    ≈ 80 MB at T = 12); the map does not depend on it beyond float32 rounding.
    ``precision``: ``fp32`` (default: the same map on every machine), ``bf16`` or ``auto`` (bfloat16
    where the hardware runs it natively): bfloat16 is used only if, on up to 4,096 pixels of the
    first block, every probability stays within 0.01 of float32 and ≥ 99.9 % of classes agree
    (:func:`cropmeta.mapping.precision.resolve_precision`); the choice and the check are in the
    summary and the map's ``PRECISION`` tag.

    The options come as an :class:`ExportOptions` (``options``) and/or as keywords of its fields
    (``given``, which win).

    Returns a summary dict (paths, pixel counts, timings, resumed blocks, accuracy)."""
    from cropmeta.io.handles import gdal_cache_env

    opts = ExportOptions.make(options, **given)
    if opts.gdal_cache_mb < 16:
        raise InputError(f"gdal_cache_mb must be >= 16, got {opts.gdal_cache_mb}")
    # a refused or failed export leaves no new empty folder behind either
    with gdal_cache_env(opts.gdal_cache_mb), output_dir(Path(out).parent, create=False):
        return _export(run_dir, out, inputs, opts)


def _export(run_dir, out, inputs, opts: ExportOptions) -> dict[str, Any]:
    (region, region_file, bbox, threshold, workers, mosaic, world, loader, batch_size, device, overwrite,
     max_mosaic_gb, start_month, months, read_budget_mb, precision) = (
        opts.region, opts.region_file, opts.bbox, opts.threshold, opts.workers, opts.mosaic, opts.world,
        opts.loader, opts.batch_size, opts.device, opts.overwrite, opts.max_mosaic_gb, opts.start_month,
        opts.months, opts.read_budget_mb, opts.precision)
    t0 = time.perf_counter()
    run_dir, out = Path(run_dir), Path(out)
    if not 0.0 < float(threshold) < 1.0:
        raise InputError(f"--threshold must be between 0 and 1, got {threshold}")
    if mosaic not in MOSAICS:
        raise InputError(f"--mosaic must be one of {', '.join(MOSAICS)}, got {mosaic!r}")
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if read_budget_mb is not None and not read_budget_mb > 0:
        raise InputError(f"--read-budget-mb must be > 0, got {read_budget_mb}")
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "fp32" and loader not in (None, DEFAULT_LOADER):
        raise InputError(f"--precision {precision} needs cropmeta's own model loader (got {loader!r})")
    if not max_mosaic_gb > 0:
        raise InputError(f"--max-mosaic-gb must be > 0, got {max_mosaic_gb}")
    if out.is_dir():
        check_writable(out)  # says: a directory, give a file name
    suffix = out.suffix.lower()
    if suffix not in MAP_SUFFIXES:
        raise InputError(f"--out {out}: a map is written as {' or '.join(MAP_SUFFIXES)} (got "
                         f"{suffix or 'no suffix'!r}); the quick-look PNG and the accuracy JSON are "
                         "written beside it")
    items = expand_inputs(inputs)
    check_not_an_input(out, items, inputs, opts.truth)
    check_writable(out)

    # ---- model (once, in the driver: validation + provenance) ------------------------------------
    predictor = get_predictor(run_dir, loader, device)
    model_t = int(predictor.t)

    # ---- inputs ------------------------------------------------------------------------------------
    scene_truth = None
    if not items:
        scene, scene_truth, _ = scene_for_run(run_dir, predictor, world)
        items = [scene]
    sources = [open_source(i) for i in items]
    if start_month is not None:
        sources = [window_source(s, model_t, start_month) for s in sources]
    if months is not None:
        sources = [window_months(s, model_t, months) for s in sources]
    want = model_schema(predictor)
    for s in sources:
        want.check_compatible(source_schema(s), f"{s.ref if isinstance(s.ref, (str, Path)) else s.name}")
        if getattr(s, "kind", None) == "stack" and s.t != model_t:
            raise InputError(f"{s.ref}: the images make {s.t} {s.schema.step} steps from {s.start_date}, but the "
                             f"model in {run_dir} takes T={model_t}; choose a window with --months YYYY-MM:YYYY-MM")
    check_consistent_t(sources, model_t, str(run_dir))
    mode = mosaic_mode(mosaic, out, len(sources))
    refuse_existing(out, mode, len(sources), overwrite)
    if mode == "cog" and len(sources) > 1:
        check_mosaic_size(sources, out, opts.as_float, max_mosaic_gb)

    # ---- region of interest ------------------------------------------------------------------------
    region_obj = None
    if any(v is not None for v in (region, region_file, bbox)):
        from cropmeta.regions import resolve_region

        region_obj = resolve_region(region, region_file, bbox)
    roi: list = []
    keep: list[int] = []
    for i, s in enumerate(sources):
        g = project_region(region_obj.geometry, s.grid, s.name) if region_obj is not None else None
        if g is not None and not overlaps(g, s.grid):
            continue
        roi.append(g)
        keep.append(i)
    skipped = [sources[i].name for i in range(len(sources)) if i not in keep]
    if not keep:
        raise DataError(f"region {region_obj.name!r} does not overlap any input "
                        f"({', '.join(s.name for s in sources)})")
    sources = [sources[i] for i in keep]
    if len({s.name for s in sources}) != len(sources):
        seen: dict[str, int] = {}
        renamed = []
        for s in sources:
            n = seen.get(s.name, 0)
            seen[s.name] = n + 1
            renamed.append(s if n == 0 else renamed_output(s, f"{Path(s.name).stem}_{n}{Path(s.name).suffix}"))
        sources = renamed

    # ---- plan --------------------------------------------------------------------------------------
    jobs: list[Job] = []
    for ti, s in enumerate(sources):
        for w in iter_blocks(s.grid.width, s.grid.height):
            if roi[ti] is not None and not window_touches(roi[ti], s, w):
                continue
            jobs.append(Job(ti, int(w.row_off), int(w.col_off), int(w.height), int(w.width)))
    precision_report = {"requested": precision, "used": "fp32"}
    if precision != "fp32":
        x_check, context = _check_pixels(sources, jobs, roi, predictor)
        used, precision_report = resolve_precision(precision, predictor, x_check, device, float(threshold), context)
        precision_report["used"] = used
        if used == "bf16":
            loader = BF16_LOADER
    tags = model_tags(run_dir, predictor)
    tags["PRECISION"] = precision_report["used"]
    tags["PRECISION_CHECK"] = json.dumps(precision_report, default=float)
    model = ModelSpec(str(run_dir.resolve()), loader, threads=1, batch_size=batch_size, device=device,
                      sha=tags["MODEL_SHA256"])
    tags, map_warnings = map_provenance(tags, sources)  # the mapped season, input hashes, versions; warnings
    tags.update({
        "THRESHOLD": f"{float(threshold):g}",
        "REGION": region_obj.name if region_obj is not None else "",
        "INPUTS": json.dumps([s.name for s in sources]),
        "NODATA_MEANING": "outside the region of interest or input missing",
        "PRODUCER": "cropmeta export",
    })
    signature = {
        "model": tags["MODEL_SHA256"], "run": model.run_dir, "loader": loader, "batch": batch_size, "device": device,
        "inputs": [source_signature(s) for s in sources],
        "roi": [None if g is None else g.wkb_hex for g in roi],
    }
    if read_budget_mb is not None:  # other strips: the same map up to float32 rounding, not resumed across
        signature["read_pixels"] = read_pixels_for_budget(sources, read_budget_mb)
    work = work_dir_for(out)
    manifest = Manifest(work, signature).open()
    todo = [j for j in jobs if not manifest.is_done(j.key, part_path(work, j))]
    resumed = len(jobs) - len(todo)
    try:
        with sigterm_as_interrupt():
            plan = MapPlan(sources, roi, jobs, todo, resumed, tags, model, manifest, work, mode, region_obj, skipped,
                           scene_truth, t0, read_pixels_for_budget(sources, read_budget_mb))
            return _compute_and_write(run_dir, out, plan, opts)
    except BaseException:
        manifest.close()
        # temporaries of the assembly go; finished blocks stay only when there are some to resume from
        shutil.rmtree(work / "assembled", ignore_errors=True)
        for f in (work / "mosaic.vrt",):
            f.unlink(missing_ok=True)
        if not manifest.done:
            manifest.remove()
        raise


def _check_pixels(sources, jobs, roi, predictor, max_pixels: int = 4096) -> tuple[np.ndarray, dict | None]:
    """Up to ``max_pixels`` valid pixels of the first blocks to map (strips of whole rows, read as
    the workers read them) and their place and time when the model reads those: the pixels the
    reduced-precision check compares on."""
    from rasterio.windows import Window

    xs, ctx, n = [], {}, 0
    uses = bool(getattr(predictor, "uses_locations", False))
    for j in jobs:
        s = sources[j.tile]
        rows = max(1, min(j.height, max_pixels // max(j.width, 1)))
        win = Window(j.col_off, j.row_off, j.width, rows)
        x, valid = s.read(win)
        if not len(x):
            continue
        xs.append(x)
        if uses:
            for k, v in s.pixel_context(win, valid).items():
                ctx.setdefault(k, []).extend(list(v))
        n += len(x)
        if n >= max_pixels:
            break
    if not xs:
        raise DataError("no valid pixel in the inputs to check the reduced precision on (use --precision fp32)")
    x = np.concatenate(xs)[:max_pixels]
    context = {k: (np.asarray(v[:max_pixels]) if k != "start_dates" else v[:max_pixels]) for k, v in ctx.items()}
    return x, (context or None)


@dataclass
class MapPlan:
    """What :func:`export` decided before computing: the opened inputs and their regions of interest,
    the blocks (all, and those still to compute), the map's tags, the model spec, the resume manifest
    and work directory, the mosaic mode, and the bookkeeping the summary reports."""

    sources: list
    roi: list
    jobs: list
    todo: list
    resumed: int
    tags: dict
    model: ModelSpec
    manifest: Manifest
    work: Path
    mode: str
    region_obj: Any
    skipped: list
    scene_truth: Any
    t0: float
    read_pixels: int | None


def _compute_and_write(run_dir, out, plan: MapPlan, opts: ExportOptions) -> dict[str, Any]:
    (sources, roi, jobs, todo, resumed, tags, model, manifest, work, mode, region_obj, skipped, scene_truth, t0,
     read_pixels) = (plan.sources, plan.roi, plan.jobs, plan.todo, plan.resumed, plan.tags, plan.model, plan.manifest,
                     plan.work, plan.mode, plan.region_obj, plan.skipped, plan.scene_truth, plan.t0, plan.read_pixels)
    (threshold, as_float, workers, scheduler, truth, progress, retries, quicklook, keep_work, gdal_cache_mb,
     overwrite, truth_options, dask_processes) = (
        opts.threshold, opts.as_float, opts.workers, opts.scheduler, opts.truth, opts.progress, opts.retries,
        opts.quicklook, opts.keep_work, opts.gdal_cache_mb, opts.overwrite, opts.truth_options, opts.dask_processes)

    # ---- compute -----------------------------------------------------------------------------------
    stats = {"pixels": 0, "valid": 0}
    bar = BlockProgress(progress, len(todo), f"mapping {len(sources)} input(s)")

    def on_result(job: Job, prob: np.ndarray) -> None:
        manifest.record(job.key, part_path(work, job), prob)
        stats["pixels"] += prob.size
        stats["valid"] += int(np.isfinite(prob).sum())
        bar.advance()

    t_inf = time.perf_counter()
    executor = None
    t_start = 0.0
    try:
        executor = make_executor(workers, scheduler, processes=dask_processes)
        t_start = executor.seconds_start
        failures = executor.run(todo, Bundle(sources, roi, model, int(gdal_cache_mb),
                                                 read_pixels or read_pixels_for_budget(sources, None)), retries, on_result)
    finally:
        bar.close()
        manifest.close()
        if executor is not None:
            executor.close()
    t_inf = time.perf_counter() - t_inf
    if not failures:
        valid_per_tile = valid_counts(jobs, work, len(sources))
    if failures:
        names = sorted({f.tile for f in failures})
        detail = "\n  ".join(f.describe() for f in failures[:10])
        raise ExportFailed(
            f"{len(failures)} block(s) of {len(names)} input(s) failed ({', '.join(names)}); "
            f"finished blocks are kept in {work} and a rerun resumes from them:\n  {detail}")

    n_valid = int(sum(valid_per_tile))
    n_total = int(sum(s.grid.width * s.grid.height for s in sources))
    if n_valid == 0:
        msg = no_valid_pixel_message(sources, roi)
        manifest.remove()  # nothing to resume: a rerun on the same input gives the same empty map
        raise DataError(msg)
    empty = [s.name for s, v in zip(sources, valid_per_tile) if v == 0]

    # ---- assemble ----------------------------------------------------------------------------------
    t_write = time.perf_counter()
    jobs_by_tile: dict[int, dict[tuple[int, int], Job]] = {}
    for j in jobs:
        jobs_by_tile.setdefault(j.tile, {})[(j.row_off, j.col_off)] = j
    gtiffs = []
    for ti, s in enumerate(sources):
        path = work / "assembled" / f"{ti:05d}.tif"
        if path.exists():
            path.unlink()
        wr = GTiffWriter(path, s.grid, as_float, float(threshold))
        try:
            for w in iter_blocks(s.grid.width, s.grid.height):
                j = jobs_by_tile.get(ti, {}).get((int(w.row_off), int(w.col_off)))
                if j is None:
                    wr.fill_block(w)
                else:
                    wr.write_block(w, load_part(part_path(work, j)))
            tile_tags = dict(tags, INPUTS=json.dumps([s.name]))
            wr.finish(tile_tags if len(sources) > 1 else tags)
        except Exception:
            wr.abort()
            raise
        gtiffs.append(path)

    tiles_dir = None
    tile_maps: list[Path] = []
    if overwrite and len(sources) > 1 and mode == "vrt" and out.is_file():
        # the previous VRT goes before its tiles are replaced: it never points at a half-replaced set
        # (a COG is replaced atomically: the previous one stays until the new one is complete)
        out.unlink()
    if len(sources) == 1:
        map_path = copy_to_cog(gtiffs[0], out)
    elif mode == "cog":
        vrt = write_vrt(gtiffs, work / "mosaic.vrt", tags, float(threshold), relative=False)
        map_path = copy_to_cog(vrt, out)
    else:
        tiles_dir = tiles_dir_for(out)
        names = [f"{Path(s.name).stem}.tif" for s in sources]
        with atomic_dir(tiles_dir) as tmpdir:
            for g, n in zip(gtiffs, names):
                copy_to_cog(g, tmpdir / n)
        tile_maps = [tiles_dir / n for n in names]
        if mode == "vrt":
            map_path = write_vrt(tile_maps, out, tags, float(threshold))
        else:
            map_path = tiles_dir
    t_write = time.perf_counter() - t_write

    problems = [] if map_path.is_dir() or map_path.suffix == ".vrt" else check_cog(map_path, deep=False)
    for tm in tile_maps:
        problems += [f"{tm.name}: {p}" for p in check_cog(tm, deep=False)]

    png = None
    if quicklook and not map_path.is_dir():
        from cropmeta.mapping.quicklook import quicklook as _ql

        png = _ql(map_path, map_path.with_suffix(".png"), region_obj.geometry if region_obj is not None else None)

    accuracy = None
    truth = truth if truth is not None else scene_truth
    if truth is not None and not map_path.is_dir():
        from cropmeta.mapping.accuracy import assess

        accuracy = assess(map_path, truth, out_json=map_path.with_suffix(".accuracy.json"), run_dir=run_dir,
                          label_options=truth_options)

    stac = None
    if not map_path.is_dir():
        stac = write_stac_item(map_path, tags, sources, {"quicklook": png, "accuracy": map_path.with_suffix(
            ".accuracy.json") if accuracy is not None else None},
            metrics={k: v for k, v in (accuracy or {}).items() if isinstance(v, (int, float))} or None)
    if not keep_work:
        manifest.remove()
    total = time.perf_counter() - t0
    n_pix = n_total
    return {
        "map": str(map_path),
        "quicklook": str(png) if png else None,
        "tiles": [str(p) for p in tile_maps],
        "inputs": [s.name for s in sources],
        "skipped_outside_region": skipped,
        "width_height": [[s.grid.width, s.grid.height] for s in sources],
        "pixels": int(n_pix),
        "pixels_computed": int(stats["pixels"]),
        "pixels_valid": n_valid,
        "valid_share": n_valid / n_total if n_total else 0.0,
        "inputs_without_valid_pixel": empty,
        "blocks": len(jobs),
        "blocks_resumed": resumed,
        "blocks_computed": len(todo),
        "executor": "serial" if workers is None and not scheduler else "dask",
        "workers": workers,
        "scheduler": scheduler,
        "dtype": "float32" if as_float else "uint8",
        "threshold": float(threshold),
        "seconds": total,
        "seconds_inference": t_inf,
        "seconds_executor_start": t_start,
        "seconds_write": t_write,
        "pixels_per_second": (stats["pixels"] / t_inf) if t_inf > 0 and stats["pixels"] else None,
        "cog_problems": problems,
        "accuracy": accuracy,
        "stac_item": str(stac) if stac else None,
        "warnings": json.loads(tags.get("WARNINGS") or "[]"),
        "precision": json.loads(tags.get("PRECISION_CHECK") or "{}"),
        "tags": tags,
    }


__all__ = ["export", "ExportOptions", "MapPlan", "ExportFailed"]
