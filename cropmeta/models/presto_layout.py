"""Presto's input layout (the 17 bands in their groups, Dynamic World, the normalisation, the months)
and its inputs built from cropmeta's canonical samples ``[N, T, 18]`` (:func:`presto_inputs`);
the encoder is :mod:`cropmeta.models.presto`."""

from __future__ import annotations

import math

import numpy as np
import torch

from cropmeta.errors import InputError
from cropmeta.schema import BANDS, DAYS_PER_STEP, STATIC_BANDS

#: the canonical band Presto does not take
_DROPPED = ("B9",)
#: Presto's 17 input bands: cropmeta's canonical bands (CropHarvest order) without B9
PRESTO_BANDS = [b for b in BANDS if b not in _DROPPED]
PRESTO_INDEX = {b: i for i, b in enumerate(PRESTO_BANDS)}
#: band groups in token order (= channel-embedding row); SRTM is static (one token per sample)
BAND_GROUPS: dict[str, list[str]] = {
    "S1": ["VV", "VH"],
    "S2_RGB": ["B2", "B3", "B4"],
    "S2_Red_Edge": ["B5", "B6", "B7"],
    "S2_NIR_10m": ["B8"],
    "S2_NIR_20m": ["B8A"],
    "S2_SWIR": ["B11", "B12"],
    "ERA5": ["temperature_2m", "total_precipitation"],
    "SRTM": list(STATIC_BANDS),
    "NDVI": ["NDVI"],
}
STATIC_GROUP = "SRTM"
#: channel-embedding row of the Dynamic World tokens (after the band groups)
DW_ROW = len(BAND_GROUPS)
#: Dynamic World classes 0–8; 9 = missing (such a token is masked)
DW_MISSING = 9
MAX_T = 24  # rows of the position table

#: Presto's normalisation of raw canonical values: (raw + shift) / div
_SHIFT_DIV: dict[str, tuple[float, float]] = {
    "VV": (25.0, 25.0), "VH": (25.0, 25.0),
    **{b: (0.0, 10000.0) for b in ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")},
    "temperature_2m": (-272.15, 35.0),
    "total_precipitation": (0.0, 0.03),
    "elevation": (0.0, 2000.0),
    "slope": (0.0, 50.0),
    "NDVI": (0.0, 1.0),
}
#: month of the first step when a sample has no start date: CropHarvest exports start in February
DEFAULT_START_MONTH = 1


# --------------------------------------------------------------------------------------------------
# Inputs from cropmeta samples
# --------------------------------------------------------------------------------------------------
class PrestoInputs:
    """The encoder's inputs for N samples (numpy): ``x [N, T, 17]`` float32 normalised, ``mask``
    float32 (1 = missing), ``dynamic_world [N, T]`` int64, ``latlons [N, 2]`` float32,
    ``month [N, T]`` int64 (0 = January)."""

    def __init__(self, x, mask, dynamic_world, latlons, month):
        self.x, self.mask, self.dynamic_world, self.latlons, self.month = x, mask, dynamic_world, latlons, month

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, sl) -> "PrestoInputs":
        return PrestoInputs(self.x[sl], self.mask[sl], self.dynamic_world[sl], self.latlons[sl], self.month[sl])

    def tensors(self, device=None) -> tuple:
        """Positional arguments of :meth:`PrestoEncoder.forward`."""
        d = torch.device(device) if device is not None else None
        return (torch.as_tensor(self.x, device=d), torch.as_tensor(self.dynamic_world, device=d),
                torch.as_tensor(self.latlons, device=d), torch.as_tensor(self.mask, device=d),
                torch.as_tensor(self.month, device=d))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x": self.x, "mask": self.mask, "dynamic_world": self.dynamic_world, "latlons": self.latlons,
                "month": self.month}


def step_months(start_dates, t: int, default_start_month: int = DEFAULT_START_MONTH) -> np.ndarray:
    """Calendar month (0 = January) of each step, ``[N, T]`` int64: the month of the middle day of
    each ``DAYS_PER_STEP``-day step counted from the sample's start date. A CropHarvest start of
    2019-02-06 gives February … January, i.e. ``(1 + t) mod 12``. Samples without a date (None, NaN,
    empty) start in ``default_start_month`` (February: CropHarvest exports) and step by one month."""
    import datetime as _dt

    out = np.empty((len(start_dates), t), dtype=np.int64)
    rows: dict[str, np.ndarray] = {}  # one computation per distinct date
    for i, s in enumerate(start_dates):
        text = "" if s is None or (isinstance(s, float) and not math.isfinite(s)) else str(s).strip()[:10]
        if text.lower() in ("nan", "none", "nat"):
            text = ""
        if text not in rows:
            if not text:
                rows[text] = (default_start_month + np.arange(t)) % 12
            else:
                try:
                    d0 = _dt.date.fromisoformat(text)
                except ValueError as e:
                    raise InputError(f"sample {i}: start date {s!r} is not an ISO date (YYYY-MM-DD)") from e
                rows[text] = np.array([(d0 + _dt.timedelta(days=k * DAYS_PER_STEP + DAYS_PER_STEP // 2)).month - 1
                                       for k in range(t)])
        out[i] = rows[text]
    return out


def presto_inputs(x, lat, lon, start_dates=None, bands=None, dynamic_world=None,
                  default_start_month: int = DEFAULT_START_MONTH) -> PrestoInputs:
    """Presto's inputs from raw canonical samples ``x [N, T, len(bands)]`` (default: all of
    :data:`cropmeta.schema.BANDS`, in raw units as stored by ``cropmeta ingest``).

    - values are normalised band by band (``(raw + shift) / div``, Presto's constants) and B9 dropped;
    - NDVI is recomputed from the normalised B8 and B4 (0 where B8 + B4 ≤ 0), and is missing
      wherever B8 or B4 is;
    - missing values (NaN, or a Presto band not in ``bands``) get x = 0 and mask = 1, so a whole
      missing step or band masks its tokens rather than inventing values; the static SRTM bands take
      their first finite value over time (they are repeated at every step);
    - ``lat``/``lon``: degrees per sample (or scalars); ``start_dates``: ISO dates of each sample's
      first step (None → February, CropHarvest's start) → each step's month (:func:`step_months`);
    - ``dynamic_world``: ``[N, T]`` classes or None → all missing (9), i.e. masked.
    Works for any T from 1 to 24."""
    x = np.asarray(x, dtype=np.float64)
    bands = list(BANDS) if bands is None else [str(b) for b in bands]
    if x.ndim != 3 or x.shape[-1] != len(bands):
        raise InputError(f"Presto inputs: samples must be [N, T, {len(bands)}] for bands {bands}, "
                         f"got {list(x.shape)}")
    unknown = [b for b in bands if b not in BANDS]
    if unknown:
        raise InputError(f"Presto inputs: unknown band(s) {unknown}; cropmeta's bands are {BANDS}")
    n, t, _ = x.shape
    if not 1 <= t <= MAX_T:
        raise InputError(f"Presto inputs: {t} time steps; Presto takes 1 to {MAX_T}")
    col = {b: i for i, b in enumerate(bands)}
    out = np.zeros((n, t, len(PRESTO_BANDS)), dtype=np.float64)
    miss = np.ones((n, t, len(PRESTO_BANDS)), dtype=bool)
    for j, b in enumerate(PRESTO_BANDS):
        if b == "NDVI" or b not in col:
            continue
        v = x[:, :, col[b]]
        if b in STATIC_BANDS:  # one value per sample: the first finite one, at every step
            fin = np.isfinite(v)
            first = np.where(fin.any(1), v[np.arange(n), fin.argmax(1)], np.nan)
            v = np.broadcast_to(first[:, None], (n, t))
        shift, div = _SHIFT_DIV[b]
        ok = np.isfinite(v)
        out[:, :, j] = np.where(ok, (np.where(ok, v, 0.0) + shift) / div, 0.0)
        miss[:, :, j] = ~ok
    out = out.astype(np.float32)
    b8, b4, nd = PRESTO_INDEX["B8"], PRESTO_INDEX["B4"], PRESTO_INDEX["NDVI"]
    den = out[:, :, b8] + out[:, :, b4]
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = np.where(den > 0, (out[:, :, b8] - out[:, :, b4]) / np.where(den > 0, den, 1.0), 0.0)
    miss[:, :, nd] = miss[:, :, b8] | miss[:, :, b4]
    out[:, :, nd] = np.where(miss[:, :, nd], 0.0, ndvi)
    lat = np.broadcast_to(np.asarray(lat, dtype=np.float64), (n,))
    lon = np.broadcast_to(np.asarray(lon, dtype=np.float64), (n,))
    if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise InputError("Presto inputs: every sample needs a finite latitude and longitude")
    latlons = np.stack([lat, lon], axis=-1).astype(np.float32)
    if start_dates is None:
        start_dates = [None] * n
    elif isinstance(start_dates, str):
        start_dates = [start_dates] * n
    if len(start_dates) != n:
        raise InputError(f"Presto inputs: {len(start_dates)} start dates for {n} samples")
    month = step_months(start_dates, t, default_start_month)
    if dynamic_world is None:
        dw = np.full((n, t), DW_MISSING, dtype=np.int64)
    else:
        dw = np.asarray(dynamic_world, dtype=np.int64)
        if dw.shape != (n, t) or dw.min(initial=0) < 0 or dw.max(initial=0) > DW_MISSING:
            raise InputError(f"Presto inputs: dynamic_world must be [{n}, {t}] classes 0–{DW_MISSING}")
    return PrestoInputs(out, miss.astype(np.float32), dw, latlons, month)
