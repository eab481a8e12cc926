"""Ingestion: (Earth-Engine tiles + a label file) or a CropHarvest archive or the simulated world →
one :class:`~cropmeta.io.store.SampleSet` per region in ``$CROPMETA_HOME/datasets/<region_slug>/``.

- **Idempotent and resumable**: every tile's samples are staged in
  ``$CROPMETA_HOME/.cache/ingest/<key>/`` (key = tile path + size + mtime + the labels it holds +
  options); a rerun (or a run after a failure) reuses completed tiles and reads only the rest.
- **Atomic**: all regions are sampled first, then each dataset directory is replaced atomically
  (:func:`cropmeta.io.store.write_samples`); a failure or interruption leaves the previous store as it
  was.
- **Report**: counts (labels, samples, tiles complete/cached/failed, points outside rasters),
  missing values filled per band, duplicates, class balance per split; returned and saved as each
  dataset's ``report.json``. ``report["summary"]`` is a flat table for the CLI.
- **Bad input** raises :class:`~cropmeta.errors.InputError` / :class:`~cropmeta.errors.DataError`
  naming the file and the problem; a bad tile fails the run (after the good ones are staged) unless
  ``allow_failed=True``, in which case it is skipped and reported.

Here: the entry point, where the samples come from (sources, regions) and the sampling of each
region; the per-tile staging is :mod:`cropmeta.ingest_tiles`, and writing, reporting, listing and
loading the workspace datasets is :mod:`cropmeta.datasets` (its public names are importable from
here).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cropmeta.datasets import IngestResult, write_groups
from cropmeta.errors import DataError, InputError
from cropmeta.ingest_tiles import CACHE_VERSION, sample_tiles
from cropmeta.io.cropharvest import is_cropharvest_archive, read_cropharvest
from cropmeta.io.labels import read_labels
from cropmeta.io.sampling import POLYGON_MODES, country_of, finalize_meta, missing_report, no_label_on_raster
from cropmeta.io.store import SampleSet, read_samples, workspace_home, write_samples
from cropmeta.io.windows import window_samples
from cropmeta.regions import Region, get_region

log = logging.getLogger("cropmeta")

#: label_options keys passed to :func:`cropmeta.io.labels.read_labels`
LABEL_OPTION_KEYS = ("class_column", "crop_values", "crop_type_column", "layer", "lat_column", "lon_column",
                     "crs", "id_column", "dataset", "default_is_crop", "field_column")




# --------------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------------
def _sim_world(seed: int, home: Path) -> Path:
    try:
        from cropmeta.sim import ensure_world
    except ImportError as e:
        raise InputError("the simulated world is not available in this build (cropmeta.sim.ensure_world); "
                         "give --source PATH and --labels FILE") from e
    world = Path(ensure_world(seed=seed, home=home))
    meta = world / "world.json"
    if not meta.exists():
        raise InputError(f"{world}: not a simulated world (no world.json)")
    return world


def _resolve_source(source, labels, seed: int, home: Path) -> tuple[str, Path, Path | None, Path | None]:
    """→ (kind, source path, labels path, tile root for a ``tile`` column). kind: tiles | cropharvest.
    Labels of one's own need their pixel source named: ``source="sim"`` places them on the
    simulated world only on purpose (with a warning)."""
    if source is None and labels is not None:
        raise InputError(f"--labels {labels}: name the pixels these labels are sampled from: --source PATH "
                         "(a GeoTIFF or folder of Earth-Engine exports) or, on purpose, --source sim (the "
                         "simulated world)")
    if source is None or str(source) == "sim":
        world = _sim_world(seed, home)
        if labels is not None:
            log.warning("--source sim: the labels of %s are placed on SIMULATED pixels (the simulated world "
                        "of seed %d), not on real imagery", labels, seed)
        lab = Path(labels) if labels is not None else world / "labels.parquet"
        return "tiles", world / "tiles", lab, world
    src = Path(source)
    if not src.exists():
        raise InputError(f"--source {src}: no such file or directory (use 'sim', a GeoTIFF, a directory of "
                         "GeoTIFFs or a CropHarvest archive root)")
    if is_cropharvest_archive(src):
        if labels is not None:
            raise InputError(f"{src} is a CropHarvest archive (its labels.geojson holds the labels); drop --labels")
        return "cropharvest", src, None, None
    if labels is None:
        raise InputError(f"--source {src}: GeoTIFF sources need a label file (--labels FILE)")
    return "tiles", src, Path(labels), (src if src.is_dir() else src.parent)


# --------------------------------------------------------------------------------------------------
# regions
# --------------------------------------------------------------------------------------------------
def _extent(lat, lon) -> str:
    return f"lon {np.min(lon):.4f}..{np.max(lon):.4f}, lat {np.min(lat):.4f}..{np.max(lat):.4f}"


def _assign_regions(meta: pd.DataFrame, region: Region | None, source: str) -> tuple[np.ndarray, dict]:
    """Region name of every row (None = not ingested) and counts."""
    lat, lon = meta["lat"].to_numpy(float), meta["lon"].to_numpy(float)
    has_col = "region" in meta.columns
    col = meta["region"].astype(object).where(meta["region"].notna(), None).to_numpy() if has_col else None
    if region is not None:
        if has_col and region.name in set(col):
            inside = col == region.name
        else:
            inside = np.asarray(region.contains(lat, lon))
        if not inside.any():
            x0, y0, x1, y1 = region.bounds
            raise DataError(
                f"{source}: region {region.name!r} holds none of the {len(meta)} labels (labels span "
                f"{_extent(lat, lon)}; region spans lon {x0:.4f}..{x1:.4f}, lat {y0:.4f}..{y1:.4f})")
        names = np.where(inside, region.name, None).astype(object)
        return names, {"labels_outside_region": int((~inside).sum())}
    names = col.copy() if has_col else np.full(len(meta), None, dtype=object)
    todo = np.array([n is None for n in names])
    if todo.any():
        names[todo] = country_of(lat[todo], lon[todo])
    unassigned = np.array([n is None for n in names])
    if unassigned.all():
        raise DataError(f"{source}: none of the {len(meta)} labels ({_extent(lat, lon)}) lies in a known region")
    return names, {"labels_outside_all_regions": int(unassigned.sum())}


def _dedupe(meta: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """Keep-mask dropping repeated sample ids (first kept) and counts of same-pixel samples."""
    dup_id = meta["sample_id"].duplicated(keep="first").to_numpy()
    kept = meta[~dup_id]
    same_px = conflicting = 0
    px = ["tile", "pixel_row", "pixel_col"]
    if set(px) <= set(kept.columns):
        frame = pd.DataFrame({c: kept[c].astype(str).to_numpy() for c in px})
        dup = frame.duplicated(keep=False).to_numpy()
        same_px = int(dup.sum())
        if same_px:
            frame["is_crop"] = kept["is_crop"].to_numpy()
            conflicting = int((frame.groupby(px)["is_crop"].transform("nunique") > 1).sum())
    return ~dup_id, {"sample_ids_dropped": int(dup_id.sum()), "same_pixel": same_px,
                     "same_pixel_conflicting_class": conflicting}


# --------------------------------------------------------------------------------------------------
# main entry points
# --------------------------------------------------------------------------------------------------
def ingest(region: Region | None = None, source: str | Path | None = None, labels: str | Path | None = None,
           seed: int = 0, home: str | Path | None = None, label_options: dict | None = None, progress: bool = True,
           *, start_date: str | None = None, allow_failed: bool = False, replace: bool = False,
           start_month: int | None = None, months: str | None = None, table: str | Path | None = None,
           table_mapping=None) -> IngestResult:
    """Build each region's samples into ``<home>/datasets/<region_slug>/``.

    ``region``: a :class:`~cropmeta.regions.Region` or a country name (only its labels are ingested)
    or None (every region the labels fall in: the labels' ``region`` column, else the country holding
    each point).
    ``source``: None/"sim" (the simulated world of ``seed``), a GeoTIFF or directory of
    Earth-Engine exports (``labels`` required), or a CropHarvest archive root.
    ``label_options``: keyword arguments of :func:`cropmeta.io.labels.read_labels` (``class_column``,
    ``crop_values``, ``crop_type_column``, ``layer``, ``lat_column``, ``lon_column``, ``crs``,
    ``id_column``, ``dataset``, ``default_is_crop``, ``field_column``) plus ``polygons`` ("centroid" or "pixels").
    ``start_date``: first step date for tiles whose file names carry none.
    ``labels`` without ``source`` is refused (name the pixels: a path, or ``"sim"`` on purpose).
    A stored dataset of the other kind (simulated vs real pixels) is replaced only with
    ``replace=True`` (the report's ``replaced`` says what went). ``start_month``: keep the 12 time
    steps from that step (1-based) of longer exports. A dataset whose T differs from the other stored
    datasets is named in a warning (training combines datasets of one T).
    ``months``: ``"YYYY-MM:YYYY-MM"``, keep that window of calendar months (each sample from its own
    start date; ``start_date`` moves with the window; see :mod:`cropmeta.io.windows`).
    ``table``: a sample table (CSV / Parquet / GeoParquet, :mod:`cropmeta.io.tables`) read with
    ``table_mapping`` (a :class:`~cropmeta.io.table_mapping.TableMapping`) instead of tiles + labels; its
    datasets carry the table's band schema. With ``labels`` too, that file is a table of labels (one row
    per sample id) joined to the table's series (the mapping's ``label_table``).
    """
    home = Path(home) if home is not None else workspace_home()
    if isinstance(region, str):
        region = get_region(region)
    if table is not None:
        if source is not None:
            raise InputError(f"--table {table}: a sample table holds its own pixels; drop --source")
        if start_month is not None:
            raise InputError("--start-month applies to Earth-Engine exports; give a table a window with --months")
        if labels is not None:  # a table of labels, joined to the series by sample id
            from cropmeta.io.table_mapping import TableMapping

            table_mapping = (table_mapping or TableMapping()).updated("--labels", label_table=str(labels))
        return _ingest_table(Path(table), table_mapping, region, home, replace, months)
    opts = dict(label_options or {})
    polygons = opts.pop("polygons", "centroid")
    if polygons not in POLYGON_MODES:
        raise InputError(f"polygons={polygons!r}: expected one of {', '.join(POLYGON_MODES)}")
    unknown = sorted(set(opts) - set(LABEL_OPTION_KEYS))
    if unknown:
        raise InputError(f"unknown label option(s) {unknown}; known: {', '.join(LABEL_OPTION_KEYS)}, polygons")
    kind, src, labels_path, root = _resolve_source(source, labels, seed, home)
    pixels = "simulated" if source is None or str(source) == "sim" else "real"
    top: dict = {"source": str(src), "kind": kind, "pixels": pixels}
    if start_month is not None and int(start_month) < 1:
        raise InputError(f"--start-month must be >= 1, got {start_month}")

    if kind == "cropharvest":
        samples, ch_report = _read_cropharvest_cached(src, home)
        top["archive"] = ch_report
        top["labels_read"] = len(samples)
        names, counts = _assign_regions(samples.meta, region, str(src))
        top.update(counts)
        groups = {}
        for name in sorted({n for n in names if n is not None}):
            sub = samples.subset(names == name)
            sub.meta["region"] = name
            keep, dup = _dedupe(sub.meta)
            sub = sub.subset(keep)
            groups[name] = (sub, {"source": str(src), "duplicates": dup,
                                  "archive_missing_values": ch_report.get("missing_values", {})})
    else:
        lab = read_labels(labels_path, **opts)
        top["labels_file"] = str(labels_path)
        top["labels_read"] = len(lab)
        top["labels_without_geometry"] = lab.attrs.get("dropped_empty_geometry", 0)
        names, counts = _assign_regions(lab, region, str(labels_path))
        top.update(counts)
        keep = np.array([n is not None for n in names])
        lab = lab[keep].reset_index(drop=True)
        lab["region"] = names[keep]
        parts, tile_counts, infos, failed_rows = sample_tiles(lab, src, root, home, polygons, start_date,
                                                               allow_failed, progress)
        top["tiles"] = {k: v for k, v in tile_counts.items()}
        groups = {}
        sampled = np.zeros(len(lab), dtype=bool)
        for part in parts.values():
            sampled[part.label_rows] = True
        for name in sorted(set(lab["region"])):
            in_region = (lab["region"] == name).to_numpy()
            xs, metas, nans = [], [], []
            for part in parts.values():
                sel = (part.meta["region"].astype(object).to_numpy() == name)
                if sel.any():
                    xs.append(part.x[sel])
                    metas.append(part.meta[sel])
                    nans.append(part.nan_counts[sel])
            n_labels = int(in_region.sum())
            got = sampled & in_region
            if not xs:
                err = f"region {name!r}: {no_label_on_raster(lab[in_region], infos)}"
                if tile_counts["failed"]:
                    err += f" ({tile_counts['failed']} tile(s) failed)"
                if region is not None and not tile_counts["failed"]:
                    raise DataError(err)
                # several regions (or failed tiles skipped on request): skip this one, report it
                top.setdefault("regions_skipped", {})[name] = err
                continue
            meta = pd.concat(metas, ignore_index=True)
            keep, dup = _dedupe(meta)
            x = np.concatenate(xs)[keep]
            nan_counts = np.concatenate(nans)[keep]
            meta = finalize_meta(meta[keep].reset_index(drop=True), name)
            outside = in_region & ~sampled
            groups[name] = (SampleSet(x, meta), {
                "source": str(src), "labels_file": str(labels_path), "labels": n_labels,
                "labels_sampled": int(got.sum()), "outside_raster": int(outside.sum()),
                "outside_raster_ids": lab.loc[outside, "sample_id"].astype(str).head(20).tolist(),
                "labels_in_failed_tiles": int((failed_rows & in_region & ~sampled).sum()),
                **missing_report(nan_counts, x.shape[1]),
                "duplicates": dup, "polygons": polygons,
                "tiles": {k: v for k, v in tile_counts.items() if k != "failed_files"},
            })

    if not groups:
        skipped = top.get("regions_skipped", {})
        first = next(iter(skipped.values()), "")
        raise DataError(f"{src}: no region has samples to write; {first}"
                        + (f" (and {len(skipped) - 1} more region(s))" if len(skipped) > 1 else ""))
    if start_month is not None:
        groups = {name: (_window(samples, int(start_month), name), {**extra, "start_month": int(start_month)})
                  for name, (samples, extra) in groups.items()}
    if months is not None:
        groups = {name: (window_samples(samples, months, f"region {name!r} ({src})"), {**extra, "months": str(months)})
                  for name, (samples, extra) in groups.items()}
    return write_groups(groups, top, home, pixels, replace)


def _ingest_table(path: Path, mapping, region: Region | None, home: Path, replace: bool,
                  months: str | None) -> IngestResult:
    """A sample table → one dataset per region (the table's ``region`` column, else ``region``, else
    the country holding each sample)."""
    from cropmeta.io.table_mapping import TableMapping
    from cropmeta.io.tables import read_table

    mapping = mapping if mapping is not None else TableMapping()
    samples, rep = read_table(path, mapping, months=months)
    meta = samples.meta
    if meta["region"].isna().all():
        meta = meta.drop(columns="region")
    names, counts = _assign_regions(meta, region, str(path))
    top: dict = {"source": str(path), "kind": "table", "pixels": "real", "labels_read": len(samples),
                 "table": rep, **counts}
    groups = {}
    for name in sorted({n for n in names if n is not None}):
        sub = samples.subset(names == name)
        sub.meta["region"] = name
        # the filled-value counts are the table's (top report), not each region's: summing them per
        # dataset would count them once per region
        groups[name] = (sub, {"source": str(path), "table": {k: v for k, v in rep.items() if k != "missing_values"},
                              "schema": samples.schema.name})
    return write_groups(groups, top, home, "real", replace)


def ingest_benchmark(benchmark: str, root: str | Path | None = None, home: str | Path | None = None,
                     replace: bool = False) -> IngestResult:
    """A real benchmark's samples as workspace datasets, each region split as its targets are in
    ``cropmeta compare --benchmark`` (``worldcrops``: every region's own spatially separated test
    set, buffer fields left out; ``cawa`` likewise, its datasets named ``cawa-<region>`` beside
    WorldCrops' regions of the same names), so ``cropmeta train --region R --crop C --shots K --seed S``
    fine-tunes on the very samples of that benchmark cell (``finetune_ids`` in the run's metrics.json)."""
    prefixes = {"worldcrops": "", "cawa": "cawa-"}
    name = str(benchmark).strip().lower()
    if name not in prefixes:
        raise InputError(f"ingest --benchmark {benchmark!r}: a benchmark of stored datasets is one of "
                         f"{', '.join(prefixes)}")
    home = Path(home) if home is not None else workspace_home()
    if name == "cawa":
        from cropmeta.evaluate.cawa import benchmark_dataset
    else:
        from cropmeta.evaluate.worldcrops import benchmark_dataset
    samples, rep, splits = benchmark_dataset(root)
    top: dict = {"source": f"{name}:{root or 'shared'}", "kind": "benchmark", "pixels": "real",
                 "labels_read": len(samples), "table": rep, "splits": splits}
    groups = {}
    for region in sorted(set(samples.meta["region"])):
        sub = samples.subset((samples.meta["region"] == region).to_numpy())
        groups[prefixes[name] + region] = (sub, {"source": top["source"], "split": splits.get(region),
                                                 "schema": samples.schema.name})
    return write_groups(groups, top, home, "real", replace)


def _window(samples: SampleSet, start_month: int, name: str) -> SampleSet:
    from cropmeta.schema import DEFAULT_T

    first = start_month - 1
    if first + DEFAULT_T > samples.t:
        raise InputError(f"region {name!r}: --start-month {start_month} needs {first + DEFAULT_T} time steps "
                         f"(a window of {DEFAULT_T} from step {start_month}); the export has {samples.t}")
    return SampleSet(samples.x[:, first:first + DEFAULT_T], samples.meta, samples.schema)


def _read_cropharvest_cached(root: Path, home: Path) -> tuple[SampleSet, dict]:
    """:func:`read_cropharvest`, staged in the cache keyed by the archive's files (sizes + mtimes)."""
    h = hashlib.sha256(f"v{CACHE_VERSION}:{root.resolve()}".encode())
    for p in [root / "labels.geojson"] + sorted((root / "features" / "arrays").glob("*.h5")) + \
            sorted((root / "test_features").glob("*.h5")):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    d = home / ".cache" / "ingest" / f"cropharvest-{h.hexdigest()[:24]}"
    if (d / "samples.parquet").exists() and (d / "arrays.nc").exists():
        try:
            samples = read_samples(d)
            rep = json.loads((d / "report.json").read_text())
            rep["cached"] = True
            return samples, rep
        except (InputError, OSError, ValueError):
            pass
    samples, rep = read_cropharvest(root)
    write_samples(samples, d, report=rep)
    return samples, rep


__all__ = ["IngestResult", "ingest", "ingest_benchmark"]
