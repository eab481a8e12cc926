"""Per-date raster stacks as map inputs: a folder (or list) of one-band images, one per date.

Each image holds one band (e.g. NDVI) on one date; together they are a time series on their own
grid, in any CRS (MODIS sinusoidal, UTM …), as GeoTIFF or JPEG 2000. :func:`open_stack` validates
them (one band each, one grid) and returns a :class:`StackSource`, a map input that
:func:`cropmeta.mapping.export.export` reads window by window like an Earth-Engine tile, with a
one-band :class:`~cropmeta.bandschema.BandSchema` (``x [n, T, 1]``).

**Dates** come from the file names — ``NDVI_2020-03-01.tif``, ``ndvi_20200301.tif``, MODIS
``MOD13Q1.A2020065.h18v07.061….tif`` (year + day of year) — or from a list file (one ``PATH DATE``
per line, or a CSV with ``path,date`` columns; relative paths are relative to the list file).

**Steps.** ``step="month"`` (default): the images dated in one calendar month are averaged per pixel
(nodata left out), so 16-day MODIS composites become monthly steps; the months must follow each
other without a gap. ``step="dekad"``: one image per dekad (days 1, 11, 21). ``months`` keeps a window
``YYYY-MM:YYYY-MM`` (:mod:`cropmeta.io.windows`).

**Missing values.** Nodata (the file's, or ``nodata``) is NaN; a pixel NaN at some steps takes its
mean over time; a pixel with no value at any step is nodata in the map.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from cropmeta.bandschema import BandSchema
from cropmeta.errors import DataError, InputError
from cropmeta.io.windows import month_index, month_start, parse_months
from cropmeta.io.eetiff import window_str
from cropmeta.io.handles import cached, file_key
from cropmeta.mapping.sources import Grid, Source

IMAGE_SUFFIXES = (".tif", ".tiff", ".jp2")
_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")
_MODIS = re.compile(r"\.A(\d{4})(\d{3})\.")


def date_from_name(name: str) -> dt.date | None:
    """The date a file name carries (ISO ``YYYY-MM-DD``, ``YYYYMMDD`` or MODIS ``.AYYYYDDD.``), or None."""
    m = _MODIS.search(name)
    try:
        if m:
            return dt.date(int(m.group(1)), 1, 1) + dt.timedelta(days=int(m.group(2)) - 1)
        for rx in (_ISO, _COMPACT):
            m = rx.search(name)
            if m:
                return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None
    return None


def _read_list(path: Path) -> list[tuple[Path, dt.date]]:
    """A list file → (image, date) pairs."""
    rows = []
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and lines[0].replace(" ", "").lower() in ("path,date", "file,date"):
        lines = lines[1:]
    for i, ln in enumerate(lines, start=1):
        parts = [p for p in re.split(r"[,\s]+", ln) if p]
        if len(parts) != 2:
            raise InputError(f"{path}: line {i} {ln!r}: expected 'PATH DATE'")
        try:
            d = dt.date.fromisoformat(parts[1])
        except ValueError:
            raise InputError(f"{path}: line {i}: {parts[1]!r} is not an ISO date (YYYY-MM-DD)") from None
        p = Path(parts[0])
        rows.append((p if p.is_absolute() else path.parent / p, d))
    if not rows:
        raise InputError(f"{path}: the list file names no images")
    return rows


def stack_files(inputs) -> list[tuple[Path, dt.date]]:
    """(image, date) pairs of a folder, a list file (``.txt``/``.csv``) or a list of image paths."""
    if isinstance(inputs, (str, Path)):
        p = Path(inputs)
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
        if p.is_file() and p.suffix.lower() in (".txt", ".csv", ".lst"):
            pairs = _read_list(p)
            for f, _ in pairs:
                if not f.exists():
                    raise InputError(f"{p}: lists {f}, which does not exist")
            return sorted(pairs, key=lambda fd: fd[1])
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")) \
            if p.is_dir() else [p]
        if not files:
            raise InputError(f"{p}: folder holds no {'/'.join(IMAGE_SUFFIXES)} images")
    else:
        files = [Path(f) for f in inputs]
    pairs = []
    for f in files:
        d = date_from_name(f.name)
        if d is None:
            raise InputError(f"{f}: the file name carries no date (expected e.g. NDVI_2020-03-01.tif, ndvi_20200301.tif "
                             "or MODIS …A2020065…); give the dates in a list file (PATH DATE per line)")
        pairs.append((f, d))
    return sorted(pairs, key=lambda fd: fd[1])


def is_stack_folder(path) -> bool:
    """True for a folder of dated one-band images (what :func:`open_stack` reads), False otherwise
    (e.g. a folder of Earth-Engine exports)."""
    p = Path(path)
    if not p.is_dir():
        return False
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
    if not files or any(date_from_name(f.name) is None for f in files):
        return False
    try:
        with rasterio.open(files[0]) as ds:
            return ds.count == 1
    except rasterio.errors.RasterioError:
        return False


def _step_of(d: dt.date, step: str) -> int:
    mi = month_index(d.year, d.month)
    return mi if step == "month" else mi * 3 + min((d.day - 1) // 10, 2)


def _step_date(k: int, step: str) -> dt.date:
    if step == "month":
        return month_start(k)
    mi, j = divmod(k, 3)
    return month_start(mi).replace(day=1 + 10 * j)


@dataclass(frozen=True)
class StackSource(Source):
    """Dated one-band images as a map input (see the module doc). ``files``: the images; ``steps``:
    for each time step, the indexes of the images averaged into it."""

    kind: str = "stack"
    files: tuple = ()
    steps: tuple = ()
    schema: BandSchema | None = None
    scale: float | None = None
    start_date: str | None = None

    def first_date(self) -> str | None:
        """ISO date of the first step read: ``start_date`` itself — a window of months
        (:func:`window_stack`) moves it to the window's first month and indexes the steps with
        ``t_start``, so it is not moved on again (a Presto map reads each pixel's start from it)."""
        return self.start_date

    def _ds(self, path: str):
        try:
            return cached(("stack",) + file_key(path), lambda: rasterio.open(path))
        except (OSError, rasterio.errors.RasterioIOError) as e:
            raise InputError(f"{path}: cannot open map input ({e})") from e

    def read_series(self, window: Window) -> np.ndarray:
        """``[h*w, T, 1]`` float32 with NaN where an image has no value."""
        h, w = int(window.height), int(window.width)
        out = np.full((h * w, self.t, 1), np.nan, dtype=np.float32)
        for k, idx in enumerate(self.steps[self.t_start: self.t_start + self.t]):
            acc = np.zeros(h * w, dtype=np.float64)
            n = np.zeros(h * w, dtype=np.int32)
            for i in idx:
                path = str(self.files[i])
                ds = self._ds(path)
                try:
                    a = ds.read(1, window=window, out_dtype="float64").reshape(-1)
                except rasterio.errors.RasterioIOError as e:
                    raise DataError(f"{path}: cannot read window {window_str(window)} ({e})") from e
                bad = ~np.isfinite(a)
                nod = self.nodata if self.nodata is not None else ds.nodata
                if nod is not None and np.isfinite(nod):
                    bad |= a == nod
                acc += np.where(bad, 0.0, a)
                n += ~bad
            with np.errstate(invalid="ignore", divide="ignore"):
                v = np.where(n > 0, acc / np.maximum(n, 1), np.nan)
            out[:, k, 0] = v * (self.scale if self.scale is not None else 1.0)
        return out

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        h, w = int(window.height), int(window.width)
        x = self.read_series(window)
        nan = np.isnan(x)
        valid = ~nan.all(axis=1)[:, 0]
        xv = x[valid]
        if np.isnan(xv).any():
            with np.errstate(invalid="ignore"):
                xv = np.where(np.isnan(xv), np.nanmean(xv, axis=1, keepdims=True), xv)
        return np.ascontiguousarray(xv, dtype=np.float32), valid.reshape(h, w)

    def mean_slope(self) -> float:  # no slope band
        return 0.0


def open_stack(inputs, band: str = "NDVI", step: str = "month", months: str | None = None,
               nodata: float | None = None, scale: float | None = None, name: str | None = None) -> StackSource:
    """Validate dated one-band images (a folder, a list file or a list of paths) → :class:`StackSource`.

    ``band``: the band the images hold (the schema's one band); ``step``: ``month`` (images of a month
    averaged) or ``dekad``; ``months``: a window ``YYYY-MM:YYYY-MM``; ``nodata``: overrides the files'
    nodata; ``scale``: multiplies the values (e.g. 0.0001 for MODIS NDVI integers). Errors name the file.
    """
    if step not in ("month", "dekad"):
        raise InputError(f"step {step!r}: a stack has month or dekad steps")
    pairs = stack_files(inputs)
    grid = None
    first = None
    for f, _ in pairs:
        try:
            with rasterio.open(f) as ds:
                if ds.count != 1:
                    raise InputError(f"{f}: {ds.count} bands; a per-date stack holds one band per image")
                if ds.crs is None:
                    raise InputError(f"{f}: the image has no coordinate reference system")
                if ds.transform.b != 0 or ds.transform.d != 0:
                    raise InputError(f"{f}: rotated/sheared grids are not supported; warp it north-up first")
                g = Grid(int(ds.width), int(ds.height), ds.crs.to_wkt(), tuple(ds.transform)[:6])
        except rasterio.errors.RasterioError as e:
            raise InputError(f"{f}: not a readable image ({e})") from e
        if grid is None:
            grid, first = g, f
        elif (g.width, g.height) != (grid.width, grid.height):
            raise InputError(f"{f}: {g.width}x{g.height} pixels, unlike {first.name} ({grid.width}x{grid.height}); "
                             "the images of a stack share one grid")
        elif not np.allclose(g.transform, grid.transform):
            raise InputError(f"{f}: its transform {tuple(round(v, 6) for v in g.transform)} differs from {first.name}'s "
                             f"{tuple(round(v, 6) for v in grid.transform)}; the images of a stack share one grid")
        elif rasterio.crs.CRS.from_wkt(g.crs) != rasterio.crs.CRS.from_wkt(grid.crs):
            raise InputError(f"{f}: its CRS differs from {first.name}'s; the images of a stack share one grid")
    keys = [_step_of(d, step) for _, d in pairs]
    if step == "dekad" and len(set(keys)) != len(keys):
        k = next(k for k in keys if keys.count(k) > 1)
        f = pairs[keys.index(k)][0]
        raise InputError(f"{f}: two images in the dekad of {_step_date(k, step)}; a dekad stack has one image per dekad")
    window = parse_months(months)
    lo, hi = min(keys), max(keys)
    label = f"{pairs[0][0].parent if isinstance(inputs, (str, Path)) and Path(inputs).is_dir() else inputs}"
    if window is not None:
        per = 3 if step == "dekad" else 1
        w0, w1 = window.start * per, window.end * per + per - 1
        if w0 < lo or w1 > hi:
            raise DataError(f"{label}: window {window.label()} is outside the images' dates "
                            f"({pairs[0][1].isoformat()} … {pairs[-1][1].isoformat()})")
        lo, hi = w0, w1
    steps = []
    for k in range(lo, hi + 1):
        idx = tuple(i for i, kk in enumerate(keys) if kk == k)
        if not idx:
            raise DataError(f"{label}: no image dated in the {step} of {_step_date(k, step).isoformat()} (the images "
                            f"run {pairs[0][1].isoformat()} … {pairs[-1][1].isoformat()}); a stack needs every {step}")
        steps.append(idx)
    t = len(steps)
    first_d, last_d = _step_date(lo, step), _step_date(hi, step)
    schema = BandSchema(name or str(band).lower(), dynamic=(str(band),), t=t, step=step)
    base = Path(inputs).stem if isinstance(inputs, (str, Path)) else pairs[0][0].parent.name
    return StackSource(name=f"{base}_{first_d.isoformat()}_{last_d.isoformat()}.tif", grid=grid, t=t,
                       slope_fill=0.0, nodata=nodata, kind="stack",
                       ref=str(inputs) if isinstance(inputs, (str, Path)) else str(pairs[0][0].parent),
                       files=tuple(str(f) for f, _ in pairs), steps=tuple(steps), schema=schema, scale=scale,
                       start_date=first_d.isoformat())


def window_stack(s: StackSource, months: str) -> StackSource:
    """``s`` cut to the window ``months`` (``YYYY-MM:YYYY-MM``) of its steps."""
    window = parse_months(months)
    per = 3 if s.schema.step == "dekad" else 1
    first = _step_of(dt.date.fromisoformat(s.start_date), s.schema.step)
    a = window.start * per - first
    t = window.n_months * per
    if a < 0 or a + t > s.t + s.t_start:
        raise DataError(f"{s.ref}: window {window.label()} is outside the stack's {s.schema.step}s "
                        f"({s.start_date} + {s.t} steps)")
    d0, d1 = _step_date(first + a, s.schema.step), _step_date(first + a + t - 1, s.schema.step)
    base = s.name.rsplit("_", 2)[0]
    return dataclasses.replace(s, t=t, t_start=a, schema=s.schema.with_t(t), start_date=d0.isoformat(),
                               name=f"{base}_{d0.isoformat()}_{d1.isoformat()}.tif")


__all__ = ["StackSource", "date_from_name", "is_stack_folder", "open_stack", "stack_files", "window_stack"]
