"""Earth-Engine-layout stacks from public STAC catalogues (no account): pystac-client to find the
items, odc-stac to load them onto the export grid (Dask-chunked), numpy/xarray to composite.

Per 30-day window (see :mod:`cropmeta.fetch.common`):

- **Sentinel-2 L2A**: pixels whose scene classification (SCL) is not clear (:data:`S2_SCL_CLEAR`:
  vegetation, bare soil, water, unclassified, snow) or that hold the asset's nodata are dropped; each
  band is converted to reflectance with the asset's ``raster:bands`` scale/offset (or, where a
  catalogue states none, 1e-4 and the ``BOA_ADD_OFFSET`` −0.1 of processing baseline ≥ 04.00) and
  written ×10000 (the DN scale of CropHarvest's L1C exports); the window's value is the **median of
  the clear observations**. B10 (cirrus) does not exist in L2A and is written as NaN (the model input
  drops it).
- **Sentinel-1 RTC**: VV/VH linear power → dB (10·log10, non-positive values dropped); median of the
  window's observations in dB.
- **Copernicus DEM 30 m**: elevation resampled bilinearly onto the grid grown by one pixel; slope in
  degrees from its central differences in metres (so no border pixel is NaN).
- **ERA5**: a configurable collection of monthly means (``temperature_2m`` in K and
  ``total_precipitation`` in m/day by default); the window's value is the mean of the months that
  overlap it.

The rules themselves are pure functions in :mod:`cropmeta.fetch.composite`. Items come from the
catalogue's ``/search`` endpoint where it has one (an API such as Planetary
Computer or Earth Search), else from walking a static catalogue. Planetary Computer asset URLs are
signed with ``planetary_computer.sign_inplace`` as pystac-client's modifier (imported only for a
Planetary Computer URL).
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cropmeta.errors import FetchError, InputError
from cropmeta.fetch.common import Target, with_retries
from cropmeta.fetch.composite import (
    S2_SCL_CLEAR,
    by_window_items,
    era5_composite,
    era5_overlapping,
    item_interval,
    raster_band,
    s1_composite,
    s2_composite,
    slope_degrees,
)
from cropmeta.schema import DYNAMIC_BANDS_RAW, S1_BANDS, S2_BANDS_RAW

KINDS = ("s2", "s1", "dem", "era5")


@dataclass(frozen=True)
class StacPreset:
    """A catalogue's URL, collection names and asset keys (S2 keys aligned with S2_BANDS_RAW)."""

    name: str
    url: str
    collections: dict
    s2_assets: tuple  # one key per S2_BANDS_RAW entry, None where the collection has no such band
    s2_scl: str
    s1_assets: tuple  # (vv, vh)
    dem_asset: str
    era5_assets: tuple  # (temperature_2m, total_precipitation)
    note: str = ""


PLANETARY_COMPUTER = StacPreset(
    "planetary-computer", "https://planetarycomputer.microsoft.com/api/stac/v1",
    {"s2": "sentinel-2-l2a", "s1": "sentinel-1-rtc", "dem": "cop-dem-glo-30", "era5": "era5-monthly"},
    ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", None, "B11", "B12"), "SCL",
    ("vv", "vh"), "data", ("temperature_2m", "total_precipitation"),
    note=("Planetary Computer serves ERA5 only as Zarr (era5-pds): build a local one with "
          "`cropmeta era5-catalogue` and give --catalog-for era5=PATH"),
)
EARTH_SEARCH = StacPreset(
    "earth-search", "https://earth-search.aws.element84.com/v1",
    {"s2": "sentinel-2-c1-l2a", "s1": "sentinel-1-rtc", "dem": "cop-dem-glo-30", "era5": "era5-monthly"},
    ("coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "nir09", None,
     "swir16", "swir22"), "scl", ("vv", "vh"), "data", ("temperature_2m", "total_precipitation"),
    note=("Earth Search has no Sentinel-1 RTC or ERA5: --catalog-for s1=<Planetary Computer URL>, "
          "era5=PATH from `cropmeta era5-catalogue`"),
)
PRESETS = {p.name: p for p in (PLANETARY_COMPUTER, EARTH_SEARCH)}


@dataclass(frozen=True)
class StacConfig:
    """Where each sensor comes from: a preset, overridden per kind by catalogue URL/path and name."""

    preset: StacPreset = PLANETARY_COMPUTER
    catalogs: dict = field(default_factory=dict)  # kind → URL or path (default: preset.url)
    collections: dict = field(default_factory=dict)  # kind → collection name (default: preset's)
    chunk_px: int = 1024
    s1_pad_days: int = 0

    def catalog(self, kind: str) -> str:
        return str(self.catalogs.get(kind) or self.catalogs.get("all") or self.preset.url)

    def collection(self, kind: str) -> str:
        return str(self.collections.get(kind) or self.preset.collections[kind])

    def signed(self, kind: str) -> bool:
        """Planetary Computer assets need signed URLs, whichever preset names the catalogue."""
        return self.catalog(kind).rstrip("/").startswith(PLANETARY_COMPUTER.url.rsplit("/api", 1)[0])


def parse_pairs(values, what: str = "--collection") -> dict:
    """``["s2=sentinel-2-c1-l2a", …]`` (or one comma-separated string) → ``{"s2": "sentinel-2-c1-l2a"}``."""
    if values is None:
        return {}
    if isinstance(values, dict):
        return dict(values)
    if isinstance(values, str):
        values = values.split(",")
    out = {}
    for v in values:
        kind, sep, name = str(v).partition("=")
        if not sep or not kind.strip() or not name.strip():
            raise InputError(f"{what} {v!r}: expected KIND=NAME with KIND one of {', '.join(KINDS)}")
        out[kind.strip()] = name.strip()
    return out


def stac_config(preset: str = "planetary-computer", catalog: str | None = None,
                catalogs: dict | None = None, collections=None, s1_pad_days: int = 0) -> StacConfig:
    """Build a :class:`StacConfig`; ``catalog`` may be a preset name, a URL or a local catalog.json;
    ``catalogs``/``collections``: per-kind overrides (dict or ``KIND=NAME`` strings)."""
    collections = parse_pairs(collections)
    catalogs = parse_pairs(catalogs, "--catalog-for")
    if catalog in PRESETS:
        preset, catalog = catalog, None
    if preset not in PRESETS:
        raise InputError(f"--preset {preset!r}: unknown; use one of {', '.join(PRESETS)}")
    cats = {k: v for k, v in (catalogs or {}).items() if v}
    for k in list(cats) + list(collections or {}):
        if k not in KINDS:
            raise InputError(f"unknown source kind {k!r} (use {', '.join(KINDS)})")
    if catalog:
        cats["all"] = catalog
    if s1_pad_days < 0:
        raise InputError(f"--s1-pad-days {s1_pad_days}: must be 0 or more")
    return StacConfig(PRESETS[preset], cats, dict(collections or {}), s1_pad_days=int(s1_pad_days))


# --------------------------------------------------------------------------------------------------
# catalogue access
# --------------------------------------------------------------------------------------------------
def _pc_modifier():
    try:
        import planetary_computer
    except ImportError as e:
        raise FetchError("Planetary Computer assets need URL signing: pip install planetary-computer==1.0.0 "
                         "(or use --preset earth-search)") from e
    return planetary_computer.sign_inplace


def _is_local(href: str) -> bool:
    return "://" not in href or href.startswith("file://")


class Catalogue:
    """One STAC catalogue (API or static), with item lookups by collection, box and dates."""

    def __init__(self, href: str, sign: bool = False):
        from pystac_client import Client
        from pystac_client.conformance import ConformanceClasses

        self.href = href
        if _is_local(href):
            p = Path(href.removeprefix("file://"))
            p = p / "catalog.json" if p.is_dir() else p
            if not p.exists():
                raise InputError(f"--catalog {href}: no such STAC catalogue (expected a catalog.json or a URL)")
            href = str(p.resolve())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # static catalogues advertise no conformance classes
                self.client = Client.open(href, modifier=_pc_modifier() if sign else None)
        except FetchError:
            raise
        except Exception as e:  # noqa: BLE001 - network, HTTP or JSON failure: say which catalogue
            raise FetchError(f"cannot open STAC catalogue {href} ({type(e).__name__}: {str(e)[:200]}); check the "
                             "network, or give a local catalogue with --catalog PATH, or use --source ee") from e
        self.api = self.client.conforms_to(ConformanceClasses.ITEM_SEARCH)
        self._static: dict[str, list] = {}

    def _all_items(self, collection: str) -> list:
        if collection not in self._static:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                col = self.client.get_child(collection)
                if col is None:
                    names = [c.id for c in self.client.get_children()]
                    raise InputError(f"STAC catalogue {self.href} has no collection {collection!r} "
                                     f"(it has: {', '.join(names) or 'none'}); set it with --collection KIND=NAME")
                self._static[collection] = list(col.get_items(recursive=True))
        return self._static[collection]

    def items(self, collection: str, bbox, start: dt.date, end: dt.date) -> list:
        """Items of ``collection`` intersecting ``bbox`` with a time in ``[start, end)``, by time."""
        t0 = dt.datetime.combine(start, dt.time(), dt.timezone.utc)
        t1 = dt.datetime.combine(end, dt.time(), dt.timezone.utc)
        if self.api:
            def search():
                return list(self.client.search(collections=[collection], bbox=list(bbox),
                                               datetime=[t0, t1 - dt.timedelta(seconds=1)]).items())

            found = with_retries(search, f"search of {collection!r} at {self.href} (retry later or use --source ee)",
                                 source="STAC")
        else:
            from shapely.geometry import box, shape

            area = box(*bbox)
            found = []
            for it in self._all_items(collection):
                a, b = item_interval(it)
                if b >= t0 and a < t1 and it.geometry is not None and shape(it.geometry).intersects(area):
                    found.append(it)
        return sorted(found, key=lambda it: (item_interval(it)[0], it.id))


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
def _geobox(transform, height: int, width: int):
    from odc.geo.geobox import GeoBox

    return GeoBox((height, width), transform, "EPSG:4326")


def _check_readable(item, key: str) -> None:
    media = str(item.assets[key].media_type or "")
    if "zarr" in media.lower() or item.assets[key].href.rstrip("/").endswith(".zarr"):
        raise FetchError(f"STAC item {item.id}: asset {key!r} is Zarr ({item.assets[key].href}); cropmeta reads "
                         "raster (COG/GeoTIFF) assets only. Give a catalogue of monthly COGs with "
                         "--catalog-for era5=URL (and --collection era5=NAME), or use --source ee")


def load_stack(items: list, keys: list[str], transform, height: int, width: int, resampling: str,
               chunk_px: int = 1024, retries: int = 4) -> np.ndarray:
    """``[n_items, n_keys, H, W]`` float64 of the items' assets on the grid; nodata → NaN; each
    item kept apart (``groupby="id"``, in the given order). Transient read failures (HTTP 5xx,
    time-outs, dropped connections) are retried ``retries`` times with back-off."""
    import odc.stac

    for it in items:
        for k in keys:
            raster_band(it, k)
            _check_readable(it, k)
    geobox = _geobox(transform, height, width)
    from rasterio.errors import NotGeoreferencedWarning

    def load():
        with warnings.catch_warnings():
            # odc-geo warps in-memory blocks that carry no geotransform of their own
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = odc.stac.load(items, bands=keys, geobox=geobox, groupby="id", preserve_original_order=True,
                               resampling=resampling, chunks={"x": chunk_px, "y": chunk_px}, fail_on_error=True)
            return ds.compute(scheduler="threads")

    ds = with_retries(load, f"reading assets {keys} of {len(items)} item(s) ({items[0].id} …)", retries,
                      source="STAC")
    if ds.sizes.get("time", 0) != len(items):
        raise FetchError(f"odc-stac returned {ds.sizes.get('time', 0)} planes for {len(items)} items")
    out = np.empty((len(items), len(keys), height, width), np.float64)
    for j, k in enumerate(keys):
        v = ds[k].values.astype(np.float64)
        nodata = ds[k].attrs.get("nodata")
        if nodata is not None and not np.isnan(nodata):
            v[v == nodata] = np.nan
        out[:, j] = v
    return out


def dem_static(items: list, preset: StacPreset, target: Target, chunk_px: int = 1024) -> np.ndarray:
    """``[2, H, W]`` elevation (m) and slope (degrees) on the target grid."""
    if not items:
        raise FetchError(f"no Copernicus DEM item covers {target.filename} (bounds {target.bounds})")
    tr, h, w = target.padded(1)
    data = load_stack(items, [preset.dem_asset], tr, h, w, "bilinear", chunk_px)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dem = np.nanmean(data, axis=0)  # overlapping DEM tiles hold the same heights
    slope = slope_degrees(dem, tr)
    return np.stack([dem[1:-1, 1:-1], slope[1:-1, 1:-1]]).astype(np.float32)


#: largest stack (bytes) loaded for all windows at once; bigger targets load window by window
LOAD_BUDGET = 256 * 2**20


def windowed_stacks(items_by_window: list[list], keys: list[str], target: Target, resampling: str,
                    chunk_px: int = 1024):
    """Yield ``(items, data)`` per window, loading every distinct item once when the whole stack fits
    :data:`LOAD_BUDGET`, else window by window."""
    unique = list({it.id: it for w in items_by_window for it in w}.values())
    size = len(unique) * len(keys) * target.height * target.width * 8
    if unique and size <= LOAD_BUDGET:
        data = load_stack(unique, keys, target.transform, target.height, target.width, resampling, chunk_px)
        row = {it.id: i for i, it in enumerate(unique)}
        for w in items_by_window:
            yield w, data[[row[it.id] for it in w]]
        return
    for w in items_by_window:
        if w:
            yield w, load_stack(w, keys, target.transform, target.height, target.width, resampling, chunk_px)
        else:
            yield w, np.empty((0, len(keys), target.height, target.width))


# --------------------------------------------------------------------------------------------------
# one target
# --------------------------------------------------------------------------------------------------
class StacFetcher:
    """Produces a target's (dynamic, static, item ids) from the configured catalogues."""

    def __init__(self, config: StacConfig):
        self.config = config
        self._cats: dict[tuple[str, bool], Catalogue] = {}

    def catalogue(self, kind: str) -> Catalogue:
        key = (self.config.catalog(kind), self.config.signed(kind))
        if key not in self._cats:
            self._cats[key] = Catalogue(*key)
        return self._cats[key]

    def _items(self, kind: str, target: Target, before: int = 0, after: int = 0) -> list:
        w = target.windows
        return self.catalogue(kind).items(self.config.collection(kind), target.bounds,
                                          w[0][0] - dt.timedelta(days=before), w[-1][1] + dt.timedelta(days=after))

    def settings(self) -> dict:
        c = self.config
        return {"source": "stac", "preset": c.preset.name,
                "catalogs": {k: c.catalog(k) for k in KINDS}, "collections": {k: c.collection(k) for k in KINDS},
                "s2_clear_scl": list(S2_SCL_CLEAR), "composite": "median of clear observations per 30-day window",
                "s1_pad_days": c.s1_pad_days}

    def __call__(self, target: Target):
        from cropmeta.fetch.common import empty_stack

        c, p = self.config, self.config.preset
        dynamic, static = empty_stack(target)
        used: dict[str, list[str]] = {k: [] for k in KINDS}
        era5_items = self._items("era5", target, before=31)
        by_window = [era5_overlapping(era5_items, w) for w in target.windows]
        if not all(by_window):
            missing = [f"{a}..{b}" for (a, b), w in zip(target.windows, by_window) if not w]
            raise FetchError(f"{target.filename}: no ERA5 item in {c.collection('era5')!r} at {c.catalog('era5')} "
                             f"covers {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}"
                             + (f" ({p.note})" if p.note else ""))
        s2_items, s1_items = self._items("s2", target), self._items("s1", target, c.s1_pad_days, c.s1_pad_days)
        for kind, found in (("s2", s2_items), ("s1", s1_items)):
            if not found:  # a whole season without a scene: wrong collection or catalogue, not a gap
                raise FetchError(f"{target.filename}: no {kind.upper()} item in {c.collection(kind)!r} at "
                                 f"{c.catalog(kind)} for {target.start}..{target.end}"
                                 + (f" ({p.note})" if p.note else ""))
        sensors = [
            ("s2", by_window_items(s2_items, target.windows), list(_s2_keys(p)), "nearest",
             s2_composite, DYNAMIC_BANDS_RAW.index(S2_BANDS_RAW[0])),
            ("s1", by_window_items(s1_items, target.windows, c.s1_pad_days), list(p.s1_assets), "nearest",
             s1_composite, DYNAMIC_BANDS_RAW.index(S1_BANDS[0])),
            ("era5", by_window, list(p.era5_assets), "nearest", era5_composite,
             DYNAMIC_BANDS_RAW.index("temperature_2m")),
        ]
        for kind, windows, keys, resampling, reduce, first in sensors:
            for k, (items, data) in enumerate(windowed_stacks(windows, keys, target, resampling, c.chunk_px)):
                block = reduce(items, data, p)
                dynamic[k, first:first + len(block)] = block
                used[kind] += [it.id for it in items]
        dem_items = self.catalogue("dem").items(c.collection("dem"), target.bounds, dt.date(1970, 1, 1),
                                                dt.date(2100, 1, 1))
        static[:] = dem_static(dem_items, p, target, c.chunk_px)
        used["dem"] = [it.id for it in dem_items]
        return dynamic, static, used


def _s2_keys(preset: StacPreset) -> tuple:
    return tuple(k for k in preset.s2_assets if k is not None) + (preset.s2_scl,)


__all__ = ["Catalogue", "EARTH_SEARCH", "KINDS", "PLANETARY_COMPUTER", "PRESETS", "S2_SCL_CLEAR", "StacConfig",
           "StacFetcher", "StacPreset", "dem_static", "load_stack", "parse_pairs", "stac_config", "windowed_stacks"]
