"""The simulator's physics: climate, phenology and land-cover fractions (the sensors that observe
them, and SRTM terrain: :mod:`cropmeta.sim.sensors`). Pure numpy, vectorised over tiles, fields
and pixels.

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
