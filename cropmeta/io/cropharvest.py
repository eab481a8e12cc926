"""The CropHarvest archive layout (Tseng et al. 2021, zenodo record 10251170), for users who have it.

::

    <root>/labels.geojson                      one row per label: index, is_crop, lat, lon, dataset,
                                               collection_date, export_end_date, geometry, is_test,
                                               externally_contributed_dataset; nullable label,
                                               classification_label, harvest_date, planting_date
    <root>/features/arrays/{index}_{dataset}.h5   dataset ``array``: [12, 18] raw pixel series
    <root>/test_features/<name>.h5             ``x`` [N, 12, 18], ``y`` [N] (1 / 0 / -1 unlabelled),
                                               ``lats`` [N], ``lons`` [N]; names like
                                               ``Kenya_maize_2020_0`` ({Country}_{crop}_{year}_{k})

Arrays use CropHarvest's 18-band order (= :data:`cropmeta.schema.BANDS`). Their ``NDVI`` column
holds (B7 − B3)/(B7 + B3) because of an upstream off-by-one; cropmeta recomputes true NDVI from B8
and B4 on reading. No pickles: everything is read with h5py / geopandas.

:func:`make_archive_fixture` writes a small synthetic archive in exactly this layout (the real one
is not reachable offline); other test suites use it for end-to-end runs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import h5py
import numpy as np
import pandas as pd

from cropmeta.errors import DataError, InputError
from cropmeta.io.cropharvest_rules import parse_test_file
from cropmeta.io.store import SampleSet
from cropmeta.schema import (
    BAND_INDEX,
    BANDS,
    CROP_GROUPS,
    DAYS_PER_STEP,
    N_BANDS,
    crop_group_of,
    fill_missing,
    ndvi_of,
    normalise_crop,
    recompute_ndvi,
)

LABEL_COLUMNS = ["index", "is_crop", "lat", "lon", "dataset", "collection_date", "export_end_date", "geometry",
                 "is_test", "externally_contributed_dataset"]
NULLABLE_COLUMNS = ["label", "classification_label", "harvest_date", "planting_date"]


def is_cropharvest_archive(path: str | Path) -> bool:
    """True when ``path`` is a directory with ``labels.geojson`` and ``features/``."""
    p = Path(path)
    return p.is_dir() and (p / "labels.geojson").is_file() and (p / "features").is_dir()


def array_path(root: Path, index, dataset: str) -> Path:
    return root / "features" / "arrays" / f"{index}_{dataset}.h5"


def _read_h5(path: Path, name: str) -> np.ndarray:
    try:
        with h5py.File(path, "r") as h5:
            if name not in h5:
                raise InputError(f"{path}: no dataset {name!r} (found {', '.join(h5.keys()) or 'none'})")
            return np.asarray(h5[name][()])
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: not a readable HDF5 file (corrupt or truncated?): {e}") from e


def _check_array(path: Path, a: np.ndarray, batched: bool) -> np.ndarray:
    want = 3 if batched else 2
    if a.ndim != want or a.shape[-1] != N_BANDS:
        shape = "[N, T, 18]" if batched else "[T, 18]"
        raise InputError(f"{path}: array shaped {list(a.shape)}, expected {shape} in CropHarvest band order")
    return a.astype(np.float32)


def _date(v) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    return str(v)[:10]


def _start_from_end(end: str | None, t: int) -> str | None:
    if not end:
        return None
    return (dt.date.fromisoformat(end) - dt.timedelta(days=DAYS_PER_STEP * t)).isoformat()


def read_cropharvest_labels(root: str | Path) -> gpd.GeoDataFrame:
    """``labels.geojson`` validated (required columns present, nullable ones added if absent)."""
    root = Path(root)
    path = root / "labels.geojson"
    if not path.exists():
        raise InputError(f"{root}: not a CropHarvest archive (no labels.geojson)")
    try:
        gdf = gpd.read_file(path)
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: cannot read ({type(e).__name__}: {e})") from e
    missing = [c for c in LABEL_COLUMNS if c not in gdf.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; available: {', '.join(map(str, gdf.columns))}")
    for c in NULLABLE_COLUMNS:
        if c not in gdf.columns:
            gdf[c] = None
    return gdf


def _country(lat, lon) -> np.ndarray:
    from cropmeta.io.sampling import country_of

    return country_of(np.asarray(lat, float), np.asarray(lon, float))


def read_cropharvest(root: str | Path, include_test: bool = True,
                     datasets: list[str] | None = None) -> tuple[SampleSet, dict]:
    """An archive → one :class:`SampleSet` (all datasets; ``region`` = the country holding each point,
    or the country named by a test file) and a report.

    - ``features/arrays``: one sample per label row; ``split`` is ``test`` where ``is_test``;
      ``label`` = the crop type (lower case), ``crop_group`` = ``classification_label`` when it is one
      of :data:`CROP_GROUPS` (else derived from the label), ``non_crop`` for non-crop rows;
      ``start_date`` = ``export_end_date`` − T×30 days.
    - ``test_features/<Country>_<crop>_<year>_<k>.h5``: ``split='test'``, ``dataset`` = the file
      stem; column ``target`` holds ``y``. For a crop-vs-non-crop file (crop ``crop``) ``is_crop = y``;
      for a crop-type file (e.g. maize) ``y=1`` → ``is_crop=1, label=<crop>``, ``y=0`` →
      ``is_crop=-1`` (not that crop; crop status unknown), ``label=None``.
    - NDVI is recomputed as true NDVI from B8/B4 (CropHarvest's column is (B7−B3)/(B7+B3)).
    Label rows whose array file is missing are skipped and counted (``report["missing_arrays"]``).
    """
    root = Path(root)
    if not is_cropharvest_archive(root):
        raise InputError(f"{root}: not a CropHarvest archive (expected labels.geojson and features/)")
    labels = read_cropharvest_labels(root)
    if datasets is not None:
        labels = labels[labels["dataset"].isin(datasets)]
    xs, rows, missing, bad = [], [], [], {}
    for rec in labels.itertuples(index=False):
        p = array_path(root, rec.index, rec.dataset)
        if not p.exists():
            missing.append(str(p.relative_to(root)))
            continue
        xs.append(_check_array(p, _read_h5(p, "array"), batched=False))
        rows.append(rec)
    report: dict = {"source": str(root), "labels": int(len(labels)), "missing_arrays": len(missing),
                    "missing_array_files": missing[:20]}
    meta_parts, x_parts = [], []
    if rows:
        ts = {a.shape[0] for a in xs}
        if len(ts) > 1:
            raise InputError(f"{root / 'features' / 'arrays'}: arrays have different numbers of time steps "
                             f"{sorted(ts)}")
        t = ts.pop()
        df = pd.DataFrame(rows)
        is_crop = df["is_crop"].fillna(-1).astype(int).clip(-1, 1)
        label = [(_norm_label(v) if c == 1 else None) for v, c in zip(df["label"], is_crop)]
        group = []
        for cl, lab, c in zip(df["classification_label"], label, is_crop):
            if c == 0:
                group.append("non_crop")
            elif c == 1:
                g = str(cl).strip().lower() if isinstance(cl, str) else None
                group.append(g if g in CROP_GROUPS else crop_group_of(lab))
            else:
                group.append(None)
        meta_parts.append(pd.DataFrame({
            "sample_id": [f"{d}:{i}" for d, i in zip(df["dataset"], df["index"])],
            "lat": df["lat"].astype(float), "lon": df["lon"].astype(float),
            "is_crop": is_crop.astype(np.int8), "label": label, "crop_group": group,
            "dataset": df["dataset"].astype(str),
            "split": np.where(df["is_test"].fillna(False).astype(bool), "test", "train"),
            "start_date": [_start_from_end(_date(e), t) for e in df["export_end_date"]],
            "target": is_crop.astype(np.int8),
            "tile": [str(array_path(root, i, d).relative_to(root)) for i, d in zip(df["index"], df["dataset"])],
        }))
        x_parts.append(np.stack(xs))
    tests = sorted((root / "test_features").glob("*.h5")) if include_test and (root / "test_features").is_dir() else []
    for p in tests:
        x = _check_array(p, _read_h5(p, "x"), batched=True)
        y = _read_h5(p, "y").astype(int).ravel()
        lats, lons = _read_h5(p, "lats").astype(float).ravel(), _read_h5(p, "lons").astype(float).ravel()
        if not (len(y) == len(lats) == len(lons) == len(x)):
            raise InputError(f"{p}: x has {len(x)} rows but y/lats/lons have {len(y)}/{len(lats)}/{len(lons)}")
        if not np.isin(y, (-1, 0, 1)).all():
            raise InputError(f"{p}: y must hold 1, 0 or -1 (unlabelled), found {sorted(set(y.tolist()))[:6]}")
        named = parse_test_file(p.stem)  # CropHarvest's naming rule (cropmeta.io.cropharvest_rules)
        crop = named.crop if named else None
        region = named.region if named else None
        if crop is None:
            is_crop, label = y, [None] * len(y)
            group = [("non_crop" if v == 0 else None) for v in y]
        else:
            is_crop = np.where(y == 1, 1, -1)
            label = [crop if v == 1 else None for v in y]
            group = [crop_group_of(crop) if v == 1 else None for v in y]
        with h5py.File(p, "r") as h5:
            start = h5.attrs.get("start_date")
        meta_parts.append(pd.DataFrame({
            "sample_id": [f"{p.stem}:{i}" for i in range(len(y))], "lat": lats, "lon": lons,
            "is_crop": is_crop.astype(np.int8), "label": label, "crop_group": group, "dataset": p.stem,
            "split": "test", "start_date": (str(start)[:10] if start is not None else None),
            "target": y.astype(np.int8), "tile": str(p.relative_to(root)),
            "region": region,
        }))
        x_parts.append(x)
    report["test_files"] = [p.name for p in tests]
    if not x_parts:
        raise DataError(f"{root}: the archive holds no arrays (features/arrays/*.h5 or test_features/*.h5)")
    meta = pd.concat(meta_parts, ignore_index=True)
    ts = {a.shape[1] for a in x_parts}
    if len(ts) > 1:
        raise InputError(f"{root}: features and test_features have different numbers of time steps {sorted(ts)}")
    x = np.concatenate(x_parts)
    report["ndvi_recomputed_from"] = "B8,B4"
    report["ndvi_max_abs_change"] = float(np.nanmax(np.abs(recompute_ndvi(x)[..., BAND_INDEX["NDVI"]]
                                                        - x[..., BAND_INDEX["NDVI"]]))) if len(x) else 0.0
    x = recompute_ndvi(x)
    nan = np.isnan(x)
    report["missing_values"] = {b: int(nan[..., i].sum()) for i, b in enumerate(BANDS) if nan[..., i].any()}
    x = fill_missing(x, source=str(root))
    # region: the country holding each point (a test file's own country name wins when it is one)
    country = _country(meta["lat"], meta["lon"])
    if "region" in meta.columns:
        from cropmeta.regions import get_region

        named = meta["region"].map(lambda r: _region_name(r, get_region))
        meta["region"] = np.where(named.notna(), named, country)
    else:
        meta["region"] = country
    report["samples"] = int(len(x))
    report["no_region"] = int(pd.isna(meta["region"]).sum())
    from cropmeta.io.store import make_meta

    return SampleSet(x, make_meta(meta)), report


def _region_name(r, get_region) -> str | None:
    if not isinstance(r, str) or not r:
        return None
    try:
        return get_region(r).name
    except InputError:
        return None


def _norm_label(v) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return normalise_crop(v)


# --------------------------------------------------------------------------------------------------
# A small synthetic archive in exactly the CropHarvest layout (for tests and end-to-end runs)
# --------------------------------------------------------------------------------------------------
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
