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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from cropmeta._version import __version__
from cropmeta.errors import DataError, InputError
from cropmeta._fs import atomic_dir, atomic_write_text
from cropmeta.io.cropharvest import is_cropharvest_archive, read_cropharvest
from cropmeta.io.eetiff import EETiffInfo, list_ee_tiffs
from cropmeta.io.labels import read_labels
from cropmeta.io.sampling import (
    POLYGON_MODES,
    TileSamples,
    check_same_t,
    country_of,
    finalize_meta,
    index_tiles,
    locate_points,
    missing_report,
    no_label_on_raster,
    sample_tile,
    tile_bounds_4326,
)
from cropmeta.io.store import SampleSet, dataset_dir, read_report, read_samples, workspace_home, write_samples
from cropmeta.io.windows import window_samples
from cropmeta.regions import Region, get_region, slugify

log = logging.getLogger("cropmeta")

#: bump when the staged per-tile format or sampling semantics change (invalidates the cache)
CACHE_VERSION = 2  # 2: field ids (the pixels of a polygon share one)
#: label_options keys passed to :func:`cropmeta.io.labels.read_labels`
LABEL_OPTION_KEYS = ("class_column", "crop_values", "crop_type_column", "layer", "lat_column", "lon_column",
                     "crs", "id_column", "dataset", "default_is_crop", "field_column")


@dataclass
class IngestResult:
    datasets: dict[str, Path] = field(default_factory=dict)  # dataset name (region slug) → directory
    report: dict = field(default_factory=dict)


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


# --------------------------------------------------------------------------------------------------
# per-tile staging (resumable)
# --------------------------------------------------------------------------------------------------
def _row_hashes(labels: gpd.GeoDataFrame) -> np.ndarray:
    """One uint64 per label row over everything that affects its samples (computed once per run)."""
    cols = [c for c in ("sample_id", "lat", "lon", "is_crop", "label", "crop_group", "dataset", "split",
                        "start_date", "region", "class_value", "field_id") if c in labels.columns]
    frame = pd.DataFrame({c: labels[c].astype(str).to_numpy() for c in cols})
    if "footprint" in labels.columns:
        frame["footprint"] = [g.wkb_hex if g is not None else "-" for g in labels["footprint"]]
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _tile_key(info: EETiffInfo, row_hashes: np.ndarray, polygons: str) -> str:
    st = info.path.stat()
    ident = {"v": CACHE_VERSION, "path": str(info.path.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns,
             "polygons": polygons, "start": info.start.isoformat() if info.start else None,
             "labels": hashlib.sha256(np.ascontiguousarray(row_hashes).tobytes()).hexdigest()}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def _load_staged(d: Path) -> TileSamples | None:
    try:
        x = np.load(d / "x.npy", allow_pickle=False)
        meta = pd.read_parquet(d / "meta.parquet")
        stats = json.loads((d / "stats.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    return TileSamples(x, meta, np.asarray(stats["nan_counts"], np.int32).reshape(len(x), -1),
                       np.asarray(stats["label_rows"], np.int64))


def _stage(d: Path, part: TileSamples) -> None:
    with atomic_dir(d) as tmp:
        np.save(tmp / "x.npy", part.x, allow_pickle=False)
        pd.DataFrame(part.meta).to_parquet(tmp / "meta.parquet")
        (tmp / "stats.json").write_text(json.dumps({"nan_counts": part.nan_counts.tolist(),
                                                    "label_rows": [int(i) for i in part.label_rows]}))


def _tile_candidates(info: EETiffInfo, labels: gpd.GeoDataFrame, where: np.ndarray, i: int,
                     polygons: str) -> np.ndarray:
    """Rows of ``labels`` to sample in tile ``i``."""
    if polygons != "pixels" or "footprint" not in labels.columns:
        return np.where(where == i)[0]
    x0, y0, x1, y1 = tile_bounds_4326(info)
    fp = gpd.GeoSeries(labels["footprint"], crs="EPSG:4326")
    b = fp.bounds.to_numpy()
    has = fp.notna().to_numpy()
    hit = has & (b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0)
    return np.where(hit | (where == i))[0]


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------
def class_balance(meta: pd.DataFrame) -> dict:
    """``{split: {crop, non_crop, unlabelled, labels: {crop type: n}}}``."""
    out = {}
    for split, g in meta.groupby("split", sort=True):
        labels = g.loc[g["is_crop"] == 1, "label"].dropna().astype(str).value_counts()
        out[str(split)] = {"crop": int((g["is_crop"] == 1).sum()), "non_crop": int((g["is_crop"] == 0).sum()),
                           "unlabelled": int((g["is_crop"] == -1).sum()),
                           "labels": {str(k): int(v) for k, v in labels.items()}}
    return out


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


def _dataset_report(name: str, region: str, samples: SampleSet, extra: dict) -> dict:
    rep = {
        "dataset": name, "region": region, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cropmeta_version": __version__, "t": samples.t, "samples": len(samples),
        "class_balance": class_balance(samples.meta), "data_hash": samples.content_hash(),
    }
    rep.update(extra)
    return rep


def _store_hash(samples: SampleSet) -> str:
    """Hash of everything a dataset stores (arrays and every metadata column but the geometry)."""
    h = hashlib.sha256(np.ascontiguousarray(samples.x).tobytes())
    meta = pd.DataFrame(samples.meta.drop(columns="geometry"))
    h.update(",".join(map(str, meta.columns)).encode())
    h.update(pd.util.hash_pandas_object(meta.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()[:24]


def _unchanged(out: Path, store_hash: str) -> bool:
    if not ((out / "samples.parquet").exists() and (out / "arrays.nc").exists()):
        return False
    try:
        return read_report(out).get("store_hash") == store_hash
    except (OSError, ValueError):
        return False


def _summary(datasets: dict[str, dict], top: dict) -> dict:
    s = {"datasets": len(datasets),
         "samples": sum(r["samples"] for r in datasets.values()),
         "labels_read": top.get("labels_read", 0)}
    for k in ("labels_outside_region", "labels_outside_all_regions"):
        if k in top:
            s[k] = top[k]
    s["regions_skipped"] = len(top.get("regions_skipped", {}))
    s["outside_raster"] = sum(r.get("outside_raster", 0) for r in datasets.values())
    s["tiles_complete"] = top.get("tiles", {}).get("complete", 0)
    s["tiles_cached"] = top.get("tiles", {}).get("cached", 0)
    s["tiles_failed"] = top.get("tiles", {}).get("failed", 0)
    s["labels_in_failed_tiles"] = sum(r.get("labels_in_failed_tiles", 0) for r in datasets.values())
    s["missing_values_filled"] = sum(sum(r.get("missing_values", {}).values()) for r in datasets.values())
    s["datasets_unchanged"] = sum(bool(r.get("unchanged")) for r in datasets.values())
    s["duplicates_dropped"] = sum(r.get("duplicates", {}).get("sample_ids_dropped", 0) for r in datasets.values())
    for split in ("train", "test"):
        for k in ("crop", "non_crop", "unlabelled"):
            s[f"{split}_{k}"] = sum(r["class_balance"].get(split, {}).get(k, 0) for r in datasets.values())
    return s


# --------------------------------------------------------------------------------------------------
# main entry points
# --------------------------------------------------------------------------------------------------
def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


def _sample_tiles(labels: gpd.GeoDataFrame, tiles_src: Path, root: Path | None, home: Path, polygons: str,
                  start_date, allow_failed: bool,
                  progress: bool) -> tuple[dict[int, TileSamples], dict, list, np.ndarray]:
    """Sample every tile holding labels, staged per tile. Returns (tile index → samples, tile counts,
    infos, mask of labels held by tiles that failed)."""
    failed: dict[str, str] = {}
    kinds: list[type] = []  # the error class of each failure (DataError stays DataError)

    def on_error(p, e):
        failed[str(p)] = str(e)
        kinds.append(type(e))

    infos = index_tiles(list_ee_tiffs(tiles_src), start_date=start_date, on_error=on_error)
    if not infos:
        first = next(iter(failed.values()), f"{tiles_src}: no usable tiles")
        kind = kinds[0] if kinds else InputError
        raise kind(first if len(failed) <= 1 else f"all {len(failed)} tiles failed; first: {first}")
    check_same_t(infos)
    where = locate_points(labels, infos, root=root)
    cache = home / ".cache" / "ingest"
    hashes = _row_hashes(labels)
    jobs = [(i, _tile_candidates(info, labels, where, i, polygons)) for i, info in enumerate(infos)]
    jobs = [(i, rows) for i, rows in jobs if len(rows)]
    parts: dict[int, TileSamples] = {}
    failed_rows = np.zeros(len(labels), dtype=bool)
    counts = {"total": len(infos) + len(failed), "with_labels": len(jobs), "complete": 0, "cached": 0}
    with _progress(progress) as bar:
        task = bar.add_task("sampling tiles", total=len(jobs))
        for i, rows in jobs:
            info = infos[i]
            key_dir = cache / _tile_key(info, hashes[rows], polygons)
            part = _load_staged(key_dir) if key_dir.exists() else None
            if part is not None:
                counts["cached"] += 1
            else:
                try:
                    name = str(info.path.relative_to(root)) if root is not None and info.path.is_relative_to(root) \
                        else str(info.path)
                    part = sample_tile(info, labels.iloc[rows], polygons=polygons, tile_name=name)
                except InputError as e:  # DataError included
                    on_error(info.path, e)
                    failed_rows[rows] = True
                    bar.advance(task)
                    continue
                _stage(key_dir, part)
                counts["complete"] += 1
            part.label_rows = rows[part.label_rows]
            parts[i] = part
            bar.advance(task)
    counts["failed"] = len(failed)
    counts["failed_files"] = failed
    if failed and not allow_failed:
        path, msg = next(iter(failed.items()))
        more = f" (and {len(failed) - 1} more tile(s), listed in the report)" if len(failed) > 1 else ""
        raise kinds[0](f"{msg}{more}. Nothing was written; completed tiles are staged, so a rerun after fixing "
                         "or removing the bad file(s) resumes (or pass --allow-failed to skip them)")
    return parts, counts, infos, failed_rows


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
    ``table_mapping`` (a :class:`~cropmeta.io.tables.TableMapping`) instead of tiles + labels; its
    datasets carry the table's band schema.
    """
    home = Path(home) if home is not None else workspace_home()
    if isinstance(region, str):
        region = get_region(region)
    if table is not None:
        if source is not None or labels is not None:
            raise InputError(f"--table {table}: a sample table holds its own pixels and labels; drop --source/--labels")
        if start_month is not None:
            raise InputError("--start-month applies to Earth-Engine exports; give a table a window with --months")
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
        parts, tile_counts, infos, failed_rows = _sample_tiles(lab, src, root, home, polygons, start_date,
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
    return _write_groups(groups, top, home, pixels, replace)


def _ingest_table(path: Path, mapping, region: Region | None, home: Path, replace: bool,
                  months: str | None) -> IngestResult:
    """A sample table → one dataset per region (the table's ``region`` column, else ``region``, else
    the country holding each sample)."""
    from cropmeta.io.tables import TableMapping, read_table

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
        groups[name] = (sub, {"source": str(path), "table": {k: v for k, v in rep.items() if k != "missing_values"},
                              "missing_values": rep.get("missing_values", {}), "schema": samples.schema.name})
    return _write_groups(groups, top, home, "real", replace)


def _write_groups(groups: dict, top: dict, home: Path, pixels: str, replace: bool) -> IngestResult:
    """Write each region's ``(samples, report extras)`` as a workspace dataset, atomically, after
    refusing to replace a dataset of the other kind (simulated vs real) unless ``replace``."""
    # every region sampled: refuse to replace a dataset of the other kind before writing anything
    clashes = {}
    for name in groups:
        d = dataset_dir(slugify(name), home)
        old = read_report(d) if (d / "samples.parquet").exists() else None
        if old is not None and dataset_pixels(old) != pixels:
            clashes[slugify(name)] = old
    if clashes and not replace:
        slug, old = next(iter(clashes.items()))
        raise DataError(
            f"{dataset_dir(slug, home)}: holds the {dataset_pixels(old)} {old.get('region', slug)} dataset "
            f"({old.get('samples', '?')} samples from {old.get('source', '?')}); this {pixels} ingest would replace "
            f"it. Nothing was written: pass --replace to replace it, or use another workspace (--home)")
    if clashes:
        top["replaced"] = {slug: f"{dataset_pixels(old)} dataset, {old.get('samples', '?')} samples from "
                                 f"{old.get('source', '?')}" for slug, old in clashes.items()}
        for slug, what in top["replaced"].items():
            log.warning("--replace: dataset %s replaces the %s", slug, what)
    # now write, each dataset atomically
    result = IngestResult(report=top)
    reports = {}
    for name, (samples, extra) in groups.items():
        slug = slugify(name)
        extra = {**extra, "pixels": pixels}
        rep = _dataset_report(slug, name, samples, extra)
        out = dataset_dir(slug, home)
        rep["store_hash"] = _store_hash(samples)
        if _unchanged(out, rep["store_hash"]):
            # idempotent rerun: same samples, so only the report is refreshed (one atomic file write)
            rep["unchanged"] = True
            atomic_write_text(out / "report.json", json.dumps(rep, indent=2, default=str))
            result.datasets[slug] = out
        else:
            result.datasets[slug] = write_samples(samples, out, report=rep)
        reports[slug] = rep
    top["datasets"] = reports
    top["warnings"] = _t_warnings(reports, home)
    for w in top["warnings"]:
        log.warning("%s", w)
    top["summary"] = _summary(reports, top)
    return result


def dataset_pixels(report: dict) -> str:
    """``"simulated"`` or ``"real"``: the pixels a stored dataset was sampled from (older reports
    without the field: a source inside a simulated world is simulated)."""
    if report.get("pixels") in ("simulated", "real"):
        return report["pixels"]
    src = Path(str(report.get("source") or ""))
    return "simulated" if (src.parent / "world.json").exists() or (src / "world.json").exists() else "real"


def _window(samples: SampleSet, start_month: int, name: str) -> SampleSet:
    from cropmeta.schema import DEFAULT_T

    first = start_month - 1
    if first + DEFAULT_T > samples.t:
        raise InputError(f"region {name!r}: --start-month {start_month} needs {first + DEFAULT_T} time steps "
                         f"(a window of {DEFAULT_T} from step {start_month}); the export has {samples.t}")
    return SampleSet(samples.x[:, first:first + DEFAULT_T], samples.meta, samples.schema)


def _t_warnings(reports: dict[str, dict], home: Path) -> list[str]:
    """A warning per new dataset whose T differs from the other stored datasets."""
    stored = {n: read_report(dataset_dir(n, home)).get("t") for n in list_datasets(home)}
    out = []
    for slug, rep in reports.items():
        others = {n: t for n, t in stored.items() if n != slug and t is not None and t != rep["t"]}
        if others:
            shown = ", ".join(f"{n} (T={t})" for n, t in sorted(others.items()))
            out.append(f"dataset {slug} has T={rep['t']} time steps, unlike {shown}: training combines datasets of "
                       f"one T; select datasets with --datasets, or re-ingest with --start-month M for a "
                       f"12-step window")
    return out


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


def list_datasets(home: str | Path | None = None) -> list[str]:
    """Names of the datasets stored in the workspace."""
    base = Path(home) if home is not None else workspace_home()
    d = base / "datasets"
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / "samples.parquet").exists())


def describe_datasets(home: str | Path | None = None, names: list[str] | None = None) -> list[dict]:
    """Which stored datasets ``names`` (default all) are: name, pixels (simulated/real), T, samples, source."""
    base = Path(home) if home is not None else workspace_home()
    out = []
    for n in ([slugify(x) for x in names] if names else list_datasets(base)):
        rep = read_report(dataset_dir(n, base))
        out.append({"dataset": n, "pixels": dataset_pixels(rep), "t": rep.get("t"), "samples": rep.get("samples"),
                    "source": rep.get("source")})
    return out


def load_datasets(home: str | Path | None = None, names: list[str] | None = None) -> SampleSet:
    """Concatenate stored datasets (all, or ``names``: dataset slugs or region names)."""
    base = Path(home) if home is not None else workspace_home()
    have = list_datasets(base)
    if names is None:
        wanted = have
    else:
        wanted = [slugify(n) for n in names]
        missing = [n for n, w in zip(names, wanted) if w not in have]
        if missing:
            raise InputError(f"{base / 'datasets'}: no dataset(s) {missing}; stored: {', '.join(have) or 'none'} "
                             "(run `cropmeta ingest`)")
    if not wanted:
        raise InputError(f"{base / 'datasets'}: no datasets stored; run `cropmeta ingest` first")
    sets = [read_samples(dataset_dir(n, base)) for n in wanted]
    ts: dict[int, list[str]] = {}
    for n, sset in zip(wanted, sets):
        ts.setdefault(sset.t, []).append(n)
    if len(ts) > 1:
        parts = "; ".join(f"T={t}: {', '.join(ns)}" for t, ns in sorted(ts.items()))
        raise InputError(f"{base / 'datasets'}: the datasets have different numbers of time steps ({parts}); "
                         "select datasets of one T with --datasets NAME,... or re-ingest the longer ones with "
                         "--start-month M (a 12-step window)")
    return SampleSet.concat(sets)


__all__ = ["IngestResult", "class_balance", "dataset_pixels", "describe_datasets", "ingest", "list_datasets",
           "load_datasets"]
