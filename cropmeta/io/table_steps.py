"""From a table's observations to one value per sample, band and step (month or dekad).

The rules (docs/data-formats.md §10, "Cadence" and "Incomplete samples"):

- **Cadence.** Each row's date falls in one step: its calendar month, or its dekad (days 1–10,
  11–20, 21–end) with ``step = "dekad"``. A table may hold any cadence — monthly composites, dekads,
  16-day composites (MODIS), per-acquisition observations (Sentinel-2 every few days). When several
  rows of one sample fall in one step, the step's value is the **median of the clear observations**
  (NaN-aware: a band's missing values are left out per band). Two rows of one sample on the *same
  date* are not observations but duplicates (often two products in one table, e.g. L1C and L2A) and
  are refused, naming the column that tells them apart.
- **Clear observations.** With ``cloud_column`` a row is clear when its cloud value is at most
  ``max_cloud`` (default 0.1 for fractions in 0–1, 10 for percentages); with ``quality_column`` when
  its quality value is one of ``quality_values``. Cloudy rows still count for a sample's dates; their
  band values are not used.
- **A step with no clear value is missing** and later filled by the gap rule
  (:func:`cropmeta.io.tables.fill_gaps`: the sample's mean of that band over the other steps).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cropmeta.errors import InputError
from cropmeta.io.table_layout import Table
from cropmeta.io.table_mapping import TableMapping


def exact_duplicates(tb: Table, codes: np.ndarray, dates: pd.Series, ids: np.ndarray, when: str) -> None:
    """Refuse two rows of one sample on one date, naming a column whose values tell them apart."""
    d = pd.to_datetime(dates, errors="coerce")
    key = pd.DataFrame({"c": codes, "d": d.to_numpy()})
    dd = key.duplicated(keep=False).to_numpy()
    if not dd.any():
        return
    i = int(np.argmax(dd))
    same = dd & (codes == codes[i]) & (d.to_numpy() == d.to_numpy()[i])
    rows = tb.df.loc[same]
    differ = [c for c in tb.df.columns if c not in (tb.sid,) and rows[c].astype(str).nunique() > 1
              and not pd.api.types.is_numeric_dtype(tb.df[c])]
    hint = ""
    if differ:
        col = differ[0]
        vals = sorted(rows[col].astype(str).unique())[:3]
        hint = (f"; the rows differ in column {col!r} ({', '.join(vals)}): keep one with "
                f"--where {col}={vals[0]}")
    day = d.iloc[i]
    raise InputError(f"{tb.path}: duplicate (sample, date) rows in columns {str(tb.sid)!r}/{when!r}: sample "
                     f"{ids[i]!r} has {int(same.sum())} rows for {day.date() if pd.notna(day) else dates.iloc[i]} "
                     f"({int(dd.sum())} such rows in all){hint}")


def clear_rows(tb: Table, m: TableMapping, report: dict) -> np.ndarray | None:
    """Which rows are clear (cloud / quality rule), or None without a rule; counts go to ``report``."""
    clear = None
    if m.cloud_column is not None:
        col = tb.col(m.cloud_column, "cloud")
        cloud = tb.numeric(col)
        limit = m.max_cloud
        if limit is None:
            limit = 10.0 if np.nanmax(np.where(np.isfinite(cloud), cloud, 0.0), initial=0.0) > 1 else 0.1
        clear = np.isfinite(cloud) & (cloud <= float(limit))
        report["clear_rule"] = f"column {str(col)!r} <= {limit:g}"
    if m.quality_column is not None:
        col = tb.col(m.quality_column, "quality")
        good = {str(v).strip() for v in (m.quality_values or [])}
        if not good:
            raise InputError(f"{tb.path}: quality_column {str(col)!r} needs quality_values (the values of a clear "
                             "observation, e.g. --quality-values 0,1)")
        raw = tb.df[col]
        as_text = raw.map(lambda v: _as_text(v))
        q = as_text.isin(good).to_numpy()
        clear = q if clear is None else clear & q
        report["clear_rule"] = (report.get("clear_rule", "") + "; " if "clear_rule" in report else "") + \
            f"column {str(col)!r} in {sorted(good)}"
    if clear is not None:
        report["rows_not_clear"] = int((~clear).sum())
    return clear


def _as_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def composite(codes: np.ndarray, step_idx: np.ndarray, values: dict[str, np.ndarray], step: str,
              report: dict) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One value per (sample, step): the median of the rows in that step (NaN-aware, per band).
    Unchanged when no step holds two rows of one sample."""
    key = pd.DataFrame({"c": codes, "s": step_idx})
    if not key.duplicated().any():
        return codes, step_idx, values
    frame = pd.DataFrame(values)
    frame["c"], frame["s"] = codes, step_idx
    per = frame.groupby(["c", "s"], sort=True)
    med = per.median()
    n_rows = per.size()
    report["composited"] = {
        "rule": f"median of the clear observations in each {step} (per band, missing values left out)",
        "observations": int(len(codes)), "values": int(len(med)),
        "most_rows_in_one_step": int(n_rows.max()),
    }
    c = med.index.get_level_values(0).to_numpy()
    s = med.index.get_level_values(1).to_numpy()
    return c, s, {b: med[b].to_numpy(dtype=np.float64) for b in values}


def choose_span(codes: np.ndarray, step_idx: np.ndarray, n: int, step: str) -> tuple[np.ndarray, int, str]:
    """Each sample's first step and the number of steps ``T`` when no window is given: every sample's
    own span when all spans are equally long (samples may start in different months or years);
    else the ``T`` steps from each sample's first observation, ``T`` the longest span that at least
    half of the samples reach (shorter samples miss their last steps: the gap rule or, past
    ``max_missing``, left out; longer ones are cut)."""
    lo = pd.Series(step_idx).groupby(codes).min().reindex(range(n)).to_numpy()
    hi = pd.Series(step_idx).groupby(codes).max().reindex(range(n)).to_numpy()
    spans = hi - lo + 1
    if len(set(spans.tolist())) == 1:
        return lo, int(spans[0]), "each sample's own span"
    srt = np.sort(spans)[::-1]
    t = int(srt[(n - 1) // 2])
    return lo, t, (f"the {t} {step}s from each sample's first observation: samples span {int(spans.min())}–"
                   f"{int(spans.max())} {step}s, {t} is the longest span at least half of them reach")


__all__ = ["choose_span", "clear_rows", "composite", "exact_duplicates"]
