"""Named regions (every country, from Natural Earth 50m, public domain), custom polygons and boxes.

The committed geometry ``data/regions.geojson`` is derived from ``ne_50m_admin_0_countries.shp``
(the exact file CropHarvest uses) by :func:`build_region_file`: ``NAME_EN`` → ``name``, simplified
with a 0.01° tolerance (topology preserved), multi-polygons kept whole.

A region's *centre* (used for the task embedding) is the centroid of its geometry computed in an
equal-area projection; if that falls outside the region (e.g. a crescent-shaped country) the
representative point is used instead.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from cropmeta.errors import InputError
from cropmeta.crops import latlon_to_xyz

EQUAL_AREA_CRS = "ESRI:54034"  # World Cylindrical Equal Area
SIMPLIFY_DEG = 0.01


def data_dir() -> Path:
    """The shipped ``data/`` folder (``$CROPMETA_DATA`` overrides)."""
    env = os.environ.get("CROPMETA_DATA")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def region_file() -> Path:
    return data_dir() / "regions.geojson"


@dataclass(frozen=True)
class Region:
    name: str
    geometry: BaseGeometry  # EPSG:4326
    iso_a3: str | None = None
    continent: str | None = None

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return tuple(float(v) for v in self.geometry.bounds)  # type: ignore[return-value]

    @property
    def slug(self) -> str:
        return slugify(self.name)

    @cached_property
    def centre(self) -> tuple[float, float]:
        """(lat, lon) of the equal-area centroid (representative point if outside)."""
        g = gpd.GeoSeries([self.geometry], crs="EPSG:4326")
        c = g.to_crs(EQUAL_AREA_CRS).centroid.to_crs("EPSG:4326").iloc[0]
        if not self.geometry.contains(c):
            c = self.geometry.representative_point()
        return float(c.y), float(c.x)

    @property
    def xyz(self) -> np.ndarray:
        lat, lon = self.centre
        return latlon_to_xyz(lat, lon)

    def contains(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        pts = gpd.points_from_xy(np.atleast_1d(lon), np.atleast_1d(lat), crs="EPSG:4326")
        return np.asarray(pts.intersects(self.geometry))


def slugify(name: str) -> str:
    """``"São Tomé and Príncipe"`` → ``"sao_tome_and_principe"``: lower case, accents dropped (a
    name matches with or without them), every other non-alphanumeric character → ``_``."""
    import unicodedata

    plain = "".join(ch for ch in unicodedata.normalize("NFKD", name.strip().lower()) if not unicodedata.combining(ch))
    return "".join(ch if ch.isalnum() else "_" for ch in plain).strip("_")


def build_region_file(shapefile: str | Path, out: str | Path | None = None) -> Path:
    """Derive ``data/regions.geojson`` from Natural Earth ``ne_50m_admin_0_countries.shp``."""
    from cropmeta._fs import atomic_path

    shapefile = Path(shapefile)
    # Natural Earth's DBF holds UTF-8 but ships no .cpg, so GDAL would decode it as ISO-8859-1
    # ("Ã…land Islands"); without a .cpg saying otherwise, read it as UTF-8
    has_cpg = shapefile.with_suffix(".cpg").exists() or shapefile.with_suffix(".CPG").exists()
    gdf = gpd.read_file(shapefile, **({} if has_cpg else {"encoding": "utf-8"}))
    if gdf.crs is None:  # Natural Earth ships no .prj: the coordinates are WGS84 lon/lat
        gdf = gdf.set_crs("EPSG:4326")
    gdf = gdf[["NAME_EN", "ADM0_A3", "CONTINENT", "geometry"]].rename(
        columns={"NAME_EN": "name", "ADM0_A3": "iso_a3", "CONTINENT": "continent"}
    )
    gdf["geometry"] = gdf.geometry.simplify(SIMPLIFY_DEG, preserve_topology=True).make_valid()
    gdf = gdf[~gdf.geometry.is_empty].sort_values("name").reset_index(drop=True)
    out = Path(out or region_file())
    with atomic_path(out, suffix=".geojson") as tmp:
        gdf.to_file(tmp, driver="GeoJSON", layer="regions", COORDINATE_PRECISION=4)
    return out


@lru_cache(maxsize=1)
def _regions() -> gpd.GeoDataFrame:
    path = region_file()
    if not path.exists():
        raise InputError(f"{path}: region geometry missing (rebuild with `python data/make_regions.py`)")
    return gpd.read_file(path)


def region_names() -> list[str]:
    return sorted(_regions()["name"].tolist())


def list_regions() -> gpd.GeoDataFrame:
    return _regions().copy()


def get_region(name: str) -> Region:
    """A country by name (case-insensitive; ``kenya``, ``South Africa``, ``south_africa``, ISO A3)."""
    return _get_region(slugify(name), name)


@lru_cache(maxsize=512)
def _get_region(key: str, name: str) -> Region:
    gdf = _regions()
    hit = gdf[(gdf["name"].map(slugify) == key) | (gdf["iso_a3"].astype(str).str.lower() == key)]
    if hit.empty:
        close = difflib.get_close_matches(name.strip().title(), gdf["name"].tolist(), n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `cropmeta regions` lists them"
        raise InputError(f"unknown region {name!r}{hint}")
    row = hit.iloc[0]
    return Region(str(row["name"]), row.geometry, str(row["iso_a3"]), str(row["continent"]))


def region_from_file(path: str | Path, name: str | None = None) -> Region:
    """Any polygon file geopandas reads; reprojected to EPSG:4326; all features dissolved."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: region file not found")
    try:
        gdf = gpd.read_file(path)
    except Exception as e:  # noqa: BLE001 - any reader failure is the file's fault
        raise InputError(f"{path}: cannot read region file ({e})") from e
    if gdf.empty or gdf.geometry.is_empty.all():
        raise InputError(f"{path}: region file has no geometry")
    if gdf.crs is None:
        raise InputError(f"{path}: region file has no CRS; add one (e.g. a .prj) or use EPSG:4326 GeoJSON")
    gdf = gdf.to_crs("EPSG:4326")
    geom = gdf.geometry.union_all()
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise InputError(f"{path}: region must be polygon(s), got {geom.geom_type}")
    return Region(name or path.stem, geom)


def region_from_bbox(bbox: tuple[float, float, float, float] | str, name: str | None = None) -> Region:
    """``(min_lon, min_lat, max_lon, max_lat)`` or the string ``"min_lon,min_lat,max_lon,max_lat"``."""
    if isinstance(bbox, str):
        try:
            bbox = tuple(float(v) for v in bbox.split(","))  # type: ignore[assignment]
        except ValueError as e:
            raise InputError(f"--bbox {bbox!r}: expected four numbers min_lon,min_lat,max_lon,max_lat") from e
    if len(bbox) != 4:
        raise InputError(f"--bbox: expected four numbers min_lon,min_lat,max_lon,max_lat, got {len(bbox)}")
    x0, y0, x1, y1 = bbox
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise InputError(f"--bbox {bbox}: not a valid lon/lat box (min < max, lon in ±180, lat in ±90)")
    return Region(name or f"bbox_{x0:g}_{y0:g}_{x1:g}_{y1:g}", box(x0, y0, x1, y1))


def resolve_region(name: str | None = None, region_file: str | Path | None = None,
                   bbox: str | tuple | None = None) -> Region:
    """One of ``--region``, ``--region-file`` or ``--bbox`` → :class:`Region`."""
    given = [v is not None for v in (name, region_file, bbox)]
    if sum(given) != 1:
        raise InputError("give exactly one of --region, --region-file or --bbox")
    if name is not None:
        return get_region(name)
    if region_file is not None:
        return region_from_file(region_file)
    return region_from_bbox(bbox)  # type: ignore[arg-type]
