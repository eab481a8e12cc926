"""Tiny synthetic sample sets for the comparison tests (tests/test_compare.py, test_methods.py,
test_report.py): a few real country names, crop/non-crop and crop types with learnable NDVI curves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cropmeta.io.store import SampleSet, make_meta
from cropmeta.schema import BAND_INDEX, BANDS, CROP_TO_GROUP, DEFAULT_T

REGIONS = {"Kenya": (0.2, 37.9), "Tanzania": (-6.3, 34.8), "Uganda": (1.3, 32.4), "Togo": (8.6, 1.0)}
CROPS = ["maize", "bean", "cassava"]


def make_samples(n_per_region: int = 60, t: int = DEFAULT_T, seed: int = 0, test_frac: float = 0.35,
                 regions=REGIONS) -> SampleSet:
    rng = np.random.default_rng(seed)
    xs, rows = [], []
    months = np.arange(t)
    for r_i, (region, (lat, lon)) in enumerate(regions.items()):
        n = n_per_region
        kind = rng.choice(["non_crop"] + CROPS, size=n, p=[0.4, 0.3, 0.15, 0.15])
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
