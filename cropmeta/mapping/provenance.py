"""What a map records of what it maps (issue 28): the mapped season (the inputs' dates, not the
training data's), each input file's SHA-256, the software versions, the model's target and
training season — as GeoTIFF tags and as a STAC Item beside the map — and the warnings a user needs
when a model is used far from where, or when, it was trained, or when inputs mix seasons.

- :func:`map_provenance` → (tags, warnings) from the model's tags and the sources;
- :func:`write_stac_item` → ``<map>.stac.json``: a STAC Item (``pystac``) with the projection and
  raster extensions, the mapped season as ``start_datetime``/``end_datetime``, the model card
  (``cropmeta:model``: target, learner, training season, model SHA-256, metrics) and the map, its
  quick-look and accuracy file as assets.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from cropmeta.logs import log
from cropmeta.provenance import sha256_file, software_versions

#: a map whose centre lies farther than this from the model's target centre gets a warning
FAR_KM = 1000.0
#: inputs whose first steps lie this many days apart or more are different seasons
SEASON_DAYS = 120


def input_hashes(sources) -> dict[str, str | None]:
    """name → SHA-256 of each input file (None for an input that is no file, e.g. in memory)."""
    out = {}
    for s in sources:
        ref = getattr(s, "ref", None)
        p = Path(ref) if isinstance(ref, (str, Path)) else None
        out[s.name] = sha256_file(p) if p is not None and p.is_file() else None
    return out


def source_season(source) -> tuple[str, str] | None:
    """(first, last) date of a source: from its file name when it carries them (Earth-Engine exports,
    stacks: the reader's one parser, kept up to date by a window of months), else its first step's
    date and T steps on; None when unknown."""
    from cropmeta.io.eenames import parse_ee_filename
    from cropmeta.schema import DAYS_PER_STEP

    named = parse_ee_filename(source.name)
    if named is not None:
        return named.start.isoformat(), named.end.isoformat()
    first = source.first_date()
    if not first:
        return None
    d0 = dt.date.fromisoformat(first[:10])
    return d0.isoformat(), (d0 + dt.timedelta(days=int(source.t) * DAYS_PER_STEP - 1)).isoformat()


def _centre_lonlat(source) -> tuple[float, float] | None:
    if not source.grid.crs:
        return None
    from rasterio.crs import CRS
    from rasterio.warp import transform as _warp

    a = source.grid.affine
    x, y = a * (source.grid.width / 2.0, source.grid.height / 2.0)
    lon, lat = _warp(CRS.from_user_input(source.grid.crs), "EPSG:4326", [x], [y])
    return float(lon[0]), float(lat[0])


def _km(lon1, lat1, lon2, lat2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def map_provenance(model_tags: dict[str, str], sources) -> tuple[dict[str, str], list[str]]:
    """The map's provenance tags (added to ``model_tags``' copy) and warnings (also logged).

    ``DATE_RANGE``: the mapped season (the inputs' first and last day; null when unknown);
    ``TRAINING_DATE_RANGE``: the model's training data's start dates; ``INPUT_SHA256``: each input's
    hash; ``SOFTWARE``: versions. Warnings: the map centre farther than :data:`FAR_KM` from the model's
    target; inputs of different seasons; a mapped season starting months away from the training
    season's start."""
    tags = dict(model_tags)
    seasons = [source_season(s) for s in sources]
    known = [x for x in seasons if x is not None]
    mapped = [min(a for a, _ in known), max(b for _, b in known)] if known else None
    tags["TRAINING_DATE_RANGE"] = model_tags.get("DATE_RANGE", "null")
    tags["DATE_RANGE"] = json.dumps(mapped)
    tags["INPUT_SHA256"] = json.dumps(input_hashes(sources), sort_keys=True)
    import rasterio

    tags["SOFTWARE"] = json.dumps({**software_versions(("numpy", "rasterio", "torch")), "gdal": rasterio.__gdal_version__},
                                  sort_keys=True)
    warnings = []
    task = json.loads(model_tags.get("TASK") or "null") or {}
    if task.get("lat") is not None and task.get("lon") is not None:
        far = []
        for s in sources:
            c = _centre_lonlat(s)
            if c is not None:
                d = _km(c[0], c[1], float(task["lon"]), float(task["lat"]))
                if d > FAR_KM:
                    far.append((s.name, d))
        if far:
            name, d = max(far, key=lambda t: t[1])
            warnings.append(f"{name}: the map lies {d:,.0f} km from the model's target {task.get('region')!r} "
                            f"({task.get('name') or task.get('id')}): a model used far from where it was trained "
                            f"({len(far)} input(s) over {FAR_KM:,.0f} km)")
    starts = sorted({a for a, _ in known})
    if len(starts) > 1:
        d0, d1 = dt.date.fromisoformat(starts[0]), dt.date.fromisoformat(starts[-1])
        if (d1 - d0).days >= SEASON_DAYS:
            warnings.append(f"the inputs mix seasons: their first steps run from {starts[0]} to {starts[-1]} "
                            f"({len(starts)} different start dates); one map should show one season")
    trained = json.loads(model_tags.get("DATE_RANGE") or "null")
    if trained and mapped:
        t0, m0 = dt.date.fromisoformat(str(trained[0])[:10]), dt.date.fromisoformat(mapped[0])
        months = abs((m0.month - t0.month + 6) % 12 - 6)
        if months >= 3:
            warnings.append(f"the mapped season starts in {m0:%B} ({mapped[0]}) but the model was trained on "
                            f"series starting in {t0:%B} ({trained[0]}): {months} months apart")
    for w in warnings:
        log.warning("%s", w)
    tags["WARNINGS"] = json.dumps(warnings)
    return tags, warnings


def write_stac_item(map_path: Path, tags: dict[str, str], sources, extra_assets: dict[str, Path] | None = None,
                    metrics: dict | None = None) -> Path:
    """``<map>.stac.json``: a STAC Item describing the map (written atomically)."""
    import pystac
    import rasterio
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension
    from shapely.geometry import box, mapping
    from rasterio.warp import transform_bounds

    from cropmeta._fs import atomic_write_text

    map_path = Path(map_path)
    with rasterio.open(map_path) as m:
        crs, transform, shape = m.crs, m.transform, (m.height, m.width)
        bounds, dtype, nodata = m.bounds, m.dtypes[0], m.nodata
        descriptions = list(m.descriptions)
    bbox = list(transform_bounds(crs, "EPSG:4326", *bounds)) if crs else list(bounds)
    season = json.loads(tags.get("DATE_RANGE") or "null")
    props: dict = {"created": dt.datetime.now(dt.timezone.utc).isoformat()}
    if season:
        props["start_datetime"] = f"{season[0]}T00:00:00Z"
        props["end_datetime"] = f"{season[1]}T23:59:59Z"
    task = json.loads(tags.get("TASK") or "null") or {}
    props["cropmeta:model"] = {
        "target": task, "learner": None,
        "model_sha256": tags.get("MODEL_SHA256"), "seed": json.loads(tags.get("SEED") or "null"),
        "training_date_range": json.loads(tags.get("TRAINING_DATE_RANGE") or "null"),
        "threshold": float(tags["THRESHOLD"]) if tags.get("THRESHOLD") else None,
        "metrics": metrics or None,
    }
    config = json.loads(tags.get("CONFIG") or "null") or {}
    props["cropmeta:model"]["learner"] = config.get("learner") if isinstance(config, dict) else None
    props["cropmeta:inputs"] = json.loads(tags.get("INPUT_SHA256") or "{}")
    props["cropmeta:software"] = json.loads(tags.get("SOFTWARE") or "{}")
    props["cropmeta:warnings"] = json.loads(tags.get("WARNINGS") or "[]")
    item = pystac.Item(id=map_path.stem, geometry=mapping(box(*bbox)), bbox=bbox,
                       datetime=None if season else dt.datetime.now(dt.timezone.utc), properties=props)
    asset = pystac.Asset(href=map_path.name, media_type=pystac.MediaType.COG if map_path.suffix == ".tif"
                         else "application/xml", roles=["data"], title="crop map: P(crop) 0–100 and class")
    item.add_asset("map", asset)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = crs.to_epsg() if crs else None
    if epsg:
        proj.epsg = epsg
    elif crs:
        proj.wkt2 = crs.to_wkt()
    proj.shape = list(shape)
    proj.transform = list(transform)[:6]
    rast = RasterExtension.ext(asset, add_if_missing=True)
    pct = str(dtype) == "uint8"  # probability 0–100 (percent), else 0–1
    rast.bands = [RasterBand.create(nodata=nodata, data_type=DataType(str(dtype)), unit="percent" if pct else None),
                  RasterBand.create(nodata=nodata, data_type=DataType(str(dtype)))][: max(1, len(descriptions))]
    # the class band's colours: GeoTIFF keeps a colour table on a single-band file only, so the
    # two-band map states them here (STAC classification extension), as the quick-look draws them
    from cropmeta.mapping.quicklook import CLASS_COLOURS

    positive = str(task.get("crop") or "crop")
    bands = asset.extra_fields.get("raster:bands", [])
    if len(bands) >= 2:
        bands[1]["classification:classes"] = [
            {"value": 0, "name": f"not_{positive}", "description": f"not {positive}",
             "color_hint": CLASS_COLOURS[0].lstrip("#").upper()},
            {"value": 1, "name": positive, "description": positive, "color_hint": CLASS_COLOURS[1].lstrip("#").upper()}]
        item.stac_extensions.append("https://stac-extensions.github.io/classification/v2.0.0/schema.json")
    for key, path in (extra_assets or {}).items():
        if path is not None and Path(path).exists():
            media = {".png": pystac.MediaType.PNG, ".json": pystac.MediaType.JSON}.get(Path(path).suffix)
            item.add_asset(key, pystac.Asset(href=Path(path).name, media_type=media,
                                             roles=["overview"] if key == "quicklook" else ["metadata"]))
    out = map_path.with_suffix(".stac.json")
    atomic_write_text(out, json.dumps(item.to_dict(include_self_link=False), indent=2, default=str))
    return out


__all__ = ["FAR_KM", "input_hashes", "map_provenance", "source_season", "write_stac_item"]
