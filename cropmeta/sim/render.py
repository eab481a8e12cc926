"""Field layouts and rendering: tiles (labelled, 16x16 px) and scenes (e.g. 128x128 px) share it.

A *layout* is a set of square tiles on the ~10 m EPSG:4326 pixel grid, each cut into fields
(anisotropic Voronoi cells: rectangular-ish parcels of a random orientation); every field has a
land cover (crop type or non-crop cover) and its management (planting date, vigour, irrigation,
intercropping, a second crop in the other season, soil brightness). :func:`render` turns a layout
into Earth-Engine-layout arrays ``dynamic [n, T, 17, S, S]`` and ``static [n, 2, S, S]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from cropmeta.schema import DYNAMIC_BANDS_RAW
import cropmeta.sim.physics as physics
import cropmeta.sim.sensors as sensors
from cropmeta.sim.params import SimParams


@dataclass
class Layout:
    lat0: np.ndarray  # [n] latitude of the tiles' top edges
    lon0: np.ndarray  # [n] longitude of their left edges
    S: int
    field: np.ndarray  # [n, S, S] field index (into ``fields`` rows)
    fields: dict  # column -> [F] array (real fields first; pseudo rows for partners / 2nd crops)
    n_real: int  # number of real fields
    test: np.ndarray  # [n] bool

    @property
    def n(self) -> int:
        return len(self.lat0)

    def subset(self, keep: np.ndarray) -> "Layout":
        """The layout restricted to tiles ``keep`` (indices, order kept)."""
        keep = np.asarray(keep)
        tile_map = np.full(self.n, -1)
        tile_map[keep] = np.arange(len(keep))
        f = self.fields
        real = np.arange(len(f["tile"])) < self.n_real
        keep_f = tile_map[f["tile"]] >= 0
        new_idx = np.full(len(f["tile"]), -1)
        order = np.concatenate([np.where(keep_f & real)[0], np.where(keep_f & ~real)[0]])
        new_idx[order] = np.arange(len(order))
        fields = {k: v[order] for k, v in f.items()}
        fields["tile"] = tile_map[fields["tile"]]
        for col in ("partner", "second"):
            fields[col] = np.where(fields[col] >= 0, new_idx[np.maximum(fields[col], 0)], -1)
        return Layout(self.lat0[keep], self.lon0[keep], self.S, new_idx[self.field[keep]], fields,
                      int((keep_f & real).sum()), self.test[keep])


def _weights(mix: dict, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    keys = [k for k in mix if float(mix[k]) > 0]
    w = np.array([float(mix[k]) for k in keys])
    return np.array([names.index(k) for k in keys]), w / w.sum()


def slots(region: dict) -> tuple[list[tuple[float, float]], float | None]:
    """The region's planting slots: main ``[(day, share)]`` and the cool-season day (or None)."""
    if "warm" in region:
        main = [(float(region["warm"]), 1.0)]
    else:
        rain = region["rain"]
        tot = sum(r[2] for r in rain)
        main = [(float(o), s / tot) for o, _, s in rain]
    cool = region.get("cool")
    return main, (float(cool) if cool is not None else None)


def crop_season(p: SimParams, region: dict, crop: str) -> str:
    return region.get("season", {}).get(crop, p.covers[crop].p.get("season", "main"))


def make_layout(p: SimParams, region: dict, rng: np.random.Generator, lat0: np.ndarray, lon0: np.ndarray,
                S: int, crop_frac: np.ndarray, test: np.ndarray, field_px: float | None = None) -> Layout:
    """Cut tiles into fields and draw each field's cover and management.

    ``crop_frac``: per-tile share of crop fields. Planting days are relative to the region's
    calendar; the tile's climatic onset shift is added when the tile is rendered."""
    names = p.cover_names
    diff = region["difficulty"]
    n = len(lat0)
    fpx = float(field_px or region["field_px"])
    # --- anisotropic Voronoi fields ---------------------------------------------------------------
    ext = 1.4 * S
    n_seeds = np.maximum(1, rng.poisson(ext * ext / fpx, n))
    tile_of_seed = np.repeat(np.arange(n), n_seeds)
    seeds = rng.uniform(-0.2 * S, 1.2 * S, (len(tile_of_seed), 2))
    theta = rng.uniform(0, np.pi, n)
    stretch = np.exp(rng.uniform(-0.5, 0.5, n))

    def transform(xy, tile):
        c, s = np.cos(theta[tile]), np.sin(theta[tile])
        u = (xy[:, 0] * c + xy[:, 1] * s) * stretch[tile] + tile * 10.0 * S * 3
        v = (-xy[:, 0] * s + xy[:, 1] * c) / stretch[tile]
        return np.stack([u, v], axis=1)

    yy, xx = np.mgrid[0:S, 0:S]
    pix = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=1)
    pix_all = np.tile(pix, (n, 1))
    tile_of_pix = np.repeat(np.arange(n), S * S)
    tree = cKDTree(transform(seeds, tile_of_seed))
    _, nearest = tree.query(transform(pix_all, tile_of_pix))
    used, field_flat = np.unique(nearest, return_inverse=True)
    field = field_flat.reshape(n, S, S)
    F = len(used)
    ftile = tile_of_seed[used]

    # --- covers -------------------------------------------------------------------------------------
    crop_idx, crop_w = _weights(region["crops"], names)
    nc_idx, nc_w = _weights(region["noncrop"], names)
    is_crop = rng.uniform(size=F) < crop_frac[ftile]
    cover = np.where(is_crop, rng.choice(crop_idx, F, p=crop_w), rng.choice(nc_idx, F, p=nc_w))

    main, cool = slots(region)
    main_days = np.array([m[0] for m in main])
    main_share = np.array([m[1] for m in main])

    def plant_dates(cov, tile, which_main=None):
        """Planting day of annual crops (other covers: any value) per field."""
        k = len(cov)
        mi = rng.choice(len(main_days), k, p=main_share) if which_main is None else which_main
        day = main_days[mi].copy()
        delay = np.array([float(p.covers[names[c]].p.get("delay", 0.0)) for c in cov])
        if cool is not None:
            is_cool = np.array([p.covers[names[c]].kind == "annual" and crop_season(p, region, names[c]) == "cool"
                                for c in cov], dtype=bool)
            day = np.where(is_cool, cool, day)
        return day + delay + rng.normal(0, diff["plant_sd"], k), mi

    plant, main_i = plant_dates(cover, ftile)
    irrigated_set = set(region.get("irrigated", []))

    def attrs(cov, tile, pl):
        k = len(cov)
        kinds = np.array([p.covers[names[c]].kind for c in cov])
        cut = np.where(np.array([names[c] == "sugarcane" for c in cov]), rng.uniform(0, 365, k),
                       main_days[0] + 50.0 + rng.normal(0, 10, k))
        return {
            "tile": tile,
            "cover": cov,
            "plant": pl,
            "vigor": np.clip(rng.normal(1.0, diff["vigor_sd"], k), 0.4, 1.5),
            "irrigated": np.array([names[c] in irrigated_set for c in cov]),
            "cut_phase": cut,
            "soil_scale": np.clip(rng.normal(1.0, diff["soil_sd"], k), 0.5, 1.6),
            "rough": rng.normal(0, 1.2, k),
            "wdb": rng.normal(0, 2.5, k),
            "bdb": rng.normal(0, 2.0, k),
            "mix_w": np.zeros(k),
            "partner": np.full(k, -1),
            "second": np.full(k, -1),
            "annual": kinds == "annual",
        }

    fields = attrs(cover, ftile, plant)
    tile_soil = np.clip(rng.normal(1.0, diff["soil_sd"] / 2, n), 0.6, 1.4)
    fields["soil_scale"] = fields["soil_scale"] * tile_soil[ftile]

    # --- intercropping / mixed fields: a partner cover blended into the field ---------------------
    mixed = rng.uniform(size=F) < np.where(is_crop, diff["intercrop"], 0.5 * diff["intercrop"])
    mi = np.where(mixed)[0]
    part_crop = rng.uniform(size=len(mi)) < np.where(is_crop[mi], diff["intercrop_crop"], 1.0)
    part_cov = np.where(part_crop, rng.choice(crop_idx, len(mi), p=crop_w), rng.choice(nc_idx, len(mi), p=nc_w))
    part_plant, _ = plant_dates(part_cov, ftile[mi])
    partners = attrs(part_cov, ftile[mi], part_plant)
    # --- second crop in the other season -----------------------------------------------------------
    all_slots = [(d, "main", i) for i, d in enumerate(main_days)] + ([(cool, "cool", -1)] if cool is not None else [])
    annual_crops = [c for c in crop_idx if p.covers[names[c]].kind == "annual"]
    dbl = np.where(fields["annual"] & (rng.uniform(size=F) < diff["double_crop"]) & (len(all_slots) > 1))[0]
    sec_cov, sec_plant, sec_of = [], [], []
    for f in dbl:
        pl = fields["plant"][f]
        # the slot farthest (cyclically) from this field's planting
        dist = [min((d - pl) % 365, (pl - d) % 365) for d, _, _ in all_slots]
        d, kind, i = all_slots[int(np.argmax(dist))]
        cands = [c for c in annual_crops if (crop_season(p, region, names[c]) == kind) or kind == "main"]
        if not cands:
            continue
        w = np.array([float(region["crops"][names[c]]) for c in cands])
        c = cands[rng.choice(len(cands), p=w / w.sum())]
        delay = float(p.covers[names[c]].p.get("delay", 0.0))
        sec_cov.append(c)
        sec_plant.append(d + delay + rng.normal(0, diff["plant_sd"]))
        sec_of.append(f)
    sec_of = np.array(sec_of, dtype=int)
    seconds = attrs(np.array(sec_cov, dtype=int), ftile[sec_of], np.array(sec_plant, dtype=float))

    n_p = len(mi)
    fields["partner"][mi] = F + np.arange(n_p)
    fields["mix_w"][mi] = rng.uniform(0.1, diff["intercrop_w"], n_p)
    fields["second"][sec_of] = F + n_p + np.arange(len(sec_of))
    allf = {k: np.concatenate([fields[k], partners[k], seconds[k]]) for k in fields}
    return Layout(np.asarray(lat0, float), np.asarray(lon0, float), S, field, allf, F, np.asarray(test, bool))


def field_fractions(p: SimParams, region: dict, layout: Layout, clim: physics.Climate, start_doy: int,
                    t: int) -> dict:
    """Monthly cover fractions ``[F_real, T]`` of the real fields (second crops and partners folded in)."""
    f = layout.fields
    fr = physics.cover_fractions(p, region, f, clim, start_doy, t, p.cover_names)
    F = layout.n_real
    idx = np.arange(F)
    sec = f["second"][:F]
    has2 = sec >= 0
    out = {k: v[:F].copy() for k, v in fr.items()}
    if has2.any():
        s = sec[has2]
        for k in ("green", "dry", "vwater"):
            out[k][has2] = out[k][has2] + fr[k][s]
        out["water"][has2] = np.maximum(out["water"][has2], fr["water"][s])
    part = f["partner"][:F]
    hasp = part >= 0
    if hasp.any():
        w = f["mix_w"][:F][hasp]
        mixed = physics.blend(fr, idx[hasp], part[hasp], w)
        for k in out:
            out[k][hasp] = mixed[k]
    return out


def render(p: SimParams, region: dict, layout: Layout, clim: physics.Climate, elev: np.ndarray,
           slope: np.ndarray, start_doy: int, t: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Earth-Engine-layout arrays of every tile: ``dynamic [n, T, 17, S, S]``, ``static [n, 2, S, S]``."""
    diff = region["difficulty"]
    n, S = layout.n, layout.S
    fr = field_fractions(p, region, layout, clim, start_doy, t)
    fid = layout.field.reshape(-1)
    tile = np.repeat(np.arange(n), S * S)
    P = len(fid)
    f = layout.fields
    pv = rng.normal(1.0, 0.05, P).astype(np.float32)[:, None]
    fr = {k: v.astype(np.float32) for k, v in fr.items()}
    px = {
        "green": np.clip(fr["green"][fid] * pv + rng.normal(0, diff["pixel_sd"], (P, t)).astype(np.float32), 0, 0.97),
        "dry": np.clip(fr["dry"][fid] + rng.normal(0, diff["pixel_sd"] / 2, (P, t)).astype(np.float32), 0, 0.9),
        "water": np.clip(fr["water"][fid], 0, 1),
        "built": np.clip(fr["built"][fid], 0, 1),
        "woody": fr["woody"][fid],
        "vwater": fr["vwater"][fid] * pv,
        "moist_s1": fr["moist_s1"][fid],
        "sm": clim.sm_m[tile],
        "snow": clim.snow_m[tile],
        "temp": clim.temp_m[tile],
        "soil_scale": f["soil_scale"][fid],
        "rough": f["rough"][fid],
        "wdb": f["wdb"][fid],
        "bdb": f["bdb"][fid],
        "angle": rng.normal(0, p.s1["angle_sd_db"], n)[tile],
    }
    surf = sensors.surface_reflectance(p, region, px, n, S)  # [n, T, 10, S, S]
    surf = sensors.edge_mix(surf, layout.field)
    s2 = p.s2
    mu = np.clip((s2["cloud_base"] + s2["cloud_rain"] * clim.wet_m) * diff["cloud"], 0.005, 0.9)
    k = s2["cloud_conc"]
    cloud_tile = np.minimum(rng.beta(mu * k, (1 - mu) * k), s2["cloud_max"]).astype(np.float32)
    gap_tile = rng.uniform(size=mu.shape) < (s2["gap_base"] + s2["gap_rain"] * clim.wet_m) * diff["cloud"]
    toa = sensors.sentinel2_toa(p, region, surf, cloud_tile, gap_tile, clim.wet_m.astype(np.float32), rng)
    del surf
    vv, vh = sensors.sentinel1(p, region, px, rng)
    vv = vv.reshape(n, S, S, t).transpose(0, 3, 1, 2)
    vh = vh.reshape(n, S, S, t).transpose(0, 3, 1, 2)
    ones = np.ones((1, 1, S, S), dtype=np.float32)
    temp = clim.temp_m.astype(np.float32)[:, :, None, None] * ones
    rain = np.maximum(clim.rain_m, 0).astype(np.float32)[:, :, None, None] * ones
    # radar dB on a 1/64 dB grid (far below the speckle; exact in float32, so the files compress)
    vv, vh = np.round(vv * 64) / 64, np.round(vh * 64) / 64
    dynamic = np.concatenate([vv[:, :, None], vh[:, :, None], toa, temp[:, :, None], rain[:, :, None]], axis=2)
    assert dynamic.shape[2] == len(DYNAMIC_BANDS_RAW)
    static = np.stack([elev, slope], axis=1).astype(np.float32)
    return dynamic.astype(np.float32), static


def interior_points(layout: Layout, k_per_field: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Labelled-pixel candidates: up to ``k_per_field[tile]`` pixels per field, each away from the
    field's border and the tile's edge. Returns ``(tile, row, col, field)`` arrays, in tile order."""
    n, S = layout.n, layout.S
    fld = layout.field
    inner = np.zeros_like(fld, dtype=bool)
    c = fld[:, 1:-1, 1:-1]
    inner[:, 1:-1, 1:-1] = ((c == fld[:, :-2, 1:-1]) & (c == fld[:, 2:, 1:-1])
                            & (c == fld[:, 1:-1, :-2]) & (c == fld[:, 1:-1, 2:]))
    ti, r, cc = np.nonzero(inner)
    f = fld[ti, r, cc]
    prio = rng.uniform(size=len(f))
    order = np.lexsort((prio, f))
    ti, r, cc, f = ti[order], r[order], cc[order], f[order]
    first = np.r_[0, np.nonzero(np.diff(f))[0] + 1]
    rank = np.arange(len(f)) - np.repeat(first, np.diff(np.r_[first, len(f)]))
    keep = rank < k_per_field[ti]
    ti, r, cc, f = ti[keep], r[keep], cc[keep], f[keep]
    o = np.lexsort((cc, r, ti))
    return ti[o], r[o], cc[o], f[o]
