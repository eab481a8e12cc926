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
from pathlib import Path

import numpy as np
import pandas as pd

from cropmeta.bandschema import BandSchema
from cropmeta.errors import DataError, InputError
from cropmeta.io.store import SampleSet, make_meta
from cropmeta.io.table_layout import (Table, preset_variant, read_frame, resolve_bands, step_index, step_label,
                                      wide_to_long)
from cropmeta.io.table_mapping import LAYOUTS, STEPS, WIDE_STEPS, TableMapping, preset_of
from cropmeta.io.table_samples import join_labels, sample_meta
from cropmeta.io.table_steps import choose_span, clear_rows, composite, exact_duplicates
from cropmeta.io.vectors import missing_column
from cropmeta.io.windows import parse_months
from cropmeta.logs import log
from cropmeta.schema import CROPHARVEST, normalized_difference

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
    of a sample is a :class:`DataError` naming ``source``, the band and its table column (tables leave
    such samples out before: :func:`read_table`). Returns the filled array and the count of filled
    values per band."""
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
        raise DataError(f"{source}: {_band_where(b, columns)} has no value (all nodata or missing) at every step of "
                        f"{int(empty[:, bad[0]].sum())} of {len(x)} sample(s); drop them or fix the table")
    with np.errstate(invalid="ignore"):
        means = np.nanmean(x, axis=1, keepdims=True)
    return np.where(nan, means, x).astype(np.float32), counts


def _band_where(band: str, columns: dict | None) -> str:
    col = (columns or {}).get(band)
    return f"band {band!r}" + (f" (column {col!r})" if col and col != band else "")


def _bands_where(bands: list[str], columns: dict | None) -> str:
    if len(bands) == 1:
        return _band_where(bands[0], columns)
    return f"bands {', '.join(bands)}"


def _check_options(m: TableMapping) -> TableMapping:
    if m.layout not in LAYOUTS:
        raise InputError(f"layout {m.layout!r}: expected one of {', '.join(LAYOUTS)}")
    if m.step not in STEPS:
        raise InputError(f"step {m.step!r}: expected one of {', '.join(STEPS)}")
    if m.resample not in (None, "month"):
        raise InputError(f"--resample {m.resample!r}: only 'month' (any cadence → months) is supported")
    if m.wide_steps not in WIDE_STEPS:
        raise InputError(f"wide_steps {m.wide_steps!r}: expected one of {', '.join(WIDE_STEPS)}")
    if not 0 <= float(m.max_missing) < 1:
        raise InputError(f"--max-missing {m.max_missing!r}: a fraction of the steps, 0 ≤ f < 1")
    if m.resample == "month":
        m = dataclasses.replace(m, step="month")
    return m


def _where(df: pd.DataFrame, m: TableMapping, path: Path, report: dict) -> pd.DataFrame:
    """The rows whose ``where`` columns hold one of the given values (compared as text)."""
    if not m.where:
        return df
    keep = np.ones(len(df), dtype=bool)
    probe = Table(path, df, m)
    for col, wanted in m.where.items():
        c = probe.col(col, "--where")
        want = {str(v).strip() for v in wanted}
        have = df[c].map(lambda v: "" if v is None else str(v).strip())
        hit = have.isin(want).to_numpy()
        if not hit.any():
            seen = sorted(set(have))[:6]
            raise InputError(f"{path}: --where {col}={','.join(sorted(want))} matches no row; column {str(c)!r} holds "
                             f"{', '.join(map(repr, seen))}{' …' if have.nunique() > 6 else ''}")
        keep &= hit
    report["where"] = {str(k): list(v) for k, v in m.where.items()}
    report["rows_before_where"] = int(len(df))
    return df.loc[keep].reset_index(drop=True)


def read_table(path: str | Path, mapping: TableMapping | None = None, **overrides) -> tuple[SampleSet, dict]:
    """Read a sample table (see the module doc) → (:class:`SampleSet` in its own band schema, report).

    ``meta`` holds every sample kept (``region`` from the region column, else None: ingestion assigns
    regions); ``report`` counts rows, samples, layout, cadence, compositing, window, filled values,
    and the samples left out per reason (``left_out``) and bands dropped (``dropped_bands``) — each
    also said as a warning; with ``strict`` either is a :class:`DataError` instead.
    """
    path = Path(path)
    m = _check_options((mapping or TableMapping()).updated("table options", **overrides))
    window = parse_months(m.months)
    report: dict = {"table": str(path)}
    df = read_frame(path)
    if len(df) == 0:
        raise DataError(f"{path}: the table has no rows")
    df = _where(df, m, path, report)
    if m.label_table is not None:
        df = join_labels(df, m, path, report)
    tb = Table(path, df, m)
    m, variant = preset_variant(tb, m)
    tb.m = m
    if variant is not None:
        report["preset_layout"] = f"{preset_of(m)} {variant}"
    date_col = tb.find(m.date_column)
    layout = m.layout if m.layout != "auto" else ("long" if date_col is not None else "wide")
    if layout == "wide" and tb.find(m.id_column) is None and "id_column" not in m.explicit:
        # a wide table is one row per sample: without an id column, rows are numbered
        df = df.assign(_row=[f"row-{i}" for i in range(len(df))])
        tb = Table(path, df, m)
        m = dataclasses.replace(m, id_column="_row")
        report["sample_ids"] = f"row numbers (no {TableMapping.id_column!r} column; name one with --id-column)"
    sid = tb.col(m.id_column, "sample id")
    m = dataclasses.replace(m, layout=layout)
    dyn, stat = resolve_bands(tb, m)
    absent = sorted({*m.bands.values(), *m.static.values()} - {*dyn.values(), *stat.values()})
    if absent:
        log.warning("%s: no column for preset band(s) %s; the schema leaves them out", path, ", ".join(absent))
        report["absent_bands"] = absent
    if layout == "wide":
        long = wide_to_long(tb, m, dyn)
        columns = {band: m.wide_pattern.replace("{band}", src) for src, band in dyn.items()}
        dyn = {band: band for band in dyn.values()}
        date_col = "_date"
    else:
        if date_col is None:
            raise missing_column(path, "date", m.date_column, df.columns)
        long = df
        columns = {band: str(tb.find(src) or src) for src, band in dyn.items()}
    columns.update({band: str(src) for src, band in stat.items()})
    tb = Table(path, long.reset_index(drop=True), m)
    tb.sid = sid
    when = str(date_col) if layout == "long" else m.wide_pattern  # where the dates are, for messages
    step_idx, step = step_index(tb, tb.df[date_col], m.step, when)
    ids = tb.df[sid].astype(str).to_numpy()
    codes, uniq = pd.factorize(ids, sort=False)
    exact_duplicates(tb, codes, tb.df[date_col], ids, when)
    codes0, first0 = codes, pd.Series(np.arange(len(codes))).groupby(codes).first().to_numpy()
    report.update({"layout": layout, "rows": int(len(tb.df)), "step": step})
    values = {}
    for src, band in list(dyn.items()) + list(stat.items()):
        values[band] = _transform(m, band, columns[band], tb.numeric(src))
    clear = clear_rows(tb, m, report)
    if clear is not None:
        for band in dyn.values():
            values[band][~clear] = np.nan
    codes, step_idx, values = composite(codes, step_idx, values, step, report)
    n = len(uniq)
    reasons: dict[str, list] = {}
    if window is not None:
        per = 3 if step == "dekad" else 1
        w0, w1 = window.start * per, window.end * per + per - 1
        if w1 < step_idx.min() or w0 > step_idx.max():
            raise DataError(f"{path}: window {window.label()} lies outside the table's dates "
                            f"({step_label(int(step_idx.min()), step)} … {step_label(int(step_idx.max()), step)}, "
                            f"column {when!r})")
        if w0 < step_idx.min() or w1 > step_idx.max():
            raise DataError(f"{path}: window {window.label()} reaches beyond the table's dates "
                            f"({step_label(int(step_idx.min()), step)} … {step_label(int(step_idx.max()), step)}, "
                            f"column {when!r}); choose a window inside them")
        base, t, how = np.full(n, w0), int(w1 - w0 + 1), f"--months {window.label()}"
    else:
        base, t, how = choose_span(codes, step_idx, n, step)
    report["window"] = {"steps": t, "first": step_label(int(base.min()), step),
                        "last": step_label(int(base.max()) + t - 1, step), "rule": how}
    rel = step_idx - base[codes]
    inside = (rel >= 0) & (rel < t)
    reach = np.zeros(n, dtype=bool)
    reach[codes[inside]] = True
    for k in np.where(~reach)[0]:
        reasons.setdefault("no observation in the window", []).append(k)
    codes, rel = codes[inside], rel[inside]
    values = {b: v[inside] for b, v in values.items()}
    dyn_bands, stat_bands = list(dyn.values()), list(stat.values())
    raw = np.full((n, t, len(dyn_bands)), np.nan)
    for i, b in enumerate(dyn_bands):
        raw[codes, rel, i] = values[b]
    stat_vals = {b: pd.Series(values[b]).groupby(codes).mean().reindex(range(n)).to_numpy() for b in stat_bands}
    if m.label_table is not None:
        has_label = pd.Series(tb.df["_label_row"].to_numpy()).groupby(codes0).first().reindex(range(n)).to_numpy()
        for k in np.where(~has_label.astype(bool))[0]:
            reasons.setdefault(f"no row in the label table {m.label_table}", []).append(k)
    # bands with no value in any sample (reachable samples) are dropped, not a reason to refuse the table
    dropped = {}
    for i, b in enumerate(dyn_bands):
        if np.isnan(raw[reach, :, i]).all():
            dropped[b] = f"{_band_where(b, columns)} has no value in any sample"
    for b in stat_bands:
        if b != "slope" and np.isnan(stat_vals[b][reach]).all():
            dropped[b] = f"{_band_where(b, columns)} has no value in any sample"
    if dyn_bands and all(b in dropped for b in dyn_bands):
        raise DataError(f"{path}: no per-step band has a value in any sample ({'; '.join(dropped.values())})")
    if dropped and m.strict:
        raise DataError(f"{path}: {next(iter(dropped.values()))} (--strict refuses the table; without it the band "
                        "is dropped from the schema)")
    for b, why in dropped.items():
        log.warning("%s: %s; the schema leaves it out", path, why)
    report["dropped_bands"] = dropped
    keep_dyn = [i for i, b in enumerate(dyn_bands) if b not in dropped]
    dyn_bands = [dyn_bands[i] for i in keep_dyn]
    raw = raw[:, :, keep_dyn]
    stat_bands = [b for b in stat_bands if b not in dropped]
    # incomplete samples: a band with no value at any step, or too many missing steps (one reason per
    # sample and kind, naming every band that makes it so)
    missing = np.isnan(raw)
    frac = missing.mean(axis=1) if t else np.zeros((n, len(dyn_bands)))
    empty = missing.all(axis=1) if t else np.ones((n, len(dyn_bands)), dtype=bool)
    sparse = ~empty & (frac > float(m.max_missing))
    stat_empty = np.stack([np.isnan(stat_vals[b]) if b != "slope" else np.zeros(n, bool) for b in stat_bands], axis=1) \
        if stat_bands else np.zeros((n, 0), dtype=bool)
    kinds = ((empty, dyn_bands, "no value of {} at any step"),
             (sparse, dyn_bands, f"{{}} missing at more than {float(m.max_missing):.0%} of the {t} {step}s"),
             (stat_empty, stat_bands, "no value of {}"))
    for hit, bands, text in kinds:
        for k in np.where(reach & hit.any(axis=1))[0]:
            reasons.setdefault(text.format(_bands_where([b for j, b in enumerate(bands) if hit[k, j]], columns)),
                               []).append(k)
    out = np.zeros(n, dtype=bool)
    for ks in reasons.values():
        out[np.asarray(ks, dtype=int)] = True
    report["left_out"] = {r: len(set(ks)) for r, ks in reasons.items()}
    report["left_out_examples"] = {r: [str(uniq[k]) for k in sorted(set(ks))[:5]] for r, ks in reasons.items()}
    if reasons and m.strict:
        r, ks = next(iter(reasons.items()))
        shown = ", ".join(repr(str(uniq[k])) for k in sorted(set(ks))[:5])
        raise DataError(f"{path}: {len(set(ks))} sample(s) incomplete: {r} ({shown}{' …' if len(set(ks)) > 5 else ''}); "
                        "--strict refuses the table (without it they are left out and counted)")
    for r, ks in reasons.items():
        ex = ", ".join(repr(str(uniq[k])) for k in sorted(set(ks))[:3])
        log.warning("%s: left out %d of %d sample(s): %s (e.g. %s)", path, len(set(ks)), n, r, ex)
    if out.all():
        raise DataError(f"{path}: every sample is incomplete ({'; '.join(f'{v} {k}' for k, v in report['left_out'].items())})")
    schema = _schema(m, dyn_bands, stat_bands, t, step, path)
    x = np.full((n, t, schema.n_bands), np.nan, dtype=np.float64)
    for i, b in enumerate(dyn_bands):
        x[:, :, schema.index(b)] = raw[:, :, i]
    for b in stat_bands:
        x[:, :, schema.index(b)] = stat_vals[b][:, None]
    for name, a, bb in schema.derived:
        xa, xb = x[:, :, schema.index(a)], x[:, :, schema.index(bb)]
        nd = normalized_difference(xa, xb)
        nd[np.isnan(xa) | np.isnan(xb)] = np.nan
        x[:, :, schema.index(name)] = nd
    kept = ~out
    meta = sample_meta(tb, m, uniq, codes0, first0, base, step, path)
    x, filled = fill_gaps(x[kept].astype(np.float32), schema, str(path), columns)
    crs = meta.attrs.pop("crs", None)
    meta = make_meta(meta[kept].reset_index(drop=True))
    report.update({"samples_in_table": n, "samples": int(kept.sum()), "t": t, "schema": schema.name,
                   "bands": list(schema.bands), "missing_values": filled, "crs": crs})
    return SampleSet(x, meta, schema), report


__all__ = ["fill_gaps", "read_table"]
