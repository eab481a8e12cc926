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

:func:`cropmeta.testing.make_archive_fixture` writes a small synthetic archive in exactly this
layout (the real one is not reachable offline); other test suites use it for end-to-end runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import h5py
import numpy as np
import pandas as pd

from cropmeta.errors import DataError, InputError
from cropmeta.io.cropharvest_rules import parse_test_file
from cropmeta.io.store import SampleSet
from cropmeta.schema import BAND_INDEX, BANDS, DAYS_PER_STEP, N_BANDS, fill_missing, recompute_ndvi
from cropmeta.crops import CROP_GROUPS, crop_group_of, normalise_crop

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
