"""A small static STAC catalogue over generated cloud-optimised GeoTIFFs, for offline tests and for
trying ``cropmeta fetch --source stac`` without a network.

The items copy the real collections' conventions (asset keys, band names, dtypes, nodata, scale and
offset): Planetary Computer ``sentinel-2-l2a`` (assets ``B01`` … ``B12``, ``B8A``, ``SCL``; uint16 DN,
nodata 0, the ``BOA_ADD_OFFSET`` of processing baseline ≥ 04.00 stated only through
``s2:processing_baseline``) or Earth Search ``sentinel-2-c1-l2a`` (assets ``coastal`` … ``swir22``,
``scl``; ``raster:bands`` scale 0.0001, offset −0.1, nodata 0; every other item flagged
``earthsearch:boa_offset_applied``, its DNs already without the offset); ``sentinel-1-rtc`` (``vv``/``vh``
linear power, float32, nodata −32768); ``cop-dem-glo-30`` (``data``, float32 metres, 1 arc-second);
and an ERA5 collection of monthly means (``temperature_2m`` K, ``total_precipitation`` m/day, 0.1°).

Every pixel value is a closed-form function of (item, band, row, col), so tests can compute what a
correct fetch must write (:func:`s2_dn`, :func:`s1_linear`, :func:`dem_plane`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pystac
from rasterio.transform import from_origin

from cropmeta.fetch.catalogue import add_raster_asset, raster_item, save_catalogue, utc_midnight, write_cog
from cropmeta.fetch.common import export_windows
from cropmeta.fetch.stac import PRESETS

#: SCL class written where a test puts a cloud (9 = cloud, high probability)
SCL_CLOUD = 9
#: SCL class of clear vegetation
SCL_VEGETATION = 4
S2_RES = 8.983152841195215e-05  # ~10 m
SCL_RES = 2 * S2_RES  # 20 m, as in L2A
DEM_RES = 1.0 / 3600  # 1 arc-second
ERA5_RES = 0.1


@dataclass
class CatalogueSpec:
    """What :func:`write_static_catalogue` wrote (enough for a test to predict the fetched values)."""

    root: Path
    href: Path  # catalog.json
    bbox: tuple[float, float, float, float]
    style: str
    s2_items: list[dict] = field(default_factory=list)  # id, datetime, window, offset, cloud (bool)
    s1_items: list[dict] = field(default_factory=list)
    dem_gradient: tuple[float, float] = (0.0, 0.0)  # (dz/dx east, dz/dy north) in metres per metre
    era5: dict = field(default_factory=dict)  # month start (date) → (temperature K, precip m/day)
    grids: dict = field(default_factory=dict)  # "s2" / "scl" / "dem" → rasterio Affine of the COGs
    dem_origin: tuple[float, float] = (0.0, 0.0)  # (lon, lat) where the DEM plane is 500 m

    def pixel(self, grid: str, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of the catalogue raster ``grid`` holding (lon, lat)."""
        tr = self.grids[grid]
        return (np.floor((np.asarray(lat) - tr.f) / tr.e).astype(int),
                np.floor((np.asarray(lon) - tr.c) / tr.a).astype(int))


def s2_dn(item_no: int, band_no: int, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Digital number of S2 item ``item_no``, band ``band_no`` at grid (row, col): 1100 … 5000."""
    return (1100 + 150 * band_no + 37 * item_no + 3 * row + col).astype(np.uint16)


def s1_linear(item_no: int, pol_no: int, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Linear backscatter of S1 item ``item_no``, polarisation 0 (vv) or 1 (vh)."""
    base = 0.08 if pol_no == 0 else 0.015
    return (base + 0.004 * item_no + 0.0005 * row + 0.0002 * col).astype(np.float32)


def dem_plane(lon: np.ndarray, lat: np.ndarray, origin: tuple[float, float], gradient: tuple[float, float]) -> np.ndarray:
    """Elevation (m) of a tilted plane: 500 m at ``origin`` rising ``gradient`` (m/m east, m/m north)."""
    lon0, lat0 = origin
    m_lat = 111_132.954 - 559.822 * np.cos(2 * np.radians(lat0))
    m_lon = 111_412.84 * np.cos(np.radians(lat0)) - 93.5 * np.cos(3 * np.radians(lat0))
    return (500.0 + gradient[0] * (lon - lon0) * m_lon + gradient[1] * (lat - lat0) * m_lat).astype(np.float32)


def _grid(bbox, res, margin: int = 2):
    x0, y0, x1, y1 = bbox
    x0, y1 = np.floor(x0 / res) * res - margin * res, np.ceil(y1 / res) * res + margin * res
    w = int(np.ceil((x1 - x0) / res)) + margin
    h = int(np.ceil((y1 - y0) / res)) + margin
    return from_origin(x0, y1, res, res), h, w


def write_static_catalogue(root: str | Path, bbox: tuple[float, float, float, float], start: str | dt.date,
                           t: int = 12, style: str = "planetary-computer", s2_per_window: int = 2,
                           cloud_fraction: float = 0.5) -> CatalogueSpec:
    """Write a static catalogue covering ``bbox`` for ``t`` 30-day windows from ``start``.

    - Sentinel-2 L2A: ``s2_per_window`` items per window; the first of each window is cloudy (SCL 9)
      over the western ``cloud_fraction`` of the grid, the others clear; items alternate between
      processing baselines 04.00 (DN offset +1000) and 02.14 (no offset).
    - Sentinel-1 RTC: one item per window (vv, vh linear).
    - Copernicus DEM: one item, a tilted plane (see :attr:`CatalogueSpec.dem_gradient`).
    - ERA5: one item per calendar month touching the windows (monthly means).
    """
    root = Path(root).resolve()
    preset = PRESETS[style]
    spec = CatalogueSpec(root, root / "catalog.json", tuple(bbox), style)
    windows = export_windows(start, t)
    cat = pystac.Catalog("cropmeta-test", f"offline test catalogue ({style} conventions)")
    cols = {}

    def collection(kind: str) -> pystac.Collection:
        name = preset.collections[kind]
        if name not in cols:
            ext = pystac.Extent(pystac.SpatialExtent([list(bbox)]),
                                pystac.TemporalExtent([[utc_midnight(windows[0][0]), utc_midnight(windows[-1][1])]]))
            cols[name] = pystac.Collection(name, f"test {name}", ext)
            cat.add_child(cols[name])
        return cols[name]

    # ---- Sentinel-2 L2A
    tr10, h10, w10 = _grid(bbox, S2_RES)
    tr20, h20, w20 = _grid(bbox, SCL_RES)
    r10, c10 = np.mgrid[0:h10, 0:w10]
    r20, c20 = np.mgrid[0:h20, 0:w20]
    spec.grids.update(s2=tr10, scl=tr20)
    s2_keys = preset.s2_assets
    n = 0
    for k, (w0, _w1) in enumerate(windows):
        for j in range(s2_per_window):
            when = dt.datetime.combine(w0 + dt.timedelta(days=3 + 11 * j), dt.time(10, 30), dt.timezone.utc)
            baseline = "04.00" if n % 2 == 0 else "02.14"
            cloudy = j == 0 and s2_per_window > 1
            iid = f"S2_TEST_{when:%Y%m%d}_{j}"
            props = {"s2:processing_baseline": baseline, "platform": "sentinel-2a",
                     "eo:cloud_cover": 50.0 if cloudy else 0.0}
            if style == "earth-search":  # offset declared; odd items had it taken out of their DNs
                harmonised = n % 2 == 1
                props["earthsearch:boa_offset_applied"] = harmonised
                offset_dn, declared = (0 if harmonised else 1000), (0.0001, -0.1)
            else:  # Planetary Computer: offset implied by the processing baseline only
                offset_dn, declared = (1000 if baseline == "04.00" else 0), (None, None)
            item = raster_item(iid, when, tr10, (h10, w10), props)
            d = root / "sentinel-2-l2a" / iid
            for b, key in enumerate(s2_keys):
                if key is None:
                    continue
                data = s2_dn(n, b, r10, c10) + offset_dn
                data[0, 0] = 0  # one nodata pixel in the corner of every band
                add_raster_asset(item, key, d / f"{key}.tif", tr10, (h10, w10), "uint16", 0, *declared)
                write_cog(d / f"{key}.tif", data, tr10, "uint16", 0)
            scl = np.full((h20, w20), SCL_VEGETATION, dtype=np.uint8)
            if cloudy:
                lon20 = tr20.c + (c20 + 0.5) * tr20.a
                scl[lon20 < bbox[0] + cloud_fraction * (bbox[2] - bbox[0])] = SCL_CLOUD
            scl_key = preset.s2_scl
            add_raster_asset(item, scl_key, d / f"{scl_key}.tif", tr20, (h20, w20), "uint8", 0)
            write_cog(d / f"{scl_key}.tif", scl, tr20, "uint8", 0)
            collection("s2").add_item(item)
            spec.s2_items.append({"id": iid, "n": n, "datetime": when, "window": k, "cloudy": cloudy,
                                  "offset_dn": offset_dn})
            n += 1

    # ---- Sentinel-1 RTC
    for k, (w0, _w1) in enumerate(windows):
        when = dt.datetime.combine(w0 + dt.timedelta(days=9), dt.time(5, 50), dt.timezone.utc)
        iid = f"S1_TEST_{when:%Y%m%d}"
        item = raster_item(iid, when, tr10, (h10, w10), {"sar:polarizations": ["VV", "VH"], "sat:orbit_state": "descending"})
        d = root / "sentinel-1-rtc" / iid
        for p, key in enumerate(preset.s1_assets):
            data = s1_linear(k, p, r10, c10)
            data[0, 1] = -32768
            add_raster_asset(item, key, d / f"{key}.tif", tr10, (h10, w10), "float32", -32768)
            write_cog(d / f"{key}.tif", data, tr10, "float32", -32768)
        collection("s1").add_item(item)
        spec.s1_items.append({"id": iid, "n": k, "datetime": when, "window": k})

    # ---- Copernicus DEM (a plane: 3 % east, 4 % north)
    trd, hd, wd = _grid(bbox, DEM_RES, margin=4)
    rd, cd = np.mgrid[0:hd, 0:wd]
    grad = (0.03, 0.04)
    lon_c, lat_c = trd.c + (cd + 0.5) * trd.a, trd.f + (rd + 0.5) * trd.e
    centre = ((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
    dem = dem_plane(lon_c, lat_c, centre, grad)
    when = dt.datetime(2021, 4, 22, tzinfo=dt.timezone.utc)
    item = raster_item("Copernicus_DSM_COG_10_TEST_DEM", when, trd, (hd, wd), {"gsd": 30})
    path = root / "cop-dem-glo-30" / "dem.tif"
    add_raster_asset(item, preset.dem_asset, path, trd, (hd, wd), "float32", -32767.0, unit="metre")
    write_cog(path, dem, trd, "float32", -32767.0)
    collection("dem").add_item(item)
    spec.dem_gradient = grad
    spec.dem_origin = centre
    spec.grids["dem"] = trd

    # ---- ERA5 monthly means (0.1°)
    tre, he, we = _grid(bbox, ERA5_RES, margin=1)
    month = dt.date(windows[0][0].year, windows[0][0].month, 1)
    while month < windows[-1][1]:
        temp = 290.0 + month.month * 0.5
        precip = 0.001 * month.month
        iid = f"ERA5_TEST_{month:%Y%m}"
        item = raster_item(iid, dt.datetime.combine(month, dt.time(), dt.timezone.utc), tre, (he, we), {})
        d = root / "era5" / iid
        t_key, p_key = preset.era5_assets
        add_raster_asset(item, t_key, d / f"{t_key}.tif", tre, (he, we), "float32", None, unit="K")
        write_cog(d / f"{t_key}.tif", np.full((he, we), temp, np.float32), tre, "float32", None)
        add_raster_asset(item, p_key, d / f"{p_key}.tif", tre, (he, we), "float32", None, unit="m/day")
        write_cog(d / f"{p_key}.tif", np.full((he, we), precip, np.float32), tre, "float32", None)
        collection("era5").add_item(item)
        spec.era5[month] = (temp, precip)
        month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)

    save_catalogue(cat, root)
    return spec


__all__ = ["CatalogueSpec", "dem_plane", "s1_linear", "s2_dn", "write_static_catalogue"]
