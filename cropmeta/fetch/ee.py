"""Earth-Engine-layout stacks from Google Earth Engine: the CropHarvest/openmapflow recipe as an
earthengine-api graph (needs an Earth Engine account and a registered Cloud project).

Per 30-day window:

- **Sentinel-2**: ``COPERNICUS/S2_HARMONIZED`` (L1C top-of-atmosphere DN, the bands CropHarvest
  exports, B10 included), each scene masked where its s2cloudless score
  (``COPERNICUS/S2_CLOUD_PROBABILITY``, joined on ``system:index``) is at or above
  :attr:`EEConfig.cloud_probability`; median of the window.
- **Sentinel-1**: ``COPERNICUS/S1_GRD`` IW scenes with VV and VH (already in dB); median of the
  scenes within the window widened by :attr:`EEConfig.s1_pad_days` on each side.
- **ERA5-Land**: ``ECMWF/ERA5_LAND/MONTHLY_AGGR`` months overlapping the window: ``temperature_2m``
  (K) and ``total_precipitation_sum`` / days in the month (→ m/day, the unit of CropHarvest's
  ``total_precipitation``), averaged.
- **SRTM**: ``USGS/SRTMGL1_003`` elevation and ``ee.Terrain.slope`` (degrees).

A window without any scene gives masked pixels, never a missing band; masked pixels are written as
:data:`NODATA` (the exports' nodata value) and read back as NaN. Label boxes
are downloaded directly (``getDownloadURL``, GeoTIFF) and rewritten in cropmeta's layout; regions are
exported to Drive or Cloud Storage as batch tasks, never more than :attr:`EEConfig.max_tasks` queued
at once. Transient Earth Engine errors are retried with exponential back-off.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cropmeta.errors import FetchError, InputError
from cropmeta.fetch.common import (
    FetchResult,
    Manifest,
    Target,
    is_complete,
    progress_bar,
    run_targets,
    with_retries,
)
from cropmeta.schema import ERA5_BANDS, N_STATIC, RAW_PER_STEP, S1_BANDS, S2_BANDS_RAW, STATIC_BANDS, raw_band_names

COLLECTIONS = {
    "s2": "COPERNICUS/S2_HARMONIZED",
    "s2_clouds": "COPERNICUS/S2_CLOUD_PROBABILITY",
    "s1": "COPERNICUS/S1_GRD",
    "era5": "ECMWF/ERA5_LAND/MONTHLY_AGGR",
    "dem": "USGS/SRTMGL1_003",
}
MODES = ("download", "drive", "gcs")
#: value written for masked pixels (below any band's range: dB, DN, K, m, metres, degrees); read as NaN
NODATA = -32768.0
#: Earth Engine's limit on one getDownloadURL request (bytes)
DOWNLOAD_LIMIT = 32 * 2**20
ACTIVE_STATES = ("READY", "RUNNING", "UNSUBMITTED")
PROJECT_ENV = ("EE_PROJECT", "GOOGLE_CLOUD_PROJECT")


@dataclass(frozen=True)
class EEConfig:
    """Earth Engine settings: project, export mode and the recipe's parameters."""

    project: str | None = None  # default: $EE_PROJECT, then $GOOGLE_CLOUD_PROJECT
    mode: str = "download"  # download (label boxes) | drive | gcs
    folder: str = "cropmeta"  # Drive folder (mode drive)
    bucket: str | None = None  # Cloud Storage bucket (mode gcs)
    max_tasks: int = 20  # cap on queued/running batch tasks
    retries: int = 4
    cloud_probability: int = 40  # s2cloudless score at/above which an S2 pixel is cloud
    s1_pad_days: int = 0
    collections: dict = field(default_factory=lambda: dict(COLLECTIONS))

    def resolved_project(self) -> str | None:
        return self.project or next((os.environ[k] for k in PROJECT_ENV if os.environ.get(k)), None)


# --------------------------------------------------------------------------------------------------
# session
# --------------------------------------------------------------------------------------------------
def _import_ee():
    try:
        import ee
    except ImportError as e:
        raise FetchError("Earth Engine source needs earthengine-api (pip install earthengine-api==1.7.50); "
                         "or use --source stac (no account)") from e
    return ee


def _credential_files() -> list[Path]:
    paths = [Path(os.path.expanduser("~/.config/earthengine/credentials")),
             Path(os.path.expanduser("~/.config/gcloud/application_default_credentials.json"))]
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        paths.append(Path(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]))
    return [p for p in paths if p.is_file()]


def initialize(config: EEConfig):
    """``ee.Initialize`` with the configured project, or a :class:`FetchError` that says what is
    missing (project variable, login) and names the account-free alternative."""
    ee = _import_ee()
    project = config.resolved_project()
    if not project:
        raise FetchError("Earth Engine needs a registered Cloud project: set EE_PROJECT (or pass --ee-project "
                         "NAME); or use --source stac (Planetary Computer / Earth Search, no account)")
    if not _credential_files():
        raise FetchError("Earth Engine is not logged in (no ~/.config/earthengine/credentials, no application "
                         "default credentials, GOOGLE_APPLICATION_CREDENTIALS unset): run `earthengine "
                         "authenticate`; or use --source stac (no account)")
    try:
        ee.Initialize(project=project)
    except Exception as e:  # noqa: BLE001 - EEException, auth or network failure
        raise FetchError(f"Earth Engine refused to start for project {project!r}: {str(e).splitlines()[0][:300]}; "
                         "check `earthengine authenticate` and the project's Earth Engine registration, "
                         "or use --source stac (no account)") from e
    return ee


# --------------------------------------------------------------------------------------------------
# the recipe
# --------------------------------------------------------------------------------------------------
def _masked(ee, bands: list[str]):
    """A fully-masked float image with ``bands``: merged into each window's collection so that a
    window without scenes still yields every band (masked → NaN)."""
    return ee.Image.constant([0.0] * len(bands)).rename(bands).toFloat().updateMask(ee.Image.constant(0))


def s2_composite(ee, region, start: str, end: str, config: EEConfig):
    s2 = ee.ImageCollection(config.collections["s2"]).filterBounds(region).filterDate(start, end)
    clouds = ee.ImageCollection(config.collections["s2_clouds"]).filterBounds(region).filterDate(start, end)
    joined = ee.ImageCollection(ee.Join.saveFirst("cloud_probability").apply(
        s2, clouds, ee.Filter.equals(leftField="system:index", rightField="system:index")))

    def mask(img):
        prob = ee.Image(img.get("cloud_probability")).select("probability")
        return img.select(S2_BANDS_RAW).toFloat().updateMask(prob.lt(config.cloud_probability))

    return joined.map(mask).merge(ee.ImageCollection([_masked(ee, S2_BANDS_RAW)])).median()


def s1_composite(ee, region, start: str, end: str, config: EEConfig):
    a = ee.Date(start).advance(-config.s1_pad_days, "day")
    b = ee.Date(end).advance(config.s1_pad_days, "day")
    s1 = (ee.ImageCollection(config.collections["s1"]).filterBounds(region).filterDate(a, b)
          .filter(ee.Filter.eq("instrumentMode", "IW"))
          .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VV"))
          .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VH"))
          .select(S1_BANDS))
    return s1.map(lambda img: img.toFloat()).merge(ee.ImageCollection([_masked(ee, S1_BANDS)])).median()


def era5_composite(ee, region, start: str, end: str, config: EEConfig):
    # months overlapping [start, end): month starts in (start - 1 month, end)
    months = (ee.ImageCollection(config.collections["era5"]).filterBounds(region)
              .filterDate(ee.Date(start).advance(-1, "month").advance(1, "day"), end))

    def per_day(img):
        t0 = ee.Date(img.get("system:time_start"))
        days = t0.advance(1, "month").difference(t0, "day")
        precip = img.select("total_precipitation_sum").divide(days)
        return img.select("temperature_2m").addBands(precip).rename(ERA5_BANDS).toFloat()

    return months.map(per_day).merge(ee.ImageCollection([_masked(ee, ERA5_BANDS)])).mean()


def srtm_static(ee, config: EEConfig):
    elevation = ee.Image(config.collections["dem"]).select("elevation")
    return elevation.addBands(ee.Terrain.slope(elevation)).rename(STATIC_BANDS).toFloat()


def region_geometry(ee, target: Target):
    return ee.Geometry.Rectangle(list(target.bounds), "EPSG:4326", False)


def build_image(target: Target, config: EEConfig | None = None):
    """The target's ``T*17+2``-band ee.Image in the Earth-Engine layout (names from
    :func:`cropmeta.schema.raw_band_names`); built locally, nothing is computed."""
    ee = _import_ee()
    config = config or EEConfig()
    region = region_geometry(ee, target)
    steps = []
    for a, b in target.windows:
        s, e = a.isoformat(), b.isoformat()
        steps.append(ee.Image.cat([s1_composite(ee, region, s, e, config), s2_composite(ee, region, s, e, config),
                                   era5_composite(ee, region, s, e, config)]))
    return ee.Image.cat(steps + [srtm_static(ee, config)]).rename(raw_band_names(target.t)).toFloat()


def source_ids(target: Target, config: EEConfig):
    """An ee.Dictionary of the scene ids each collection contributes (one getInfo for the manifest)."""
    ee = _import_ee()
    region = region_geometry(ee, target)
    start, end = target.start.isoformat(), target.end.isoformat()
    pad = config.s1_pad_days
    ids = {
        "s2": ee.ImageCollection(config.collections["s2"]).filterBounds(region).filterDate(start, end),
        "s1": ee.ImageCollection(config.collections["s1"]).filterBounds(region)
        .filterDate(ee.Date(start).advance(-pad, "day"), ee.Date(end).advance(pad, "day"))
        .filter(ee.Filter.eq("instrumentMode", "IW")),
        "era5": ee.ImageCollection(config.collections["era5"])
        .filterDate(ee.Date(start).advance(-1, "month").advance(1, "day"), end),
    }
    return ee.Dictionary({k: v.aggregate_array("system:index") for k, v in ids.items()})


def download_params(target: Target) -> dict:
    return {"name": target.filename[:-4], "format": "GEO_TIFF", "crs": "EPSG:4326",
            "crs_transform": list(target.transform)[:6], "dimensions": [target.width, target.height]}


def export_task(target: Target, config: EEConfig):
    """An unstarted batch task exporting the target to Drive or Cloud Storage on its exact grid."""
    ee = _import_ee()
    image = build_image(target, config)
    common = dict(description=target.filename[:-4][:100], fileNamePrefix=target.filename[:-4],
                  region=region_geometry(ee, target), crs="EPSG:4326", crsTransform=list(target.transform)[:6],
                  maxPixels=int(1e10), fileFormat="GeoTIFF", formatOptions={"noData": NODATA})
    if config.mode == "drive":
        return ee.batch.Export.image.toDrive(image, folder=config.folder, **common)
    if not config.bucket:
        raise InputError("--ee-mode gcs needs --bucket NAME (a Cloud Storage bucket you can write)")
    return ee.batch.Export.image.toCloudStorage(image, bucket=config.bucket, **common)


def active_tasks() -> int:
    ee = _import_ee()
    return sum(1 for t in ee.batch.Task.list() if t.state in ACTIVE_STATES)


def wait_for_slot(count_active: Callable[[], int], max_tasks: int, poll_s: float = 30.0,
                  sleep: Callable[[float], None] = time.sleep, timeout_s: float = 6 * 3600) -> int:
    """Block until fewer than ``max_tasks`` tasks are queued or running; returns that count."""
    waited = 0.0
    while True:
        n = count_active()
        if n < max_tasks:
            return n
        if waited >= timeout_s:
            raise FetchError(f"Earth Engine: {n} tasks still queued after {waited:.0f} s (cap {max_tasks}); "
                             "rerun later: completed files are skipped")
        sleep(poll_s)
        waited += poll_s


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------
def _http_get(url: str) -> bytes:
    import requests

    r = requests.get(url, timeout=300)
    r.raise_for_status()
    return r.content


def read_download(data: bytes, target: Target) -> tuple[np.ndarray, np.ndarray]:
    """A downloaded GeoTIFF (bytes) → (dynamic ``[T,17,H,W]``, static ``[2,H,W]``) float32 with NaN
    where Earth Engine masked pixels (:data:`NODATA`, or the file's own nodata)."""
    from rasterio.io import MemoryFile

    with MemoryFile(io.BytesIO(data)) as mem, mem.open() as src:
        want = target.t * RAW_PER_STEP + N_STATIC
        if src.count != want or (src.height, src.width) != (target.height, target.width):
            raise FetchError(f"Earth Engine returned {src.count} bands of {src.height}x{src.width} px for "
                             f"{target.filename}, expected {want} bands of {target.height}x{target.width}")
        arr = src.read(masked=True).astype(np.float32).filled(np.nan)
    arr[arr == NODATA] = np.nan
    n = target.t * RAW_PER_STEP
    return arr[:n].reshape(target.t, RAW_PER_STEP, target.height, target.width), arr[n:]


def run_ee(targets: list[Target], out: Path, config: EEConfig, progress: bool = False,
           extra_settings: dict | None = None, http_get: Callable[[str], bytes] = _http_get,
           count_active: Callable[[], int] | None = None, sleep: Callable[[float], None] = time.sleep) -> FetchResult:
    """Fetch ``targets`` through Earth Engine into ``out`` (download) or as batch tasks (drive/gcs)."""
    if config.mode not in MODES:
        raise InputError(f"--ee-mode {config.mode!r}: use one of {', '.join(MODES)}")
    if config.max_tasks < 1:
        raise InputError(f"--max-tasks {config.max_tasks}: must be at least 1")
    if config.mode == "download":
        big = [t for t in targets if t.t * RAW_PER_STEP * 4 * t.width * t.height > DOWNLOAD_LIMIT]
        if big:
            raise InputError(f"{big[0].filename}: {big[0].width}x{big[0].height} px is over Earth Engine's "
                             f"{DOWNLOAD_LIMIT // 2**20} MiB download limit; use --ee-mode drive or gcs, or a "
                             "smaller --tile-px")
    ee = initialize(config)
    settings = {"source": "ee", "project": config.resolved_project(), "mode": config.mode,
                "collections": config.collections, "cloud_probability": config.cloud_probability,
                "s1_pad_days": config.s1_pad_days, **(extra_settings or {})}
    manifest = Manifest.open(out, settings)

    def items_of(target: Target) -> dict:
        got = with_retries(lambda: source_ids(target, config).getInfo(), f"listing scenes of {target.filename}",
                           config.retries, sleep, source="Earth Engine")
        ids = got if isinstance(got, dict) else {}
        return {k: [f"{config.collections[k]}/{i}" for i in ids.get(k, [])] for k in ("s2", "s1", "era5")} | {
            "dem": [config.collections["dem"]]}

    if config.mode == "download":
        def produce(target: Target):
            url = with_retries(lambda: build_image(target, config).unmask(NODATA, False)
                               .getDownloadURL(download_params(target)),
                               f"download URL of {target.filename}", config.retries, sleep, source="Earth Engine")
            data = with_retries(lambda: http_get(url), f"download of {target.filename}", config.retries, sleep,
                                source="Earth Engine")
            dynamic, static = read_download(data, target)
            return dynamic, static, items_of(target)

        return run_targets(targets, out, produce, manifest, "ee", progress=progress)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = FetchResult(out, manifest=manifest.path)
    count = count_active or active_tasks
    with progress_bar(progress) as bar:
        task_bar = bar.add_task(f"queue Earth Engine exports ({config.mode})", total=len(targets))
        for target in targets:
            entry = manifest.files.get(target.filename, {})
            if is_complete(out / target.filename, target) or entry.get("status") == "queued":
                result.skipped.append(out / target.filename)
            else:
                wait_for_slot(count, config.max_tasks, sleep=sleep)
                task = export_task(target, config)
                with_retries(task.start, f"starting the export of {target.filename}", config.retries, sleep,
                             source="Earth Engine")
                manifest.record(target, items_of(target), status="queued", task_id=task.id, mode=config.mode,
                                destination=config.folder if config.mode == "drive" else f"gs://{config.bucket}")
                result.queued.append(str(task.id))
            bar.advance(task_bar)
    if not manifest.path.exists():
        manifest.save()
    return result


__all__ = ["COLLECTIONS", "EEConfig", "NODATA", "build_image", "download_params", "export_task",
           "initialize", "read_download", "run_ee", "source_ids", "wait_for_slot"]
