"""A small synthetic archive in exactly the CropHarvest layout (:mod:`cropmeta.io.cropharvest`),
for tests and end-to-end runs: :func:`make_archive_fixture`. (Formerly in ``cropmeta.io.cropharvest``.)"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import h5py
import numpy as np
import pandas as pd

from cropmeta.schema import BAND_INDEX, N_BANDS, ndvi_of
from cropmeta.crops import crop_group_of

__all__ = ["FIXTURE_DATASETS", "FIXTURE_TESTS", "synthetic_series", "make_archive_fixture"]

#: (dataset, country, lon, lat, crop types (None = crop/non-crop only), share of crop rows)
FIXTURE_DATASETS = [
    ("togo", "Togo", 1.20, 8.50, None, 0.5),
    ("kenya", "Kenya", 34.30, 0.60, ["maize", "cassava", "millet"], 1.0),
    ("kenya-non-crop", "Kenya", 36.80, -0.50, None, 0.0),
    ("lem-brazil", "Brazil", -45.80, -12.15, ["coffee", "cotton"], 0.5),
    ("ethiopia", "Ethiopia", 39.50, 9.00, ["wheat", "teff"], 0.5),
    ("mali", "Mali", -6.00, 13.00, ["sorghum", "millet"], 0.5),
]
#: test files: (name, centre lon, lat, crop or "crop") — the Kenya and Brazil centres lie in
#: CropHarvest's test boxes (Kenya_maize_2020_0, Brazil_coffee_2020_0)
FIXTURE_TESTS = [
    ("Kenya_maize_2020_0", 34.2306, 0.4747, "maize"),
    ("Brazil_coffee_2020_0", -45.7900, -12.1600, "coffee"),
    ("Togo_crop_2019_0", 1.00, 9.00, "crop"),
]
#: month (0-based step) of peak greenness per crop; non-crop has none
_PEAK = {"maize": 5, "cassava": 7, "millet": 6, "coffee": 3, "cotton": 8, "wheat": 4, "teff": 7, "sorghum": 6}


def synthetic_series(rng: np.random.Generator, n: int, crop: list[str | None], t: int = 12,
                     upstream_ndvi: bool = True) -> np.ndarray:
    """``[n, t, 18]`` raw-unit pixel series with a learnable signal: crops green up around their peak
    month (high B8, low B4), non-crop (``None``) stays flat. With ``upstream_ndvi`` the NDVI column is
    CropHarvest's (B7 − B3)/(B7 + B3)."""
    steps = np.arange(t)
    x = np.empty((n, t, N_BANDS), dtype=np.float64)
    for i, c in enumerate(crop):
        peak = _PEAK.get(c, 6) if c is not None else None
        green = (np.exp(-0.5 * ((steps - peak) / 1.5) ** 2) if peak is not None else np.full(t, 0.15))
        green = np.clip(green + rng.normal(0, 0.05, t), 0, 1)
        nir = 1800 + 2500 * green
        red = 1200 - 800 * green
        b = x[i]
        b[:, BAND_INDEX["VV"]] = -12 + 3 * green + rng.normal(0, 0.5, t)
        b[:, BAND_INDEX["VH"]] = -19 + 4 * green + rng.normal(0, 0.5, t)
        for name, base in (("B2", 900), ("B3", 1100), ("B5", 1500), ("B9", 700), ("B11", 2200), ("B12", 1700)):
            b[:, BAND_INDEX[name]] = base + rng.normal(0, 60, t)
        b[:, BAND_INDEX["B4"]] = red + rng.normal(0, 40, t)
        b[:, BAND_INDEX["B6"]] = 0.8 * nir + rng.normal(0, 60, t)
        b[:, BAND_INDEX["B7"]] = 0.9 * nir + rng.normal(0, 60, t)
        b[:, BAND_INDEX["B8"]] = nir + rng.normal(0, 60, t)
        b[:, BAND_INDEX["B8A"]] = nir + rng.normal(0, 60, t)
        b[:, BAND_INDEX["temperature_2m"]] = 297 + 3 * np.sin(2 * np.pi * steps / 12) + rng.normal(0, 0.3, t)
        b[:, BAND_INDEX["total_precipitation"]] = np.clip(0.004 + 0.003 * green + rng.normal(0, 0.001, t), 0, None)
        b[:, BAND_INDEX["elevation"]] = rng.uniform(100, 1500)
        b[:, BAND_INDEX["slope"]] = rng.uniform(0, 8)
    x[..., BAND_INDEX["NDVI"]] = ndvi_of(x, "cropharvest" if upstream_ndvi else "true")
    return x


def make_archive_fixture(root: str | Path, n_per_dataset: int = 16, seed: int = 0, t: int = 12,
                         n_test: int | None = None) -> Path:
    """Write a small synthetic CropHarvest archive under ``root`` (exact layout, h5py + GeoJSON).

    Six datasets in five countries (Togo, Kenya ×2, Brazil, Ethiopia, Mali), ``n_per_dataset`` labels
    each, one ``features/arrays/{index}_{dataset}.h5`` per label, and three test files
    (``Kenya_maize_2020_0``, ``Brazil_coffee_2020_0``, ``Togo_crop_2019_0``, ``n_test`` points each,
    default ``n_per_dataset``; one point per file unlabelled, y=-1). NDVI columns carry CropHarvest's
    off-by-one (B7−B3)/(B7+B3). Deterministic in ``seed``. Returns ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    arrays = root / "features" / "arrays"
    arrays.mkdir(parents=True, exist_ok=True)
    (root / "test_features").mkdir(parents=True, exist_ok=True)
    rows = []
    index = 0
    for name, _country, lon0, lat0, crops, share in FIXTURE_DATASETS:
        n_crop = int(round(share * n_per_dataset))
        is_crop = np.array([1] * n_crop + [0] * (n_per_dataset - n_crop))
        rng.shuffle(is_crop)
        # crop type of each crop row (None: a crop/non-crop dataset); the signal of an unnamed crop is maize's
        crop_of = [crops[k % len(crops)] if (crops and c) else None for k, c in enumerate(is_crop)]
        kinds = [(lab or "maize") if c else None for lab, c in zip(crop_of, is_crop)]
        x = synthetic_series(rng, n_per_dataset, kinds, t=t)
        lons = lon0 + rng.uniform(-0.05, 0.05, n_per_dataset)
        lats = lat0 + rng.uniform(-0.05, 0.05, n_per_dataset)
        for k in range(n_per_dataset):
            with h5py.File(arrays / f"{index}_{name}.h5", "w") as h5:
                h5.create_dataset("array", data=x[k])
            lab = crop_of[k]
            rows.append({
                "index": index, "is_crop": int(is_crop[k]), "lat": float(lats[k]), "lon": float(lons[k]),
                "dataset": name, "collection_date": "2020-05-19", "export_end_date": "2020-02-01",
                "is_test": False, "externally_contributed_dataset": False,
                "label": lab, "classification_label": crop_group_of(lab) if lab else None,
                "harvest_date": None, "planting_date": None,
            })
            index += 1
    gdf = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=gpd.points_from_xy([r["lon"] for r in rows],
                                                                             [r["lat"] for r in rows]), crs="EPSG:4326")
    gdf.to_file(root / "labels.geojson", driver="GeoJSON")
    n_test = n_test or n_per_dataset
    for name, lon0, lat0, crop in FIXTURE_TESTS:
        y = np.array([1, 0] * (n_test // 2) + [1] * (n_test % 2))
        y[-1] = -1
        kinds = [(crop if crop != "crop" else "maize") if v == 1 else None for v in y]
        if crop != "crop":  # "not <crop>" points are a mix of another crop and non-crop
            kinds = [c or ("cassava" if k % 4 == 1 else None) for k, c in enumerate(kinds)]
        x = synthetic_series(rng, n_test, kinds, t=t)
        with h5py.File(root / "test_features" / f"{name}.h5", "w") as h5:
            h5.create_dataset("x", data=x)
            h5.create_dataset("y", data=y)
            h5.create_dataset("lats", data=lat0 + rng.uniform(-0.002, 0.002, n_test))
            h5.create_dataset("lons", data=lon0 + rng.uniform(-0.002, 0.002, n_test))
    (root / "README.fixture.json").write_text(json.dumps(
        {"kind": "cropmeta synthetic CropHarvest-layout fixture", "seed": seed, "n_per_dataset": n_per_dataset,
         "datasets": [d[0] for d in FIXTURE_DATASETS], "tests": [d[0] for d in FIXTURE_TESTS]}, indent=2))
    return root
