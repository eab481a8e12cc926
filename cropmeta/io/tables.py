"""Sample tables → a :class:`~cropmeta.io.store.SampleSet` with its own band schema.

A *sample table* holds labelled pixel time series as rows: CSV, Parquet or GeoParquet, in one of
two layouts:

- **long**: one row per sample and date (a date column, one column per band);
- **wide**: one row per sample, one column per band and step (``NDVI_0 … NDVI_11`` or
  ``NDVI_2020-03 …``: the ``wide_pattern`` ``{band}_{step}``; a step is a date or a step number
  counted from ``start_date``).

A :class:`~cropmeta.io.table_mapping.TableMapping` says which column is what (sample id, lon/lat
or geometry and CRS, date, band columns → schema band names, static bands, label column and its
values, split, region), the nodata values (e.g. 65535), per-band scale/offset, the step (``month``
or ``dekad``; ``resample="month"`` averages the dekads of each month) and an optional window of
months (``months="2020-03:2021-02"``). It comes from a preset
(:data:`~cropmeta.io.table_mapping.PRESETS`: ``worldcereal``, ``ndvi``), a small TOML/YAML file,
keyword overrides (the CLI flags), or all three in that order.

Bad tables raise :class:`~cropmeta.errors.InputError` / :class:`~cropmeta.errors.DataError` in one
line naming the file and the column. :func:`read_table` is what ``cropmeta ingest --table`` and the
tests call; the workspace datasets are written by :func:`cropmeta.ingest.ingest`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from cropmeta.bandschema import BandSchema
from cropmeta.errors import DataError, InputError
from cropmeta.io.labels import _norm
from cropmeta.io.store import SampleSet, make_meta
from cropmeta.io.table_layout import _read_frame, _resolve_bands, _step_index, _step_label, _Table, _wide_to_long
from cropmeta.io.table_mapping import LAYOUTS, STEPS, TableMapping
from cropmeta.io.vectors import _missing_column, metric_centroids
from cropmeta.io.windows import MonthWindow, parse_months
from cropmeta.schema import CROP_GROUPS, CROPHARVEST, crop_group_of, normalise_crop, normalized_difference

_CROP_WORDS = {"1", "true", "yes", "y", "crop", "cropland", "t"}
_NON_CROP_WORDS = {"0", "false", "no", "n", "non_crop", "noncrop", "non-crop", "f", "non crop"}


def _points(tb: _Table, m: TableMapping, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(lon, lat) in EPSG:4326 of the given rows, from a geometry column or coordinate columns."""
    df = tb.df
    geom_col = m.geometry_column or (df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None)
    if geom_col is not None:
        if not isinstance(df, gpd.GeoDataFrame) or geom_col not in df.columns:
            raise _missing_column(tb.path, "geometry", geom_col, df.columns)
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


def _label_values(tb: _Table, m: TableMapping, first: np.ndarray) -> tuple[np.ndarray, list, list, str]:
    """is_crop, crop type label and crop group per sample (rows ``first``), and the column used."""
    df = tb.df
    col = tb.find(m.label_column) if m.label_column else (tb.find("is_crop") or tb.find("label") or tb.find("class"))
    if col is None:
        if m.label_column:
            raise _missing_column(tb.path, "label", m.label_column, df.columns)
        raise InputError(f"{tb.path}: no label column (is_crop, label or class); name it with --class-column COLUMN")
    vals = [_norm(v) for v in df[col].iloc[first]]
    crop = {v for v in map(_norm, m.crop_values or []) if v}
    non = {v for v in map(_norm, m.non_crop_values or []) if v}
    ctype = None
    if m.crop_type_column:
        c2 = tb.col(m.crop_type_column, "crop type")
        ctype = [normalise_crop(_norm(v)) for v in df[c2].iloc[first]]
    is_crop = np.full(len(vals), -1, dtype=np.int8)
    labels: list = [None] * len(vals)
    unknown: set = set()
    for i, v in enumerate(vals):
        if v is None or v == "-1":
            continue
        if v in crop:
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


def _per_sample(tb: _Table, col, codes: np.ndarray, first: np.ndarray, what: str) -> list:
    """Values of ``col`` per sample; a sample with two different values → :class:`InputError`."""
    s = tb.df[col].astype(object).where(tb.df[col].notna(), None)
    n = pd.Series(s.to_numpy()).astype(str).groupby(codes).nunique()
    if (n > 1).any():
        k = int(n.index[np.argmax(n.to_numpy() > 1)])
        seen = sorted({str(v) for v in s[codes == k]})[:3]
        raise InputError(f"{tb.path}: column {col!r} ({what}) holds different values for one sample "
                         f"({tb.df[tb.sid].iloc[int(first[k])]!r}: {', '.join(seen)})")
    return list(s.iloc[first])


def _schema(m: TableMapping, dyn: list[str], stat: list[str], t: int, step: str, path: Path) -> BandSchema:
    if m.derived == "auto":
        derived = (("NDVI", "B8", "B4"),) if {"B8", "B4"} <= set(dyn) and "NDVI" not in dyn + stat else ()
    else:
        derived = tuple(tuple(d) for d in (m.derived or ()))
    ch = CROPHARVEST
    if set(dyn) == set(ch.dynamic) and set(stat) == set(ch.static) and derived == ch.derived:
        return dataclasses.replace(ch, t=t, step=step)
    name = m.schema_name or path.stem
    return BandSchema(name, dynamic=tuple(dyn), static=tuple(stat), derived=derived, t=t, step=step)


def _transform(m: TableMapping, band: str, src: str, v: np.ndarray) -> np.ndarray:
    def pick(d):
        return d.get(band, d.get(src))

    for nd in m.nodata:
        v[v == float(nd)] = np.nan
    lg, sc, off = pick(m.log10), pick(m.scale), pick(m.offset)
    if lg is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = float(lg) * np.log10(np.where(v > 0, v, np.nan))
    elif sc is not None:
        v = v * float(sc)
    return v + float(off) if off is not None else v


def fill_gaps(x: np.ndarray, schema: BandSchema, source: str, columns: dict | None = None) -> tuple[np.ndarray, dict]:
    """Fill NaN steps of ``x [N, T, B]`` with each sample's mean of that band over time; an all-NaN
    ``slope`` takes the mean slope of the other samples; any other band with no value at any step
    of a sample is a :class:`DataError` naming ``source``, the band and its table column. Returns the
    filled array and the count of filled values per band."""
    nan = np.isnan(x)
    counts = {b: int(nan[:, :, i].sum()) for i, b in enumerate(schema.bands) if nan[:, :, i].any()}
    if not counts:
        return x, counts
    empty = nan.all(axis=1)
    if "slope" in schema.bands:
        k = schema.index("slope")
        if empty[:, k].any():
            have = x[~empty[:, k], :, k]
            if not have.size:
                raise DataError(f"{source}: band 'slope' has no value in any sample")
            x[empty[:, k], :, k] = float(np.nanmean(have))
            empty[:, k] = False
    bad = np.where(empty.any(axis=0))[0]
    if len(bad):
        b = schema.bands[int(bad[0])]
        col = (columns or {}).get(b)
        where = f"band {b!r}" + (f" (column {col!r})" if col and col != b else "")
        raise DataError(f"{source}: {where} has no value (all nodata or missing) at every step of "
                        f"{int(empty[:, bad[0]].sum())} of {len(x)} sample(s); drop them or fix the table")
    with np.errstate(invalid="ignore"):
        means = np.nanmean(x, axis=1, keepdims=True)
    return np.where(nan, means, x).astype(np.float32), counts


def read_table(path: str | Path, mapping: TableMapping | None = None, **overrides) -> tuple[SampleSet, dict]:
    """Read a sample table (see the module doc) → (:class:`SampleSet` in its own band schema, report).

    ``meta`` holds every sample (``region`` from the region column, else None: ingestion assigns
    regions); ``report`` counts rows, samples, layout, step, resampling, window and filled values.
    """
    path = Path(path)
    m = (mapping or TableMapping()).updated("table options", **overrides)
    if m.layout not in LAYOUTS:
        raise InputError(f"layout {m.layout!r}: expected one of {', '.join(LAYOUTS)}")
    if m.step not in STEPS:
        raise InputError(f"step {m.step!r}: expected one of {', '.join(STEPS)}")
    if m.resample not in (None, "month"):
        raise InputError(f"--resample {m.resample!r}: only 'month' (dekads → their month's mean) is supported")
    window = parse_months(m.months)
    df = _read_frame(path)
    if len(df) == 0:
        raise DataError(f"{path}: the table has no rows")
    tb = _Table(path, df, m)
    sid = tb.col(m.id_column, "sample id")
    date_col = tb.find(m.date_column)
    layout = m.layout if m.layout != "auto" else ("long" if date_col is not None else "wide")
    m = dataclasses.replace(m, layout=layout)
    dyn, stat = _resolve_bands(tb, m)
    if layout == "wide":
        long = _wide_to_long(tb, m, dyn)
        columns = {band: m.wide_pattern.replace("{band}", src) for src, band in dyn.items()}
        dyn = {band: band for band in dyn.values()}
        date_col = "_date"
    else:
        if date_col is None:
            raise _missing_column(path, "date", m.date_column, df.columns)
        long = df
        columns = {band: str(src) for src, band in dyn.items()}
    columns.update({band: str(src) for src, band in stat.items()})
    tb = _Table(path, long.reset_index(drop=True), m)
    tb.sid = sid
    when = str(date_col) if layout == "long" else m.wide_pattern  # where the dates are, for messages
    step_idx, step = _step_index(tb, tb.df[date_col], m.step, when)
    ids = tb.df[sid].astype(str).to_numpy()
    codes, uniq = pd.factorize(ids, sort=False)
    dd = pd.DataFrame({"c": codes, "s": step_idx}).duplicated(keep=False).to_numpy()
    if dd.any():
        i = int(np.argmax(dd))
        same = int((dd & (codes == codes[i]) & (step_idx == step_idx[i])).sum())
        raise InputError(f"{path}: duplicate (sample, date) rows in columns {str(sid)!r}/{when!r}: sample "
                         f"{ids[i]!r} has {same} rows for {_step_label(step_idx[i], step)} ({int(dd.sum())} such rows "
                         "in all)")
    codes0, first0 = codes, pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    report = {"table": str(path), "layout": layout, "rows": int(len(tb.df)), "step_in_table": step}
    # values (nodata, scale) before any averaging
    values = {}
    for src, band in list(dyn.items()) + list(stat.items()):
        values[band] = _transform(m, band, columns[band], tb.numeric(src))
    out_step = step
    if step == "dekad" and m.resample == "month":
        # the mean of the dekads present in each month (NaN-aware)
        frame = pd.DataFrame(values).groupby([codes, step_idx // 3], sort=False).mean()
        codes = frame.index.get_level_values(0).to_numpy()
        step_idx = frame.index.get_level_values(1).to_numpy()
        values = {b: frame[b].to_numpy() for b in values}
        out_step = "month"
        report["resampled"] = "dekad → month (mean of the dekads present in each month)"
    keep, base, t = _align(codes, step_idx, uniq, window, out_step, f"{path}", when)
    if window is not None:
        codes, step_idx = codes[keep], step_idx[keep]
        values = {b: v[keep] for b, v in values.items()}
        report["window"] = window.label()
    rel = step_idx - base[codes]
    dyn_bands = list(dyn.values())
    stat_bands = list(stat.values())
    schema = _schema(m, dyn_bands, stat_bands, t, out_step, path)
    n = len(uniq)
    x = np.full((n, t, schema.n_bands), np.nan, dtype=np.float64)
    for b in dyn_bands:
        x[codes, rel, schema.index(b)] = values[b]
    for b in stat_bands:
        per_sample = pd.Series(values[b]).groupby(codes).mean().reindex(range(n)).to_numpy()  # NaN-aware
        x[:, :, schema.index(b)] = per_sample[:, None]
    for name, a, bb in schema.derived:
        xa, xb = x[:, :, schema.index(a)], x[:, :, schema.index(bb)]
        nd = normalized_difference(xa, xb)
        nd[np.isnan(xa) | np.isnan(xb)] = np.nan
        x[:, :, schema.index(name)] = nd
    x, filled = fill_gaps(x.astype(np.float32), schema, str(path), columns)
    meta = _meta(tb, m, uniq, codes0, first0, base, out_step, path)
    report.update({"samples": n, "t": t, "step": out_step, "schema": schema.name, "bands": list(schema.bands),
                   "missing_values": filled, "crs": meta.attrs.pop("crs", None)})
    return SampleSet(x, meta, schema), report


def _align(codes, step_idx, uniq, window: MonthWindow | None, step: str, path: str,
           when: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(rows to keep, first step of each sample, T): the window's steps for every sample (each must
    cover it), or, without a window, each sample's own span (all spans of one length)."""
    per = 3 if step == "dekad" else 1
    lo = pd.Series(step_idx).groupby(codes).min().to_numpy()
    hi = pd.Series(step_idx).groupby(codes).max().to_numpy()
    if window is None:
        spans = hi - lo + 1
        if len(set(spans.tolist())) > 1:
            a, b = int(np.argmin(spans)), int(np.argmax(spans))
            raise DataError(f"{path}: samples cover different numbers of {step}s in column {when!r} ({uniq[a]!r}: "
                            f"{spans[a]} from {_step_label(lo[a], step)}; {uniq[b]!r}: {spans[b]} from "
                            f"{_step_label(lo[b], step)}); select a common window with --months YYYY-MM:YYYY-MM")
        return np.ones(len(codes), dtype=bool), lo, int(spans[0])
    w0, w1 = window.start * per, window.end * per + per - 1
    if w1 < lo.min() or w0 > hi.max():
        raise DataError(f"{path}: window {window.label()} lies outside the table's dates "
                        f"({_step_label(int(lo.min()), step)} … {_step_label(int(hi.max()), step)}, column {when!r})")
    short = (lo > w0) | (hi < w1)
    if short.any():
        k = int(np.argmax(short))
        raise DataError(f"{path}: {int(short.sum())} sample(s) do not cover the window {window.label()} (e.g. "
                        f"{uniq[k]!r}: {_step_label(lo[k], step)} … {_step_label(hi[k], step)}; column {when!r}); "
                        "drop them or choose another window")
    return (step_idx >= w0) & (step_idx <= w1), np.full(len(uniq), w0), int(w1 - w0 + 1)


def _meta(tb: _Table, m: TableMapping, uniq, codes, first, base, step: str, path: Path) -> gpd.GeoDataFrame:
    lon, lat, info = _points(tb, m, first)
    is_crop, labels, groups, label_col = _label_values(tb, m, first)
    _per_sample(tb, label_col, codes, first, "label")
    split = ["train"] * len(uniq)
    scol = tb.find(m.split_column) if m.split_column else tb.find("split")
    if m.split_column and scol is None:
        raise _missing_column(path, "split", m.split_column, tb.df.columns)
    if scol is not None:
        split = [str(v).strip().lower() for v in _per_sample(tb, scol, codes, first, "split")]
        bad = sorted(set(split) - {"train", "test"})
        if bad:
            raise InputError(f"{path}: column {scol!r} (split) must hold 'train' or 'test', found {bad[:5]}")
    rcol = tb.find(m.region_column) if m.region_column else tb.find("region")
    if m.region_column and rcol is None:
        raise _missing_column(path, "region", m.region_column, tb.df.columns)
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


__all__ = ["fill_gaps", "read_table"]
