"""Writing small static STAC catalogues of COGs (pystac, projection + raster extensions): the offline
test catalogue (:mod:`cropmeta.fetch.testing`) and a local ERA5 monthly catalogue built from a
Copernicus Climate Data Store download (:func:`era5_catalogue`), which the STAC path needs because
neither public catalogue serves ERA5 as rasters.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import rasterio
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from rasterio.transform import from_origin

from cropmeta.errors import InputError

#: CDS short names of ERA5 / ERA5-Land monthly means → cropmeta band names (units: K, m/day)
ERA5_VARIABLES = {"t2m": "temperature_2m", "tp": "total_precipitation"}
ERA5_COLLECTION = "era5-monthly"


def write_cog(path: Path, data: np.ndarray, transform, dtype: str, nodata) -> None:
    """A one-band EPSG:4326 cloud-optimised GeoTIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = data.shape
    with rasterio.open(path, "w", driver="COG", height=h, width=w, count=1, dtype=dtype, crs="EPSG:4326",
                       transform=transform, nodata=nodata, compress="deflate", blocksize=256) as dst:
        dst.write(data.astype(dtype), 1)


def raster_item(item_id: str, when: dt.datetime, transform, shape, props: dict) -> pystac.Item:
    """An item whose footprint is the grid ``transform``/``shape`` (EPSG:4326)."""
    h, w = shape
    x0, y1 = transform.c, transform.f
    x1, y0 = x0 + w * transform.a, y1 + h * transform.e
    geom = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    item = pystac.Item(item_id, geom, [x0, y0, x1, y1], when, dict(props))
    ProjectionExtension.add_to(item)
    RasterExtension.add_to(item)
    return item


def add_raster_asset(item: pystac.Item, key: str, path: Path, transform, shape, dtype: str, nodata,
                     scale: float | None = None, offset: float | None = None, unit: str | None = None) -> None:
    """A COG asset with its grid (``proj:*``) and ``raster:bands`` (nodata, dtype, scale, offset, unit)."""
    asset = pystac.Asset(str(path), media_type=pystac.MediaType.COG, roles=["data"])
    item.add_asset(key, asset)
    proj = ProjectionExtension.ext(asset)
    proj.code = "EPSG:4326"
    proj.shape = list(shape)
    proj.transform = list(transform)[:6]
    band = RasterBand.create(nodata=nodata, data_type=dtype, scale=scale, offset=offset, unit=unit)
    RasterExtension.ext(asset).bands = [band]


def save_catalogue(cat: pystac.Catalog, root: Path) -> Path:
    """Save self-contained (relative links and asset hrefs) under ``root``; → ``catalog.json``."""
    cat.normalize_hrefs(str(root))
    cat.make_all_asset_hrefs_relative()
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return Path(root) / "catalog.json"


def era5_catalogue(netcdf: str | Path | list, out: str | Path) -> Path:
    """A local catalogue (collection ``era5-monthly``) of monthly ERA5 means from CDS netCDF files.

    Input: "ERA5-Land monthly averaged data from 1950 to present" (or ERA5 single levels, monthly
    averaged reanalysis) with variables ``2m_temperature`` (``t2m``, K) and ``total_precipitation``
    (``tp``, mean daily total in m, i.e. m/day), any area; 0–360° longitudes are wrapped to ±180°.
    Output: one item per month with assets ``temperature_2m`` and ``total_precipitation`` (COGs);
    use it with ``cropmeta fetch --catalog-for era5=OUT/catalog.json``.
    """
    import xarray as xr

    paths = [Path(p) for p in (netcdf if isinstance(netcdf, (list, tuple)) else [netcdf])]
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: ERA5 netCDF not found")
    try:
        ds = xr.merge([xr.open_dataset(p) for p in paths])
    except Exception as e:  # noqa: BLE001 - unreadable or inconsistent files: name them
        first = (str(e).strip().splitlines() or [""])[0]  # the reader's first line: the error stays one line
        raise InputError(f"{', '.join(map(str, paths))}: cannot read as ERA5 netCDF ({type(e).__name__}: {first})") from e
    missing = [v for v in ERA5_VARIABLES if v not in ds]
    if missing:
        raise InputError(f"{paths[0]}: ERA5 variable(s) {missing} missing (have {sorted(ds.data_vars)}); download "
                         "2m_temperature and total_precipitation")
    tdim = next((d for d in ("valid_time", "time") if d in ds.dims), None)
    if tdim is None or "latitude" not in ds.dims or "longitude" not in ds.dims:
        raise InputError(f"{paths[0]}: expected dimensions (valid_time|time, latitude, longitude), got {dict(ds.sizes)}")
    if float(ds.longitude.max()) > 180:
        ds = ds.assign_coords(longitude=((ds.longitude + 180) % 360) - 180)
    ds = ds.sortby("longitude").sortby("latitude", ascending=False)
    lon, lat = ds.longitude.values, ds.latitude.values
    if len(lon) < 2 or len(lat) < 2:
        raise InputError(f"{paths[0]}: the area holds fewer than 2 x 2 grid cells; download a larger area")
    dx, dy = float(np.diff(lon).mean()), float(-np.diff(lat).mean())
    transform = from_origin(float(lon[0]) - dx / 2, float(lat[0]) + dy / 2, dx, dy)
    root = Path(out).resolve()
    cat = pystac.Catalog("era5-monthly", "ERA5 monthly means (from CDS netCDF) for cropmeta fetch")
    times = [np.datetime64(t, "D").astype(object) for t in ds[tdim].values]
    extent = pystac.Extent(pystac.SpatialExtent([[float(lon.min() - dx / 2), float(lat.min() - dy / 2),
                                                   float(lon.max() + dx / 2), float(lat.max() + dy / 2)]]),
                           pystac.TemporalExtent([[utc_midnight(min(times)), utc_midnight(max(times))]]))
    col = pystac.Collection(ERA5_COLLECTION, "ERA5 monthly means: temperature_2m (K), total_precipitation (m/day)",
                            extent)
    cat.add_child(col)
    shape = (len(lat), len(lon))
    for i, day in enumerate(times):
        month = dt.date(day.year, day.month, 1)
        item = raster_item(f"era5-{month:%Y-%m}", utc_midnight(month), transform, shape, {})
        for var, band in ERA5_VARIABLES.items():
            path = root / "era5" / f"{month:%Y-%m}" / f"{band}.tif"
            write_cog(path, ds[var].isel({tdim: i}).values.astype(np.float32), transform, "float32", None)
            add_raster_asset(item, band, path, transform, shape, "float32", None,
                             unit="K" if var == "t2m" else "m/day")
        col.add_item(item)
    return save_catalogue(cat, root)


def utc_midnight(d: dt.date) -> dt.datetime:
    return dt.datetime.combine(d, dt.time(), dt.timezone.utc)


__all__ = ["ERA5_COLLECTION", "ERA5_VARIABLES", "add_raster_asset", "era5_catalogue", "raster_item",
           "save_catalogue", "utc_midnight", "write_cog"]
