"""The compositing rules of the STAC source, as pure functions of STAC items and pixel stacks
(``[n_items, n_assets, H, W]`` arrays as :func:`cropmeta.fetch.stac.load_stack` returns them):
scale/offset, cloud mask, per-window medians and means, slope. No I/O here.
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np

from cropmeta.errors import InputError
from cropmeta.schema import S1_BANDS, S2_BANDS_RAW

#: SCL classes kept as clear: 4 vegetation, 5 bare soil, 6 water, 7 unclassified, 11 snow/ice
#: (dropped: 0 nodata, 1 saturated, 2 dark/shadow, 3 cloud shadow, 8-9 cloud, 10 cirrus)
S2_SCL_CLEAR = (4, 5, 6, 7, 11)
#: L2A processing baseline from which DNs carry BOA_ADD_OFFSET = -1000 (reflectance = DN/1e4 - 0.1)
S2_OFFSET_BASELINE = "04.00"


def item_interval(item) -> tuple[dt.datetime, dt.datetime]:
    """(start, end) of an item: ``start_datetime``/``end_datetime`` or its ``datetime`` twice."""
    p = item.properties
    if item.datetime is not None and "start_datetime" not in p:
        return item.datetime, item.datetime
    from pystac.utils import str_to_datetime

    a = str_to_datetime(p["start_datetime"]) if "start_datetime" in p else item.datetime
    b = str_to_datetime(p["end_datetime"]) if "end_datetime" in p else a
    return a, b


def raster_band(item, key: str) -> dict:
    """The first ``raster:bands`` entry of an item's asset (``{}`` when it states none)."""
    asset = item.assets.get(key)
    if asset is None:
        raise InputError(f"STAC item {item.id} has no asset {key!r} (assets: {', '.join(item.assets)}); "
                         "set the collection's asset keys or pick the matching --preset")
    bands = asset.extra_fields.get("raster:bands") or [{}]
    return bands[0] or {}


def scale_offset(item, key: str, default_scale: float = 1.0, default_offset: float = 0.0) -> tuple[float, float]:
    """(scale, offset) from the asset's ``raster:bands``, defaults where it states none."""
    rb = raster_band(item, key)
    return float(rb.get("scale", default_scale)), float(rb.get("offset", default_offset))


def scaled(items: list, values: np.ndarray, key: str) -> np.ndarray:
    """``values[i] * scale_i + offset_i`` with each item's declared scale/offset of asset ``key``."""
    out = np.empty(values.shape, np.float64)
    for i, it in enumerate(items):
        scale, offset = scale_offset(it, key)
        out[i] = values[i] * scale + offset
    return out


def s2_scale_offset(item, key: str) -> tuple[float, float]:
    """(scale, offset) turning an L2A asset's DN into reflectance.

    - Earth Search items flagged ``earthsearch:boa_offset_applied`` already had the BOA_ADD_OFFSET
      taken out of their DNs: the declared offset is not applied again (offset 0);
    - else the asset's ``raster:bands`` scale/offset;
    - else 1e-4 and :func:`s2_offset_default` (Planetary Computer states neither).
    """
    scale, offset = scale_offset(item, key, 1e-4, np.nan)
    if item.properties.get("earthsearch:boa_offset_applied") is True:
        return scale, 0.0
    return scale, s2_offset_default(item) if np.isnan(offset) else offset


def s2_offset_default(item) -> float:
    """BOA_ADD_OFFSET in reflectance for an item that declares no offset: −0.1 from processing
    baseline 04.00 (25 January 2022) on, else 0."""
    base = str(item.properties.get("s2:processing_baseline", "00.00"))
    try:
        return -0.1 if tuple(int(x) for x in base.split(".")) >= tuple(int(x) for x in S2_OFFSET_BASELINE.split(".")) \
            else 0.0
    except ValueError:
        return 0.0


def by_window_items(items: list, windows, pad_days: int = 0) -> list[list]:
    """Items per window by acquisition time (``pad_days`` widen each window on both sides)."""
    out = []
    for w0, w1 in windows:
        a = dt.datetime.combine(w0 - dt.timedelta(days=pad_days), dt.time(), dt.timezone.utc)
        b = dt.datetime.combine(w1 + dt.timedelta(days=pad_days), dt.time(), dt.timezone.utc)
        out.append([it for it in items if a <= item_interval(it)[0] < b])
    return out


def s2_composite(items: list, data: np.ndarray, preset) -> np.ndarray:
    """``[13, H, W]`` (S2_BANDS_RAW order) median of clear L2A observations, ×10000 reflectance.

    ``data``: ``[n_items, n_assets + 1, H, W]`` as :func:`load_stack` returns it for the preset's S2
    asset keys (B10 omitted) followed by its SCL key."""
    n, _, height, width = data.shape
    out = np.full((len(S2_BANDS_RAW), height, width), np.nan, np.float32)
    if n == 0:
        return out
    clear = np.isin(np.nan_to_num(data[:, -1], nan=0).astype(np.int64), S2_SCL_CLEAR)
    j = 0
    for b, key in enumerate(preset.s2_assets):
        if key is None:
            continue
        refl = np.empty((n, height, width))
        for i, it in enumerate(items):
            scale, offset = s2_scale_offset(it, key)
            refl[i] = (data[i, j] * scale + offset) * 10000.0
        refl[~clear] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: no clear observation
            out[b] = np.nanmedian(refl, axis=0)
        j += 1
    return out


def s1_composite(items: list, data: np.ndarray, preset) -> np.ndarray:
    """``[2, H, W]`` (VV, VH) median in dB of the window's RTC observations (``data``:
    ``[n_items, 2, H, W]`` linear power)."""
    n, _, height, width = data.shape
    out = np.full((len(S1_BANDS), height, width), np.nan, np.float32)
    if n == 0:
        return out
    for j, key in enumerate(preset.s1_assets):
        lin = scaled(items, data[:, j], key)
        with np.errstate(invalid="ignore", divide="ignore"):
            db = np.where(lin > 0, 10.0 * np.log10(np.where(lin > 0, lin, 1.0)), np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[j] = np.nanmedian(db, axis=0)
    return out


def slope_degrees(dem: np.ndarray, transform) -> np.ndarray:
    """Slope (degrees) of a DEM on an EPSG:4326 grid, from central differences in metres (WGS84
    geodesic pixel sizes per row); one-sided at the array's edges."""
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    h, w = dem.shape
    lat = transform.f + (np.arange(h) + 0.5) * transform.e
    lon0 = transform.c
    _, _, dx = geod.inv(np.full(h, lon0), lat, np.full(h, lon0 + transform.a), lat)
    _, _, dy = geod.inv(np.full(h, lon0), lat - transform.e / 2, np.full(h, lon0), lat + transform.e / 2)
    gy, gx = np.gradient(dem.astype(np.float64))
    gx = gx / dx[:, None]
    gy = gy / dy[:, None]
    return np.degrees(np.arctan(np.hypot(gx, gy)))


def era5_overlapping(items: list, window) -> list:
    """The monthly ERA5 items whose month overlaps ``window`` (an item without an end lasts until the
    first day of the next month)."""
    w0, w1 = (dt.datetime.combine(d, dt.time(), dt.timezone.utc) for d in window)
    out = []
    for it in items:
        a, b = item_interval(it)
        if a == b:
            b = dt.datetime.combine(dt.date(a.year + a.month // 12, a.month % 12 + 1, 1), dt.time(), dt.timezone.utc)
        if a < w1 and b > w0:
            out.append(it)
    return out


def era5_composite(items: list, data: np.ndarray, preset) -> np.ndarray:
    """``[2, H, W]`` (temperature_2m, total_precipitation) mean of the items' scaled values."""
    n, _, height, width = data.shape
    out = np.full((2, height, width), np.nan, np.float32)
    for j, key in enumerate(preset.era5_assets):
        if n:
            vals = scaled(items, data[:, j], key)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[j] = np.nanmean(vals, axis=0)
    return out


__all__ = ["S2_SCL_CLEAR", "by_window_items", "era5_composite", "era5_overlapping", "item_interval", "raster_band",
           "s1_composite", "s2_composite", "s2_offset_default", "s2_scale_offset", "scale_offset", "scaled",
           "slope_degrees"]
