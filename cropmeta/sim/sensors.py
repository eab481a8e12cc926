"""What the satellites see of the simulated land (the model: :mod:`cropmeta.sim.physics`):
Sentinel-2 surface reflectance and Level-1C DN, Sentinel-1 backscatter, mixed pixels at field
borders, and the SRTM terrain. Pure numpy, vectorised over tiles and pixels.

Model (docs/simulator.md has the sources):

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

import numpy as np


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
