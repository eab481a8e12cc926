"""Helpers the simulator's modules share (tiles, scenes, world files and parameters): the cached
region lookup, the tile writer, per-region random streams, export dates and the pixel grid."""

from __future__ import annotations

import datetime as _dt
import inspect
import zlib
from functools import lru_cache

import numpy as np
from shapely.geometry import box

from cropmeta.errors import DataError
from cropmeta.io.eewrite import write_ee_tiff as _write_ee_tiff
from cropmeta.regions import get_region as _get_region
from cropmeta.schema import DAYS_PER_STEP, DEFAULT_T


@lru_cache(maxsize=512)
def get_region(name: str):
    """:func:`cropmeta.regions.get_region`, cached (a lookup scans every country name)."""
    return _get_region(name)
EXPORT_DAYS = DEFAULT_T * DAYS_PER_STEP  # 12 x 30-day steps: start = end - 360 days (CropHarvest: 2019-02-06 .. 2020-02-01)

def _fast_write_kwargs() -> dict:
    """Deflate level 1: on noisy float data it is ~5x faster than GDAL's default level 6 for a few
    percent more bytes. Used when the writer accepts creation options."""
    params = inspect.signature(_write_ee_tiff).parameters
    if "creation_options" in params:
        return {"creation_options": {"zlevel": 1}}
    if "zlevel" in params:
        return {"zlevel": 1}
    return {}


def write_ee_tiff(path, dynamic, static, transform, tags=None):
    """:func:`cropmeta.io.eewrite.write_ee_tiff` (float32, EPSG:4326), fast compression if offered."""
    return _write_ee_tiff(path, dynamic, static, transform, tags=tags, **_fast_write_kwargs())


# random streams of a region (independent, so that e.g. more tiles do not change the climate)
STREAM_POS, STREAM_LAYOUT, STREAM_PTS, STREAM_PHYS, STREAM_LABEL, STREAM_TERRAIN, STREAM_SCENE = range(7)


def region_rng(seed: int, key: str, stream: int) -> np.random.Generator:
    """A generator that depends only on (seed, region, stream): regions are independent, and a
    world generated with a subset of regions holds exactly the same data for them."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode()), stream])


def dates_of(region: dict, year_offset: int = 0) -> tuple[str, str]:
    """(start, end) ISO dates of a region's export in the year ``year_offset`` from its export year."""
    end = _dt.date.fromisoformat(str(region["end"]))
    end = end.replace(year=end.year + int(year_offset))
    return (end - _dt.timedelta(days=EXPORT_DAYS)).isoformat(), end.isoformat()


def snap_to_grid(lat: np.ndarray, lon: np.ndarray, pix: float) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners snapped to the global pixel grid."""
    lon0 = np.floor((np.asarray(lon) + 180.0) / pix) * pix - 180.0
    lat0 = 90.0 - np.floor((90.0 - np.asarray(lat)) / pix) * pix
    return lat0, lon0


def zone_geometry(name: str, region: dict):
    geom = get_region(name).geometry
    z = region["zone"]
    g = geom.intersection(box(z[0], z[1], z[2], z[3]))
    if g.is_empty:
        raise DataError(f"data/sim/regions.toml [{region['key']}]: zone {z} does not overlap {name}")
    return g
