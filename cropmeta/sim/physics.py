"""The simulator's physics: climate, phenology, land-cover fractions, Sentinel-2 reflectance,
Sentinel-1 backscatter, ERA5 and SRTM fields. Pure numpy, vectorised over tiles, fields and pixels.

Model (docs/simulator.md has the sources):

- **Climate** per tile (ERA5 is ~9 km, so constant over a 160 m tile): daily rain climatology from
  the region's rainy seasons (onset, length, share of annual rain; onsets shifted per tile by a
  latitude gradient and random heterogeneity), 2 m temperature from latitude (sea-level mean and
  seasonal range grow with |latitude|), elevation (lapse rate), hemisphere (warmest month) and
  tropical wet-season cooling; topsoil moisture from the trailing 30-day rain; snow when cold.
- **Phenology** per field: annual crops run a thermal-time clock from planting (rain onset or
  spring/cool-season date + crop delay) → green cover rises, senesces to dry matter, is harvested
  to residue; perennials stay green (modulated by moisture unless irrigated); grass/shrub/forest
  follow moisture and temperature; water, built-up and bare ground have their own fractions.
- **Sentinel-2** L1C DN = linear mixture of green / dry vegetation, soil (regional brightness and
  redness, darkened when wet), water and urban end-members, snow; plus path radiance, residual
  cloud contamination of the monthly composite and NaN gaps where a month had no clear view.
- **Sentinel-1** VV/VH (dB): water-cloud model — vegetation volume scattering that saturates with
  canopy water, attenuating the soil term that rises with soil moisture; water, urban double
  bounce; speckle and orbit/incidence offsets.
- **SRTM**: elevation = regional relief (smooth sinusoids over lat/lon) + within-tile micro-relief;
  slope from its gradient (NaN on the 1-px border, as in real exports).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np

from cropmeta.schema import DAYS_PER_STEP

DAYS = 365
#: sub-samples per monthly step (day 5, 15, 25 of each 30-day window); the composite is their mean
SUB_DAYS = np.array([5, 15, 25])
K = len(SUB_DAYS)


def doy(date: str | _dt.date) -> int:
    """0-based day of year (1 January = 0; 29 February counts as 28 February)."""
    d = _dt.date.fromisoformat(date) if isinstance(date, str) else date
    n = d.timetuple().tm_yday - 1
    if d.year % 4 == 0 and (d.year % 100 != 0 or d.year % 400 == 0) and n >= 59:
        n -= 1
    return n


def step_days(start_doy: int, t: int) -> np.ndarray:
    """``[t, 30]`` day-of-year of every day of each monthly step."""
    return (start_doy + np.arange(t)[:, None] * DAYS_PER_STEP + np.arange(DAYS_PER_STEP)[None, :]) % DAYS


def sub_days(start_doy: int, t: int) -> np.ndarray:
    """``[t*K]`` day-of-year of the sub-samples of each step."""
    return ((start_doy + np.arange(t)[:, None] * DAYS_PER_STEP + SUB_DAYS[None, :]) % DAYS).reshape(-1)


def _monthly(daily: np.ndarray, start_doy: int, t: int) -> np.ndarray:
    """``[n, 365]`` daily → ``[n, t]`` means over each 30-day step."""
    return daily[:, step_days(start_doy, t)].mean(axis=2)


def _trailing_mean(daily: np.ndarray, days: int) -> np.ndarray:
    """Cyclic trailing mean over the previous ``days`` days (inclusive) of ``[n, 365]``."""
    ext = np.concatenate([daily, daily], axis=1)
    cs = np.concatenate([np.zeros((daily.shape[0], 1)), np.cumsum(ext, axis=1)], axis=1)
    idx = np.arange(DAYS) + DAYS + 1
    return (cs[:, idx] - cs[:, idx - days]) / days


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


# ==================================================================================================
# Climate
# ==================================================================================================
@dataclass
class Climate:
    """Per-tile climate: daily climatologies ``[n, 365]`` and monthly ERA5-like series ``[n, T]``."""

    rain_d: np.ndarray  # m/day
    temp_d: np.ndarray  # K
    moist_d: np.ndarray  # vegetation water availability 0..1 (lagged soil moisture)
    tf_d: np.ndarray  # vegetation temperature activity 0..1
    gdd: dict  # base temperature (deg C) -> cumulative degree days [n, 730]
    rain_m: np.ndarray  # ERA5 total_precipitation, m/day monthly mean
    temp_m: np.ndarray  # ERA5 temperature_2m, K
    sm_m: np.ndarray  # topsoil moisture 0..1, monthly
    snow_m: np.ndarray  # snow cover fraction 0..1, monthly
    wet_m: np.ndarray  # rain relative to the wettest month of the region 0..1
    shift: np.ndarray  # onset shift of each tile, days


def onset_field(rng_region: np.random.Generator, lat: np.ndarray, lon: np.ndarray, terms: int = 3) -> np.ndarray:
    """A smooth random field over lat/lon (wavelengths 0.5-3 deg, sd about 1), fixed per region and
    seed: neighbouring tiles share their climate anomaly, distant ones differ."""
    lam = rng_region.uniform(0.5, 3.0, terms)
    ang = rng_region.uniform(0, np.pi, terms)
    ph = rng_region.uniform(0, 2 * np.pi, terms)
    f = np.zeros_like(np.asarray(lat, float))
    for k in range(terms):
        f += np.sin(2 * np.pi * (np.cos(ang[k]) * lon + np.sin(ang[k]) * lat) / lam[k] + ph[k])
    return f / np.sqrt(terms / 2.0)


def simulate_climate(p, region: dict, lat: np.ndarray, elev: np.ndarray, start_doy: int, t: int,
                     rng: np.random.Generator, bases, lon: np.ndarray | None = None,
                     rng_region: np.random.Generator | None = None, year_shift: np.ndarray | None = None,
                     rain_factor: np.ndarray | None = None) -> Climate:
    """Climate of tiles at ``lat``/``lon`` (centres) and mean elevation ``elev``. The rainy-season
    onset shifts with latitude (``onset_lat``) and by a smooth regional anomaly field of sd
    ``tile_onset_sd`` (from ``rng_region``), plus a small tile-level part (a quarter of it), plus the
    weather of the tile's year: ``year_shift`` (days) and ``rain_factor`` (x annual total) per tile."""
    c = p.climate
    n = len(lat)
    diff = region["difficulty"]
    zone = region["zone"]
    zlat = 0.5 * (zone[1] + zone[3])
    sd = diff["tile_onset_sd"]
    anomaly = (onset_field(rng_region, lat, lon) if rng_region is not None and lon is not None
               else rng.normal(0, 1, n))
    shift = region.get("onset_lat", 0.0) * (lat - zlat) + sd * anomaly + rng.normal(0, 0.25 * sd, n)
    if year_shift is not None:
        shift = shift + np.asarray(year_shift, float)
    days = np.arange(DAYS)[None, :]
    annual_m = region["rain_mm"] / 1000.0 * (np.ones((n, 1)) if rain_factor is None
                                             else np.asarray(rain_factor, float).reshape(n, 1))
    rain = np.zeros((n, DAYS))
    share_sum = 0.0
    for onset, length, share in region["rain"]:
        phase = ((days - (onset + shift[:, None])) % DAYS) / length
        bump = np.where(phase < 1, np.sin(np.pi * np.clip(phase, 0, 1)) ** 2, 0.0)
        rain += bump * share * annual_m / (length / 2.0)
        share_sum += share
    rain += max(0.0, 1.0 - share_sum) * annual_m / DAYS
    # temperature
    alat = np.abs(lat)
    amp = (c["amp_base"] + c["amp_lat2_coef"] * alat**2) * region.get("continentality", 1.0)
    peak = np.where(lat >= 0, c["peak_doy_north"], c["peak_doy_south"])
    mean_c = (c["t_equator_c"] - c["t_lat_coef"] * lat**2 - c["lapse_k_per_km"] * elev / 1000.0
              + region.get("t_offset", 0.0))
    rn = rain / np.maximum(rain.max(axis=1, keepdims=True), 1e-9)
    cool = c["rain_cooling_k"] * np.clip(1 - alat / 35.0, 0, 1)
    temp_c = (mean_c[:, None] + amp[:, None] * np.cos(2 * np.pi * (days - peak[:, None]) / DAYS)
              - cool[:, None] * (rn - rn.mean(axis=1, keepdims=True)))
    temp_k = temp_c + 273.15
    sm_d = 1.0 - np.exp(-_trailing_mean(rain, 30) / c["soil_moisture_ref"])
    moist = _trailing_mean(sm_d, 20)
    tf = np.clip((temp_c - 3.0) / 10.0, 0.0, 1.0)
    gdd = {}
    for b in sorted(set(bases)):
        g = np.clip(np.minimum(temp_c, 30.0) - b, 0.0, None)
        gdd[b] = np.concatenate([np.zeros((n, 1)), np.cumsum(np.concatenate([g, g], axis=1), axis=1)],
                                axis=1)
    rain_m = _monthly(rain, start_doy, t) * rng.lognormal(0.0, c["rain_month_cv"], (n, t))
    temp_m = _monthly(temp_k, start_doy, t) + rng.normal(0, c["era5_t_sd"], (n, t))
    sm_m = _monthly(sm_d, start_doy, t)
    snow_m = np.clip((c["snow_k"] - temp_m) / 3.0, 0.0, 1.0) * (rain_m > 1e-4)
    wet_m = _monthly(rn, start_doy, t)
    return Climate(rain, temp_k, moist, tf, gdd, rain_m, temp_m, sm_m, snow_m, wet_m, shift)


# ==================================================================================================
# Cover fractions per field
# ==================================================================================================
def _cover_table(p, names: list[str]) -> dict[str, np.ndarray]:
    """Per-cover parameter columns (0 where a cover lacks the key). ``tbase`` is the thermal-time
    base temperature of annual crops; ``base`` the base green cover of the other covers."""
    keys = ["delay", "base", "gdd", "days", "greenup", "senesce", "peak", "dry", "residue", "water", "flooded",
            "amp", "woody", "cuts", "regrow", "tbase"]
    tab = {k: np.zeros(len(names)) for k in keys}
    tab["kind"] = np.array([p.covers[c].kind for c in names])
    tab["grassy"] = np.array([bool(p.covers[c].p.get("grassy", False)) for c in names])
    for i, c in enumerate(names):
        cp = dict(p.covers[c].p)
        if p.covers[c].kind == "annual":
            cp["tbase"] = cp.pop("base")
        for k in keys:
            tab[k][i] = float(cp.get(k, 0.0))
    return tab


def cover_fractions(p, region: dict, fields: dict, clim: Climate, start_doy: int, t: int,
                    names: list[str]) -> dict[str, np.ndarray]:
    """Monthly ``[F, t]`` fractions of each field: ``green, dry, water, built``, plus ``woody`` and
    ``vwater`` (canopy water, for Sentinel-1) and ``moist_s1`` (soil moisture seen by the radar).

    ``fields`` columns: ``tile, cover, plant, vigor, irrigated, cut_phase`` (cover = index into
    ``names``)."""
    tab = _cover_table(p, names)
    diff = region["difficulty"]
    ti, ci = fields["tile"], fields["cover"]
    F = len(ti)
    sd = sub_days(start_doy, t)  # [t*K]
    kind = tab["kind"][ci]
    irr = fields["irrigated"].astype(bool)
    moist = clim.moist_d[ti][:, sd]  # [F, tK]
    moist = np.where(irr[:, None], 1.0, moist)
    tf = clim.tf_d[ti][:, sd]
    green = np.zeros((F, t * K))
    dry = np.zeros((F, t * K))
    water = np.zeros((F, t * K))
    built = np.zeros((F, t * K))
    woody = tab["woody"][ci].copy()
    vig = fields["vigor"]

    # ---- annual crops: thermal time since planting -------------------------------------------
    a = np.where(kind == "annual")[0]
    if len(a):
        pa = np.round(fields["plant"][a] + clim.shift[ti[a]]).astype(int) % DAYS
        gdd_tot = tab["gdd"][ci[a]]
        G = np.empty((len(a), DAYS))
        for b in np.unique(tab["tbase"][ci[a]]):
            m = tab["tbase"][ci[a]] == b
            cum = clim.gdd[b][ti[a][m]]  # [m, 731]
            rows = np.arange(m.sum())[:, None]
            cols = pa[m][:, None] + np.arange(DAYS)[None, :]
            G[m] = cum[rows, cols] - cum[rows, pa[m][:, None]]
        reached = G >= gdd_tot[:, None]
        ds_h = np.where(reached.any(axis=1), reached.argmax(axis=1), DAYS - 1)
        ds_h = np.minimum(ds_h, np.minimum(tab["days"][ci[a]], 340).astype(int))
        # where the season is cut short, phenology runs on the degree days actually reached
        gdd_eff = np.maximum(np.minimum(gdd_tot, G[np.arange(len(a)), ds_h]), 1.0)
        ds = (sd[None, :] - pa[:, None]) % DAYS  # [Fa, tK]
        rows = np.arange(len(a))[:, None]
        stage = G[rows, ds] / gdd_eff[:, None]
        ins = ds <= ds_h[:, None]
        grow = sigmoid((stage - tab["greenup"][ci[a]][:, None]) / 0.07)
        sen = sigmoid((stage - tab["senesce"][ci[a]][:, None]) / 0.05)
        post = np.maximum(ds - ds_h[:, None], 0)
        g = np.where(ins, tab["peak"][ci[a]][:, None] * vig[a][:, None] * grow * (1 - sen), 0.0)
        # water stress (rain-fed) and winter dormancy (cool-season crops keep some green cover)
        t_c = clim.temp_d[ti[a]][:, sd] - 273.15
        g = g * (0.6 + 0.4 * moist[a]) * (0.4 + 0.6 * np.clip(t_c / 8.0, 0.0, 1.0))
        d = np.where(ins, tab["dry"][ci[a]][:, None] * grow * sen,
                     tab["residue"][ci[a]][:, None] * np.exp(-post / 75.0))
        weeds = diff["weeds"] * moist[a] * tf[a] * (1 - np.where(ins, grow, 0.0))
        g = g + weeds * np.clip(1 - g - d, 0, 1)
        fl = tab["flooded"][ci[a]][:, None]
        water[a] = np.where(ins & (stage < fl), 0.9 * np.clip(1 - g, 0, 1), 0.0)
        green[a], dry[a] = g, d

    # ---- perennial crops and managed grass ------------------------------------------------------
    q = np.where(kind == "perennial")[0]
    if len(q):
        cq = ci[q]
        g = (tab["base"][cq][:, None] + tab["amp"][cq][:, None] * (moist[q] - 0.5)) * vig[q][:, None]
        grassy = tab["grassy"][cq][:, None]
        g = g * np.where(grassy, 0.1 + 0.9 * tf[q], 0.3 + 0.7 * tf[q])
        d = np.broadcast_to(tab["dry"][cq][:, None], g.shape) + np.where(grassy, 0.25 * (1 - moist[q]), 0.0)
        cuts = tab["cuts"][cq].astype(int)
        regrow = np.maximum(tab["regrow"][cq], 1.0)
        has = cuts > 0
        if has.any():
            dsc = np.full(g.shape, 1e9)
            for k in range(int(cuts.max())):
                cut_k = fields["cut_phase"][q] + clim.shift[ti[q]] + k * (regrow + 15.0)
                dk = (sd[None, :] - cut_k[:, None]) % DAYS
                dsc = np.where((k < cuts)[:, None], np.minimum(dsc, dk), dsc)
            r = 1.0 - np.exp(-dsc / (regrow[:, None] / 2.5))
            g = np.where(has[:, None], g * (0.12 + 0.88 * r), g)
            d = np.where(has[:, None], d + 0.3 * np.exp(-dsc / 20.0), d)
        green[q], dry[q] = g, d

    # ---- non-crop covers ------------------------------------------------------------------------
    nc = np.where(kind == "noncrop")[0]
    if len(nc):
        names_arr = np.array(names)
        cn = names_arr[ci[nc]]
        base, amp, dr = tab["base"][ci[nc]][:, None], tab["amp"][ci[nc]][:, None], tab["dry"][ci[nc]][:, None]
        m, f = moist[nc], tf[nc]
        v = vig[nc][:, None]
        tropical = abs(0.5 * (region["zone"][1] + region["zone"][3])) < 25
        evergreen = float(np.clip((region["rain_mm"] - 1000.0) / 800.0, 0, 1)) if tropical else 0.0
        g = np.zeros_like(m)
        d = np.broadcast_to(dr, m.shape).copy()
        fo = cn == "forest"
        g[fo] = ((base - amp * (1 - evergreen) * (1 - m)) * v * (0.35 + 0.65 * f))[fo]
        gr = cn == "grassland"
        g[gr] = ((base + amp * m) * v * (0.1 + 0.9 * f))[gr]
        d[gr] = (dr * (1.0 - 0.6 * m) + 0.1 * (1 - f))[gr]
        sh = cn == "shrub"
        g[sh] = ((base + amp * m) * v * (0.3 + 0.7 * f))[sh]
        bare = cn == "bare"
        g[bare] = ((base + amp * m * f) * v)[bare]
        wa = cn == "water"
        g[wa] = (base + amp * m)[wa] * 0.5
        water[nc[wa]] = (0.85 + 0.1 * m)[wa]
        bu = cn == "built_up"
        g[bu] = ((base + amp * m) * f)[bu]
        built[nc[bu]] = 0.7
        green[nc], dry[nc] = g, d

    # composite = mean of the sub-samples of each month
    def monthly(x):
        return x.reshape(F, t, K).mean(axis=2)

    out = {"green": monthly(np.clip(green, 0, 0.97)), "dry": monthly(np.clip(dry, 0, 0.9)),
           "water": monthly(water), "built": monthly(built)}
    lai = -np.log(1.0 - np.clip(out["green"], 0, 0.95)) / 0.5
    out["vwater"] = lai * tab["water"][ci][:, None] + 3.0 * woody[:, None] + 0.4 * out["dry"]
    out["woody"] = np.broadcast_to(woody[:, None], (F, t)).copy()
    sm = clim.sm_m[ti]
    out["moist_s1"] = np.where(irr[:, None], np.maximum(sm, 0.65), sm)
    return out


def blend(fr: dict, idx_a: np.ndarray, idx_b: np.ndarray, w: np.ndarray) -> dict:
    """Fractions of mixed fields: ``(1 - w) * a + w * b`` (intercropping, trees in fields)."""
    return {k: (1 - w[:, None]) * v[idx_a] + w[:, None] * v[idx_b] for k, v in fr.items()}


# ==================================================================================================
# Sensors
# ==================================================================================================
def surface_reflectance(p, region: dict, px: dict, n: int, S: int) -> np.ndarray:
    """Surface reflectance ``[n, T, 10, S, S]`` (end-member bands) of the pixels of ``n`` rasters of
    ``S x S`` from their cover fractions (computed band by band to bound memory).

    ``px``: ``green, dry, water, built, woody, sm, snow`` ``[P, T]`` and ``soil_scale`` ``[P]``,
    pixels in raster order (``P = n * S * S``)."""
    sp = {k: np.asarray(v, dtype=np.float32) for k, v in p.spectra.items()}
    bright, red = region["soil"]
    soil = sp["soil"] * bright
    soil = soil * np.array([red**-0.6, red**-0.3, red**0.3, red**0.15, 1, 1, 1, 1, 1, 1], dtype=np.float32)
    g, d, wa, bu = (px[k].astype(np.float32) for k in ("green", "dry", "water", "built"))
    over = np.maximum(g + d + wa + bu, np.float32(1.0))
    g, d, wa, bu = g / over, d / over, wa / over, bu / over
    s_wet = np.clip(1.0 - g - d - wa - bu, 0.0, 1.0) * (1.0 - 0.3 * px["sm"].astype(np.float32))
    s_wet *= px["soil_scale"].astype(np.float32)[:, None]
    woody = px["woody"].astype(np.float32)
    sn = (px["snow"] * (1.0 - 0.6 * px["woody"])).astype(np.float32)
    t = g.shape[1]
    out = np.empty((n, t, len(soil), S, S), dtype=np.float32)
    for j in range(len(soil)):
        green_j = sp["green"][j] * (1.0 - woody * (1.0 - sp["shadow"][j]))
        r = (g * green_j + d * sp["dry"][j] + wa * sp["water"][j] + bu * sp["built_up"][j] + s_wet * soil[j])
        r = (1.0 - sn) * r + sn * sp["snow"][j]
        out[:, :, j] = r.reshape(n, S, S, t).transpose(0, 3, 1, 2)
    return out


def sentinel1(p, region: dict, px: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """VV, VH in dB ``[P, T]`` (water-cloud model + water / urban + speckle)."""
    s = p.s1
    diff = region["difficulty"]
    V = px["vwater"]
    soil_vv = s["soil_vv_dry_db"] + s["soil_vv_wet_gain_db"] * px["moist_s1"] + px["rough"][:, None]
    soil_vv = soil_vv + np.where(px["temp"] < 273.15, s["frozen_db"], 0.0)
    lin = lambda db: 10.0 ** (db / 10.0)  # noqa: E731
    tau_vv = np.exp(-2 * s["att_vv"] * V)
    tau_vh = np.exp(-2 * s["att_vh"] * V)
    vv = lin(s["veg_vv_db"]) * (1 - tau_vv) + lin(soil_vv) * tau_vv
    vh = lin(s["veg_vh_db"]) * (1 - tau_vh) + lin(soil_vv + s["soil_vh_offset_db"]) * tau_vh
    wa = np.clip(px["water"], 0, 1)
    bu = np.clip(px["built"], 0, 1)
    land = np.clip(1 - wa - bu, 0, 1)
    vv = land * vv + wa * lin(s["water_vv_db"] + px["wdb"][:, None]) + bu * lin(s["built_vv_db"] + px["bdb"][:, None])
    vh = land * vh + wa * lin(s["water_vh_db"] + px["wdb"][:, None]) + bu * lin(s["built_vh_db"] + px["bdb"][:, None])
    shape = vv.shape
    off = px["angle"][:, None]
    vv_db = 10 * np.log10(vv) + off + rng.normal(0, diff["s1_speckle"], shape)
    vh_db = 10 * np.log10(vh) + off + rng.normal(0, diff["s1_speckle"] * s["vh_noise"], shape)
    return vv_db.astype(np.float32), vh_db.astype(np.float32)


def edge_mix(r: np.ndarray, field: np.ndarray, w: float = 0.4) -> np.ndarray:
    """Mixed pixels at field borders, in place: ``[n, T, B, S, S]`` reflectance, ``[n, S, S]`` field
    ids. Border pixels take ``w`` of their 3x3 neighbourhood mean (10 m pixels straddle boundaries)."""
    fp = np.pad(field, [(0, 0), (1, 1), (1, 1)], mode="edge")
    S1, S2 = field.shape[-2:]
    border = np.zeros(field.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        border |= fp[:, dy:dy + S1, dx:dx + S2] != field
    b = border[:, None]
    for j in range(r.shape[2]):
        x = r[:, :, j]
        q = np.concatenate([x[..., :1, :], x, x[..., -1:, :]], axis=-2)
        v = q[..., :-2, :] + q[..., 1:-1, :] + q[..., 2:, :]
        q = np.concatenate([v[..., :1], v, v[..., -1:]], axis=-1)
        box = (q[..., :-2] + q[..., 1:-1] + q[..., 2:]) * np.float32(1.0 / 9.0)
        r[:, :, j] = np.where(b, np.float32(1 - w) * x + np.float32(w) * box, x)
    return r


def smooth_noise(rng: np.random.Generator, shape_lead: tuple, S: int, terms: int = 3,
                 wavelength=(8.0, 40.0)) -> np.ndarray:
    """Smooth random fields ``[*shape_lead, S, S]`` in about -1..1 (sum of random plane waves)."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    out = np.zeros(shape_lead + (S, S), dtype=np.float32)
    for _ in range(terms):
        lam = rng.uniform(*wavelength, shape_lead).astype(np.float32)
        ang = rng.uniform(0, np.pi, shape_lead).astype(np.float32)
        ph = rng.uniform(0, 2 * np.pi, shape_lead).astype(np.float32)
        kx = (np.cos(ang) * 2 * np.pi / lam)[..., None, None]
        ky = (np.sin(ang) * 2 * np.pi / lam)[..., None, None]
        out += np.sin(kx * xx + ky * yy + ph[..., None, None])
    return out / np.sqrt(terms / 2.0)


def sentinel2_toa(p, region: dict, surf: np.ndarray, cloud_tile: np.ndarray, gap_tile: np.ndarray,
                  wet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Level-1C DN ``[n, T, 13, S, S]`` (B1..B12) from surface reflectance ``[n, T, 10, S, S]``:
    residual cloud of the monthly composite (smooth in space), path radiance, derived B1/B9/B10,
    sensor noise, NaN where a month had no clear observation (at most a third of the steps).
    Computed band by band to bound memory."""
    s2 = p.s2
    noise = np.float32(region["difficulty"]["s2_noise"])
    n, t, _, S, _ = surf.shape
    sp = {k: np.asarray(v, dtype=np.float32) for k, v in p.spectra.items()}
    pattern = smooth_noise(rng, (n, t), S, terms=2, wavelength=(S * 0.7, S * 3.0))
    c = np.clip(cloud_tile[:, :, None, None] * (1.0 + 0.8 * pattern), 0.0, s2["cloud_max"]).astype(np.float32)
    clear = 1 - c
    aer = rng.uniform(0.7, 1.3, (n, t)).astype(np.float32)[:, :, None, None]
    # sensor / compositing noise: a common factor per pixel-step and a band-specific part
    z = rng.standard_normal((n, t, S, S), dtype=np.float32)
    out = np.empty((n, t, 13, S, S), dtype=np.float32)
    # output band positions of the 10 end-member bands (B2..B8A, B11, B12) among B1..B12
    pos = [1, 2, 3, 4, 5, 6, 7, 8, 11, 12]
    for j, k in enumerate(pos):
        r = clear * surf[:, :, j] + c * sp["cloud"][j]
        if j == 0:  # B1 (coastal aerosol) follows blue, with a larger path radiance
            out[:, :, 0] = (s2["b1_from_b2"] * r + s2["b1_path"] * aer) * (1 + noise * z)
        zb = rng.standard_normal((n, t, S, S), dtype=np.float32)
        out[:, :, k] = (r + aer * sp["path"][j]) * (1 + noise * (0.7 * z + 0.3 * zb))
    # water-vapour band: the surface is seen through the vapour column, clouds above it are bright
    out[:, :, 9] = ((s2["b9_from_b8a"] - s2["b9_humid"] * wet[:, :, None, None]) * clear * surf[:, :, 7]
                    + c * s2["b9_cloud"] + 60.0 * aer) * (1 + noise * z)
    cirrus = rng.uniform(0, 1, (n, t, 1, 1)) < 0.25
    out[:, :, 10] = s2["b10_clear"] + s2["b10_cirrus"] * c * np.where(cirrus, 1.0, 0.15)
    np.round(out, out=out)
    np.clip(out, 0, 15000, out=out)
    # gaps: in a tile-month without a clear observation, the cloudier part of the tile is NaN;
    # a pixel keeps at least two thirds of its steps
    gap = gap_tile[:, :, None, None] & (pattern > -0.2)
    gap &= np.cumsum(gap, axis=1) <= max(1, t // 3)
    out[np.broadcast_to(gap[:, :, None], out.shape)] = np.nan
    return out


# ==================================================================================================
# Terrain
# ==================================================================================================
def terrain(p, region: dict, rng_region: np.random.Generator, rng: np.random.Generator,
            lat0: np.ndarray, lon0: np.ndarray, S: int, pixel_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """SRTM-like ``elevation`` (integer m) and ``slope`` (degrees, NaN on the 1-px border),
    ``[n, S, S]`` each, for tiles with top-left corners ``lat0, lon0``."""
    mean, relief = region["elev"]
    terms = int(p.terrain["hills"])
    # the region's large-scale relief: a fixed sum of plane waves over lat/lon (wavelength 0.3-3 deg)
    lam = rng_region.uniform(0.3, 3.0, terms)
    ang = rng_region.uniform(0, np.pi, terms)
    ph = rng_region.uniform(0, 2 * np.pi, terms)
    n = len(lat0)
    yy, xx = np.mgrid[0:S, 0:S]
    lat = lat0[:, None, None] - (yy[None] + 0.5) * pixel_deg
    lon = lon0[:, None, None] + (xx[None] + 0.5) * pixel_deg
    big = np.zeros((n, S, S))
    for k in range(terms):
        big += np.sin(2 * np.pi * (np.cos(ang[k]) * lon + np.sin(ang[k]) * lat) / lam[k] + ph[k])
    big = mean + relief * big / np.sqrt(terms / 2.0)
    bump_amp = p.terrain["tile_bumps_m"] * (0.3 + relief / 150.0)
    micro = bump_amp * smooth_noise(rng, (n,), S, terms=3, wavelength=(8.0, 24.0))
    z = np.maximum(big + micro, 0.0)
    gy, gx = np.gradient(z, axis=(1, 2))
    slope = np.degrees(np.arctan(np.hypot(gx, gy) / 10.0))  # 10 m pixels
    slope[:, 0, :] = slope[:, -1, :] = slope[:, :, 0] = slope[:, :, -1] = np.nan
    slope = np.round(slope * 256) / 256
    return np.round(z).astype(np.float32), slope.astype(np.float32)
