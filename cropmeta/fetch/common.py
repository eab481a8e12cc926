"""What every fetch source shares: the export grid and windows, the targets (one small box per label
or tiles over a region), writing the Earth-Engine layout, the manifest and the resumable loop.

- Grid: EPSG:4326 at :data:`RES_DEG` (10 m at the equator, Earth Engine's ``scale=10`` in
  EPSG:4326), pixel edges on multiples of the resolution (Earth Engine's default grid).
- Windows: ``T`` consecutive 30-day steps (:data:`cropmeta.schema.DAYS_PER_STEP`) from the start
  date; with ``--year Y`` the last window ends on 1 February of ``Y+1`` (CropHarvest's rule, e.g.
  ``98-togo_2019-02-06_2020-02-01.tif`` for 2019).
- Files: ``{index}-{dataset}_{start}_{end}.tif`` (:func:`cropmeta.io.eetiff.ee_filename`), written
  with :func:`cropmeta.io.eetiff.write_ee_tiff` (temporary file, then rename), so a file that exists
  is complete; a rerun skips it.
- Manifest: ``manifest.json`` beside the files: per file the sample id, box, date windows and every
  source item id; the software versions; rewritten atomically after each file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from rasterio.transform import Affine

from cropmeta import __version__
from cropmeta.errors import InputError
from cropmeta.io.atomic import atomic_write_text
from cropmeta.io.eetiff import ee_filename, ee_tiff_info, write_ee_tiff
from cropmeta.schema import DAYS_PER_STEP, DEFAULT_T, N_STATIC, RAW_PER_STEP

#: export pixel size in degrees: 10 m at the equator (Earth Engine ``scale=10`` in EPSG:4326)
RES_DEG = 10.0 / (6378137.0 * math.pi / 180.0)
#: CropHarvest exports ``surrounding_metres=80`` around each label point
BOX_METRES = 80.0
#: metres per degree of latitude used to size label boxes (WGS84 semi-major axis)
METRES_PER_DEGREE = 6378137.0 * math.pi / 180.0
#: pixels on a side of one region tile (~5 km)
TILE_PX = 512
MANIFEST = "manifest.json"
#: substrings of errors worth retrying (rate limits, time-outs, 5xx, dropped connections)
TRANSIENT = ("Too many concurrent", "rate limit", "Quota exceeded", "timed out", "timeout", "Deadline", "503", "502",
             "500", "429", "Internal error", "temporarily", "Connection", "CURL error")
#: packages whose versions the manifest records
SOFTWARE = ("numpy", "rasterio", "xarray", "dask", "pystac", "pystac-client", "odc-stac", "odc-geo",
            "planetary-computer", "earthengine-api")


# --------------------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------------------
def _date(value, what: str = "date") -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as e:
        raise InputError(f"{what} {value!r} is not an ISO date (YYYY-MM-DD)") from e


def export_windows(start, t: int = DEFAULT_T) -> list[tuple[dt.date, dt.date]]:
    """``t`` consecutive 30-day windows ``[start + 30 i, start + 30 (i + 1))``."""
    s = _date(start, "start date")
    step = dt.timedelta(days=DAYS_PER_STEP)
    return [(s + i * step, s + (i + 1) * step) for i in range(t)]


def start_for_year(year: int, t: int = DEFAULT_T) -> dt.date:
    """First day of the export for season ``year``: ``t`` windows ending on ``year+1``-02-01."""
    if not 2015 <= int(year) <= 2100:
        raise InputError(f"--year {year}: Sentinel-1/2 data start in 2015; give a year from 2015 on")
    return dt.date(int(year) + 1, 2, 1) - dt.timedelta(days=DAYS_PER_STEP * t)


# --------------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One output file: a north-up EPSG:4326 grid and its date windows."""

    index: str
    dataset: str
    transform: Affine
    width: int
    height: int
    start: dt.date
    t: int = DEFAULT_T
    sample_id: str | None = None

    @property
    def windows(self) -> list[tuple[dt.date, dt.date]]:
        return export_windows(self.start, self.t)

    @property
    def end(self) -> dt.date:
        return self.windows[-1][1]

    @property
    def filename(self) -> str:
        return ee_filename(self.index, self.dataset, self.start.isoformat(), self.end.isoformat())

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min_lon, min_lat, max_lon, max_lat) of the pixel edges."""
        x0, y1 = self.transform.c, self.transform.f
        return (x0, y1 + self.height * self.transform.e, x0 + self.width * self.transform.a, y1)

    def padded(self, px: int = 1) -> tuple[Affine, int, int]:
        """The same grid grown by ``px`` pixels on every side (for neighbourhood operators)."""
        tr = self.transform * Affine.translation(-px, -px)
        return tr, self.height + 2 * px, self.width + 2 * px


def snap_grid(bounds: tuple[float, float, float, float], res: float = RES_DEG) -> tuple[Affine, int, int]:
    """The smallest grid of ``res`` pixels with edges on multiples of ``res`` that covers ``bounds``."""
    x0, y0, x1, y1 = bounds
    c0, c1 = math.floor(x0 / res + 1e-9), math.ceil(x1 / res - 1e-9)
    r0, r1 = math.floor(y0 / res + 1e-9), math.ceil(y1 / res - 1e-9)
    return Affine(res, 0.0, c0 * res, 0.0, -res, r1 * res), max(1, r1 - r0), max(1, c1 - c0)


def label_box(lat: float, lon: float, metres: float = BOX_METRES) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of ``metres`` around a point (CropHarvest's box)."""
    dlat = metres / METRES_PER_DEGREE
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    return (lon - dlon, lat - dlat, lon + dlon, lat + dlat)


def _slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", str(name)).strip("_").lower()
    return s or "labels"


def label_targets(labels, year: int | None, t: int = DEFAULT_T, box_metres: float = BOX_METRES,
                  source: str = "labels") -> list[Target]:
    """One target per label point (a ``box_metres`` box around it). The window comes from ``year``
    or else from the label's ``start_date``; a label with neither raises :class:`InputError`."""
    if box_metres <= 0:
        raise InputError(f"--box-metres {box_metres}: must be positive")
    out, seen = [], set()
    starts = labels["start_date"] if "start_date" in labels.columns else [None] * len(labels)
    for i, (row, sd) in enumerate(zip(labels.itertuples(index=False), starts)):
        if year is not None:
            start = start_for_year(year, t)
        elif sd is not None and str(sd) not in ("", "None", "nan"):
            start = _date(sd, f"{source}: start_date of label {row.sample_id}")
        else:
            raise InputError(f"{source}: label {row.sample_id} has no start_date; give the season with --year Y")
        tr, h, w = snap_grid(label_box(float(row.lat), float(row.lon), box_metres))
        key = (tuple(tr)[:6], h, w, start)
        if key in seen:  # two labels in the same box: one file serves both
            continue
        seen.add(key)
        out.append(Target(str(i), _slug(getattr(row, "dataset", None) or source), tr, w, h, start, t,
                          str(row.sample_id)))
    return out


def region_targets(region, year: int, t: int = DEFAULT_T, tile_px: int = TILE_PX) -> list[Target]:
    """Tiles of ``tile_px`` pixels over a region's bounding box, keeping those that touch it."""
    from shapely.geometry import box

    if tile_px < 16:
        raise InputError(f"--tile-px {tile_px}: use at least 16 pixels")
    start = start_for_year(year, t)
    tr, h, w = snap_grid(region.bounds)
    out = []
    for r0 in range(0, h, tile_px):
        for c0 in range(0, w, tile_px):
            ttr = tr * Affine.translation(c0, r0)
            th, tw = min(tile_px, h - r0), min(tile_px, w - c0)
            tile = Target(str(len(out)), _slug(region.slug), ttr, tw, th, start, t)
            if region.geometry.intersects(box(*tile.bounds)):
                out.append(tile)
    return out


# --------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------
def empty_stack(target: Target) -> tuple[np.ndarray, np.ndarray]:
    """NaN-filled (dynamic ``[T, 17, H, W]``, static ``[2, H, W]``) float32 arrays for a target."""
    return (np.full((target.t, RAW_PER_STEP, target.height, target.width), np.nan, np.float32),
            np.full((N_STATIC, target.height, target.width), np.nan, np.float32))


def write_target(out_dir: Path, target: Target, dynamic: np.ndarray, static: np.ndarray, source: str) -> Path:
    """Write one target's stack in the Earth-Engine layout (atomically)."""
    tags = {"cropmeta_fetch": source, "cropmeta_version": __version__, "start_date": target.start.isoformat(),
            "end_date": target.end.isoformat()}
    if target.sample_id is not None:
        tags["sample_id"] = target.sample_id
    return write_ee_tiff(Path(out_dir) / target.filename, dynamic, static, target.transform, tags=tags)


def is_complete(path: Path, target: Target) -> bool:
    """True when ``path`` is a readable Earth-Engine-layout file on ``target``'s grid with its T
    (a file from another box size or T under the same name is fetched again)."""
    if not path.exists():
        return False
    try:
        info = ee_tiff_info(path)
    except InputError:
        return False
    same_grid = info.transform.almost_equals(target.transform, precision=1e-9)
    return info.t == target.t and (info.height, info.width) == (target.height, target.width) and same_grid


def software_versions() -> dict[str, str]:
    """:func:`cropmeta.provenance.software_versions` of the acquisition stack, and GDAL's."""
    from cropmeta.provenance import software_versions as versions

    out = versions(SOFTWARE)
    try:
        import rasterio

        out["gdal"] = rasterio.__gdal_version__
    except ImportError:  # pragma: no cover
        pass
    return out


@dataclass
class Manifest:
    """``manifest.json``: the run's settings, software versions and one entry per file."""

    path: Path
    settings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    @classmethod
    def open(cls, out_dir: Path, settings: dict) -> "Manifest":
        path = Path(out_dir) / MANIFEST
        files = {}
        if path.exists():
            try:
                files = json.loads(path.read_text()).get("files", {})
            except (json.JSONDecodeError, AttributeError) as e:
                raise InputError(f"{path}: not a cropmeta fetch manifest ({e}); move it away to start afresh") from e
        return cls(path, settings, files)

    def record(self, target: Target, items: dict[str, list[str]], status: str = "complete", **extra) -> None:
        self.files[target.filename] = {
            "sample_id": target.sample_id, "bounds": [round(v, 9) for v in target.bounds],
            "shape": [target.height, target.width], "start": target.start.isoformat(),
            "end": target.end.isoformat(), "windows": [[a.isoformat(), b.isoformat()] for a, b in target.windows],
            "items": {k: sorted(set(v)) for k, v in items.items()}, "status": status, **extra,
        }
        self.save()

    def save(self) -> None:
        doc = {"cropmeta_fetch": 1, "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "software": software_versions(), "settings": self.settings, "files": self.files}
        atomic_write_text(self.path, json.dumps(doc, indent=2, default=str))


@dataclass
class FetchResult:
    """What a fetch did: the output folder, files written / skipped (already complete) / failed."""

    out: Path
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    manifest: Path | None = None
    queued: list[str] = field(default_factory=list)  # Earth Engine batch task ids (Drive/GCS exports)


def with_retries(fn: Callable, what: str, attempts: int = 4, sleep: Callable[[float], None] | None = None,
                 base: float = 2.0, source: str = "source"):
    """Call ``fn()``; retry transient failures (:data:`TRANSIENT`) with back-off ``base**i`` seconds;
    any other failure, or the last one, becomes one :class:`FetchError` naming ``source`` and ``what``."""
    from cropmeta.errors import CropmetaError, FetchError

    sleep = sleep or time.sleep
    for i in range(max(1, attempts)):
        try:
            return fn()
        except CropmetaError:
            raise
        except Exception as e:  # noqa: BLE001
            transient = any(s.lower() in str(e).lower() for s in TRANSIENT)
            if not transient or i == attempts - 1:
                raise FetchError(f"{source}: {what} failed after {i + 1} attempt(s): "
                                 f"{type(e).__name__}: {str(e)[:300]}") from e
            sleep(base ** i)
    raise AssertionError("unreachable")  # pragma: no cover


def progress_bar(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), disable=not enabled, transient=False)


def run_targets(targets: Iterable[Target], out_dir: Path, produce: Callable[[Target], tuple],
                manifest: Manifest, source: str, progress: bool = False) -> FetchResult:
    """For each target not yet complete in ``out_dir``: ``produce(target)`` → (dynamic, static,
    items), write it, record it. Stops at the first error (files already written stay: a rerun
    resumes after them)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = list(targets)
    result = FetchResult(out_dir, manifest=manifest.path)
    with progress_bar(progress) as bar:
        task = bar.add_task(f"fetch ({source})", total=len(targets))
        for target in targets:
            path = out_dir / target.filename
            if is_complete(path, target):
                result.skipped.append(path)
            else:
                dynamic, static, items = produce(target)
                write_target(out_dir, target, dynamic, static, source)
                manifest.record(target, items)
                result.written.append(path)
            bar.advance(task)
    if not manifest.path.exists():
        manifest.save()
    return result
