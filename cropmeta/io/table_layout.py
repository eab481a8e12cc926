"""A sample table's frame, its layout and its dates: reading the file, the columns a
:class:`~cropmeta.io.table_mapping.TableMapping` names, wide → long rows, and step numbers.

Helpers of :func:`cropmeta.io.tables.read_table`; errors name the file and the column.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from cropmeta.errors import InputError
from cropmeta.io.table_mapping import PRESET_VARIANTS, TableMapping, optional_bands, preset_of
from cropmeta.io.vectors import closest_columns, missing_column

TABLE_SUFFIXES = (".csv", ".txt", ".parquet", ".geoparquet", ".pq")
_STEP_TOKEN = r"(?P<step>\d{4}-\d{2}-\d{2}|\d{4}-\d{2}|\d{8}|\d{6}|\d+)"


def _is_geoparquet(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as e:  # noqa: BLE001
        raise InputError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from e
    return b"geo" in meta


def read_frame(path: Path) -> pd.DataFrame:
    """The table as a (Geo)DataFrame."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputError(f"{path}: table not found")
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"{path}: unsupported table type {suffix!r} (use CSV, Parquet or GeoParquet)")
    try:
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
        if _is_geoparquet(path):
            return gpd.read_parquet(path)
        return pd.read_parquet(path)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is the file's fault
        raise InputError(f"{path}: cannot read the table ({type(e).__name__}: {e})") from e


class Table:
    """One table being read: the frame, its path and column look-ups that name the file."""

    def __init__(self, path: Path, df: pd.DataFrame, m: TableMapping):
        self.path, self.df, self.m = path, df, m
        self._lower = {}
        for c in df.columns:
            self._lower.setdefault(str(c).lower(), []).append(c)

    def find(self, name: str | None):
        """The column called ``name`` (exactly, else the one column of that name in any case);
        ``A|B`` names alternatives, the first present wins."""
        if name is None:
            return None
        for alt in str(name).split("|") if "|" in str(name) else [name]:
            if alt in self.df.columns:
                return alt
            hits = self._lower.get(str(alt).lower(), [])
            if len(hits) == 1:
                return hits[0]
        return None

    def col(self, name: str, what: str):
        c = self.find(name)
        if c is None:
            raise missing_column(self.path, what, name, self.df.columns)
        return c

    def numeric(self, col, values: pd.Series | None = None) -> np.ndarray:
        """Column values as float64; non-numeric values → :class:`InputError` naming the column."""
        v = self.df[col] if values is None else values
        num = pd.to_numeric(v, errors="coerce")
        bad = num.isna() & v.notna() & (v.astype(str).str.strip() != "")
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            shown = sorted({str(x) for x in v[bad].head(50)})[:3]
            raise InputError(f"{self.path}: column {col!r} holds non-numeric values ({', '.join(map(repr, shown))}; "
                             f"{int(bad.sum())} row(s), first row {i + 1}); band columns must be numbers")
        return np.array(num, dtype=np.float64)  # a writable copy


def resolve_bands(tb: Table, m: TableMapping) -> tuple[dict, dict]:
    """(dynamic column → band, static column → band) with the table's own column spelling; a preset's
    optional bands may be absent."""
    optional = optional_bands(m)
    if not m.bands and not m.static:
        raise InputError(f"{tb.path}: no band columns named; give a preset (--preset worldcereal|ndvi), a mapping "
                         "file (--table-mapping) or --band COLUMN=BAND")
    out = []
    for cols, what in ((m.bands, "band"), (m.static, "static band")):
        got = {}
        for src, band in cols.items():
            if m.layout == "wide" and what == "band":
                if src in optional and not _wide_columns(tb, src, m):
                    continue
                got[src] = band  # wide columns are matched with the pattern later
                continue
            c = tb.find(src)
            if c is None and src in optional:
                continue
            got[c if c is not None else tb.col(src, what)] = band
        out.append(got)
    if not out[0] and m.bands:  # every band optional and none present: name the first one
        src = next(iter(m.bands))
        if m.layout == "wide":
            _wide_columns_or_fail(tb, src, m)
        tb.col(src, "band")
    return out[0], out[1]


def _wide_columns_or_fail(tb: Table, src: str, m: TableMapping) -> dict:
    cols = _wide_columns(tb, src, m)
    if not cols:
        example = m.wide_pattern.replace("{band}", src).replace("{step}", "0").replace("*", "")
        raise InputError(f"{tb.path}: no column matches band {src!r} in the wide pattern {m.wide_pattern!r} "
                         f"(e.g. {example!r}); {closest_columns(example, tb.df.columns)}")
    return cols


def _wide_regex(src: str, pattern: str) -> re.Pattern:
    if "{band}" not in pattern or "{step}" not in pattern:
        raise InputError(f"wide_pattern {pattern!r}: must hold {{band}} and {{step}}")
    body = (re.escape(pattern).replace(re.escape("{band}"), re.escape(src)).replace(re.escape("{step}"), _STEP_TOKEN)
            .replace(re.escape("*"), "[^{}]*?"))  # `*`: any text, e.g. WorldCereal's resolution suffix
    return re.compile(f"^{body}$", re.IGNORECASE)


def _wide_columns(tb: Table, src: str, m: TableMapping) -> dict:
    """``{step token: column}`` of a wide band."""
    rx = _wide_regex(src, m.wide_pattern)
    out = {}
    for c in tb.df.columns:
        hit = rx.match(str(c))
        if hit:
            out[hit.group("step")] = c
    return out


def _token_dates(tb: Table, tokens: list[str], m: TableMapping, step: str) -> dict[str, object]:
    """Wide step tokens → dates (a date per token, or per-row dates from a start column)."""
    def as_date(tok: str):
        for fmt in ("%Y-%m-%d", "%Y-%m", "%Y%m%d", "%Y%m"):
            try:
                return dt.datetime.strptime(tok, fmt).date()
            except ValueError:
                pass
        return None

    dates = {t: as_date(t) for t in tokens}
    if all(d is not None for d in dates.values()):
        return dates
    if any(not t.isdigit() for t in tokens):
        raise InputError(f"{tb.path}: wide step columns mix dates and step numbers ({', '.join(sorted(tokens)[:4])})")
    if m.start_date is None and m.start_date_column is None:
        raise InputError(f"{tb.path}: wide columns number their steps ({', '.join(sorted(tokens, key=int)[:3])} …); "
                         "give the first step's date (--start-date YYYY-MM-DD or start_date_column)")
    return {t: None for t in tokens}


def _shift(start: dt.date, k: int, step: str) -> dt.date:
    if step == "dekad":
        idx = (start.year * 12 + start.month - 1) * 3 + min((start.day - 1) // 10, 2) + k
        mi, d = divmod(idx, 3)
        return dt.date(mi // 12, mi % 12 + 1, 1 + 10 * d)
    mi = start.year * 12 + start.month - 1 + k
    return dt.date(mi // 12, mi % 12 + 1, 1)


def wide_to_long(tb: Table, m: TableMapping, dyn: dict) -> pd.DataFrame:
    """A wide table → long rows (``_date`` column, one column per dynamic band named by its band)."""
    per_band = {}
    for src, band in dyn.items():
        per_band[band] = _wide_columns_or_fail(tb, src, m)
    tokens = sorted(set().union(*[set(c) for c in per_band.values()]))
    step = m.step if m.step != "auto" else "month"
    dates = _token_dates(tb, tokens, m, step)
    numbered = any(v is None for v in dates.values())
    if numbered:
        tokens = sorted(tokens, key=int)
        if m.start_date_column is not None:
            col = tb.col(m.start_date_column, "start date")
            raw = tb.df[col]
            if pd.api.types.is_integer_dtype(raw) and raw.between(1800, 2200).all():  # a year column
                raw = raw.astype(str) + "-01-01"
            starts = pd.to_datetime(raw, errors="coerce")
            if starts.isna().any():
                raise InputError(f"{tb.path}: column {col!r} holds values that are not dates")
        else:
            try:
                starts = pd.Series([pd.Timestamp(dt.date.fromisoformat(str(m.start_date)[:10]))] * len(tb.df))
            except ValueError as e:
                raise InputError(f"--start-date {m.start_date!r}: not an ISO date (YYYY-MM-DD)") from e
        first = int(tokens[0])
    frames = []
    for tok in tokens:
        part = tb.df.drop(columns=[c for cols in per_band.values() for c in cols.values()]).copy()
        for band, cols in per_band.items():
            part[band] = tb.df[cols[tok]].to_numpy() if tok in cols else np.nan
        if numbered and m.wide_steps == "doy":  # the step number is the day of the start date's year
            part["_date"] = [pd.Timestamp(dt.date(s.year, 1, 1) + dt.timedelta(days=int(tok) - 1)) for s in starts]
        elif numbered:
            part["_date"] = [pd.Timestamp(_shift(s.date(), int(tok) - first, step)) for s in starts]
        else:
            part["_date"] = pd.Timestamp(dates[tok])
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def step_index(tb: Table, dates: pd.Series, step: str, col: str) -> tuple[np.ndarray, str]:
    """Per-row step numbers (months or dekads since year 0) and the step used."""
    d = pd.to_datetime(dates, errors="coerce")
    if d.isna().any():
        i = int(np.argmax(d.isna().to_numpy()))
        raise InputError(f"{tb.path}: column {col!r} holds a value that is not a date ({dates.iloc[i]!r}, row {i + 1})")
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_localize(None)
    y, mo, day = d.dt.year.to_numpy(), d.dt.month.to_numpy(), d.dt.day.to_numpy()
    if step == "auto":
        step = "dekad" if (np.isin(day, (1, 11, 21)).all() and (day != 1).any()) else "month"
    months = y * 12 + mo - 1
    if step == "month":
        return months.astype(np.int64), step
    return (months * 3 + np.minimum((day - 1) // 10, 2)).astype(np.int64), step


def step_label(idx: int, step: str) -> str:
    if step == "dekad":
        mi, d = divmod(int(idx), 3)
        return f"{mi // 12:04d}-{mi % 12 + 1:02d}-{1 + 10 * d:02d}"
    return f"{int(idx) // 12:04d}-{int(idx) % 12 + 1:02d}"


def preset_variant(tb: Table, m: TableMapping) -> tuple[TableMapping, str | None]:
    """The layout of a preset with several (WorldCereal long or wide) that the table's columns match
    best; keys the user set stay theirs. (mapping, variant name or None)."""
    import dataclasses

    variants = PRESET_VARIANTS.get(preset_of(m) or "")
    if not variants or {"bands", "layout"} & m.explicit:
        return m, None
    scores = {}
    for name, keys in variants.items():
        trial = dataclasses.replace(m, **{k: v for k, v in keys.items() if k not in m.explicit})
        if trial.layout == "wide":
            scores[name] = sum(bool(_wide_columns(tb, src, trial)) for src in trial.bands)
        else:
            scores[name] = sum(tb.find(src) is not None for src in trial.bands)
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        examples = " or ".join(f"{k} ({next(iter(v.get('bands', m.bands)))}"
                               f"{'-ts0-…' if v.get('layout') == 'wide' else ''} …)" for k, v in variants.items())
        raise InputError(f"{tb.path}: no column of the {preset_of(m)} preset's bands (layouts: {examples}); "
                         f"{closest_columns(next(iter(m.bands)).split('|')[0], tb.df.columns)}")
    keys = variants[best]
    return dataclasses.replace(m, **{k: v for k, v in keys.items() if k not in m.explicit}), best
