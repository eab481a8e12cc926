"""Tiny synthetic sample sets (:class:`~cropmeta.io.store.SampleSet`) for tests and benchmarks.

- :func:`toy_samples`: a learnable, region-dependent crop signal — crops show a seasonal NIR/NDVI
  bump whose timing depends on the crop *and* on the region (its latitude), so tasks are related but
  not identical (what task-informed meta-learning exploits); non-crop pixels have weak bumps at
  random times. Values are in raw units (dB, L1C DN, K, m …). (Formerly ``cropmeta.train.toy``.)
- :func:`make_samples`: a few real country names, crop/non-crop and crop types with learnable NDVI
  curves (the comparison tests' samples).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cropmeta.io.store import SampleSet, make_meta
from cropmeta.schema import BAND_INDEX, BANDS, DEFAULT_T, N_BANDS, true_ndvi
from cropmeta.crops import CROP_TO_GROUP, crop_group_of

__all__ = ["toy_samples", "TOY_REGIONS", "make_samples", "EVAL_REGIONS", "EVAL_CROPS"]

#: (region, latitude, longitude, crops)
TOY_REGIONS = [
    ("Kenya", 0.2, 37.9, ["maize", "bean", "coffee"]),
    ("Togo", 8.5, 0.9, ["maize", "cassava"]),
    ("Brazil", -10.8, -53.1, ["coffee", "soybean"]),
    ("Uganda", 1.3, 32.4, ["maize", "bean"]),
    ("Tanzania", -6.3, 34.8, ["maize", "cassava"]),
    ("Ethiopia", 8.6, 39.6, ["teff", "maize"]),
    ("Mali", 17.4, -3.5, ["millet", "sorghum"]),
    ("France", 46.6, 2.4, ["wheat", "maize"]),
]
_CROP_PEAK = {"maize": 5.0, "bean": 3.0, "coffee": 8.0, "cassava": 7.0, "soybean": 4.0, "teff": 6.0,
              "millet": 4.5, "sorghum": 6.5, "wheat": 2.5, "rice": 5.5}


def toy_samples(n_per_label: int = 40, n_noncrop: int = 60, t: int = 12, seed: int = 0,
                regions: list | None = None, test_fraction: float = 0.25) -> SampleSet:
    """``n_per_label`` samples of each crop and ``n_noncrop`` non-crop samples per region."""
    rng = np.random.default_rng(seed)
    regions = TOY_REGIONS if regions is None else regions
    xs, rows = [], []
    steps = np.arange(t, dtype=np.float64)
    for rname, lat, lon, crops in regions:
        shift = (lat / 12.0) % t  # region-dependent seasonal shift
        kinds = [(c, n_per_label) for c in crops] + [(None, n_noncrop)]
        for crop, n in kinds:
            if crop is None:
                peak = rng.uniform(0, t, n)
                amp = rng.uniform(0.0, 0.35, n)
            else:
                peak = (_CROP_PEAK.get(crop, 5.0) * t / 12.0 + shift + rng.normal(0, 0.4, n)) % t
                amp = rng.uniform(0.6, 1.0, n)
            width = rng.uniform(1.0, 1.8, n)
            d = np.minimum(np.abs(steps[None] - peak[:, None]), t - np.abs(steps[None] - peak[:, None]))
            c = amp[:, None] * np.exp(-(d**2) / (2 * width[:, None] ** 2))  # [n, t]
            x = np.empty((n, t, N_BANDS), dtype=np.float64)
            noise = rng.normal(0, 1, (n, t, N_BANDS))
            x[..., BAND_INDEX["VV"]] = -13 + 3 * c + 0.8 * noise[..., 0]
            x[..., BAND_INDEX["VH"]] = -19 + 4 * c + 0.8 * noise[..., 1]
            for j, b in enumerate(["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]):
                base = 900 + 150 * j
                gain = 1600 if b in ("B7", "B8", "B8A") else (-450 if b in ("B2", "B3", "B4") else 300)
                x[..., BAND_INDEX[b]] = base + gain * c + 120 * noise[..., 2 + j]
            season = 3 * np.sin(steps / t * 2 * np.pi)
            x[..., BAND_INDEX["temperature_2m"]] = 295 - abs(lat) * 0.3 + season + noise[..., 13]
            x[..., BAND_INDEX["total_precipitation"]] = np.abs(0.003 + 0.002 * c + 0.001 * noise[..., 14])
            x[..., BAND_INDEX["elevation"]] = (rng.uniform(200, 1500, n))[:, None]
            x[..., BAND_INDEX["slope"]] = (rng.uniform(0, 8, n))[:, None]
            x[..., BAND_INDEX["NDVI"]] = true_ndvi(x[..., BAND_INDEX["B8"]], x[..., BAND_INDEX["B4"]])
            xs.append(x.astype(np.float32))
            split = np.where(rng.random(n) < test_fraction, "test", "train")
            for i in range(n):
                rows.append({
                    "sample_id": f"toy-{rname.lower()}-{crop or 'noncrop'}-{i}",
                    "lat": lat + rng.normal(0, 0.5), "lon": lon + rng.normal(0, 0.5),
                    "is_crop": 0 if crop is None else 1, "label": crop,
                    "crop_group": "non_crop" if crop is None else crop_group_of(crop),
                    "region": rname, "dataset": "toy", "split": split[i], "start_date": "2021-01-01",
                })
    return SampleSet(np.concatenate(xs), make_meta(pd.DataFrame(rows)))


#: regions of :func:`make_samples`: name → (lat, lon)
EVAL_REGIONS = {"Kenya": (0.2, 37.9), "Tanzania": (-6.3, 34.8), "Uganda": (1.3, 32.4), "Togo": (8.6, 1.0)}
#: crop types of :func:`make_samples`
EVAL_CROPS = ["maize", "bean", "cassava"]


def make_samples(n_per_region: int = 60, t: int = DEFAULT_T, seed: int = 0, test_frac: float = 0.35,
                 regions=EVAL_REGIONS) -> SampleSet:
    """``n_per_region`` samples per region (non-crop and :data:`EVAL_CROPS` with learnable NDVI curves,
    B8/B4 consistent with NDVI): the comparison tests' sample set."""
    rng = np.random.default_rng(seed)
    xs, rows = [], []
    months = np.arange(t)
    for r_i, (region, (lat, lon)) in enumerate(regions.items()):
        n = n_per_region
        kind = rng.choice(["non_crop"] + EVAL_CROPS, size=n, p=[0.4, 0.3, 0.15, 0.15])
        peak = {"maize": 4.0, "bean": 7.0, "cassava": 9.0}
        x = rng.normal(0.0, 1.0, size=(n, t, len(BANDS))).astype(np.float32)
        x *= 200.0
        x += 1500.0
        ndvi = np.empty((n, t), dtype=np.float32)
        for i, k in enumerate(kind):
            if k == "non_crop":
                ndvi[i] = 0.25 + 0.05 * rng.normal(size=t)
            else:
                ndvi[i] = 0.2 + 0.3 * np.exp(-0.5 * ((months - peak[k] - r_i * 0.3) / 1.5) ** 2) + 0.15 * rng.normal(size=t)
        # B8/B4 consistent with NDVI, NDVI column set too
        b4 = 800 + 50 * rng.normal(size=(n, t))
        b8 = b4 * (1 + ndvi) / (1 - ndvi)
        x[:, :, BAND_INDEX["B4"]] = b4
        x[:, :, BAND_INDEX["B8"]] = b8
        x[:, :, BAND_INDEX["NDVI"]] = ndvi
        xs.append(x)
        split = np.where(rng.random(n) < test_frac, "test", "train")
        for i in range(n):
            crop = kind[i] != "non_crop"
            rows.append({
                "sample_id": f"{region[:3].lower()}-{i}", "lat": lat + rng.normal(0, 0.1), "lon": lon + rng.normal(0, 0.1),
                "is_crop": int(crop), "label": kind[i] if crop else None,
                "crop_group": CROP_TO_GROUP[kind[i]] if crop else "non_crop",
                "region": region, "dataset": "synthetic", "split": split[i], "start_date": "2020-01-01",
            })
    return SampleSet(np.concatenate(xs), make_meta(pd.DataFrame(rows)))
