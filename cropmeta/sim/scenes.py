"""Raster scenes of the target regions (map export inputs) and their truth rasters.

A scene is one square Earth-Engine-layout GeoTIFF (``scene_size`` px at ~10 m, fields inside),
rendered by the same physics as the labelled tiles, plus ``truth.tif`` (uint8, same grid):

- band 1 ``target``: 1 where the pixel's field is the target's positive class (the target crop, or
  any crop for a crop / non-crop target), else 0;
- band 2 ``is_crop``: 1 crop, 0 non-crop;
- band 3 ``cover``: land-cover code (1-based index into the ``legend`` tag / world.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from cropmeta._fs import atomic_path
from cropmeta.io.eenames import ee_filename
from cropmeta.io.eewrite import write_ee_tiff
import cropmeta.sim.physics as physics
from cropmeta.sim.common import STREAM_PHYS, STREAM_SCENE, STREAM_TERRAIN, snap_to_grid, zone_geometry, dates_of, get_region, region_rng
from cropmeta.sim.params import SimParams, tile_settings
from cropmeta.sim.render import make_layout, render
from cropmeta.sim.tiles import climate_and_terrain, year_weather

TRUTH_BANDS = ["target", "is_crop", "cover"]


def scene_centre(name: str, region: dict) -> tuple[float, float]:
    if "scene" in region:
        return float(region["scene"][0]), float(region["scene"][1])
    c = zone_geometry(name, region).representative_point()
    return float(c.y), float(c.x)


def make_scene(p: SimParams, target: str, name: str, seed: int, size: int, root: Path) -> dict:
    """Render the scene of ``target`` (in region ``name``) under ``root/scenes/<target>/``; returns
    its world.json entry."""
    region = tile_settings(p, p.regions[name], "scene")  # the test year, world-default noise
    y_shift, y_rain = year_weather(p, seed, region, 0)
    key = region["key"]
    slug = get_region(name).slug
    pix = float(p.world["pixel_deg"])
    start, end = dates_of(region)
    start_doy = physics.doy(start)
    lat, lon = scene_centre(name, region)
    half = size * pix / 2
    lat0, lon0 = snap_to_grid(np.array([lat + half]), np.array([lon - half]), pix)
    layout = make_layout(p, region, region_rng(seed, key, 200 + STREAM_SCENE), lat0, lon0, size,
                         np.array([region["crop_frac"]]), np.array([False]))
    elev, slope, clim = climate_and_terrain(p, name, region, seed, lat0, lon0, size, start_doy,
                                            region_rng(seed, key, 200 + STREAM_TERRAIN), region_rng(seed, key, 200 + STREAM_PHYS),
                                            year_shift=np.array([y_shift]), rain_factor=np.array([y_rain]))
    dynamic, static = render(p, region, layout, clim, elev, slope, start_doy, p.t,
                             region_rng(seed, key, 250 + STREAM_PHYS))
    names = p.cover_names
    cover_idx = layout.fields["cover"][layout.field[0]]  # [S, S]
    is_crop = np.array([p.covers[c].is_crop for c in names])[cover_idx]
    crop = region.get("target_crop")
    positive = (cover_idx == names.index(crop)) if crop else is_crop
    truth = np.stack([positive, is_crop, cover_idx + 1]).astype(np.uint8)

    out = root / "scenes" / target
    out.mkdir(parents=True, exist_ok=True)
    transform = from_origin(float(lon0[0]), float(lat0[0]), pix, pix)
    tif = out / ee_filename(0, "sim-" + slug.replace("_", "-") + "-scene", start, end)
    write_ee_tiff(tif, dynamic[0], static[0], transform, tags={"cropmeta_sim": p.version, "region": name})
    legend = {str(i + 1): n for i, n in enumerate(names)}
    truth_path = out / "truth.tif"
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:4326",
                   transform=transform, compress="deflate")
    with atomic_path(truth_path, suffix=".tif") as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(truth)
            for i, b in enumerate(TRUTH_BANDS, start=1):
                dst.set_band_description(i, b)
            dst.update_tags(legend=json.dumps(legend), region=name, crop=str(crop), positive=crop or "crop")
    rel = lambda q: q.relative_to(root).as_posix()  # noqa: E731
    return {
        "tif": rel(tif),
        "truth": rel(truth_path),
        "region": name,
        "crop": crop,
        "size": size,
        "bounds": [float(lon0[0]), float(lat0[0] - size * pix), float(lon0[0] + size * pix), float(lat0[0])],
        "start_date": start,
        "end_date": end,
        "truth_bands": TRUTH_BANDS,
        "legend": legend,
        "positive_fraction": round(float(truth[0].mean()), 4),
    }
