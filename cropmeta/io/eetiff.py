"""Earth-Engine export GeoTIFFs (CropHarvest / openmapflow ``eo_data`` layout).

THE pixel reader (:class:`EETiffReader`, windowed and picklable, with its one missing-value rule
:func:`fill_pixels`), used by ingestion, the simulator's calibration and map export;
:func:`read_ee_tiff`, :func:`read_ee_raw`, :func:`ee_tiff_info`, :func:`iter_ee_tiffs` build on it.
The writer is :func:`cropmeta.io.eewrite.write_ee_tiff`; file names, their dates and the tiles of
a directory are :mod:`cropmeta.io.eenames`'.

Layout: ``T * 17 + 2`` bands — for each monthly step the 17 bands of
:data:`cropmeta.schema.DYNAMIC_BANDS_RAW`, then ``elevation, slope`` — with GDAL band descriptions
from :func:`cropmeta.schema.raw_band_names`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import rasterio
import rasterio.windows
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from cropmeta.errors import DataError, InputError
from cropmeta.io.eenames import list_ee_tiffs, parse_ee_filename, time_coords
from cropmeta.io.handles import CachedValue, cached, file_key
from cropmeta.schema import (
    BAND_INDEX,
    BAND_UNITS,
    BANDS,
    RAW_PER_STEP,
    canonical_from_raw,
    fill_missing,
    n_raw_bands,
    raw_band_names,
    t_from_raw_band_count,
)


# ==================================================================================================
# Reader
# ==================================================================================================
@dataclass(frozen=True)
class EETiffInfo:
    """Header facts of a validated Earth-Engine export (no pixel values read)."""

    path: Path
    t: int
    height: int
    width: int
    crs: object  # rasterio CRS (None when the file has none)
    transform: Affine
    bounds: tuple[float, float, float, float]  # in the file's CRS
    start: _dt.date | None
    nodata: float | None


def _resolve_start(path: Path, start_date) -> _dt.date | None:
    if start_date is not None:
        try:
            return _dt.date.fromisoformat(str(start_date)[:10]) if not isinstance(start_date, _dt.date) else start_date
        except ValueError as e:
            raise InputError(f"{path}: start date {start_date!r} is not an ISO date (YYYY-MM-DD)") from e
    parsed = parse_ee_filename(path)
    return parsed.start if parsed else None


class _GdalWarnings(logging.Handler):
    """Collects the GDAL warnings rasterio logs while a file is opened (GDAL reports a cut-off
    TIFF tag, e.g. the band descriptions of a truncated file, only as a warning)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_DAMAGE = re.compile(r"IO error|Read error|Failed to read|truncat|Cannot read", re.IGNORECASE)


def _open(path: Path):
    if not path.exists():
        raise InputError(f"{path}: file not found")
    log = logging.getLogger("rasterio._env")
    catcher = _GdalWarnings()
    log.addHandler(catcher)
    try:
        src = rasterio.open(path)
    except RasterioError as e:
        raise InputError(f"{path}: not a readable GeoTIFF (corrupt or truncated?): {e}") from e
    finally:
        log.removeHandler(catcher)
    damage = [m for m in catcher.messages if _DAMAGE.search(m)]
    if damage:
        src.close()
        raise InputError(f"{path}: corrupt or truncated GeoTIFF (GDAL: {damage[0]})")
    return src


def _check_descriptions(path: Path, descriptions, t: int) -> None:
    expected = raw_band_names(t)
    for i, (got, want) in enumerate(zip(descriptions, expected), start=1):
        if got is None or got == "":
            raise InputError(
                f"{path}: band {i} has no description (expected {want!r}); Earth-Engine exports name every "
                f"band ({expected[0]}, {expected[1]}, …, {expected[-1]}). Relabel the bands "
                "in the export order (or, from Python, pass check_descriptions=False if you are sure they are)"
            )
        if got != want:
            raise InputError(f"{path}: band {i} is described as {got!r}, expected {want!r} "
                             f"(Earth-Engine layout T={t}: {RAW_PER_STEP} bands per step, then elevation, slope)")


def ee_tiff_info(path: str | Path, start_date=None, check_descriptions: bool = True) -> EETiffInfo:
    """Open and validate a tile's header: band count ``T*17+2`` and band descriptions."""
    path = Path(path)
    with _open(path) as src:
        t = t_from_raw_band_count(src.count, source=str(path))
        if check_descriptions:
            _check_descriptions(path, src.descriptions, t)
        return EETiffInfo(path, t, src.height, src.width, src.crs, src.transform, tuple(src.bounds),
                          _resolve_start(path, start_date), src.nodata)


# ------------------------------------------------------------------------------------------------
# THE pixel reader
# ------------------------------------------------------------------------------------------------
#: slope of every pixel of a tile that has no valid slope value at all (flat ground; see EETiffReader)
SLOPE_FILL_WITHOUT_DATA = 0.0
#: a tile's labelled pixels are read in one window when it takes at most this many bytes
MAX_WINDOW_BYTES = 256 * 2**20
#: a tile's mean slope is summed in strips of at most this many pixels (bounded memory)
_SLOPE_STRIP_PIXELS = 2**22
_SLOPE = BAND_INDEX["slope"]

log = logging.getLogger("cropmeta")


def window_str(window: Window) -> str:
    """``(row r, col c, HxW)``: a window as error messages name it."""
    return f"(row {int(window.row_off)}, col {int(window.col_off)}, {int(window.height)}x{int(window.width)})"


@dataclass(frozen=True)
class EETiffReader:
    """THE Earth-Engine pixel reader: ingestion (:func:`cropmeta.io.sampling.sample_tile`), the
    simulator's calibration (:func:`cropmeta.sim.calibrate.world_samples`), :func:`read_ee_tiff` and
    map export (:class:`cropmeta.mapping.sources.EETiffSource`) all read pixels through it, so a map
    pixel equals the training sample of the same pixel, bit for bit.

    A small picklable description (path and validated header numbers, windowed reads): Dask workers
    receive it and read their windows themselves. ``keep_open=True`` keeps the file open in a
    per-process cache (:func:`cached`; map export reads many windows); otherwise each read opens and
    closes it (ingestion walks thousands of tiles).

    Values are read as float64 with the file's nodata → NaN (compared in the file's own dtype) and
    turned into canonical samples by :func:`cropmeta.schema.canonical_from_raw` (B1/B10 dropped,
    static bands at every step, NDVI from B8/B4, NaN where either is missing).

    Missing values, one rule for every reader (:func:`fill_pixels`):

    - a pixel without slope (SRTM's 1-px tile border) takes the tile's mean slope over all its valid
      slope pixels (:meth:`slope_fill`): a property of the tile alone, never of the window or of the
      other pixels being read, so a pixel reads the same in a map block as as a labelled point. A
      tile with no valid slope at all takes :data:`SLOPE_FILL_WITHOUT_DATA` (0.0, flat) with a
      warning. (Before, ingestion fell back to the other samples being read — the same empty tile, so
      it failed — while map export used 0.0: such a tile gave maps but no training samples.)
    - a band missing at some steps: the pixel's mean of that band over time
      (:func:`cropmeta.schema.fill_missing`);
    - any other band missing at every step makes the pixel unusable: a :class:`DataError` naming the
      tile and band where samples are read (ingestion), nodata where a map is (export).
    """

    path: str
    t: int
    height: int
    width: int
    nodata: float | None = None
    keep_open: bool = False

    @classmethod
    def from_info(cls, info: EETiffInfo, keep_open: bool = False) -> "EETiffReader":
        return cls(str(info.path), int(info.t), int(info.height), int(info.width),
                   None if info.nodata is None else float(info.nodata), keep_open)

    @classmethod
    def open(cls, path: str | Path, check_descriptions: bool = True, keep_open: bool = False) -> "EETiffReader":
        """Validate the header (:func:`ee_tiff_info`) and describe the file."""
        return cls.from_info(ee_tiff_info(path, check_descriptions=check_descriptions), keep_open)

    @property
    def count(self) -> int:
        return n_raw_bands(self.t)

    @contextmanager
    def dataset(self):
        """The open rasterio dataset (cached per process with ``keep_open``)."""
        if self.keep_open:
            yield cached(("tif",) + file_key(self.path), lambda: _open(Path(self.path)))
        else:
            with _open(Path(self.path)) as src:
                yield src

    def _read(self, src, window: Window | None, bands: list[int] | None) -> np.ndarray:
        try:
            data = src.read(indexes=bands, window=window, out_dtype="float64")
        except RasterioError as e:
            where = f" of window {window_str(window)}" if window is not None else ""
            raise DataError(f"{self.path}: cannot read pixel values{where} (corrupt or truncated GeoTIFF?): {e}") from e
        if self.nodata is not None and not np.isnan(self.nodata):
            data[data == np.asarray(self.nodata).astype(src.dtypes[0]).astype(np.float64)] = np.nan
        return data

    def read_raw(self, window: Window | None = None, bands: list[int] | None = None) -> np.ndarray:
        """Raw values ``[bands, h, w]`` float64, nodata → NaN. ``bands``: 1-based indexes (default all)."""
        with self.dataset() as src:
            return self._read(src, window, bands)

    def canonical(self, raw: np.ndarray, t_start: int = 0, t: int | None = None) -> np.ndarray:
        """Raw ``[count, n]`` → canonical samples ``[n, t, 18]`` (NaN kept) of steps ``t_start …``."""
        t = self.t if t is None else int(t)
        dynamic, static = split_raw(raw, self.t)  # [T, 17, n], [2, n]
        return canonical_from_raw(np.moveaxis(dynamic, 2, 0)[:, t_start: t_start + t], static.T)

    def read_canonical(self, window: Window | None = None, t_start: int = 0, t: int | None = None) -> np.ndarray:
        """Canonical samples ``[h*w, t, 18]`` (row-major pixels, NaN kept) of a window."""
        raw = self.read_raw(window)
        return self.canonical(raw.reshape(raw.shape[0], -1), t_start, t)

    def read_pixels(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Canonical samples ``[n, T, 18]`` (NaN kept) of the pixels ``(rows, cols)``: one window read
        when it is small enough (:data:`MAX_WINDOW_BYTES`), else one 1×1 read per distinct pixel."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros((0, self.t, len(BANDS)), np.float32)
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        with self.dataset() as src:
            if (r1 - r0) * (c1 - c0) * self.count * 8 <= MAX_WINDOW_BYTES:
                raw = self._read(src, Window(c0, r0, c1 - c0, r1 - r0), None)[:, rows - r0, cols - c0]
            else:
                uniq, inverse = np.unique(np.stack([rows, cols], axis=1), axis=0, return_inverse=True)
                vals = np.stack([self._read(src, Window(int(c), int(r), 1, 1), None)[:, 0, 0] for r, c in uniq], axis=1)
                raw = vals[:, inverse.ravel()]
        return self.canonical(raw)

    def slope_fill(self) -> float:
        """The tile's mean slope over its valid slope pixels (cached per process and file), or
        :data:`SLOPE_FILL_WITHOUT_DATA` when it has none: what a pixel without slope takes."""
        return cached(("slope",) + file_key(self.path), lambda: CachedValue(self._mean_slope())).value

    def _mean_slope(self) -> float:
        total, count = 0.0, 0
        step = max(1, _SLOPE_STRIP_PIXELS // max(self.width, 1))
        with self.dataset() as src:
            for r in range(0, self.height, step):
                v = self._read(src, Window(0, r, self.width, min(step, self.height - r)), [self.count])
                total += float(np.nansum(v))
                count += int(np.isfinite(v).sum())
        if count:
            return total / count
        log.warning("%s: band %d 'slope' has no valid pixel; its pixels' slope is filled with %s (flat)",
                    self.path, self.count, SLOPE_FILL_WITHOUT_DATA)
        return SLOPE_FILL_WITHOUT_DATA


def fill_pixels(x: np.ndarray, slope_fill, source: str, unusable: str = "raise") -> tuple[np.ndarray, np.ndarray]:
    """The missing-value rule of Earth-Engine pixels (:class:`EETiffReader`) on canonical samples
    ``[n, T, 18]`` → (filled float32 samples, usable mask ``[n]``). ``slope_fill``: a number or a
    function returning it (called only when a slope is missing). A pixel with another band missing
    at every step is unusable: ``unusable="raise"`` raises the :class:`DataError` of
    :func:`cropmeta.schema.fill_missing` naming ``source`` and the band; ``"mask"`` leaves it out."""
    if unusable not in ("raise", "mask"):
        raise ValueError(f"unusable={unusable!r}: expected 'raise' or 'mask'")
    all_nan = np.isnan(x).all(axis=1)  # [n, 18]
    if all_nan[:, _SLOPE].any():
        fill = slope_fill() if callable(slope_fill) else slope_fill
        x = x.copy() if not x.flags.writeable else x
        x[all_nan[:, _SLOPE], :, _SLOPE] = fill
        all_nan[:, _SLOPE] = False
    valid = np.ones(len(x), dtype=bool) if unusable == "raise" else ~all_nan.any(axis=1)
    xv = x if unusable == "raise" else x[valid]
    if len(xv) and np.isnan(xv).any():
        xv = fill_missing(xv, source=source)
    return np.ascontiguousarray(xv, dtype=np.float32), valid


def read_ee_raw(path: str | Path, window: Window | None = None, check_descriptions: bool = True,
                bands: list[int] | None = None, info: EETiffInfo | None = None) -> tuple[np.ndarray, EETiffInfo]:
    """Raw values ``[count, H, W]`` float64 (nodata → NaN) of a validated export, plus its header
    (:meth:`EETiffReader.read_raw`). ``info``: the header when already validated."""
    if info is None:
        info = ee_tiff_info(path, check_descriptions=check_descriptions)
    return EETiffReader.from_info(info).read_raw(window, bands), info


def split_raw(data: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """``[T*17+2, ...]`` raw band stack → (dynamic ``[T, 17, ...]``, static ``[2, ...]``)."""
    n_dyn = t * RAW_PER_STEP
    return data[:n_dyn].reshape((t, RAW_PER_STEP) + data.shape[1:]), data[n_dyn:]


def read_ee_tiff(path: str | Path, start_date=None, window: Window | None = None, fill: bool = False,
                 check_descriptions: bool = True) -> xr.DataArray:
    """An Earth-Engine export → ``xarray.DataArray`` dims ``(time, band, y, x)``, canonical bands.

    - ``band`` = :data:`cropmeta.schema.BANDS` (B1/B10 dropped, elevation/slope repeated at every
      step, true NDVI = (B8 − B4)/(B8 + B4)); values float32 in raw units;
    - ``time`` = monthly (30-day) step dates from the file name (``{index}-{dataset}_{start}_{end}``
      or openmapflow ``…_dates={start}_{end}_all``), else ``start_date``; else :class:`InputError`;
    - CRS and transform kept (``da.rio.crs``, ``da.rio.transform()``); ``x``/``y`` = pixel centres;
    - missing values are NaN unless ``fill=True`` (then :func:`fill_pixels`, the reader's one rule:
      a missing slope takes the tile mean; an all-NaN other band raises :class:`DataError`).
    """
    path = Path(path)
    info = ee_tiff_info(path, check_descriptions=check_descriptions)
    if info.transform.b != 0 or info.transform.d != 0:
        raise InputError(f"{path}: rotated/sheared grids are not supported (transform {tuple(info.transform)[:6]}); "
                         "warp the export to a north-up grid first (gdalwarp)")
    start = _resolve_start(path, start_date)
    if start is None:
        raise InputError(
            f"{path}: cannot tell the export's start date: the file name matches neither "
            "'{index}-{dataset}_{start}_{end}.tif' nor '…_dates={start}_{end}_all.tif'; "
            "pass the first step's date (start_date / --start-date YYYY-MM-DD)"
        )
    reader = EETiffReader.from_info(info)
    t = info.t
    raw = reader.read_raw(window)
    h, w = raw.shape[1:]
    canon = reader.canonical(raw.reshape(raw.shape[0], h * w))  # [h*w, T, 18]
    if fill:
        canon, _ = fill_pixels(canon, reader.slope_fill, source=str(path))
    values = np.ascontiguousarray(np.moveaxis(canon.reshape(h, w, t, len(BANDS)), (2, 3), (0, 1)))  # [T,18,h,w]
    transform = info.transform
    r0 = c0 = 0
    if window is not None:
        transform = rasterio.windows.transform(window, info.transform)
        r0, c0 = int(window.row_off), int(window.col_off)
    # pixel centres from the file's own transform, so a window's coordinates equal the full grid's
    xs = info.transform.c + info.transform.a * (c0 + np.arange(w) + 0.5)
    ys = info.transform.f + info.transform.e * (r0 + np.arange(h) + 0.5)
    da = xr.DataArray(
        values,
        dims=("time", "band", "y", "x"),
        coords={"time": time_coords(start, t), "band": list(BANDS), "y": ys, "x": xs},
        name="eo",
        attrs={"source": str(path), "t": t, "start_date": start.isoformat(),
               "units": json_units()},
    )
    if info.crs is not None:
        da = da.rio.write_crs(info.crs)
    da = da.rio.write_transform(transform)
    return da


def json_units() -> str:
    """Band units as a compact ``band=unit;…`` string (netCDF attributes must be flat)."""
    return ";".join(f"{b}={BAND_UNITS[b]}" for b in BANDS)


def pixels_array(da: xr.DataArray) -> np.ndarray:
    """``(time, band, y, x)`` → ``[y*x, T, 18]`` float32 samples (row-major pixel order)."""
    t, b, h, w = da.shape
    return np.ascontiguousarray(np.moveaxis(np.asarray(da.values), (2, 3), (0, 1)).reshape(h * w, t, b))


def iter_ee_tiffs(path: str | Path, start_date=None, fill: bool = False) -> Iterator[xr.DataArray]:
    """:func:`read_ee_tiff` over :func:`list_ee_tiffs` (lazy: one tile in memory at a time)."""
    for p in list_ee_tiffs(path):
        yield read_ee_tiff(p, start_date=start_date, fill=fill)


__all__ = [
    "EETiffInfo", "ee_tiff_info", "iter_ee_tiffs", "pixels_array", "read_ee_raw", "read_ee_tiff", "split_raw",
    "EETiffReader", "fill_pixels", "SLOPE_FILL_WITHOUT_DATA", "window_str",
]
