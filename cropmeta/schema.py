"""The ONE definition of cropmeta's sample schema: bands, time steps, NDVI, missing values,
normalisation, crop groups and the task-information layout. Everything else imports it. (Crop
names, crop groups and the task-information vector are written in :mod:`cropmeta.crops`; every
name there is importable from here.)

Raw Earth-Engine export layout (CropHarvest / openmapflow ``eo_data/*.tif``): for each of T monthly
steps the 17 dynamic bands ``VV, VH, B1 … B12 (incl. B8A), temperature_2m, total_precipitation``,
then the 2 static bands ``elevation, slope`` → ``T * 17 + 2`` raster bands. GDAL band descriptions
are the names, with ``_1 … _{T-1}`` suffixes on steps after the first.

Canonical model input: ``[T, 18]`` with :data:`BANDS` (B1 and B10 dropped, static bands repeated at
every step, true NDVI appended).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cropmeta._fs import atomic_write_text
from cropmeta.bandschema import STEP_DAYS, BandSchema
# crop groups, crop names and the task-information layout live in cropmeta.crops (import them from there)
from cropmeta.errors import DataError, InputError

# --------------------------------------------------------------------------------------------------
# Bands
# --------------------------------------------------------------------------------------------------
S1_BANDS = ["VV", "VH"]
S2_BANDS_RAW = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
ERA5_BANDS = ["temperature_2m", "total_precipitation"]
#: the 17 per-step bands of an Earth-Engine export, in file order
DYNAMIC_BANDS_RAW = S1_BANDS + S2_BANDS_RAW + ERA5_BANDS
#: the 2 static (SRTM) bands that close an export
STATIC_BANDS = ["elevation", "slope"]
#: raw dynamic bands that the canonical input drops
DROPPED_BANDS = ["B1", "B10"]
DYNAMIC_BANDS = [b for b in DYNAMIC_BANDS_RAW if b not in DROPPED_BANDS]  # 15
#: canonical model input bands, in order (CropHarvest's ``BANDS`` order)
BANDS = DYNAMIC_BANDS + STATIC_BANDS + ["NDVI"]
N_BANDS = len(BANDS)  # 18
BAND_INDEX = {b: i for i, b in enumerate(BANDS)}
RAW_PER_STEP = len(DYNAMIC_BANDS_RAW)  # 17
N_STATIC = len(STATIC_BANDS)  # 2

#: units of each raw band (as exported by Earth Engine)
BAND_UNITS = {
    "VV": "dB", "VH": "dB",
    **{b: "L1C DN (reflectance x 10000)" for b in S2_BANDS_RAW},
    "temperature_2m": "K", "total_precipitation": "m",
    "elevation": "m", "slope": "degrees", "NDVI": "unitless (-1..1)",
}

#: default number of monthly (30-day) time steps; readers accept any T
DEFAULT_T = 12
DAYS_PER_STEP = STEP_DAYS["month"]  # 30

# --------------------------------------------------------------------------------------------------
# NDVI and raw → canonical
# --------------------------------------------------------------------------------------------------
#: NDVI rules: the (near-infrared, red) canonical bands an NDVI column is computed from.
#: ``true``: (B8 − B4)/(B8 + B4), what cropmeta's samples always hold. ``cropharvest``:
#: (B7 − B3)/(B7 + B3), what the CropHarvest arrays' NDVI column really holds (an off-by-one
#: upstream) — models trained on those arrays (e.g. imported TIML checkpoints) expect it, so their
#: run records ``"ndvi": "cropharvest"`` and prediction rebuilds the column with :func:`model_inputs`.
NDVI_RULES = {"true": ("B8", "B4"), "cropharvest": ("B7", "B3")}
DEFAULT_NDVI_RULE = "true"

#: the CropHarvest 18-band monthly layout as a :class:`~cropmeta.bandschema.BandSchema` value: the
#: default schema of sample sets, checkpoints and maps (other band sets are other values of the type)
CROPHARVEST = BandSchema("cropharvest-18", dynamic=tuple(DYNAMIC_BANDS), static=tuple(STATIC_BANDS),
                         derived=(("NDVI", *NDVI_RULES[DEFAULT_NDVI_RULE]),), t=DEFAULT_T, step="month", units=dict(BAND_UNITS))
DEFAULT_SCHEMA = CROPHARVEST

# indices into the raw per-step band list / canonical band list
_DYN_KEEP = [DYNAMIC_BANDS_RAW.index(b) for b in DYNAMIC_BANDS]
_B8_RAW, _B4_RAW = DYNAMIC_BANDS_RAW.index("B8"), DYNAMIC_BANDS_RAW.index("B4")
B8, B4, NDVI = BAND_INDEX["B8"], BAND_INDEX["B4"], BAND_INDEX["NDVI"]


def n_raw_bands(t: int) -> int:
    """Number of raster bands in an Earth-Engine export with ``t`` time steps."""
    return t * RAW_PER_STEP + N_STATIC


def t_from_raw_band_count(count: int, source: str = "input") -> int:
    """Infer T from a raw band count, or raise naming ``source`` when it is not ``T*17+2``."""
    t, rem = divmod(count - N_STATIC, RAW_PER_STEP)
    if count < RAW_PER_STEP + N_STATIC or rem != 0:
        raise InputError(
            f"{source}: {count} bands is not an Earth-Engine export layout "
            f"(expected T*{RAW_PER_STEP}+{N_STATIC} bands, e.g. {n_raw_bands(DEFAULT_T)} for T={DEFAULT_T})"
        )
    return t


def raw_band_names(t: int) -> list[str]:
    """GDAL band descriptions of an export with ``t`` steps: ``VV … total_precipitation``, then the
    same with ``_1`` … ``_{t-1}``, then ``elevation, slope``."""
    names = list(DYNAMIC_BANDS_RAW)
    for i in range(1, t):
        names += [f"{b}_{i}" for b in DYNAMIC_BANDS_RAW]
    return names + list(STATIC_BANDS)




def check_ndvi_rule(rule: str | None, source: str = "ndvi") -> str:
    """``rule`` (``None`` → :data:`DEFAULT_NDVI_RULE`) when it is one of :data:`NDVI_RULES`, else
    :class:`InputError` naming ``source``."""
    rule = DEFAULT_NDVI_RULE if rule is None else str(rule).strip().lower()
    if rule not in NDVI_RULES:
        raise InputError(f"{source}: unknown NDVI rule {rule!r}; known: {', '.join(NDVI_RULES)}")
    return rule


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a − b) / (a + b) in float64, clipped to −1 … 1; 0 where the denominator is 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    den = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den != 0, (a - b) / np.where(den != 0, den, 1.0), 0.0)
    return np.clip(out, -1.0, 1.0)


def true_ndvi(b8: np.ndarray, b4: np.ndarray) -> np.ndarray:
    """True NDVI = (B8 − B4) / (B8 + B4); 0 where the denominator is 0.

    (CropHarvest's stored arrays carry (B7 − B3)/(B7 + B3) in their NDVI column, an off-by-one
    upstream; cropmeta always recomputes NDVI from B8 and B4.)"""
    return normalized_difference(b8, b4)


def ndvi_of(x: np.ndarray, rule: str = DEFAULT_NDVI_RULE) -> np.ndarray:
    """The NDVI column ``[..., T]`` of canonical samples ``[..., T, 18]`` by ``rule`` (:data:`NDVI_RULES`)."""
    nir, red = NDVI_RULES[check_ndvi_rule(rule)]
    x = np.asarray(x)
    return normalized_difference(x[..., BAND_INDEX[nir]], x[..., BAND_INDEX[red]])


def canonical_from_raw(dynamic: np.ndarray, static: np.ndarray) -> np.ndarray:
    """Raw export values → canonical samples.

    dynamic: ``[..., T, 17]`` in :data:`DYNAMIC_BANDS_RAW` order; static: ``[..., 2]``.
    Returns ``[..., T, 18]`` float32 in :data:`BANDS` order (NaNs are kept: see :func:`fill_missing`).
    """
    dynamic = np.asarray(dynamic, dtype=np.float64)
    static = np.asarray(static, dtype=np.float64)
    if dynamic.shape[-1] != RAW_PER_STEP:
        raise InputError(f"dynamic bands: last axis is {dynamic.shape[-1]}, expected {RAW_PER_STEP}")
    if static.shape[-1] != N_STATIC:
        raise InputError(f"static bands: last axis is {static.shape[-1]}, expected {N_STATIC}")
    t = dynamic.shape[-2]
    dyn = dynamic[..., _DYN_KEEP]
    stat = np.broadcast_to(static[..., None, :], static.shape[:-1] + (t, N_STATIC))
    ndvi = true_ndvi(dynamic[..., _B8_RAW], dynamic[..., _B4_RAW])[..., None]
    # NDVI is undefined where B8 or B4 is missing
    ndvi[np.isnan(dynamic[..., _B8_RAW]) | np.isnan(dynamic[..., _B4_RAW])] = np.nan
    return np.concatenate([dyn, stat, ndvi], axis=-1).astype(np.float32)


def recompute_ndvi(x: np.ndarray, rule: str = DEFAULT_NDVI_RULE) -> np.ndarray:
    """Replace the NDVI column of canonical ``[..., T, 18]`` samples with NDVI by ``rule`` (default:
    true NDVI from B8/B4)."""
    x = np.array(x, dtype=np.float32, copy=True)
    x[..., NDVI] = ndvi_of(x, rule)
    return x


def model_inputs(x: np.ndarray, rule: str = DEFAULT_NDVI_RULE) -> np.ndarray:
    """Canonical samples (true NDVI, as cropmeta stores them) → what a model with NDVI ``rule``
    takes: ``x`` itself for ``true``, a copy with the NDVI column rebuilt otherwise."""
    return x if check_ndvi_rule(rule) == DEFAULT_NDVI_RULE else recompute_ndvi(x, rule)


def fill_missing(x: np.ndarray, source: str = "samples", slope_fill: float | None = None) -> np.ndarray:
    """Fill gaps in canonical samples ``[N, T, 18]`` (or ``[T, 18]``).

    Policy (documented in docs/data-formats.md):
    - a band with some NaN steps: the band's mean over time of that sample fills them;
    - an all-NaN ``slope`` (SRTM border pixels): ``slope_fill`` (the tile mean) if given, else the
      mean slope of the other samples;
    - any other all-NaN band of a sample: :class:`DataError` naming ``source``, the band and the
      number of samples affected.
    """
    x = np.array(x, dtype=np.float32, copy=True)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != N_BANDS:
        raise InputError(f"{source}: expected samples shaped [N, T, {N_BANDS}], got {list(x.shape)}")
    nan = np.isnan(x)
    if not nan.any():
        return x[0] if single else x
    all_nan = nan.all(axis=1)  # [N, 18]
    slope = BAND_INDEX["slope"]
    if all_nan[:, slope].any():
        fill = slope_fill
        if fill is None or not np.isfinite(fill):
            ok = ~all_nan[:, slope]
            fill = float(np.nanmean(x[ok][:, :, slope])) if ok.any() else float("nan")
        if not np.isfinite(fill):
            raise DataError(f"{source}: band 'slope' is NaN everywhere; no value to fill it with")
        x[all_nan[:, slope], :, slope] = fill
        all_nan[:, slope] = False
    bad = np.where(all_nan.any(axis=0))[0]
    if len(bad):
        parts = [f"'{BANDS[b]}' ({int(all_nan[:, b].sum())} of {len(x)} samples)" for b in bad]
        raise DataError(
            f"{source}: band(s) {', '.join(parts)} are NaN at every time step; "
            "cropmeta cannot fill a band with no valid value (drop those samples or fix the export)"
        )
    with np.errstate(invalid="ignore"):
        means = np.nanmean(x, axis=1, keepdims=True)  # [N, 1, 18]
    x = np.where(np.isnan(x), np.broadcast_to(means, x.shape), x).astype(np.float32)
    return x[0] if single else x


# --------------------------------------------------------------------------------------------------
# Normalisation (Welford, stored as JSON with every model)
# --------------------------------------------------------------------------------------------------
@dataclass
class Normalizer:
    """Per-band mean/std of canonical samples, computed in one streaming pass (Welford/Chan)."""

    bands: list[str] = field(default_factory=lambda: list(BANDS))
    count: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(N_BANDS))
    m2: np.ndarray = field(default_factory=lambda: np.zeros(N_BANDS))

    def update(self, x: np.ndarray) -> "Normalizer":
        """Add a batch ``[..., 18]`` (all leading axes are observations). NaNs are ignored per band
        only if the whole batch row is finite; callers fill missing values first."""
        v = np.asarray(x, dtype=np.float64).reshape(-1, len(self.bands))
        v = v[np.isfinite(v).all(axis=1)]
        n_b = len(v)
        if n_b == 0:
            return self
        mean_b = v.mean(axis=0)
        m2_b = ((v - mean_b) ** 2).sum(axis=0)
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / n
        self.m2 = self.m2 + m2_b + delta**2 * self.count * n_b / n
        self.count = n
        return self

    @property
    def std(self) -> np.ndarray:
        if self.count < 2:
            return np.ones(len(self.bands))
        s = np.sqrt(self.m2 / (self.count - 1))
        return np.where(s > 1e-8, s, 1.0)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean.astype(np.float32)) / self.std.astype(np.float32)).astype(
            np.float32
        )

    def to_dict(self) -> dict:
        return {
            "bands": list(self.bands),
            "count": int(self.count),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "m2": [float(v) for v in self.m2],
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "normalisation stats", bands=None) -> "Normalizer":
        """Inverse of :meth:`to_dict`; ``bands``: the band order expected (default :data:`BANDS`, the
        CropHarvest layout; a model of another band schema passes its own)."""
        expect = list(BANDS if bands is None else bands)
        if list(d.get("bands", [])) != expect:
            raise InputError(f"{source}: band order {d.get('bands')} differs from the expected {expect}")
        if any(len(d.get(k) or []) != len(expect) for k in ("mean", "m2")):
            raise InputError(f"{source}: mean / m2 must hold {len(expect)} values, one per band")
        return cls(bands=list(d["bands"]), count=int(d["count"]), mean=np.asarray(d["mean"], dtype=np.float64),
                   m2=np.asarray(d["m2"], dtype=np.float64))

    @classmethod
    def from_mean_std(cls, mean, std, source: str = "normalisation stats") -> "Normalizer":
        """Fixed per-band statistics (e.g. CropHarvest's ``normalizing_dict``, in :data:`BANDS`
        order): :attr:`std` gives ``std`` back exactly. Refuses another length, non-finite values and
        a standard deviation ≤ 1e-8 (which :attr:`std` would replace by 1)."""
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        for name, v in (("mean", mean), ("std", std)):
            if len(v) != N_BANDS:
                raise InputError(f"{source}: {name} has {len(v)} values, expected {N_BANDS} ({', '.join(BANDS)})")
            if not np.isfinite(v).all():
                raise InputError(f"{source}: {name} of band '{BANDS[int(np.argmin(np.isfinite(v)))]}' is not finite")
        if (std <= 1e-8).any():
            raise InputError(f"{source}: std of band '{BANDS[int(np.argmax(std <= 1e-8))]}' is {std[std <= 1e-8][0]}; "
                             "it must be > 1e-8")
        return cls(bands=list(BANDS), count=2, mean=mean, m2=std**2)  # std = sqrt(m2 / (count - 1))

    @classmethod
    def fit(cls, x: np.ndarray, batch: int = 4096, bands=None) -> "Normalizer":
        """Streaming fit over ``[N, T, n_bands]`` in batches of samples. ``bands``: their names
        (default :data:`BANDS`, the CropHarvest layout; ``band_<i>`` when no names are given and the
        samples are not 18 bands wide, e.g. the random forest on another band schema)."""
        names = list(BANDS if bands is None else bands)
        if bands is None and int(np.shape(x)[-1]) != len(names):
            names = [f"band_{i}" for i in range(int(np.shape(x)[-1]))]
        norm = cls(bands=names, mean=np.zeros(len(names)), m2=np.zeros(len(names)))
        for i in range(0, len(x), batch):
            norm.update(x[i : i + batch])
        return norm

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "Normalizer":
        return cls.from_dict(json.loads(Path(path).read_text()), source=str(path))

