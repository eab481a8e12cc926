"""The sample store: labelled pixel time series of one dataset (e.g. a region) in a workspace.

A :class:`SampleSet` is ``x`` (``[N, T, n_bands]`` float32 in the bands of its ``schema`` — by default
the canonical CropHarvest-18 bands — in raw units, gaps filled)
plus ``meta`` (a GeoDataFrame with one row per sample, EPSG:4326 points). On disk a dataset is a
directory ``$CROPMETA_HOME/datasets/<name>/`` holding

- ``samples.parquet`` — GeoParquet of ``meta``;
- ``arrays.nc`` — netCDF4 (h5netcdf) with variable ``x`` dims ``(sample, time, band)``;
- ``report.json`` — the ingest report (counts, missing values, duplicates, class balance per split);
- ``schema.json`` — the :class:`~cropmeta.bandschema.BandSchema` of ``x``.

The directory is replaced atomically (see :func:`cropmeta._fs.atomic_dir`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from cropmeta.errors import InputError
from cropmeta._fs import atomic_dir, json_text, recover_dir
from cropmeta.bandschema import BandSchema
from cropmeta.schema import CROPHARVEST

#: required metadata columns and their meaning
META_COLUMNS = {
    "sample_id": "unique id (str)",
    "lat": "latitude, degrees (EPSG:4326)",
    "lon": "longitude, degrees (EPSG:4326)",
    "is_crop": "1 crop, 0 non-crop, -1 unlabelled (int)",
    "label": "crop type, lower case (e.g. 'maize'), None for non-crop / unknown",
    "crop_group": "one of schema.CROP_GROUPS ('non_crop' for non-crop), None when unknown",
    "region": "region (country) name the sample belongs to",
    "dataset": "source dataset name",
    "split": "'train' or 'test' (test samples never reach training)",
    "start_date": "ISO date of the first time step",
}
#: optional metadata columns (kept when the labels carry them)
OPTIONAL_COLUMNS = {
    "field_id": "id of the field (polygon) the sample lies in; samples of one field share it. Missing "
                "(absent or None): the sample is a field of its own",
}


def workspace_home() -> Path:
    """``$CROPMETA_HOME`` or ``./cropmeta-data``."""
    return Path(os.environ.get("CROPMETA_HOME", "cropmeta-data"))


def use_workspace(home: str | Path | None) -> Path:
    """Make ``home`` the workspace of this process (``--home``): every later call that reads or
    writes the workspace uses it. None keeps ``$CROPMETA_HOME`` / ``./cropmeta-data``."""
    if home is not None:
        os.environ["CROPMETA_HOME"] = str(home)
    return workspace_home()


@dataclass
class SampleSet:
    x: np.ndarray  # [N, T, schema.n_bands] float32
    meta: gpd.GeoDataFrame
    #: the bands of ``x`` (its ``t`` is set to ``x``'s number of steps); default CropHarvest-18
    schema: BandSchema = field(default=CROPHARVEST)

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        nb = self.schema.n_bands
        if self.x.ndim != 3 or self.x.shape[-1] != nb:
            raise InputError(f"samples must be [N, T, {nb}] (band schema {self.schema.name}: "
                             f"{', '.join(self.schema.bands)}), got {list(self.x.shape)}")
        if self.schema.t != self.x.shape[1]:
            self.schema = self.schema.with_t(self.x.shape[1])
        if len(self.meta) != len(self.x):
            raise InputError(f"{len(self.meta)} metadata rows for {len(self.x)} samples")
        missing = [c for c in META_COLUMNS if c not in self.meta.columns]
        if missing:
            raise InputError(f"sample metadata lacks column(s) {missing}")
        if not isinstance(self.meta, gpd.GeoDataFrame):
            self.meta = make_meta(self.meta)
        self.meta = self.meta.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def t(self) -> int:
        return int(self.x.shape[1])

    def subset(self, mask_or_idx) -> "SampleSet":
        idx = np.asarray(mask_or_idx)
        if idx.dtype == bool:
            idx = np.where(idx)[0]
        return SampleSet(self.x[idx], self.meta.iloc[idx].reset_index(drop=True), self.schema)

    @staticmethod
    def concat(sets: list["SampleSet"]) -> "SampleSet":
        sets = [s for s in sets if len(s)]
        if not sets:
            raise InputError("no samples to concatenate")
        ts = {s.t for s in sets}
        if len(ts) > 1:
            raise InputError(f"cannot combine sample sets with different T: {sorted(ts)}")
        for s in sets[1:]:
            sets[0].schema.check_compatible(s.schema, "sample sets to combine")
        meta = gpd.GeoDataFrame(pd.concat([s.meta for s in sets], ignore_index=True), crs="EPSG:4326")
        return SampleSet(np.concatenate([s.x for s in sets]), meta, sets[0].schema)

    def content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.x).tobytes())
        h.update(self.meta[["sample_id", "is_crop", "split"]].to_csv(index=False).encode())
        return h.hexdigest()[:16]


def make_meta(df: pd.DataFrame) -> gpd.GeoDataFrame:
    """A metadata frame with point geometry from ``lon``/``lat`` (EPSG:4326) and canonical dtypes."""
    df = pd.DataFrame(df).copy()
    if "geometry" in df.columns:
        df = df.drop(columns="geometry")
    df["sample_id"] = df["sample_id"].astype(str)
    df["is_crop"] = df["is_crop"].astype("int8")
    for c in ("lat", "lon"):
        df[c] = df[c].astype("float64")
    for c in ("label", "crop_group"):
        col = df[c].astype(object)
        df[c] = [v if isinstance(v, str) else None for v in col]
    if "field_id" in df.columns:
        df["field_id"] = [None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else str(v)
                          for v in df["field_id"].astype(object)]
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")


def field_ids(meta: pd.DataFrame) -> np.ndarray:
    """The field (cluster) of every sample, for field-clustered statistics: its ``field_id``, or, where
    that is missing, the sample itself (``"sample:<sample_id>"``)."""
    own = np.array(["sample:" + s for s in meta["sample_id"].astype(str)], dtype=object)
    if "field_id" not in meta.columns:
        return own
    fid = meta["field_id"].astype(object).to_numpy()
    has = np.array([isinstance(v, str) and v != "" for v in fid])
    return np.where(has, fid, own)


def dataset_dir(name: str, home: str | Path | None = None) -> Path:
    return Path(home or workspace_home()) / "datasets" / name


def write_samples(samples: SampleSet, out_dir: str | Path, report: dict | None = None) -> Path:
    """Write a dataset directory atomically: the previous one survives any failure."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        samples.meta.to_parquet(tmp / "samples.parquet")
        da = xr.DataArray(
            samples.x,
            dims=("sample", "time", "band"),
            coords={"sample": samples.meta["sample_id"].to_numpy(dtype=str), "band": list(samples.schema.bands),
                    "time": np.arange(samples.t)},
            name="x",
        )
        da.to_dataset().to_netcdf(tmp / "arrays.nc", engine="h5netcdf",
                                  encoding={"x": {"compression": "gzip", "compression_opts": 4}})
        (tmp / "report.json").write_text(json_text(report or {}))
        (tmp / "schema.json").write_text(json.dumps(samples.schema.to_dict(), indent=2))
    return out_dir


def read_samples(path: str | Path) -> SampleSet:
    """Read a dataset directory written by :func:`write_samples`."""
    path = Path(path)
    recover_dir(path)
    pq, nc = path / "samples.parquet", path / "arrays.nc"
    for f in (pq, nc):
        if not f.exists():
            raise InputError(f"{path}: not a cropmeta dataset (missing {f.name}); run `cropmeta ingest` first")
    meta = make_meta(gpd.read_parquet(pq))
    sj = path / "schema.json"
    # datasets written before schemas were stored hold the CropHarvest-18 layout
    schema = BandSchema.from_dict(json.loads(sj.read_text()), str(sj)) if sj.exists() else CROPHARVEST
    with xr.open_dataset(nc, engine="h5netcdf") as ds:
        bands = [str(b) for b in ds["band"].values]
        if tuple(bands) != schema.bands:
            raise InputError(f"{nc}: band order {bands} differs from its band schema {schema.name!r} "
                             f"({', '.join(schema.bands)})")
        x = ds["x"].values.astype(np.float32)
    return SampleSet(x, meta, schema)


def read_report(path: str | Path) -> dict:
    p = Path(path) / "report.json"
    return json.loads(p.read_text()) if p.exists() else {}
