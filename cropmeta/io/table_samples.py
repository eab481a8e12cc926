"""Each sample of a table: its place (coordinates or geometry, any CRS), its labels (crop / non-crop,
crop type, crop group), split, region, field and start date — and a table of labels joined to a table
of series by sample id. Helpers of :func:`cropmeta.io.tables.read_table`; errors name the file and column.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from cropmeta.errors import DataError, InputError
from cropmeta.io.labels import normalised_value
from cropmeta.io.store import make_meta
from cropmeta.io.table_layout import Table, read_frame
from cropmeta.io.table_mapping import TableMapping
from cropmeta.io.vectors import metric_centroids, missing_column
from cropmeta.crops import CROP_GROUPS, crop_group_of, normalise_crop

_CROP_WORDS = {"1", "true", "yes", "y", "crop", "cropland", "t"}
_NON_CROP_WORDS = {"0", "false", "no", "n", "non_crop", "noncrop", "non-crop", "f", "non crop"}


def _points(tb: Table, m: TableMapping, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(lon, lat) in EPSG:4326 of the given rows, from a geometry column or coordinate columns."""
    df = tb.df
    geom_col = m.geometry_column or (df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None)
    if geom_col is not None:
        if not isinstance(df, gpd.GeoDataFrame) or geom_col not in df.columns:
            raise missing_column(tb.path, "geometry", geom_col, df.columns)
        g = gpd.GeoSeries(df[geom_col].iloc[rows].to_numpy(), crs=df[geom_col].crs if hasattr(df[geom_col], "crs")
                          else df.crs)
        if g.crs is None:
            if m.crs is None:
                raise InputError(f"{tb.path}: column {geom_col!r} declares no CRS; pass it (--crs EPSG:XXXX)")
            g = g.set_crs(m.crs)
        elif m.crs is not None and CRS.from_user_input(m.crs) != g.crs:
            raise InputError(f"{tb.path}: column {geom_col!r} declares CRS {g.crs.to_string()} but --crs {m.crs} was "
                             "given; drop one")
        if g.isna().any() or g.is_empty.any():
            raise InputError(f"{tb.path}: column {geom_col!r} has empty geometries ({int((g.isna() | g.is_empty).sum())} "
                             "sample(s))")
        kinds = set(g.geom_type)
        if kinds - {"Point", "Polygon", "MultiPolygon"}:
            raise InputError(f"{tb.path}: column {geom_col!r} holds {sorted(kinds)}; samples are points or polygons")
        g = g.to_crs("EPSG:4326")
        poly = g.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
        if poly.any():
            g = g.copy()
            g[poly] = metric_centroids(g[poly])
        lon, lat, where = g.x.to_numpy(float), g.y.to_numpy(float), (geom_col, geom_col)
        crs = g.crs
    else:
        cx, cy = tb.col(m.lon_column, "longitude / x"), tb.col(m.lat_column, "latitude / y")
        x = tb.numeric(cx, df[cx].iloc[rows])
        y = tb.numeric(cy, df[cy].iloc[rows])
        crs = CRS.from_user_input(m.crs or "EPSG:4326")
        if crs.to_epsg() != 4326:
            from pyproj import Transformer

            x, y = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
        lon, lat, where = np.asarray(x, float), np.asarray(y, float), (cx, cy)
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        raise InputError(f"{tb.path}: column(s) {where[0]!r}/{where[1]!r} give {int(bad.sum())} sample(s) coordinates "
                         f"outside lat ±90 / lon ±180 in EPSG:4326 (read as {crs.to_string() if crs else '?'}: wrong CRS, "
                         "or x/y swapped? pass --crs)")
    return lon, lat, {"crs": crs.to_string() if crs else None}


def _label_values(tb: Table, m: TableMapping, first: np.ndarray) -> tuple[np.ndarray, list, list, str]:
    """is_crop, crop type label and crop group per sample (rows ``first``), and the column used."""
    df = tb.df
    col = tb.find(m.label_column) if m.label_column else (tb.find("is_crop") or tb.find("label") or tb.find("class"))
    if col is None:
        if m.label_column:
            raise missing_column(tb.path, "label", m.label_column, df.columns)
        raise InputError(f"{tb.path}: no label column (is_crop, label or class); name it with --class-column COLUMN")
    rename = {normalised_value(k): normalised_value(v) for k, v in (m.crop_names or {}).items()}  # the table's names → cropmeta's
    vals = [rename.get(v, v) for v in (normalised_value(v) for v in df[col].iloc[first])]
    crop = {v for v in map(normalised_value, m.crop_values or []) if v}
    non = {v for v in map(normalised_value, m.non_crop_values or []) if v}
    skip = {v for v in map(normalised_value, m.unlabelled_values or []) if v}
    ctype = None
    if m.crop_type_column:
        c2 = tb.col(m.crop_type_column, "crop type")
        ctype = [normalise_crop(rename.get(normalised_value(v), normalised_value(v))) for v in df[c2].iloc[first]]
    is_crop = np.full(len(vals), -1, dtype=np.int8)
    labels: list = [None] * len(vals)
    unknown: set = set()
    for i, v in enumerate(vals):
        if v is None or v == "-1" or v in skip:
            continue
        if v in crop or ("*" in crop and v not in non):  # "*": every other value is a crop (type)
            is_crop[i] = 1
            # a class code (e.g. a WorldCereal ewoc_code) is not a crop type name
            labels[i] = None if v in _CROP_WORDS or v.replace(".", "").isdigit() else normalise_crop(v)
        elif v in non:
            is_crop[i] = 0
        elif crop or non:
            unknown.add(v)
        elif v in _CROP_WORDS:
            is_crop[i] = 1
        elif v in _NON_CROP_WORDS:
            is_crop[i] = 0
        elif m.crop_types and crop_group_of(v) is not None:
            group = crop_group_of(v)
            is_crop[i] = 0 if group == "non_crop" else 1
            labels[i] = None if group == "non_crop" else normalise_crop(v)
        else:
            unknown.add(v)
    if unknown:
        shown = sorted(unknown)[:6]
        known = (f"crop values {sorted(crop)}, non-crop values {sorted(non)}" if crop or non else
                 "1/0, true/false, crop/non-crop or a crop type cropmeta knows (maize, wheat, …)")
        raise InputError(f"{tb.path}: column {col!r} holds unknown label value(s) {shown}"
                         f"{' …' if len(unknown) > 6 else ''}; expected {known} "
                         "(name them with --crop-values / non_crop_values)")
    if ctype is not None:
        labels = [t if c == 1 else None for t, c in zip(ctype, is_crop)]
    groups = ["non_crop" if c == 0 else (crop_group_of(lab) if c == 1 and lab else None)
              for c, lab in zip(is_crop, labels)]
    groups = [g if g in CROP_GROUPS else None for g in groups]
    if (is_crop < 0).all():
        raise DataError(f"{tb.path}: column {col!r} labels none of the {len(vals)} samples")
    return is_crop, labels, groups, str(col)


def _per_sample(tb: Table, col, codes: np.ndarray, first: np.ndarray, what: str) -> list:
    """Values of ``col`` per sample; a sample with two different values → :class:`InputError`."""
    s = tb.df[col].astype(object).where(tb.df[col].notna(), None)
    n = pd.Series(s.to_numpy()).astype(str).groupby(codes).nunique()
    if (n > 1).any():
        k = int(n.index[np.argmax(n.to_numpy() > 1)])
        seen = sorted({str(v) for v in s[codes == k]})[:3]
        raise InputError(f"{tb.path}: column {col!r} ({what}) holds different values for one sample "
                         f"({tb.df[tb.sid].iloc[int(first[k])]!r}: {', '.join(seen)})")
    return list(s.iloc[first])


def join_labels(df: pd.DataFrame, m: TableMapping, path: Path, report: dict) -> pd.DataFrame:
    """Columns of a label table (one row per sample id) joined to the observation rows."""
    lpath = Path(m.label_table)
    labels = read_frame(lpath)
    lt = Table(lpath, labels, m)
    lid = lt.col(m.id_column, "sample id")
    tid = Table(path, df, m).col(m.id_column, "sample id")
    dup = labels[lid].astype(str).duplicated()
    if dup.any():
        raise InputError(f"{lpath}: column {str(lid)!r} holds sample {labels[lid].astype(str)[dup].iloc[0]!r} "
                         f"{int(labels[lid].astype(str).eq(labels[lid].astype(str)[dup].iloc[0]).sum())} times; "
                         "a label table has one row per sample")
    extra = [c for c in labels.columns if c != lid and c not in df.columns and c != "geometry"]
    lab = pd.DataFrame(labels[extra].to_numpy(), columns=extra)
    lab["_label_row"] = True
    lab.index = labels[lid].astype(str).to_numpy()
    out = (df.assign(_key=df[tid].astype(str).to_numpy()).merge(lab, left_on="_key", right_index=True, how="left")
           .drop(columns="_key").reset_index(drop=True))
    out["_label_row"] = out["_label_row"].fillna(False).astype(bool)
    report["label_table"] = {"path": str(lpath), "columns_joined": [str(c) for c in extra],
                             "labels_without_series": int((~labels[lid].astype(str).isin(set(df[tid].astype(str)))).sum())}
    return out


def sample_meta(tb: Table, m: TableMapping, uniq, codes, first, base, step: str, path: Path) -> gpd.GeoDataFrame:
    """The metadata of every sample (rows ``first`` of the long table): place, labels, split, region,
    start date (``base``: each sample's first step), field."""
    lon, lat, info = _points(tb, m, first)
    is_crop, labels, groups, label_col = _label_values(tb, m, first)
    _per_sample(tb, label_col, codes, first, "label")
    split = ["train"] * len(uniq)
    scol = tb.find(m.split_column) if m.split_column else tb.find("split")
    if m.split_column and scol is None:
        raise missing_column(path, "split", m.split_column, tb.df.columns)
    if scol is not None:
        split = [str(v).strip().lower() for v in _per_sample(tb, scol, codes, first, "split")]
        bad = sorted(set(split) - {"train", "test"})
        if bad:
            raise InputError(f"{path}: column {scol!r} (split) must hold 'train' or 'test', found {bad[:5]}")
    rcol = tb.find(m.region_column) if m.region_column else tb.find("region")
    if m.region_column and rcol is None:
        raise missing_column(path, "region", m.region_column, tb.df.columns)
    region = _per_sample(tb, rcol, codes, first, "region") if rcol is not None else [None] * len(uniq)
    per = 3 if step == "dekad" else 1
    starts = []
    for b in base:
        mi, d = divmod(int(b), per) if per == 3 else (int(b), 0)
        starts.append(dt.date(mi // 12, mi % 12 + 1, 1 + 10 * d).isoformat())
    meta = pd.DataFrame({
        "sample_id": [str(u) for u in uniq], "lat": lat, "lon": lon, "is_crop": is_crop,
        "label": pd.Series(labels, dtype=object), "crop_group": pd.Series(groups, dtype=object),
        "region": pd.Series([None if r is None else str(r) for r in region], dtype=object),
        "dataset": m.dataset or path.stem, "split": split, "start_date": starts, "source_file": str(path),
    })
    fcol = tb.find(m.field_column) if m.field_column else tb.find("field_id")
    if fcol is not None:
        meta["field_id"] = [None if v is None else str(v) for v in _per_sample(tb, fcol, codes, first, "field id")]
    out = make_meta(meta)
    out.attrs["crs"] = info["crs"]
    return out


__all__ = ["join_labels", "sample_meta"]
