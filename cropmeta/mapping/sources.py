"""Map inputs, read window by window: Earth-Engine-layout GeoTIFF tiles and canonical datacubes.

A *source* knows its grid (``width``, ``height``, ``crs``, ``transform``), its number of time steps
``t``, and reads any window as canonical samples ``[n, T, 18]`` (raw units, gaps filled) plus a
``valid`` mask of the window's pixels. Sources are small, picklable descriptions (a path and a few
numbers); the open file handle lives in a per-process cache so that Dask workers open each input
once.

Missing input (per pixel):
- ``slope`` NaN at every step (SRTM border pixels, common in real exports) → the tile's mean slope
  (CropHarvest's policy, see :func:`cropmeta.schema.fill_missing`);
- any other band NaN at every step, or every value NaN → the pixel is *missing*: nodata in the map;
- a band NaN at some steps → filled with that pixel's mean over time (:func:`fill_missing`).
Values equal to the file's declared nodata count as NaN.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from cropmeta.errors import DataError, InputError
from cropmeta.schema import (
    BAND_INDEX,
    BANDS,
    N_BANDS,
    N_STATIC,
    RAW_PER_STEP,
    canonical_from_raw,
    fill_missing,
    recompute_ndvi,
)

_SLOPE = BAND_INDEX["slope"]
#: at most this many pixels are decoded at once (bounds memory: 16384 px x 206 bands x 4 B = 13.5 MB)
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

    # -- reading ----------------------------------------------------------------------------------
    def read_raw(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """``(dynamic [n, T, 17], static [n, 2])`` float32 for the window's pixels (row-major)."""
        raise NotImplementedError

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Canonical samples of the window's valid pixels ``[n_valid, T, 18]`` and ``valid [h, w]``."""
        h, w = int(window.height), int(window.width)
        x = self.read_canonical(window)  # [h*w, T, 18] with NaN
        x, valid = prepare_samples(x, self.get_slope_fill, source=f"{self.name} window {_wstr(window)}")
        return x, valid.reshape(h, w)

    def get_slope_fill(self) -> float:
        """The tile's mean slope (fills pixels whose slope is missing at every step)."""
        if self.slope_fill is not None:
            return float(self.slope_fill)
        key = ("slope", self.kind, self.name, _ref_key(self.ref))
        return _cached_open(key, lambda: _Value(self.mean_slope())).value

    def mean_slope(self) -> float:
        raise NotImplementedError

    def read_canonical(self, window: Window) -> np.ndarray:
        dyn, stat = self.read_raw(window)
        return canonical_from_raw(dyn, stat)


def _wstr(window: Window) -> str:
    return f"(row {int(window.row_off)}, col {int(window.col_off)}, {int(window.height)}x{int(window.width)})"


def prepare_samples(x: np.ndarray, slope_fill, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Canonical ``[n, T, 18]`` with NaN → (filled samples of the valid pixels, valid mask ``[n]``).
    ``slope_fill``: a number or a function returning it (called only when a slope is missing)."""
    all_nan = np.isnan(x).all(axis=1)  # [n, 18]
    if all_nan[:, _SLOPE].any():
        if callable(slope_fill):
            slope_fill = slope_fill()
        x = x.copy() if not x.flags.writeable else x
        x[all_nan[:, _SLOPE], :, _SLOPE] = slope_fill
        all_nan[:, _SLOPE] = False
    valid = ~all_nan.any(axis=1)
    xv = x[valid]
    if len(xv) and np.isnan(xv).any():
        xv = fill_missing(xv, source=source, slope_fill=None if callable(slope_fill) else slope_fill)
    return np.ascontiguousarray(xv, dtype=np.float32), valid


# ------------------------------------------------------------------------------------------------
# per-process cache of open files (Dask workers open each input once)
# ------------------------------------------------------------------------------------------------
_OPEN: dict[tuple, Any] = {}
_OPEN_LOCK = threading.RLock()


def _cached_open(key: tuple, opener):
    with _OPEN_LOCK:
        obj = _OPEN.get(key)
        if obj is None:
            obj = opener()
            _OPEN[key] = obj
        return obj


class _Value:
    def __init__(self, value):
        self.value = value

    def close(self):
        pass


def _ref_key(ref) -> tuple:
    if isinstance(ref, (str, Path)):
        try:
            return _file_key(str(ref))
        except OSError:
            return (str(ref),)
    return ("object", id(ref))


def close_cached() -> None:
    """Close every file this process holds open for map inputs."""
    with _OPEN_LOCK:
        for obj in _OPEN.values():
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - closing best effort
                pass
        _OPEN.clear()


def _file_key(path: str) -> tuple:
    st = os.stat(path)
    return (path, st.st_size, st.st_mtime_ns)


# ------------------------------------------------------------------------------------------------
# Earth-Engine-layout GeoTIFF
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EETiffSource(Source):
    kind: str = "eetiff"

    def _ds(self):
        path = str(self.ref)
        try:
            return _cached_open(("tif",) + _file_key(path), lambda: rasterio.open(path))
        except (OSError, rasterio.errors.RasterioIOError) as e:
            raise InputError(f"{path}: cannot open map input ({e})") from e

    def read_raw(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        ds = self._ds()
        try:
            a = ds.read(window=window, out_dtype="float32")  # [T*17+2, h, w]
        except rasterio.errors.RasterioIOError as e:
            raise DataError(f"{self.ref}: cannot read window {_wstr(window)} ({e})") from e
        if self.nodata is not None and not math.isnan(self.nodata):
            a[a == np.float32(self.nodata)] = np.nan
        n = a.shape[1] * a.shape[2]
        tf = self.t_file or self.t
        dyn = a[: tf * RAW_PER_STEP].reshape(tf, RAW_PER_STEP, n).transpose(2, 0, 1)
        dyn = dyn[:, self.t_start: self.t_start + self.t]
        stat = a[tf * RAW_PER_STEP :].reshape(N_STATIC, n).T
        return dyn, stat


    def mean_slope(self) -> float:
        """Mean of the finite slope values over the whole tile (streamed block by block)."""
        ds = self._ds()
        band = ds.count  # slope is the last band
        total, count = 0.0, 0
        try:
            for _, win in ds.block_windows(band):
                v = ds.read(band, window=win, out_dtype="float64")
                if self.nodata is not None and not math.isnan(self.nodata):
                    v[v == self.nodata] = np.nan
                ok = np.isfinite(v)
                total += float(v[ok].sum())
                count += int(ok.sum())
        except rasterio.errors.RasterioIOError as e:
            raise DataError(f"{self.ref}: cannot read band {band} 'slope' ({e})") from e
        return total / count if count else 0.0


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
                        kind="eetiff", ref=path)


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
            return _cached_open(("nc",) + _file_key(path), lambda: _open_cube_file(path, self.var))
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
        ndvi = recompute_ndvi(x)[..., BAND_INDEX["NDVI"]]
        ndvi[np.isnan(x[..., BAND_INDEX["B8"]]) | np.isnan(x[..., BAND_INDEX["B4"]])] = np.nan
        x[..., BAND_INDEX["NDVI"]] = ndvi
        return x


    def mean_slope(self) -> float:
        slope = self._da().isel(time=0).sel(band="slope")
        mean = float(slope.mean(skipna=True).values) if slope.size else float("nan")
        return mean if np.isfinite(mean) else 0.0


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
                          nodata=None if nodata is None else float(nodata), kind="datacube", ref=ref, var=var)


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
