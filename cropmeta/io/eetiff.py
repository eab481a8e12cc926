"""Earth-Engine export GeoTIFFs (CropHarvest / openmapflow ``eo_data`` layout).

Writer (:func:`write_ee_tiff`, used by the simulator and tests) and reader (:func:`read_ee_tiff`,
:func:`read_ee_raw`, :func:`ee_tiff_info`, :func:`list_ee_tiffs`).

Layout: ``T * 17 + 2`` bands — for each monthly step the 17 bands of
:data:`cropmeta.schema.DYNAMIC_BANDS_RAW`, then ``elevation, slope`` — with GDAL band descriptions
from :func:`cropmeta.schema.raw_band_names`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
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

from cropmeta.errors import InputError
from cropmeta._fs import atomic_path
from cropmeta.schema import (
    BAND_UNITS,
    BANDS,
    DAYS_PER_STEP,
    N_STATIC,
    RAW_PER_STEP,
    canonical_from_raw,
    fill_missing,
    n_raw_bands,
    raw_band_names,
    t_from_raw_band_count,
)


def ee_filename(index: int | str, dataset: str, start: str, end: str) -> str:
    """CropHarvest's file name ``{index}-{dataset}_{start}_{end}.tif`` (dates ``YYYY-MM-DD``)."""
    return f"{index}-{dataset}_{start}_{end}.tif"


def write_ee_tiff(
    path: str | Path,
    dynamic: np.ndarray,
    static: np.ndarray,
    transform: Affine,
    crs: str = "EPSG:4326",
    dtype: str = "float32",
    tags: dict | None = None,
    creation_options: dict | None = None,
) -> Path:
    """Write an Earth-Engine-layout GeoTIFF atomically.

    dynamic: ``[T, 17, H, W]`` in :data:`DYNAMIC_BANDS_RAW` order; static: ``[2, H, W]``.
    """
    dynamic = np.asarray(dynamic)
    static = np.asarray(static)
    if dynamic.ndim != 4 or dynamic.shape[1] != RAW_PER_STEP:
        raise InputError(f"{path}: dynamic array must be [T, {RAW_PER_STEP}, H, W], got {list(dynamic.shape)}")
    if static.shape != (N_STATIC,) + dynamic.shape[2:]:
        raise InputError(f"{path}: static array must be [{N_STATIC}, H, W], got {list(static.shape)}")
    t, _, h, w = dynamic.shape
    data = np.concatenate([dynamic.reshape(t * RAW_PER_STEP, h, w), static], axis=0).astype(dtype)
    names = raw_band_names(t)
    profile = dict(driver="GTiff", width=w, height=h, count=len(names), dtype=dtype, crs=crs,
                   transform=transform, compress="deflate", interleave="pixel")
    if h >= 16 and w >= 16 and h % 16 == 0 and w % 16 == 0:
        profile.update(tiled=True, blockxsize=min(256, w - w % 16), blockysize=min(256, h - h % 16))
    profile.update(creation_options or {})
    path = Path(path)
    with atomic_path(path, suffix=".tif") as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            for i, name in enumerate(names, start=1):
                dst.set_band_description(i, name)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
    return path


# ==================================================================================================
# Reader
# ==================================================================================================
#: file suffixes treated as GeoTIFFs when a directory of tiles is given
TIFF_SUFFIXES = (".tif", ".tiff")

_DATE = r"(\d{4}-\d{2}-\d{2})"
#: CropHarvest: ``{index}-{dataset}_{start}_{end}.tif``
_CROPHARVEST_NAME = re.compile(rf"^(?P<index>[^-]+)-(?P<dataset>.+)_{_DATE}_{_DATE}$")
#: openmapflow: ``min_lat=…_min_lon=…_max_lat=…_max_lon=…_dates={start}_{end}_all.tif``
_OPENMAPFLOW_NAME = re.compile(rf"dates={_DATE}_{_DATE}")


@dataclass(frozen=True)
class EEFileName:
    """What a tile's file name says: first/last export date, and (CropHarvest names) index/dataset."""

    start: _dt.date
    end: _dt.date
    index: str | None = None
    dataset: str | None = None


def parse_ee_filename(path: str | Path) -> EEFileName | None:
    """Dates (and CropHarvest index/dataset) from an export's file name; ``None`` if it has none.

    >>> parse_ee_filename("98-togo_2019-02-06_2020-02-01.tif").start
    datetime.date(2019, 2, 6)
    """
    stem = Path(path).name
    for suf in TIFF_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    m = _CROPHARVEST_NAME.match(stem)
    try:
        if m:
            return EEFileName(_dt.date.fromisoformat(m.group(3)), _dt.date.fromisoformat(m.group(4)),
                              m.group("index"), m.group("dataset"))
        m = _OPENMAPFLOW_NAME.search(stem)
        if m:
            return EEFileName(_dt.date.fromisoformat(m.group(1)), _dt.date.fromisoformat(m.group(2)))
    except ValueError:  # e.g. 2019-13-45: not a date, so the name carries none
        return None
    return None


def time_coords(start: str | _dt.date, t: int) -> np.ndarray:
    """``t`` monthly step dates: ``start + i * 30 days`` (datetime64[ns])."""
    start = _dt.date.fromisoformat(start) if isinstance(start, str) else start
    base = np.datetime64(start.isoformat(), "D")
    return (base + np.arange(t) * np.timedelta64(DAYS_PER_STEP, "D")).astype("datetime64[ns]")


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


def read_ee_raw(path: str | Path, window: Window | None = None, check_descriptions: bool = True,
                bands: list[int] | None = None, info: EETiffInfo | None = None) -> tuple[np.ndarray, EETiffInfo]:
    """Raw values ``[count, H, W]`` float64 (nodata → NaN) of a validated export, plus its header.

    ``bands``: 1-based raster band indexes to read (default: all). ``window``: a rasterio window.
    ``info``: the header from :func:`ee_tiff_info` when already validated (skips re-validation).
    """
    path = Path(path)
    if info is None:
        info = ee_tiff_info(path, check_descriptions=check_descriptions)
    with _open(path) as src:
        try:
            data = src.read(indexes=bands, window=window, out_dtype="float64")
        except RasterioError as e:
            raise InputError(f"{path}: cannot read pixel values (corrupt or truncated GeoTIFF?): {e}") from e
    if info.nodata is not None and not np.isnan(info.nodata):
        data[data == info.nodata] = np.nan
    return data, info


def split_raw(data: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """``[T*17+2, ...]`` raw band stack → (dynamic ``[T, 17, ...]``, static ``[2, ...]``)."""
    n_dyn = t * RAW_PER_STEP
    return data[:n_dyn].reshape((t, RAW_PER_STEP) + data.shape[1:]), data[n_dyn:]


def tile_slope_mean(path: str | Path, check_descriptions: bool = True, info: EETiffInfo | None = None) -> float:
    """Mean of the tile's ``slope`` band over its valid pixels (NaN when none): the fill value for
    pixels whose slope is missing (SRTM slope is NaN on a tile's 1-px border)."""
    path = Path(path)
    if info is None:
        info = ee_tiff_info(path, check_descriptions=check_descriptions)
    slope, _ = read_ee_raw(path, bands=[n_raw_bands(info.t)], info=info)
    return float(np.nanmean(slope)) if np.isfinite(slope).any() else float("nan")


def read_ee_tiff(path: str | Path, start_date=None, window: Window | None = None, fill: bool = False,
                 check_descriptions: bool = True) -> xr.DataArray:
    """An Earth-Engine export → ``xarray.DataArray`` dims ``(time, band, y, x)``, canonical bands.

    - ``band`` = :data:`cropmeta.schema.BANDS` (B1/B10 dropped, elevation/slope repeated at every
      step, true NDVI = (B8 − B4)/(B8 + B4)); values float32 in raw units;
    - ``time`` = monthly (30-day) step dates from the file name (``{index}-{dataset}_{start}_{end}``
      or openmapflow ``…_dates={start}_{end}_all``), else ``start_date``; else :class:`InputError`;
    - CRS and transform kept (``da.rio.crs``, ``da.rio.transform()``); ``x``/``y`` = pixel centres;
    - missing values are NaN unless ``fill=True`` (then :func:`cropmeta.schema.fill_missing` per
      pixel, an all-NaN slope taking the tile mean; an all-NaN other band raises :class:`DataError`).
    """
    path = Path(path)
    data, info = read_ee_raw(path, window=window, check_descriptions=check_descriptions)
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
    t = info.t
    dynamic, static = split_raw(data, t)  # [T,17,h,w], [2,h,w]
    h, w = data.shape[1:]
    canon = canonical_from_raw(np.moveaxis(dynamic, (0, 1), (2, 3)), np.moveaxis(static, 0, 2))  # [h,w,T,18]
    if fill:
        slope_fill = tile_slope_mean(path, info=info)
        flat = fill_missing(canon.reshape(h * w, t, len(BANDS)), source=str(path), slope_fill=slope_fill)
        canon = flat.reshape(h, w, t, len(BANDS))
    values = np.ascontiguousarray(np.moveaxis(canon, (2, 3), (0, 1)))  # [T,18,h,w]
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


def list_ee_tiffs(path: str | Path) -> list[Path]:
    """One GeoTIFF, or every ``*.tif``/``*.tiff`` under a directory (recursive, sorted)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix.lower() not in TIFF_SUFFIXES:
            raise InputError(f"{path}: not a GeoTIFF (expected a .tif/.tiff file or a directory of them)")
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise InputError(f"{path}: directory holds no .tif/.tiff files")
    return files


def iter_ee_tiffs(path: str | Path, start_date=None, fill: bool = False) -> Iterator[xr.DataArray]:
    """:func:`read_ee_tiff` over :func:`list_ee_tiffs` (lazy: one tile in memory at a time)."""
    for p in list_ee_tiffs(path):
        yield read_ee_tiff(p, start_date=start_date, fill=fill)


__all__ = [
    "EEFileName", "EETiffInfo", "ee_filename", "ee_tiff_info", "iter_ee_tiffs",
    "list_ee_tiffs", "parse_ee_filename", "pixels_array", "read_ee_raw", "read_ee_tiff", "split_raw",
    "tile_slope_mean", "time_coords", "write_ee_tiff",
]
