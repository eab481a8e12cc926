"""Tiny Earth-Engine-layout tiles (:func:`cropmeta.io.eewrite.write_ee_tiff`) and a simulated-world
directory in the contract layout (world.json, labels.parquet,
tiles/<region>/<idx>-<dataset>_<start>_<end>.tif), for tests and benchmarks.

- :func:`make_ee_tile`: a map-export tile whose true NDVI is known (a ramp by default), with NaN
  slope on its first row(s) and optional missing pixels (formerly ``cropmeta.mapping.testing``);
- :func:`tiny_tile` / :func:`raw_stack`: distinct, plausible raw values of every band (the reader
  tests); :func:`make_world`: a world of such tiles with every pixel labelled (formerly
  ``tests/_fixtures_io.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from rasterio.transform import from_origin

from cropmeta.io.eenames import ee_filename
from cropmeta.io.eewrite import write_ee_tiff
from cropmeta.schema import DEFAULT_T, DYNAMIC_BANDS_RAW, RAW_PER_STEP

__all__ = ["make_ee_tile", "raw_stack", "tiny_tile", "pixel_centre", "make_world", "WORLD_TILES", "START", "END"]


def make_ee_tile(path: str | Path, height: int = 40, width: int = 60, t: int = DEFAULT_T,
                 origin: tuple[float, float] = (300000.0, 9990000.0), res: float = 10.0, crs: str = "EPSG:32737",
                 ndvi: np.ndarray | None = None, missing: np.ndarray | None = None, seed: int = 0,
                 nan_slope_rows: int = 1) -> Path:
    """A synthetic Earth-Engine-layout tile whose true NDVI is ``ndvi [height, width]`` (default: a
    left-to-right ramp 0 → 0.8) at every step; pixels where ``missing`` is True are NaN in every band;
    the first ``nan_slope_rows`` rows have NaN slope (like real SRTM borders)."""
    rng = np.random.default_rng(seed)
    if ndvi is None:
        ndvi = np.broadcast_to(np.linspace(0.0, 0.8, width)[None, :], (height, width))
    ndvi = np.asarray(ndvi, dtype=np.float64)
    dyn = rng.normal(1000.0, 100.0, (t, RAW_PER_STEP, height, width)).astype(np.float32)
    b8, b4 = DYNAMIC_BANDS_RAW.index("B8"), DYNAMIC_BANDS_RAW.index("B4")
    dyn[:, :2] = rng.normal(-12.0, 3.0, (t, 2, height, width))  # VV, VH (dB)
    dyn[:, RAW_PER_STEP - 2] = rng.normal(295.0, 3.0, (t, height, width))  # temperature_2m (K)
    dyn[:, RAW_PER_STEP - 1] = np.abs(rng.normal(0.003, 0.002, (t, height, width)))  # precipitation (m)
    dyn[:, b4] = 1000.0
    dyn[:, b8] = (1000.0 * (1 + ndvi) / (1 - ndvi)).astype(np.float32)
    stat = np.stack([rng.normal(1500, 50, (height, width)), rng.uniform(0, 10, (height, width))]).astype(np.float32)
    stat[1, :nan_slope_rows] = np.nan
    if missing is not None:
        dyn[:, :, missing] = np.nan
        stat[:, missing] = np.nan
    x0, y0 = origin
    return write_ee_tiff(path, dyn, stat, from_origin(x0, y0, res, res), crs)


START, END = "2019-02-06", "2020-02-01"


def raw_stack(t: int, h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Distinct, plausible raw values: dynamic [t,17,h,w], static [2,h,w] (float32)."""
    rng = np.random.default_rng(seed)
    dyn = np.empty((t, RAW_PER_STEP, h, w), dtype=np.float32)
    for b, name in enumerate(DYNAMIC_BANDS_RAW):
        if name in ("VV", "VH"):
            base = -15.0
        elif name == "temperature_2m":
            base = 298.0
        elif name == "total_precipitation":
            base = 0.003
        else:
            base = 1500.0
        scale = 0.001 if name == "total_precipitation" else (1.0 if name in ("VV", "VH", "temperature_2m") else 300.0)
        dyn[:, b] = base + scale * rng.standard_normal((t, h, w))
    static = np.stack([rng.uniform(100, 900, (h, w)), rng.uniform(0, 10, (h, w))]).astype(np.float32)
    return dyn, static


def tiny_tile(path: Path, t: int = 3, h: int = 4, w: int = 5, west: float = 1.0, north: float = 8.0,
              res: float = 0.001, crs: str = "EPSG:4326", seed: int = 0, mutate=None):
    """Write an EE-layout tile; returns (path, dynamic, static, transform). ``mutate(dyn, static)``
    may edit the arrays in place before writing (e.g. to inject NaNs)."""
    dyn, static = raw_stack(t, h, w, seed)
    if mutate is not None:
        mutate(dyn, static)
    transform = from_origin(west, north, res, res)
    write_ee_tiff(path, dyn, static, transform, crs=crs)
    return Path(path), dyn, static, transform


def pixel_centre(transform, row: int, col: int) -> tuple[float, float]:
    """(lon/x, lat/y) of a pixel centre."""
    x, y = transform * (col + 0.5, row + 0.5)
    return float(x), float(y)


#: two regions with one tiny tile each: (region, dataset, west, north)
WORLD_TILES = [("Kenya", "sim-kenya", 34.20, 0.60), ("Togo", "sim-togo", 1.10, 8.60)]


def make_world(root: Path, t: int = 3, h: int = 4, w: int = 4, seed: int = 0) -> Path:
    """A simulated-world directory in the contract layout with every pixel of each tile labelled
    (half crop, half non-crop; 2 test points per region)."""
    root = Path(root)
    rows = []
    for k, (region, dataset, west, north) in enumerate(WORLD_TILES):
        slug = region.lower()
        rel = Path("tiles") / slug / ee_filename(k, dataset, START, END)
        _, dyn, static, tr = tiny_tile(root / rel, t=t, h=h, w=w, west=west, north=north, res=0.001, seed=seed + k)
        n = 0
        for r in range(h):
            for c in range(w):
                lon, lat = pixel_centre(tr, r, c)
                crop = (r + c) % 2
                rows.append({"sample_id": f"{slug}-{n}", "is_crop": crop, "label": "maize" if crop else None,
                             "crop_group": "cereals" if crop else "non_crop", "region": region, "dataset": dataset,
                             "split": "test" if n < 2 else "train", "start_date": START, "tile": str(rel),
                             "lon": lon, "lat": lat})
                n += 1
    df = pd.DataFrame(rows)
    gdf = gpd.GeoDataFrame(df.drop(columns=["lon", "lat"]), geometry=gpd.points_from_xy(df["lon"], df["lat"]),
                           crs="EPSG:4326")
    gdf.to_parquet(root / "labels.parquet")
    (root / "world.json").write_text(json.dumps({
        "kind": "cropmeta-sim-world", "version": 1, "seed": seed, "t": t, "regions": [r[0] for r in WORLD_TILES],
        "targets": {}, "scenes": {}}))
    return root
