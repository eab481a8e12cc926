"""Labelled points × Earth-Engine tiles → samples.

Each labelled point takes the pixel containing it (points are reprojected to the raster's CRS, so
tiles in any CRS work). Optionally (``polygons="pixels"``) a polygon label takes every pixel whose
centre lies inside its footprint. Pixels are read, and missing values filled, by the one
Earth-Engine reader (:class:`cropmeta.io.eetiff.EETiffReader`, :func:`cropmeta.io.eetiff.fill_pixels`:
per-band mean over time; a missing slope takes the tile's mean slope; any other all-NaN band is a
:class:`DataError` naming the tile and band), the reader map export uses. Everything is vectorised
per tile: one windowed read, fancy indexing, no per-pixel Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import rasterio.windows
from pyproj import Transformer
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from shapely.geometry import box

from cropmeta.errors import DataError, InputError
from cropmeta.io.eetiff import EETiffInfo, EETiffReader, ee_tiff_info, fill_pixels
from cropmeta.io.store import META_COLUMNS, SampleSet, make_meta
from cropmeta.schema import BANDS, N_BANDS

#: metadata columns kept besides :data:`META_COLUMNS`
EXTRA_COLUMNS = ["tile", "pixel_row", "pixel_col", "class_value", "source_file", "field_id"]
POLYGON_MODES = ("centroid", "pixels")


@lru_cache(maxsize=64)
def _transformer(crs_wkt: str) -> Transformer:
    return Transformer.from_crs("EPSG:4326", crs_wkt, always_xy=True)


def index_tiles(paths: Iterable[str | Path], start_date=None,
                on_error: Callable[[Path, Exception], None] | None = None) -> list[EETiffInfo]:
    """Validated headers of tiles (count, band descriptions, CRS, start date). A tile that fails is
    passed to ``on_error`` (or its :class:`InputError` raised when ``on_error`` is None)."""
    infos = []
    for p in paths:
        p = Path(p)
        try:
            info = ee_tiff_info(p, start_date=start_date)
            if info.crs is None:
                raise InputError(f"{p}: the raster has no coordinate reference system, so labels cannot be "
                                 "placed on it; re-export it with a CRS (e.g. EPSG:4326)")
            if info.start is None:
                raise InputError(
                    f"{p}: cannot tell the export's start date from the file name (expected "
                    "'{index}-{dataset}_{start}_{end}.tif' or '…_dates={start}_{end}_all.tif'); "
                    "give it with start_date / --start-date YYYY-MM-DD")
            infos.append(info)
        except InputError as e:
            if on_error is None:
                raise
            on_error(p, e)
    return infos


def points_in_tile(info: EETiffInfo, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inside mask, row, col) of EPSG:4326 points on a tile's grid (vectorised)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if info.crs.to_epsg() == 4326:
        x, y = lon, lat
    else:
        x, y = _transformer(info.crs.to_wkt()).transform(lon, lat)
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    inv = ~info.transform
    col = np.floor(inv.a * x + inv.b * y + inv.c)
    row = np.floor(inv.d * x + inv.e * y + inv.f)
    ok = np.isfinite(col) & np.isfinite(row) & (row >= 0) & (row < info.height) & (col >= 0) & (col < info.width)
    return ok, np.where(ok, row, -1).astype(np.int64), np.where(ok, col, -1).astype(np.int64)


def locate_points(labels: gpd.GeoDataFrame, infos: list[EETiffInfo], root: Path | None = None) -> np.ndarray:
    """Index into ``infos`` of the tile holding each label's point (-1: none).

    A label's ``tile`` column (path relative to ``root``, as in a simulated world's labels) is used
    when it names an indexed tile that holds the point; otherwise the first tile holding it wins.
    """
    n = len(labels)
    where = np.full(n, -1, dtype=np.int64)
    lon, lat = labels["lon"].to_numpy(float), labels["lat"].to_numpy(float)
    if "tile" in labels.columns and root is not None and n:
        by_path = {info.path.resolve(): i for i, info in enumerate(infos)}
        tiles = labels["tile"].astype(object).where(labels["tile"].notna(), None)
        lookup = {t: (by_path.get((root / str(t)).resolve(), -1) if t else -1) for t in set(tiles)}
        named = np.array([lookup[t] for t in tiles], dtype=np.int64)
        for i in np.unique(named[named >= 0]):
            m = named == i
            ok, _, _ = points_in_tile(infos[i], lon[m], lat[m])
            idx = np.where(m)[0][ok]
            where[idx] = i
    todo = np.where(where < 0)[0]
    if len(todo) and infos:
        # candidate (point, tile) pairs from the tiles' EPSG:4326 boxes (spatial index), then the exact
        # pixel test in each tile's own CRS; the first tile (in the given order) holding a point wins
        boxes = gpd.GeoDataFrame({"tile": np.arange(len(infos))}, geometry=[box(*tile_bounds_4326(i)) for i in infos],
                                 crs="EPSG:4326")
        pts = gpd.GeoDataFrame({"row": todo}, geometry=gpd.points_from_xy(lon[todo], lat[todo]), crs="EPSG:4326")
        pairs = gpd.sjoin(pts, boxes, how="inner", predicate="intersects")[["row", "tile"]]
        for i, grp in pairs.sort_values(["tile", "row"]).groupby("tile", sort=True):
            rows = grp["row"].to_numpy()
            rows = rows[where[rows] < 0]
            if len(rows):
                ok, _, _ = points_in_tile(infos[int(i)], lon[rows], lat[rows])
                where[rows[ok]] = int(i)
    return where


def tile_bounds_4326(info: EETiffInfo) -> tuple[float, float, float, float]:
    """A tile's bounds in EPSG:4326 (densified edges, so reprojected tiles are fully covered)."""
    if info.crs.to_epsg() == 4326:
        return info.bounds
    return tuple(transform_bounds(info.crs, "EPSG:4326", *info.bounds, densify_pts=21))


@dataclass
class TileSamples:
    """Samples taken from one tile (before de-duplication), and what was filled."""

    x: np.ndarray  # [n, T, 18] float32, gaps filled
    meta: pd.DataFrame
    nan_counts: np.ndarray  # [n, 18] int32: values that were missing (and filled) per sample and band
    label_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # rows of `labels` sampled


def _pixel_labels(info: EETiffInfo, labels: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label row, pixel row, pixel col) of every pixel whose centre lies in a label's footprint;
    labels without footprint (points), or whose footprint holds no pixel centre, take the pixel
    holding their point."""
    fp = labels["footprint"] if "footprint" in labels.columns else gpd.GeoSeries([None] * len(labels))
    has_fp = fp.notna().to_numpy() & ~gpd.GeoSeries(fp).is_empty.to_numpy()
    out_l, out_r, out_c = [], [], []
    if has_fp.any():
        shapes = gpd.GeoSeries(fp[has_fp].to_numpy(), crs="EPSG:4326").to_crs(info.crs)
        inv = ~info.transform
        for k, geom in zip(np.where(has_fp)[0], shapes):
            # rasterize each footprint alone, in its own bounding window (overlapping polygons each
            # keep their pixels; no full-tile mask per polygon)
            x0, y0, x1, y1 = geom.bounds
            corners = np.array([inv * (x, y) for x in (x0, x1) for y in (y0, y1)])  # (col, row)
            c0 = max(int(np.floor(corners[:, 0].min())) - 1, 0)
            c1 = min(int(np.ceil(corners[:, 0].max())) + 1, info.width)
            r0 = max(int(np.floor(corners[:, 1].min())) - 1, 0)
            r1 = min(int(np.ceil(corners[:, 1].max())) + 1, info.height)
            if c1 <= c0 or r1 <= r0:
                continue
            win = Window(c0, r0, c1 - c0, r1 - r0)
            mask = rasterio.features.geometry_mask([geom], out_shape=(r1 - r0, c1 - c0),
                                                   transform=rasterio.windows.transform(win, info.transform),
                                                   invert=True)
            r, c = np.nonzero(mask)
            out_l.append(np.full(len(r), k))
            out_r.append(r + r0)
            out_c.append(c + c0)
    covered = np.zeros(len(labels), dtype=bool)
    if out_l:
        covered[np.unique(np.concatenate(out_l))] = True
    rest = ~covered
    if rest.any():
        ok, r, c = points_in_tile(info, labels["lon"].to_numpy(float)[rest], labels["lat"].to_numpy(float)[rest])
        idx = np.where(rest)[0][ok]
        out_l.append(idx)
        out_r.append(r[ok])
        out_c.append(c[ok])
    if not out_l:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(out_l), np.concatenate(out_r), np.concatenate(out_c)


def sample_tile(info: EETiffInfo, labels: gpd.GeoDataFrame, polygons: str = "centroid",
                tile_name: str | None = None) -> TileSamples:
    """Sample one tile at its labels' pixels.

    ``labels``: rows from :func:`cropmeta.io.labels.read_labels` (EPSG:4326 points; ``footprint``
    used with ``polygons="pixels"``). Labels whose pixel is not in the tile are skipped (callers
    locate points first with :func:`locate_points`).
    """
    if polygons not in POLYGON_MODES:
        raise InputError(f"polygons={polygons!r}: expected one of {POLYGON_MODES}")
    labels = labels.reset_index(drop=True)
    if polygons == "pixels":
        lab, rows, cols = _pixel_labels(info, labels)
    else:
        ok, rows, cols = points_in_tile(info, labels["lon"].to_numpy(float), labels["lat"].to_numpy(float))
        lab, rows, cols = np.where(ok)[0], rows[ok], cols[ok]
    t = info.t
    if len(lab) == 0:
        return TileSamples(np.zeros((0, t, N_BANDS), np.float32), pd.DataFrame(columns=list(META_COLUMNS)),
                           np.zeros((0, N_BANDS), np.int32))
    lab = np.asarray(lab, dtype=np.int64)
    reader = EETiffReader.from_info(info)
    x = reader.read_pixels(rows, cols)  # [n,T,18], NaN kept
    nan_counts = np.isnan(x).sum(axis=1).astype(np.int32)  # [n, 18]
    x, _ = fill_pixels(x, reader.slope_fill, source=str(info.path))  # the reader's one rule

    meta = labels.iloc[lab].reset_index(drop=True)
    meta = pd.DataFrame(meta.drop(columns=[c for c in ("geometry", "footprint") if c in meta.columns]))
    if polygons == "pixels":
        # pixel centres become the sample locations; ids gain the pixel
        xs = info.transform.c + info.transform.a * (cols + 0.5) + info.transform.b * (rows + 0.5)
        ys = info.transform.f + info.transform.d * (cols + 0.5) + info.transform.e * (rows + 0.5)
        if info.crs.to_epsg() != 4326:
            back = Transformer.from_crs(info.crs, "EPSG:4326", always_xy=True)
            xs, ys = back.transform(xs, ys)
        multi = pd.Series(lab).duplicated(keep=False).to_numpy() | (labels["footprint"].notna().to_numpy()[lab]
                                                                    if "footprint" in labels.columns else False)
        meta["lon"] = np.where(multi, xs, meta["lon"])
        meta["lat"] = np.where(multi, ys, meta["lat"])
        stem = tile_name or info.path.stem
        # the pixels of one polygon are one field (unless the labels name the fields themselves)
        fid = meta["field_id"].astype(object) if "field_id" in meta.columns else pd.Series([None] * len(meta))
        meta["field_id"] = [f if isinstance(f, str) else (s if m else None)
                            for f, s, m in zip(fid, meta["sample_id"], multi)]
        meta["sample_id"] = [f"{s}@{stem}:{r}_{c}" if m else s
                             for s, r, c, m in zip(meta["sample_id"], rows, cols, multi)]
    meta["tile"] = tile_name or str(info.path)
    meta["pixel_row"] = rows.astype(np.int32)
    meta["pixel_col"] = cols.astype(np.int32)
    meta["start_date"] = info.start.isoformat()
    return TileSamples(x, meta, nan_counts, np.unique(lab))


def finalize_meta(meta: pd.DataFrame, region: str | None = None) -> gpd.GeoDataFrame:
    """Keep :data:`META_COLUMNS` + :data:`EXTRA_COLUMNS`, set ``region`` when given, points geometry."""
    meta = meta.copy()
    if region is not None:
        meta["region"] = region
    for c in META_COLUMNS:
        if c not in meta.columns:
            meta[c] = None
    cols = list(META_COLUMNS) + [c for c in EXTRA_COLUMNS if c in meta.columns]
    return make_meta(meta[cols])


def sample_points(labels: gpd.GeoDataFrame, tiles: Iterable[str | Path], start_date=None, polygons: str = "centroid",
                  root: Path | None = None, region: str | None = None) -> tuple[SampleSet, dict]:
    """Labels × tiles → (:class:`SampleSet`, report) in one call (no caching; see
    :func:`cropmeta.ingest.ingest` for the resumable, cached version).

    Points outside every raster are dropped and reported (``report["outside_raster"]``); when no
    label lies on any raster a :class:`DataError` names the label source and the tiles' extent.
    """
    infos = index_tiles(tiles, start_date=start_date)
    if not infos:
        raise InputError("no tiles to sample")
    check_same_t(infos)
    labels = labels.reset_index(drop=True)
    where = locate_points(labels, infos, root=root)
    if polygons != "pixels" and (where < 0).all():
        raise no_label_on_raster(labels, infos)
    parts = []
    for i, info in enumerate(infos):
        # a polygon may cover pixels of several tiles: in "pixels" mode every tile sees every label
        rows = np.where(where == i)[0] if polygons != "pixels" else np.arange(len(labels))
        if len(rows):
            part = sample_tile(info, labels.iloc[rows], polygons=polygons)
            part.label_rows = rows[part.label_rows]
            parts.append(part)
    sampled = np.zeros(len(labels), dtype=bool)
    for p in parts:
        sampled[p.label_rows] = True
    if not sampled.any():
        raise no_label_on_raster(labels, infos)
    x = np.concatenate([p.x for p in parts if len(p.x)])
    nan_counts = np.concatenate([p.nan_counts for p in parts if len(p.x)])
    meta = finalize_meta(pd.concat([p.meta for p in parts if len(p.meta)], ignore_index=True), region)
    samples = SampleSet(x, meta)
    report = {
        "labels": int(len(labels)),
        "samples": int(len(samples)),
        "outside_raster": int((~sampled).sum()),
        "outside_raster_ids": labels.loc[~sampled, "sample_id"].astype(str).head(20).tolist(),
        **missing_report(nan_counts, samples.t),
    }
    return samples, report


def missing_report(nan_counts: np.ndarray, t: int) -> dict:
    """Missing values filled, from per-sample counts ``[n, 18]``: per band, samples with any gap,
    samples whose slope was all missing (filled with the tile mean)."""
    per_band = nan_counts.sum(axis=0)
    return {
        "missing_values": {b: int(per_band[i]) for i, b in enumerate(BANDS) if per_band[i]},
        "samples_with_gaps": int((nan_counts.sum(axis=1) > 0).sum()),
        "slope_filled_with_tile_mean": int((nan_counts[:, BANDS.index("slope")] >= t).sum()) if t else 0,
    }


def check_same_t(infos: list[EETiffInfo]) -> int:
    ts = {}
    for info in infos:
        ts.setdefault(info.t, info.path)
    if len(ts) > 1:
        desc = ", ".join(f"T={t} ({p})" for t, p in sorted(ts.items()))
        raise InputError(f"tiles have different numbers of time steps: {desc}; ingest them as separate datasets")
    return next(iter(ts))


def no_label_on_raster(labels: gpd.GeoDataFrame, infos: list[EETiffInfo]) -> DataError:
    src = labels.attrs.get("source", "labels")
    lon, lat = labels["lon"], labels["lat"]
    bounds = []
    for info in infos[:3]:
        b = gpd.GeoSeries.from_xy([info.bounds[0], info.bounds[2]], [info.bounds[1], info.bounds[3]],
                                  crs=info.crs).to_crs("EPSG:4326")
        bounds.append(f"{info.path.name}: lon {b.x.min():.4f}..{b.x.max():.4f}, lat {b.y.min():.4f}..{b.y.max():.4f}")
    more = f" (+{len(infos) - 3} more tiles)" if len(infos) > 3 else ""
    return DataError(
        f"{src}: none of the {len(labels)} labels (lon {lon.min():.4f}..{lon.max():.4f}, lat {lat.min():.4f}.."
        f"{lat.max():.4f}) lies on any raster: {'; '.join(bounds)}{more}"
    )


def country_of(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Name of the country (from :mod:`cropmeta.regions`) holding each point; None outside all."""
    from cropmeta.regions import list_regions

    regions = list_regions()[["name", "geometry"]]
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(np.atleast_1d(lon), np.atleast_1d(lat)), crs="EPSG:4326")
    hit = gpd.sjoin(pts, regions.to_crs("EPSG:4326"), how="left", predicate="intersects")
    hit = hit[~hit.index.duplicated(keep="first")]
    return hit["name"].astype(object).where(hit["name"].notna(), None).reindex(pts.index).to_numpy()
