"""Windows of months: select ``START:END`` (calendar months, both included) from a longer series.

One spelling everywhere (``ingest --months``, ``export --months``, sample tables, per-date stacks):
``"2020-03:2021-02"`` — the 12 months March 2020 … February 2021. A series with 30-day steps
(Earth-Engine exports) starts the window at the step that begins nearest to the first day of
``START`` (within half a step) and keeps one step per month of the window; a table or stack with
calendar dates keeps exactly the rows whose dates fall in the window.

>>> w = parse_months("2020-03:2021-02")
>>> w.n_months, w.first.isoformat(), w.last.isoformat()
(12, '2020-03-01', '2021-02-01')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass

import numpy as np

from cropmeta.errors import DataError, InputError

_MONTH = re.compile(r"^\s*(\d{4})-(\d{1,2})\s*$")


def month_index(year: int, month: int) -> int:
    """Months since year 0 (``year * 12 + month - 1``): consecutive months differ by one."""
    return int(year) * 12 + int(month) - 1


def month_start(index: int) -> dt.date:
    """First day of the month :func:`month_index` numbers ``index``."""
    return dt.date(int(index) // 12, int(index) % 12 + 1, 1)


@dataclass(frozen=True)
class MonthWindow:
    """Months ``start`` … ``end`` (month indexes, both included)."""

    start: int
    end: int

    @property
    def n_months(self) -> int:
        return self.end - self.start + 1

    @property
    def first(self) -> dt.date:
        return month_start(self.start)

    @property
    def last(self) -> dt.date:
        return month_start(self.end)

    def label(self) -> str:
        return f"{self.first:%Y-%m}:{self.last:%Y-%m}"


def parse_months(spec: str | MonthWindow | None, what: str = "--months") -> MonthWindow | None:
    """``"YYYY-MM:YYYY-MM"`` → :class:`MonthWindow` (None stays None); a bad spelling or an end
    before the start → :class:`InputError` naming ``what``."""
    if spec is None or isinstance(spec, MonthWindow):
        return spec
    parts = str(spec).split(":")
    ms = [_MONTH.match(p) for p in parts]
    if len(parts) != 2 or not all(ms) or not all(1 <= int(m.group(2)) <= 12 for m in ms):
        raise InputError(f"{what} {spec!r}: expected START:END as YYYY-MM:YYYY-MM (e.g. 2020-03:2021-02)")
    a, b = (month_index(int(m.group(1)), int(m.group(2))) for m in ms)
    if b < a:
        raise InputError(f"{what} {spec!r}: the window ends before it starts")
    return MonthWindow(a, b)


def step_offset(start: dt.date, n_steps: int, window: MonthWindow, days_per_step: int, what: str) -> int:
    """First step (0-based) of ``window`` in a series of ``n_steps`` steps of ``days_per_step`` days
    from ``start``: the step beginning nearest to the window's first day (at most half a step away),
    with room for one step per month of the window. Otherwise :class:`DataError` naming ``what``
    and the series' dates."""
    begins = [start + dt.timedelta(days=days_per_step * i) for i in range(n_steps)]
    target = window.first
    gaps = [abs((b - target).days) for b in begins]
    best = int(np.argmin(gaps))
    end = begins[-1] + dt.timedelta(days=days_per_step - 1)
    span = f"{start.isoformat()} … {end.isoformat()} ({n_steps} steps of {days_per_step} days)"
    if gaps[best] > days_per_step // 2:
        raise DataError(f"{what}: window {window.label()} starts outside the series' dates {span}")
    if best + window.n_months > n_steps:
        raise DataError(f"{what}: window {window.label()} needs {window.n_months} steps from step {best + 1} "
                        f"({begins[best].isoformat()}); the series ends at step {n_steps} ({span})")
    return best


def window_samples(samples, months: str | MonthWindow, what: str):
    """A :class:`~cropmeta.io.store.SampleSet` of 30-day steps (an Earth-Engine export's samples)
    cut to ``months``: each sample from its own ``start_date``; ``start_date`` moves to the first
    kept step. A sample without a start date, or whose series does not hold the window, is a
    :class:`DataError` naming ``what`` and the sample's tile (or id)."""
    from cropmeta.io.store import SampleSet

    window = parse_months(months)
    t = window.n_months
    days = samples.schema.days_per_step
    meta = samples.meta.copy()
    offsets = np.empty(len(samples), dtype=np.int64)
    new_start = []
    cache: dict[str, int] = {}
    for i, (sid, start) in enumerate(zip(meta["sample_id"], meta["start_date"])):
        if not isinstance(start, str) or not start:
            raise DataError(f"{what}: sample {sid!r} has no start date, so --months cannot place the window")
        if start not in cache:
            tile = meta["tile"].iloc[i] if "tile" in meta.columns else None
            cache[start] = step_offset(dt.date.fromisoformat(start[:10]), samples.t, window, days,
                                       f"{tile or what} (sample {sid!r})")
        offsets[i] = cache[start]
        new_start.append((dt.date.fromisoformat(start[:10]) + dt.timedelta(days=days * int(offsets[i]))).isoformat())
    idx = offsets[:, None] + np.arange(t)[None, :]
    x = np.take_along_axis(samples.x, idx[:, :, None], axis=1)
    meta["start_date"] = new_start
    return SampleSet(x, meta, dataclasses.replace(samples.schema, t=t))


__all__ = ["MonthWindow", "month_index", "month_start", "parse_months", "step_offset", "window_samples"]
