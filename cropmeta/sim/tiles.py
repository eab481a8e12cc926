"""The labelled tiles of a simulated region: where its test, training and oracle tiles lie, one
group of tiles rendered and written, and their label rows (with per-field label noise).
:func:`cropmeta.sim.world.generate_world` calls :func:`simulate_region` for each region."""

from __future__ import annotations

import datetime as _dt
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from rasterio.transform import from_origin
from shapely.geometry import box

from cropmeta.errors import DataError
from cropmeta.io.eenames import ee_filename
from cropmeta.crops import CROP_TO_GROUP
import cropmeta.sim.physics as physics
import cropmeta.sim.sensors as sensors
from cropmeta.sim.common import (STREAM_LABEL, STREAM_LAYOUT, STREAM_PHYS, STREAM_POS, STREAM_PTS, STREAM_TERRAIN, snap_to_grid, zone_geometry, dates_of,
                                 get_region, region_rng, write_ee_tiff)
from cropmeta.sim.params import SimParams, tile_settings
from cropmeta.sim.render import interior_points, make_layout, render


def _sample_positions(rng: np.random.Generator, geom, n: int, exclude: list[tuple[float, float, float]]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform (lat, lon) centres inside ``geom``, farther than r deg from each excluded (lat, lon, r)."""
    x0, y0, x1, y1 = geom.bounds
    lats, lons = [], []
    got = 0
    for _ in range(200):
        m = max(64, 4 * (n - got))
        lon = rng.uniform(x0, x1, m)
        lat = rng.uniform(y0, y1, m)
        ok = shapely.contains_xy(geom, lon, lat)
        for elat, elon, rad in exclude:
            ok &= (np.abs(lat - elat) > rad) | (np.abs(lon - elon) > rad)
        lats.append(lat[ok])
        lons.append(lon[ok])
        got += int(ok.sum())
        if got >= n:
            break
    lat, lon = np.concatenate(lats)[:n], np.concatenate(lons)[:n]
    if len(lat) < n:
        raise DataError(f"cannot place {n} tiles inside the region's cropping zone")
    return lat, lon


def _test_tile_corners(rng, region: dict, geom, S: int, pix: float) -> tuple[np.ndarray, np.ndarray]:
    """Test tiles: contiguous cells inside a box around each CropHarvest test site, or (no sites)
    spread over the zone like Togo's random test points."""
    n = int(region.get("test_tiles", 8))
    sites = region.get("test_sites")
    tile_deg = S * pix
    if not sites:
        lat, lon = _sample_positions(rng, geom, n, [])
        return snap_to_grid(lat + tile_deg / 2, lon - tile_deg / 2, pix)
    half = float(region.get("test_box", 0.003))
    m = max(1, math.ceil(half / tile_deg))
    per = math.ceil(n / len(sites))
    lat0s, lon0s = [], []
    for lat, lon in sites:
        cells = [(i, j) for i in range(-m, m) for j in range(-m, m)]
        pick = rng.choice(len(cells), min(per, len(cells)), replace=False)
        la, lo = snap_to_grid(np.array([lat]), np.array([lon]), pix)
        for k in sorted(pick):
            i, j = cells[k]
            lat0s.append(la[0] - j * tile_deg)
            lon0s.append(lo[0] + i * tile_deg)
    return np.array(lat0s[:n]), np.array(lon0s[:n])


def _exclusions(region: dict, test_lat0, test_lon0, tile_deg) -> list[tuple[float, float, float]]:
    if region.get("test_sites"):
        half = float(region.get("test_box", 0.003))
        r = max(half + 0.05, float(region.get("pool_exclude", 0.0)))
        return [(la, lo, r) for la, lo in region["test_sites"]]
    return [(la - tile_deg / 2, lo + tile_deg / 2, 0.02) for la, lo in zip(test_lat0, test_lon0)]


def climate_and_terrain(p: SimParams, name: str, region: dict, seed: int, lat0, lon0, S: int, start_doy: int,
                        rng_terrain, rng_climate, year_shift=None, rain_factor=None):
    """SRTM fields and per-tile climate of tiles with top-left corners ``lat0, lon0``."""
    pix = float(p.world["pixel_deg"])
    rr = region_rng(seed, region["key"], 100 + STREAM_TERRAIN)  # the region's fixed large-scale relief
    elev, slope = sensors.terrain(p, region, rr, rng_terrain, lat0, lon0, S, pix)
    bases = [c.p["base"] for c in p.covers.values() if c.kind == "annual"]
    lat_c, lon_c = lat0 - S * pix / 2, lon0 + S * pix / 2
    clim = physics.simulate_climate(p, region, lat_c, elev.reshape(len(lat0), -1).mean(axis=1), start_doy,
                                    p.t, rng_climate, bases, lon=lon_c,
                                    rng_region=region_rng(seed, region["key"], 100 + STREAM_PHYS),
                                    year_shift=year_shift, rain_factor=rain_factor)
    return elev, slope, clim


_GROUP_STREAM = {"test": 0, "train": 20, "oracle": 40}  # stream offsets of a region's tile groups
_YEAR = 300


def year_weather(p: SimParams, seed: int, region: dict, offset: int) -> tuple[float, float]:
    """The weather of one year (offset from the region's export year): an onset shift in days and a
    factor on the annual rain. The standard-normal draws are shared by every region of the same
    cropping system (an East-African drought hits Kenya and Uganda alike); each region scales them
    by its own ``year_onset_sd`` / ``year_rain_cv``."""
    key = region.get("system") or region["key"]
    year = _dt.date.fromisoformat(str(region["end"])).year + int(offset)
    z = np.random.default_rng([int(seed), zlib.crc32(("year:" + key).encode()), year]).normal(size=2)
    return float(region["year_onset_sd"] * z[0]), float(np.exp(region["year_rain_cv"] * z[1]))


def points_per_field(p: SimParams, region: dict, test: bool) -> int:
    """Labelled pixels per field: few in test / oracle tiles (many fields per test set), up to
    field_px / 15 (clipped to the world's bounds) in a training pool."""
    if test:
        return int(p.world["max_points_per_field_test"])
    return int(np.clip(round(float(region["field_px"]) / 15.0), p.world["max_points_per_field"],
                       p.world["max_points_per_field_large"]))


def _choose_spread(ti: np.ndarray, n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` points, at most ``cap`` per tile first (spread like CropHarvest's test sets),
    then the rest in tile order."""
    cand = np.arange(len(ti))
    cand = cand[np.lexsort((rng.uniform(size=len(cand)), ti[cand]))]
    first = np.r_[0, np.nonzero(np.diff(ti[cand]))[0] + 1]
    rank = np.arange(len(cand)) - np.repeat(first, np.diff(np.r_[first, len(cand)]))
    pick = np.sort(cand[rank < cap])[:n]
    extra = np.sort(cand[rank >= cap])[: n - len(pick)]
    return np.sort(np.r_[pick, extra])


def _choose_whole_tiles(ti: np.ndarray, n_tiles: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` points: whole tiles in order, a random part of the last one."""
    counts = np.cumsum(np.bincount(ti, minlength=n_tiles))
    last = int(np.searchsorted(counts, n))
    full = np.where(ti < last)[0]
    rest = n - len(full)
    if rest:
        full = np.r_[full, np.sort(rng.choice(np.where(ti == last)[0], rest, replace=False))]
    return np.sort(full)


def simulate_group(p: SimParams, name: str, seed: int, root: Path, group: str, lat0, lon0, n_points: int,
                    first_index: int, subdir: str) -> tuple[pd.DataFrame, int] | None:
    """Render one group of a region's tiles ('test', 'train' or 'oracle') and write them; returns
    their label rows and the number of tiles written, or None when the tiles hold too few points."""
    base = p.regions[name]
    region = tile_settings(p, base, group)
    key = base["key"]
    off = _GROUP_STREAM[group]
    S = int(p.world["tile_px"])
    pix = float(p.world["pixel_deg"])
    test = group != "train"
    n = len(lat0)
    frac = base.get("test_crop_frac", base["crop_frac"]) if test else region["crop_frac"]
    layout = make_layout(p, region, region_rng(seed, key, off + STREAM_LAYOUT), lat0, lon0, S, np.full(n, frac),
                         np.full(n, test))
    k = points_per_field(p, base, test)
    ti, row, col, fld = interior_points(layout, np.full(n, k), region_rng(seed, key, off + STREAM_PTS))
    if len(ti) < n_points:
        return None
    rng_pts = region_rng(seed, key, off + STREAM_PTS + 50)
    if group == "test":
        chosen = _choose_spread(ti, n_points, math.ceil(n_points / max(1, n)), rng_pts)
    else:
        chosen = _choose_whole_tiles(ti, n, n_points, rng_pts)
    keep_tiles = np.unique(ti[chosen])
    tile_map = np.full(n, -1)
    tile_map[keep_tiles] = np.arange(len(keep_tiles))
    layout = layout.subset(keep_tiles)
    ti, row, col = tile_map[ti[chosen]], row[chosen], col[chosen]
    fld = layout.field[ti, row, col]  # field indices change with the subset: read them back
    gps = float(region["difficulty"]["gps_px"])
    if gps > 0:  # the surveyor's GPS error: the label is the field visited, the pixel where the point fell
        g = region_rng(seed, key, off + STREAM_PTS + 60)
        r2 = np.clip(row + np.round(g.normal(0, gps, len(row))).astype(int), 1, S - 2)  # never on the tile edge
        c2 = np.clip(col + np.round(g.normal(0, gps, len(col))).astype(int), 1, S - 2)
        while True:  # two points never share a pixel: a colliding point keeps its true position
            key_ = (ti * S + r2) * S + c2
            _, first, counts = np.unique(key_, return_index=True, return_counts=True)
            dup = np.ones(len(key_), bool)
            dup[first] = False
            dup |= np.isin(key_, key_[dup]) & ((r2 != row) | (c2 != col))
            dup &= (r2 != row) | (c2 != col)
            if not dup.any():
                break
            r2[dup], c2[dup] = row[dup], col[dup]
        row, col = r2, c2
    # the year of each tile and that year's weather
    years = np.asarray(region["years"], int)
    yoff = years[region_rng(seed, key, off + _YEAR).integers(0, len(years), layout.n)]
    weather = {int(y): year_weather(p, seed, base, int(y)) for y in np.unique(yoff)}
    ys = np.array([weather[int(y)][0] for y in yoff])
    yr = np.array([weather[int(y)][1] for y in yoff])
    start0, _ = dates_of(base)
    start_doy = physics.doy(start0)
    elev, slope, clim = climate_and_terrain(p, name, region, seed, layout.lat0, layout.lon0, S, start_doy,
                                            region_rng(seed, key, off + STREAM_TERRAIN), region_rng(seed, key, off + STREAM_PHYS),
                                            year_shift=ys, rain_factor=yr)
    dynamic, static = render(p, region, layout, clim, elev, slope, start_doy, p.t,
                             region_rng(seed, key, off + STREAM_PHYS + 50))
    slug = get_region(name).slug
    ds = "sim-" + slug.replace("_", "-") + {"train": "", "test": "-eval", "oracle": "-oracle"}[group]
    out_dir = root / subdir / slug
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, starts = [], []
    for i in range(layout.n):
        start, end = dates_of(base, int(yoff[i]))
        rel = f"{subdir}/{slug}/{ee_filename(first_index + i, ds, start, end)}"
        write_ee_tiff(root / rel, dynamic[i], static[i], from_origin(layout.lon0[i], layout.lat0[i], pix, pix),
                      tags={"cropmeta_sim": p.version, "region": name})
        paths.append(rel)
        starts.append(start)
    labels = _labels(p, region, name, layout, ti, row, col, fld, paths, ds, np.array(starts)[ti], group,
                     first_index, region_rng(seed, key, off + STREAM_LABEL))
    return labels, int(layout.n)


def simulate_region(p: SimParams, name: str, seed: int, root: Path) -> tuple[pd.DataFrame, dict]:
    """Simulate one region's labelled tiles (a target's test tiles first, then the training pool),
    write them under ``root/tiles/<slug>/`` and return its label rows and a summary."""
    region = p.regions[name]
    reg = get_region(name)
    key = region["key"]
    S = int(p.world["tile_px"])
    pix = float(p.world["pixel_deg"])
    tile_deg = S * pix
    start, end = dates_of(region)
    geom = zone_geometry(name, region)
    n_train = int(region.get("n_train", p.world["n_train"]))
    n_test = int(region.get("n_test", 0))

    rng_pos = region_rng(seed, key, STREAM_POS)
    frames, n_tiles = [], 0
    excl = []
    if n_test:
        t_lat0, t_lon0 = _test_tile_corners(rng_pos, region, geom, S, pix)
        res = simulate_group(p, name, seed, root, "test", t_lat0, t_lon0, n_test, 0, "tiles")
        if res is None:
            raise DataError(f"{name}: the test tiles hold fewer usable points than n_test={n_test}; "
                            "raise test_tiles in data/sim/regions.toml")
        frames.append(res[0])
        n_tiles += res[1]
        excl = _exclusions(region, t_lat0, t_lon0, tile_deg)
    k_train = points_per_field(p, region, False)
    est = max(1.0, min(k_train * S * S / float(region["field_px"]) * 0.5, S * S / 8.0))
    n_cand = int(math.ceil(n_train / est * 1.3)) + 2
    for _attempt in range(6):
        lat, lon = _sample_positions(rng_pos, geom, n_cand, excl)
        c_lat0, c_lon0 = snap_to_grid(lat + tile_deg / 2, lon - tile_deg / 2, pix)
        res = simulate_group(p, name, seed, root, "train", c_lat0, c_lon0, n_train, n_tiles, "tiles")
        if res is not None:
            break
        n_cand *= 2
    else:
        raise DataError(f"{name}: could not place {n_train} training points")
    frames.append(res[0])
    n_tiles += res[1]
    labels = pd.concat(frames, ignore_index=True)
    summary = {
        "slug": reg.slug, "continent": reg.continent, "start_date": start, "end_date": end,
        "system": region.get("system"), "label_years": sorted({int(s[:4]) + 1 for s in labels["start_date"]}),
        "tiles": int(n_tiles), "n_train": int((labels["split"] == "train").sum()),
        "n_test": int((labels["split"] == "test").sum()),
        "n_test_fields": int(labels.loc[labels["split"] == "test", "field_id"].nunique()),
    }
    return labels, summary


def oracle_positions(p: SimParams, name: str, seed: int, n_tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of oracle tiles: in the target's test districts (``district_box`` degrees
    around each test site, default 0.1) or, without sites, anywhere in the zone; never on a test tile."""
    region = p.regions[name]
    S = int(p.world["tile_px"])
    pix = float(p.world["pixel_deg"])
    tile_deg = S * pix
    geom = zone_geometry(name, region)
    t_lat0, t_lon0 = _test_tile_corners(region_rng(seed, region["key"], STREAM_POS), region, geom, S, pix)
    excl = _exclusions(region, t_lat0, t_lon0, tile_deg)
    rng = region_rng(seed, region["key"], _GROUP_STREAM["oracle"] + STREAM_POS)
    if region.get("test_sites"):
        half = float(region.get("test_box", 0.003))
        r = float(region.get("district_box", 0.1))
        excl = [(la, lo, half + 0.005) for la, lo in region["test_sites"]]
        geom = shapely.union_all([box(lo - r, la - r, lo + r, la + r) for la, lo in region["test_sites"]]
                                 ).intersection(get_region(name).geometry)
    lat, lon = _sample_positions(rng, geom, n_tiles, excl)
    return snap_to_grid(lat + tile_deg / 2, lon - tile_deg / 2, pix)


def _labels(p: SimParams, region: dict, name: str, layout, ti, row, col, fld, paths, ds, starts, group: str,
            first_index: int, rng) -> pd.DataFrame:
    """Label rows of the chosen points, with label noise drawn per field (a labeller errs on a
    whole polygon) at the rates of ``region['difficulty']`` (already those of the tile group)."""
    names = p.cover_names
    pix = float(p.world["pixel_deg"])
    diff = region["difficulty"]
    cover = np.array(names)[layout.fields["cover"][fld]]
    true_crop = np.array([p.covers[c].is_crop for c in cover])
    # per-field noise draws
    ufld, inv = np.unique(fld, return_inverse=True)
    u_flip = rng.uniform(size=len(ufld))[inv]
    u_type = rng.uniform(size=len(ufld))[inv]
    crop_keys = [c for c in region["crops"] if float(region["crops"][c]) > 0]
    cw = np.array([float(region["crops"][c]) for c in crop_keys])
    nc_keys = [c for c in region["noncrop"] if float(region["noncrop"][c]) > 0]
    nw = np.array([float(region["noncrop"][c]) for c in nc_keys])
    alt_crop = np.array(crop_keys)[rng.choice(len(crop_keys), len(ufld), p=cw / cw.sum())][inv]
    alt_nc = np.array(nc_keys)[rng.choice(len(nc_keys), len(ufld), p=nw / nw.sum())][inv]
    flip = u_flip < diff["label_noise"]
    wrong_type = u_type < diff["type_noise"]
    rec = cover.copy()
    rec = np.where(flip & true_crop, alt_nc, rec)
    rec = np.where(flip & ~true_crop, alt_crop, rec)
    rec_crop = np.array([p.covers[c].is_crop for c in rec])
    rec = np.where(rec_crop & ~flip & wrong_type & true_crop, alt_crop, rec)
    lat = layout.lat0[ti] - (row + 0.5) * pix
    lon = layout.lon0[ti] + (col + 0.5) * pix
    slug = get_region(name).slug
    gi = ti + first_index
    tag = "-oracle" if group == "oracle" else ""
    df = pd.DataFrame({
        "sample_id": [f"{slug}{tag}-{a:04d}-{b:02d}-{c:02d}" for a, b, c in zip(gi, row, col)],
        "lat": lat,
        "lon": lon,
        "is_crop": rec_crop.astype("int8"),
        "label": pd.Series([c if k else None for c, k in zip(rec, rec_crop)], dtype=object),
        "crop_group": [CROP_TO_GROUP[c] if k else "non_crop" for c, k in zip(rec, rec_crop)],
        "cover": rec,
        "region": name,
        "dataset": ds,
        "split": "train" if group == "train" else group,
        "start_date": starts,
        "tile": [paths[i] for i in ti],
        "field_id": [f"{slug}{tag}-{a:04d}-f{f:05d}" for a, f in zip(gi, fld)],
    })
    return df
