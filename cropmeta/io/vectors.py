"""Reading one label file into a GeoDataFrame — vector formats (GeoJSON, GeoPackage, Shapefile, also
zipped, FlatGeobuf, GeoParquet) and CSV / plain Parquet tables with latitude/longitude columns — and
its geometries into EPSG:4326 points: points stay, multi-points explode, polygons become their
centroid computed in the local UTM zone (the polygon is kept as ``footprint``). What the rows mean
(classes, crops, splits) is :mod:`cropmeta.io.labels`'s."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from cropmeta.errors import InputError

#: vector formats read with geopandas; CSV/Parquet also accept plain lat/lon tables
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb")
TABLE_SUFFIXES = (".csv", ".txt", ".parquet", ".geoparquet")


def closest_columns(column: str, available: Iterable[str], n: int = 5) -> str:
    """A short, one-line account of ``available``: "did you mean 'X'?" when some column is close to
    ``column``, then at most ``n`` columns (the closest first) and a count of the rest."""
    import difflib

    avail = [str(c) for c in available if c != "geometry"]
    key = str(column).lower()
    lowered = {c.lower(): c for c in avail}
    close = [lowered[c] for c in difflib.get_close_matches(key, list(lowered), n=n, cutoff=0.6)]
    close += [c for c in avail if c not in close and (key in c.lower() or c.lower() in key)][: max(0, n - len(close))]
    shown = close + [c for c in avail if c not in close][: max(0, n - len(close))]
    rest = len(avail) - len(shown)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (f"{hint}available columns: {', '.join(shown)}" + (f" (and {rest} more)" if rest > 0 else "")
            if avail else "the table has no columns")


def missing_column(path: Path, what: str, column: str, available: Iterable[str]) -> InputError:
    """One line naming the file and the missing column, with the closest existing columns."""
    return InputError(f"{path}: {what} column {column!r} does not exist; {closest_columns(column, available)}")


def _points_from_table(path: Path, df: pd.DataFrame, lat_column: str, lon_column: str, crs) -> gpd.GeoDataFrame:
    for col, what in ((lat_column, "latitude"), (lon_column, "longitude")):
        if col not in df.columns:
            raise missing_column(path, what, col, df.columns)
    try:
        lat = pd.to_numeric(df[lat_column], errors="raise").astype(float)
        lon = pd.to_numeric(df[lon_column], errors="raise").astype(float)
    except (ValueError, TypeError) as e:
        raise InputError(f"{path}: columns {lat_column!r}/{lon_column!r} must be numbers ({e})") from e
    bad = lat.isna() | lon.isna()
    gdf = gpd.GeoDataFrame(df.drop(columns=[c for c in ("geometry",) if c in df.columns]),
                           geometry=gpd.points_from_xy(lon, lat), crs=crs or "EPSG:4326")
    gdf.loc[bad.to_numpy(), "geometry"] = None
    return gdf


def read_vector_frame(path: Path, layer, lat_column: str, lon_column: str, crs) -> gpd.GeoDataFrame:
    suffix = path.suffix.lower()
    if suffix == ".zip":  # a zipped shapefile (or other vector file): GDAL reads it in place
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return gpd.read_file(f"zip://{path.resolve()}", layer=layer)
        except Exception as e:  # noqa: BLE001 - any reader failure is the file's fault
            raise InputError(f"{path}: cannot read a label layer from the zip file ({type(e).__name__}: {e})") from e
    try:
        if suffix in (".csv", ".txt"):
            return _points_from_table(path, pd.read_csv(path), lat_column, lon_column, crs)
        if suffix in (".parquet", ".geoparquet"):
            try:
                return gpd.read_parquet(path)
            except ValueError:  # a plain (non-geo) parquet table: lat/lon columns
                return _points_from_table(path, pd.read_parquet(path), lat_column, lon_column, crs)
        if suffix in VECTOR_SUFFIXES:
            if layer is None and suffix == ".gpkg":
                layers = [str(row[0]) for row in pyogrio.list_layers(path)]
                if len(layers) > 1:
                    raise InputError(f"{path}: holds {len(layers)} layers ({', '.join(layers)}); "
                                     "name one with layer= / --layer")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return gpd.read_file(path, layer=layer)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is the file's fault
        raise InputError(f"{path}: cannot read label file ({type(e).__name__}: {e})") from e
    raise InputError(f"{path}: unsupported label file type {suffix!r} "
                     f"(use GeoJSON, GeoPackage, Shapefile (or a zipped one), GeoParquet or CSV with lat/lon)")


def utm_crs_of(lon: float, lat: float) -> str:
    """EPSG code of the UTM zone holding (lon, lat)."""
    zone = int(np.clip(np.floor((lon + 180.0) / 6.0), 0, 59)) + 1
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


def metric_centroids(geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    """Centroids of EPSG:4326 geometries computed in each geometry's local UTM zone (metric), returned
    in EPSG:4326. Vectorised per zone."""
    geoms = geoms.to_crs("EPSG:4326")
    out = gpd.GeoSeries([None] * len(geoms), index=geoms.index, crs="EPSG:4326")
    if len(geoms) == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # geographic-CRS centroid: only used for the zone
        rough = geoms.centroid
    zones = np.array([utm_crs_of(p.x, p.y) for p in rough])
    for zone in np.unique(zones):
        m = zones == zone
        out[m] = geoms[m].to_crs(str(zone)).centroid.to_crs("EPSG:4326")
    return out


def to_points(path: Path, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Points stay, multi-points explode, polygons → metric centroid (+ footprint); EPSG:4326."""
    types = set(gdf.geom_type.unique())
    bad = types - {"Point", "MultiPoint", "Polygon", "MultiPolygon"}
    if bad:
        raise InputError(f"{path}: geometry type(s) {sorted(bad)} are not labels; use points or polygons")
    gdf = gdf.to_crs("EPSG:4326")
    if "MultiPoint" in types:
        gdf = gdf.explode(index_parts=False)
    gdf = gdf.reset_index(drop=True)
    poly = gdf.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    footprint = gpd.GeoSeries([None] * len(gdf), crs="EPSG:4326")
    if poly.any():
        footprint[poly] = gdf.geometry[poly].make_valid()
        pts = gdf.geometry.copy()
        pts[poly] = metric_centroids(gdf.geometry[poly])
        gdf = gdf.set_geometry(pts)
    gdf["footprint"] = footprint
    return gdf
