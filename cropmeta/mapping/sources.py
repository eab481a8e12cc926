"""Map inputs, read window by window: Earth-Engine-layout GeoTIFF tiles and canonical datacubes.

A *source* knows its grid (``width``, ``height``, ``crs``, ``transform``), its number of time steps
``t``, and reads any window as canonical samples ``[n, T, 18]`` (raw units, gaps filled) plus a
``valid`` mask of the window's pixels. Sources are small, picklable descriptions (a path and a few
numbers); the open file handle lives in a per-process cache so that Dask workers open each input
once.

Earth-Engine tiles are read by the one pixel reader of ingestion
(:class:`cropmeta.io.eetiff.EETiffReader`), so a map pixel equals the training sample of that pixel.
Missing input, per pixel, is the reader's one rule (:func:`cropmeta.io.eetiff.fill_pixels`), for
datacubes too:
- ``slope`` missing (SRTM border pixels, common in real exports) → the tile's mean slope (0.0 for
  a tile with no slope at all);
- any other band NaN at every step, or every value NaN → the pixel is *missing*: nodata in the map;
- a band NaN at some steps → filled with that pixel's mean over time (:func:`cropmeta.schema.fill_missing`).
Values equal to the file's declared nodata count as NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from cropmeta.errors import InputError
from cropmeta.io.eetiff import SLOPE_FILL_WITHOUT_DATA, EETiffReader, fill_pixels, window_str
from cropmeta.io.handles import CachedValue, cached, file_key
from cropmeta.schema import BANDS, DAYS_PER_STEP, N_BANDS, N_STATIC, RAW_PER_STEP, recompute_ndvi

__all__ = [
    "Grid", "Source", "EETiffSource", "DatacubeSource", "open_eetiff", "open_datacube", "open_source",
    "check_consistent_t", "window_source", "MAX_READ_PIXELS",
]
#: at most this many pixels are decoded at once (bounds memory: 16384 px x 206 bands x 8 B = 27 MB)
MAX_READ_PIXELS = 16384


@dataclass(frozen=True)
class Grid:
    """A raster grid: size, CRS (WKT or None) and affine transform (6 numbers, GDAL order)."""

    width: int
    height: int
    crs: str | None
    transform: tuple[float, ...]

    @property
    def affine(self) -> rasterio.Affine:
        return rasterio.Affine(*self.transform[:6])


@dataclass(frozen=True)
class Source:
    """Base class. ``kind`` selects the reader; ``ref`` is the path (or in-memory object)."""

    name: str
    grid: Grid
    t: int
    slope_fill: float | None = None  # None: computed on first need (tile mean, cached per process)
    nodata: float | None = None
    kind: str = "eetiff"
    ref: Any = field(default=None, compare=False)
    t_file: int | None = None  # time steps in the file when only a window of them is read
    t_start: int = 0  # first time step read (0-based), see :func:`window_source`
    start_date: str | None = None  # ISO date of the file's first step (None: unknown)

    # -- place and time -----------------------------------------------------------------------------
    def first_date(self) -> str | None:
        """ISO date of the first step read: the file's start moved on by ``t_start`` steps."""
        if not self.start_date:
            return None
        import datetime as _dt

        d0 = _dt.date.fromisoformat(str(self.start_date)[:10])
        return (d0 + _dt.timedelta(days=int(self.t_start) * DAYS_PER_STEP)).isoformat()

    def pixel_context(self, window: Window, valid: np.ndarray) -> dict:
        """``lat``, ``lon`` (degrees, WGS84) of the centres of the window's ``valid`` pixels
        (row-major, the order of :meth:`read`'s samples) and their ``start_dates`` (the input's
        :meth:`first_date`, None when unknown): what a model that reads each sample's place and time
        (Presto) gets in a map. Raises when the grid has no CRS."""
        if not self.grid.crs:
            raise InputError(f"{self.name}: the input has no CRS, so its pixels have no latitude/longitude "
                             "(this model needs them)")
        from rasterio.crs import CRS
        from rasterio.transform import xy
        from rasterio.warp import transform as _warp

        rows, cols = np.nonzero(np.asarray(valid, dtype=bool))
        xs, ys = xy(self.grid.affine, rows + int(window.row_off), cols + int(window.col_off), offset="center")
        lon, lat = _warp(CRS.from_user_input(self.grid.crs), "EPSG:4326", list(xs), list(ys))
        return {"lat": np.asarray(lat, dtype=np.float64), "lon": np.asarray(lon, dtype=np.float64),
                "start_dates": [self.first_date()] * len(rows)}

    # -- reading ----------------------------------------------------------------------------------
    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Canonical samples of the window's valid pixels ``[n_valid, T, 18]`` and ``valid [h, w]``."""
        h, w = int(window.height), int(window.width)
        x = self.read_canonical(window)  # [h*w, T, 18] with NaN
        x, valid = fill_pixels(x, self.get_slope_fill, source=f"{self.name} window {window_str(window)}", unusable="mask")
        return x, valid.reshape(h, w)

    def get_slope_fill(self) -> float:
        """The tile's mean slope (fills pixels whose slope is missing at every step)."""
        if self.slope_fill is not None:
            return float(self.slope_fill)
        key = ("slope", self.kind, self.name, _ref_key(self.ref))
        return cached(key, lambda: CachedValue(self.mean_slope())).value

    def mean_slope(self) -> float:
        raise NotImplementedError

    def read_canonical(self, window: Window) -> np.ndarray:
        """Canonical samples ``[h*w, T, 18]`` (row-major pixels, NaN kept) of a window."""
        raise NotImplementedError


def _ref_key(ref) -> tuple:
    if isinstance(ref, (str, Path)):
        try:
            return file_key(str(ref))
        except OSError:
            return (str(ref),)
    return ("object", id(ref))


# ------------------------------------------------------------------------------------------------
# Earth-Engine-layout GeoTIFF
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EETiffSource(Source):
    """An Earth-Engine-layout GeoTIFF, read by :class:`~cropmeta.io.eetiff.EETiffReader` (kept open
    per process)."""

    kind: str = "eetiff"

    @property
    def reader(self) -> EETiffReader:
        return EETiffReader(str(self.ref), int(self.t_file or self.t), self.grid.height, self.grid.width,
                            self.nodata, keep_open=True)

    def read_canonical(self, window: Window) -> np.ndarray:
        return self.reader.read_canonical(window, self.t_start, self.t)

    def mean_slope(self) -> float:
        """The reader's slope fill: the tile's mean slope (:meth:`EETiffReader.slope_fill`)."""
        return self.reader.slope_fill()


def open_eetiff(path: str | Path) -> EETiffSource:
    """Validate an Earth-Engine-layout GeoTIFF's header (band count → T, band names, grid, nodata)
    with the ingestion reader's own checks (:func:`cropmeta.io.eetiff.ee_tiff_info`)."""
    from cropmeta.io.eetiff import ee_tiff_info

    path = str(path)
    if not Path(path).exists():
        raise InputError(f"{path}: map input not found")
    info = ee_tiff_info(path)
    grid = Grid(int(info.width), int(info.height), info.crs.to_wkt() if info.crs else None,
                tuple(info.transform)[:6])
    return EETiffSource(name=Path(path).name, grid=grid, t=int(info.t), slope_fill=None, nodata=info.nodata,
                        kind="eetiff", ref=path, start_date=info.start.isoformat() if info.start else None)


# ------------------------------------------------------------------------------------------------
# xarray datacube in the canonical schema
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatacubeSource(Source):
    """A DataArray with dims ``time``, ``band`` (coords = :data:`cropmeta.schema.BANDS`), ``y``, ``x``
    and a CRS/transform that rioxarray can read; or a path to such a netCDF file (variable ``x`` or
    the only data variable). NDVI is recomputed from B8/B4 (cropmeta's rule)."""

    kind: str = "datacube"
    var: str | None = None

    def _da(self):
        if isinstance(self.ref, (str, Path)):
            path = str(self.ref)
            return cached(("nc",) + file_key(path), lambda: _open_cube_file(path, self.var))
        return self.ref

    def read_canonical(self, window: Window) -> np.ndarray:
        da = self._da()
        r0, c0 = int(window.row_off), int(window.col_off)
        sub = da.isel(y=slice(r0, r0 + int(window.height)), x=slice(c0, c0 + int(window.width)),
                      time=slice(self.t_start, self.t_start + self.t))
        a = np.asarray(sub.transpose("y", "x", "time", "band").values, dtype=np.float32)
        h, w = a.shape[:2]
        x = a.reshape(h * w, self.t, N_BANDS)
        if self.nodata is not None and not math.isnan(self.nodata):
            x[x == np.float32(self.nodata)] = np.nan
        return recompute_ndvi(x)  # the schema's NDVI (NaN where B8 or B4 is missing, as ingestion's)


    def mean_slope(self) -> float:
        slope = self._da().isel(time=0).sel(band="slope")
        mean = float(slope.mean(skipna=True).values) if slope.size else float("nan")
        return mean if np.isfinite(mean) else SLOPE_FILL_WITHOUT_DATA


class _CubeHandle:
    """An opened netCDF datacube (closes its dataset)."""

    def __init__(self, ds, da):
        self.ds, self.da = ds, da

    def close(self):
        self.ds.close()

    def __getattr__(self, item):
        return getattr(self.da, item)


def _open_cube_file(path: str, var: str | None):
    import xarray as xr

    try:
        ds = xr.open_dataset(path, decode_coords="all", chunks={}, engine="h5netcdf")
    except Exception as e:  # noqa: BLE001 - any reader failure is the file's fault
        raise InputError(f"{path}: cannot open datacube ({e})") from e
    da = _pick_var(ds, var, path)
    return _CubeHandle(ds, da)


def _pick_var(ds, var: str | None, name: str):
    if var is None:
        names = list(ds.data_vars)
        var = "x" if "x" in names else (names[0] if len(names) == 1 else None)
        if var is None:
            raise InputError(f"{name}: datacube has variables {names}; cannot tell which holds the samples "
                             "(name it 'x')")
    if var not in ds.data_vars:
        raise InputError(f"{name}: datacube has no variable {var!r}")
    return ds[var]


def open_datacube(cube, name: str | None = None, var: str | None = None) -> DatacubeSource:
    """Validate a canonical datacube (path, Dataset or DataArray)."""
    import rioxarray  # noqa: F401 - registers .rio
    import xarray as xr

    ref = cube
    if isinstance(cube, (str, Path)):
        path = str(cube)
        if not Path(path).exists():
            raise InputError(f"{path}: datacube not found")
        handle = _open_cube_file(path, var)
        da, label = handle.da, name or Path(path).name
    else:
        label = name or "datacube"
        da = _pick_var(cube, var, label) if isinstance(cube, xr.Dataset) else cube
        ref = da
    missing = [d for d in ("time", "band", "y", "x") if d not in da.dims]
    if missing:
        raise InputError(f"{label}: datacube lacks dimension(s) {missing}; expected (time, band, y, x)")
    bands = [str(b) for b in da["band"].values] if "band" in da.coords else []
    if bands != BANDS:
        raise InputError(f"{label}: band coordinate {bands} differs from cropmeta's canonical bands {BANDS}")
    try:
        crs = da.rio.crs
        transform = da.rio.transform()
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{label}: cannot read the datacube's CRS/transform ({e})") from e
    grid = Grid(int(da.sizes["x"]), int(da.sizes["y"]), crs.to_wkt() if crs else None, tuple(transform)[:6])
    nodata = da.rio.nodata if da.rio.nodata is not None else da.attrs.get("_FillValue")
    if isinstance(ref, (str, Path)):
        handle.close()
    return DatacubeSource(name=label, grid=grid, t=int(da.sizes["time"]), slope_fill=None,
                          nodata=None if nodata is None else float(nodata), kind="datacube", ref=ref, var=var,
                          start_date=_first_time(da))


def _first_time(da) -> str | None:
    """ISO date of a datacube's first ``time`` value when it is a date (else None)."""
    try:
        v = np.asarray(da["time"].values)[:1]
        if len(v) and np.issubdtype(v.dtype, np.datetime64):
            return str(v[0].astype("datetime64[D]"))
    except (KeyError, TypeError, ValueError):
        pass
    return None


def open_source(item, var: str | None = None) -> Source:
    """A map input: an EE GeoTIFF path, a netCDF datacube path, an xarray object or a Source."""
    if isinstance(item, Source):
        return item
    if isinstance(item, (str, Path)):
        suffix = Path(item).suffix.lower()
        if suffix in (".nc", ".nc4", ".cdf", ".h5"):
            return open_datacube(item, var=var)
        return open_eetiff(item)
    try:
        import xarray as xr

        if isinstance(item, (xr.Dataset, xr.DataArray)):
            return open_datacube(item, var=var)
    except ImportError:  # pragma: no cover
        pass
    raise InputError(f"map input {item!r}: expected a GeoTIFF/netCDF path or an xarray datacube")


def check_consistent_t(sources: list[Source], model_t: int, run: str) -> None:
    """Every input must have the model's number of time steps."""
    for s in sources:
        if s.t != model_t:
            raise InputError(
                f"{s.ref if isinstance(s.ref, (str, Path)) else s.name}: input has T={s.t} time steps "
                f"({s.t * RAW_PER_STEP + N_STATIC} bands), but the model in {run} expects T={model_t}"
            )


def window_source(s: Source, t: int, start_month: int) -> Source:
    """``s`` read as ``t`` time steps starting at step ``start_month`` (1-based): a 12-month window
    of a longer export."""
    import dataclasses

    first = int(start_month) - 1
    name = s.ref if isinstance(s.ref, (str, Path)) else s.name
    if first < 0:
        raise InputError(f"--start-month must be >= 1, got {start_month}")
    if first + t > s.t:
        raise InputError(f"{name}: --start-month {start_month} needs {first + t} time steps "
                         f"(a window of {t} from step {start_month}), the input has {s.t}")
    if first == 0 and s.t == t:
        return s
    return dataclasses.replace(s, t=t, t_file=s.t, t_start=first)
