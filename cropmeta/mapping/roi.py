"""Region of interest on a raster grid: the region's outline projected into the input's CRS and
rasterised block by block (a pixel is inside when its centre is)."""

from __future__ import annotations

import numpy as np
from rasterio.features import geometry_mask
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from cropmeta.errors import InputError
from cropmeta.mapping.sources import Grid


def project_region(geometry: BaseGeometry, grid: Grid, tile: str) -> BaseGeometry:
    """The region (EPSG:4326) in the tile's CRS; InputError naming the tile when that is impossible."""
    import geopandas as gpd
    from pyproj.exceptions import CRSError, ProjError

    if grid.crs is None:
        raise InputError(f"{tile}: input has no CRS, so the region of interest cannot be placed on it")
    try:
        g = gpd.GeoSeries([geometry], crs="EPSG:4326").to_crs(grid.crs).iloc[0]
    except (CRSError, ProjError, ValueError) as e:
        raise InputError(f"{tile}: the region of interest cannot be projected to the input's CRS ({e})") from e
    coords = _all_coords(g)
    if g is None or g.is_empty or not np.isfinite(coords).all():
        raise InputError(
            f"{tile}: the region of interest cannot be projected to the input's CRS "
            f"({_crs_name(grid.crs)}): the projection gives non-finite coordinates"
        )
    if not g.is_valid:
        g = g.buffer(0)
    return g


def _crs_name(wkt: str) -> str:
    from pyproj import CRS

    try:
        return CRS.from_wkt(wkt).name
    except Exception:  # noqa: BLE001
        return "unknown CRS"


def _all_coords(g: BaseGeometry) -> np.ndarray:
    import shapely

    return shapely.get_coordinates(g) if g is not None else np.zeros((0, 2))


def grid_bounds(grid: Grid) -> BaseGeometry:
    from rasterio.transform import array_bounds

    west, south, east, north = array_bounds(grid.height, grid.width, grid.affine)
    return box(min(west, east), min(south, north), max(west, east), max(south, north))


def overlaps(geometry: BaseGeometry, grid: Grid) -> bool:
    return bool(geometry.intersects(grid_bounds(grid)))


def block_mask(geometry: BaseGeometry | None, grid: Grid, window: Window) -> np.ndarray | None:
    """``[h, w]`` bool, True inside the region; None when there is no region."""
    if geometry is None:
        return None
    h, w = int(window.height), int(window.width)
    wt = window_transform(window, grid.affine)
    from rasterio.transform import array_bounds

    west, south, east, north = array_bounds(h, w, wt)
    wbox = box(min(west, east), min(south, north), max(west, east), max(south, north))
    if not geometry.intersects(wbox):
        return np.zeros((h, w), dtype=bool)
    if geometry.contains(wbox):
        return np.ones((h, w), dtype=bool)
    return geometry_mask([geometry.intersection(wbox.buffer(max(abs(wt.a), abs(wt.e))))], out_shape=(h, w),
                         transform=wt, invert=True)
