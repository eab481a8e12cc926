"""Generative views: more labelled samples by moving the simulator's controls that do not change
the label ("data++" — generated data as extra views of a tiny labelled set).

A view of a labelled sample ``[T, 18]`` (raw canonical units) keeps its label and changes only what
the simulated world treats as nuisance — each control is the simulator's own knob, with its own
numbers (``data/sim/world.toml`` / ``covers.toml`` / ``regions.toml``, via
:func:`cropmeta.sim.params.load_params`):

- ``planting`` — **planting-date shift within the season**: the surface signal (Sentinel-1 VV/VH and
  every Sentinel-2 band) moves in time by δ days, δ ~ N(0, σ) clipped to ±``planting_max_days``, with
  σ = ``planting_scale`` × √(plant_sd² + tile_onset_sd²) (the simulator's field-to-field planting
  spread and tile-to-tile rain-onset shift). Weather (ERA5) and terrain stay: the farmer planted
  later, the climate did not move. Fractional steps are linearly interpolated; the ends of the
  series are held (no wrap-around into another year).
- ``clouds`` — **cloud gaps and residual haze** of the monthly composites: a step has no clear view
  with probability ``gap_scale`` × (gap_base + gap_rain · wetness), wetness being the sample's own
  ERA5 precipitation relative to its wettest month (at most a third of the steps, as the simulator);
  its Sentinel-2 values are removed and filled exactly as ingestion fills gaps
  (:func:`cropmeta.schema.fill_missing`: the band's mean over time). Every step also takes
  residual haze c ~ Beta(μk, (1−μ)k), μ = ``haze_scale`` × (cloud_base + cloud_rain · wetness),
  c ≤ cloud_max: DN ← (1 − c)·DN + c·cloud spectrum.
- ``soil`` — **soil background swap**: the bare-soil share of each step is estimated from NDVI
  (scaled NDVI between the simulator's bare-soil and full-canopy NDVI); the soil end-member under it
  is replaced by the soil of a random simulated region (brightness × redness, × N(1, soil_sd)):
  DN ← DN + bare · (soil_new − soil_ref), soil_ref the mean soil of the simulated regions.
- ``noise`` — **sensor noise**: Sentinel-2 DN × (1 + s2_noise · (0.7 z + 0.3 z_band)), Sentinel-1
  + N(0, s1_speckle) dB (VH × vh_noise), as the simulator's sensor model, × ``noise_scale``.

NDVI is recomputed from B8/B4 after every view; Sentinel-2 values are clipped to 0 … 15000 DN.

**Views are for training data only.** :func:`make_views` is called by :class:`WithViews.fit` (and
nothing else in cropmeta): ``predict_proba`` passes the samples through untouched, so a test set is
never augmented, and views of a training sample are never used to evaluate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cropmeta.errors import InputError
from cropmeta.schema import BAND_INDEX, N_BANDS, fill_missing, recompute_ndvi
from cropmeta.sim.params import S2_MEMBER_BANDS

__all__ = ["CONTROLS", "ViewControls", "Views", "make_views", "shift_planting", "cloud_gaps", "swap_soil",
           "sensor_noise", "WithViews", "S1_IDX", "S2_IDX"]

#: the label-preserving controls, in the order a view applies them
CONTROLS = ("planting", "clouds", "soil", "noise")
S1_IDX = [BAND_INDEX["VV"], BAND_INDEX["VH"]]
#: the 10 end-member bands of the simulator's spectra, in covers.toml order
_MEMBER_IDX = [BAND_INDEX[b] for b in S2_MEMBER_BANDS]
S2_IDX = sorted(_MEMBER_IDX + [BAND_INDEX["B9"]])
_SURFACE_IDX = S1_IDX + S2_IDX
_PRECIP = BAND_INDEX["total_precipitation"]
_DN_MAX = 15000.0
#: redness exponents of the simulator's soil spectrum (sensors.surface_reflectance), B2..B12
_RED_EXP = np.array([-0.6, -0.3, 0.3, 0.15, 0, 0, 0, 0, 0, 0])


@dataclass
class ViewControls:
    """The numbers behind each control (simulator parameters and how far a view moves them)."""

    plant_sd_days: float = 12.8  #: √(plant_sd² + tile_onset_sd²) of world.toml
    planting_scale: float = 2.0
    planting_max_days: float = 45.0
    gap_base: float = 0.0
    gap_rain: float = 0.10
    gap_scale: float = 2.0
    cloud_base: float = 0.02
    cloud_rain: float = 0.08
    cloud_conc: float = 8.0
    cloud_max: float = 0.35
    haze_scale: float = 0.5
    soil_sd: float = 0.12
    soil_scale: float = 1.0
    s2_noise: float = 0.03
    s1_speckle: float = 1.0
    vh_noise: float = 1.4
    noise_scale: float = 1.0
    b9_from_b8a: float = 0.16
    b9_cloud: float = 3500.0
    ndvi_soil: float = 0.17  #: NDVI of bare soil (the simulator's soil + path radiance)
    ndvi_canopy: float = 0.85  #: NDVI of a full green canopy
    cloud_spectrum: np.ndarray = field(default_factory=lambda: np.array(
        [5600, 5400, 5300, 5400, 5500, 5600, 5600, 5700, 3900, 2700], dtype=np.float64))
    soil_spectrum: np.ndarray = field(default_factory=lambda: np.array(
        [850, 1150, 1500, 1750, 1950, 2100, 2250, 2350, 3000, 2300], dtype=np.float64))
    soils: np.ndarray = field(default_factory=lambda: np.array([[1.0, 1.15]]))  #: [brightness, redness] per region

    @classmethod
    def from_simulator(cls, directory=None, **scales) -> "ViewControls":
        """The simulator's parameters (``data/sim``) + optional scale overrides."""
        from cropmeta.sim.params import load_params

        p = load_params(directory)
        d, s2, s1 = p.difficulty, p.s2, p.s1
        sp = {k: np.asarray(v, dtype=np.float64) for k, v in p.spectra.items()}
        soils = np.array([[float(r["soil"][0]), float(r["soil"][1])] for r in p.regions.values()])
        path = sp["path"]
        soil_toa = sp["soil"] * float(soils[:, 0].mean()) + path
        green_toa = sp["green"] + path
        ndvi = lambda v: (v[6] - v[2]) / (v[6] + v[2])  # noqa: E731 - B8, B4 of the member bands
        base = cls(
            plant_sd_days=float(np.hypot(d["plant_sd"], d["tile_onset_sd"])),
            gap_base=float(s2["gap_base"]), gap_rain=float(s2["gap_rain"]), cloud_base=float(s2["cloud_base"]),
            cloud_rain=float(s2["cloud_rain"]), cloud_conc=float(s2["cloud_conc"]), cloud_max=float(s2["cloud_max"]),
            soil_sd=float(d["soil_sd"]), s2_noise=float(d["s2_noise"]), s1_speckle=float(d["s1_speckle"]),
            vh_noise=float(s1["vh_noise"]), b9_from_b8a=float(s2["b9_from_b8a"]), b9_cloud=float(s2["b9_cloud"]),
            ndvi_soil=float(ndvi(soil_toa)), ndvi_canopy=float(ndvi(green_toa)),
            cloud_spectrum=sp["cloud"], soil_spectrum=sp["soil"], soils=soils,
        )
        bad = sorted(set(scales) - {"planting_scale", "planting_max_days", "gap_scale", "haze_scale", "soil_scale",
                                    "noise_scale"})
        if bad:
            raise InputError(f"unknown view control scale(s) {bad}")
        return replace(base, **{k: float(v) for k, v in scales.items()})

    def soil_member(self, brightness: np.ndarray, redness: np.ndarray) -> np.ndarray:
        """Soil end-member DN ``[n, 10]`` for brightness/redness ``[n]`` (sensors.surface_reflectance)."""
        return self.soil_spectrum[None] * brightness[:, None] * np.asarray(redness)[:, None] ** _RED_EXP[None]


_DEFAULT: ViewControls | None = None


def default_controls() -> ViewControls:
    """:meth:`ViewControls.from_simulator` of the committed parameters (cached)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ViewControls.from_simulator()
    return _DEFAULT


def _check(x: np.ndarray, who: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != N_BANDS:
        raise InputError(f"{who}: samples must be [N, T, {N_BANDS}] canonical, got {list(x.shape)}")
    if not np.isfinite(x).all():
        raise InputError(f"{who}: samples contain NaN or inf (fill gaps first)")
    return x


# --------------------------------------------------------------------------------------------------
# The controls (each: raw canonical [N, T, 18] in, same shape out; NDVI not yet recomputed)
# --------------------------------------------------------------------------------------------------
def shift_planting(x: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Move the surface bands (S1, S2) of each sample by ``days[i]`` (positive = later planting);
    linear interpolation between monthly steps, ends held."""
    x = np.array(x, dtype=np.float32, copy=True)
    n, t, _ = x.shape
    from cropmeta.schema import DAYS_PER_STEP

    delta = np.asarray(days, dtype=np.float64).reshape(n) / DAYS_PER_STEP
    pos = np.clip(np.arange(t)[None, :] - delta[:, None], 0, t - 1)  # [n, t] source position of each step
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, t - 1)
    w = (pos - lo)[:, :, None].astype(np.float32)
    rows = np.arange(n)[:, None]
    surf = x[:, :, _SURFACE_IDX]
    x[:, :, _SURFACE_IDX] = (1 - w) * surf[rows, lo] + w * surf[rows, hi]
    return x


def _wetness(x: np.ndarray) -> np.ndarray:
    rain = np.maximum(x[:, :, _PRECIP].astype(np.float64), 0.0)
    top = rain.max(axis=1, keepdims=True)
    return np.where(top > 0, rain / np.where(top > 0, top, 1.0), 0.0)


def cloud_gaps(x: np.ndarray, rng: np.random.Generator, c: ViewControls) -> np.ndarray:
    """Residual haze on every step and clear-view gaps (filled like ingestion) on wet steps."""
    x = np.array(x, dtype=np.float32, copy=True)
    n, t, _ = x.shape
    wet = _wetness(x)
    if c.haze_scale > 0:
        mu = np.clip(c.haze_scale * (c.cloud_base + c.cloud_rain * wet), 0.005, 0.9)
        haze = np.minimum(rng.beta(mu * c.cloud_conc, (1 - mu) * c.cloud_conc), c.cloud_max)[:, :, None]
        member = x[:, :, _MEMBER_IDX].astype(np.float64)
        x[:, :, _MEMBER_IDX] = (1 - haze) * member + haze * c.cloud_spectrum[None, None]
        b9 = BAND_INDEX["B9"]
        x[:, :, b9] = (1 - haze[..., 0]) * x[:, :, b9] + haze[..., 0] * c.b9_cloud
    if c.gap_scale > 0:
        p_gap = np.clip(c.gap_scale * (c.gap_base + c.gap_rain * wet), 0, 1)
        gap = rng.uniform(size=(n, t)) < p_gap
        gap &= np.cumsum(gap, axis=1) <= max(1, t // 3)
        if gap.any():
            s2 = np.zeros(N_BANDS, dtype=bool)
            s2[S2_IDX + [BAND_INDEX["NDVI"]]] = True
            x[gap[:, :, None] & s2[None, None, :]] = np.nan
            x = fill_missing(x, source="cloud-gap view")
    return x


def swap_soil(x: np.ndarray, rng: np.random.Generator, c: ViewControls) -> np.ndarray:
    """Replace the soil under the bare share of each step by another simulated region's soil."""
    x = np.array(x, dtype=np.float32, copy=True)
    n = len(x)
    if c.soil_scale <= 0:
        return x
    b8, b4 = x[..., BAND_INDEX["B8"]].astype(np.float64), x[..., BAND_INDEX["B4"]].astype(np.float64)
    den = np.where(b8 + b4 != 0, b8 + b4, 1.0)
    ndvi = (b8 - b4) / den
    cover = np.clip((ndvi - c.ndvi_soil) / max(c.ndvi_canopy - c.ndvi_soil, 1e-6), 0.0, 1.0)
    bare = 1.0 - cover  # [n, t]
    pick = rng.integers(0, len(c.soils), n)
    bright = c.soils[pick, 0] * np.clip(rng.normal(1.0, c.soil_sd, n), 0.5, 1.6)
    new = c.soil_member(bright, c.soils[pick, 1])
    ref = c.soil_member(np.full(1, c.soils[:, 0].mean()), np.full(1, c.soils[:, 1].mean()))
    delta = c.soil_scale * (new - ref)  # [n, 10]
    x[:, :, _MEMBER_IDX] += (bare[:, :, None] * delta[:, None, :]).astype(np.float32)
    x[:, :, BAND_INDEX["B9"]] += (c.b9_from_b8a * bare * delta[:, None, 7]).astype(np.float32)
    return x


def sensor_noise(x: np.ndarray, rng: np.random.Generator, c: ViewControls) -> np.ndarray:
    """Sentinel-2 multiplicative noise (common + band part) and Sentinel-1 speckle in dB."""
    x = np.array(x, dtype=np.float32, copy=True)
    n, t, _ = x.shape
    if c.noise_scale <= 0:
        return x
    z = rng.standard_normal((n, t, 1))
    zb = rng.standard_normal((n, t, len(S2_IDX)))
    x[:, :, S2_IDX] *= (1 + c.noise_scale * c.s2_noise * (0.7 * z + 0.3 * zb)).astype(np.float32)
    sd = c.noise_scale * c.s1_speckle * np.array([1.0, c.vh_noise])
    x[:, :, S1_IDX] += (rng.standard_normal((n, t, 2)) * sd).astype(np.float32)
    return x


# --------------------------------------------------------------------------------------------------
# Views of a labelled set
# --------------------------------------------------------------------------------------------------
@dataclass
class Views:
    """A labelled set enlarged by views: originals first, then ``n_views`` blocks of views."""

    x: np.ndarray  # [N · (1 + n_views), T, 18]
    y: np.ndarray | None
    source: np.ndarray  # index of the original sample each row derives from
    is_view: np.ndarray  # False for the originals


def _resolve_controls(controls) -> tuple[str, ...]:
    if controls is None or controls == "all":
        return CONTROLS
    if isinstance(controls, str):
        controls = [c for c in controls.split(",") if c.strip()]
    out = []
    for cname in controls:
        key = str(cname).strip().lower()
        if key not in CONTROLS:
            raise InputError(f"unknown view control {cname!r}; known: {', '.join(CONTROLS)}")
        if key not in out:
            out.append(key)
    return tuple(k for k in CONTROLS if k in out)


def make_views(x: np.ndarray, y: np.ndarray | None = None, n_views: int = 4, seed: int = 0, controls=None,
               params: ViewControls | None = None, keep_originals: bool = True) -> Views:
    """``n_views`` views of every sample of ``x`` (raw canonical ``[N, T, 18]``, gaps filled), each
    applying every enabled control with its own random draw; labels copied. Deterministic in
    ``seed``. Training data only (see the module docstring)."""
    x = _check(x, "views")
    n_views = int(n_views)
    if n_views < 0:
        raise InputError(f"--views must be ≥ 0, got {n_views}")
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise InputError(f"views: {len(x)} samples for {len(y)} labels")
    ctl = _resolve_controls(controls)
    c = params or default_controls()
    n = len(x)
    blocks, src, isv = ([x], [np.arange(n)], [np.zeros(n, bool)]) if keep_originals else ([], [], [])
    for v in range(n_views):
        rng = np.random.default_rng([int(seed), 0x71E5, v])
        xv = x
        if "planting" in ctl:
            sd = c.planting_scale * c.plant_sd_days
            days = np.clip(rng.normal(0.0, sd, n), -c.planting_max_days, c.planting_max_days)
            xv = shift_planting(xv, days)
        if "clouds" in ctl:
            xv = cloud_gaps(xv, rng, c)
        if "soil" in ctl:
            xv = swap_soil(xv, rng, c)
        if "noise" in ctl:
            xv = sensor_noise(xv, rng, c)
        xv = np.array(xv, dtype=np.float32, copy=True)
        xv[:, :, S2_IDX] = np.clip(xv[:, :, S2_IDX], 0.0, _DN_MAX)
        blocks.append(recompute_ndvi(xv))
        src.append(np.arange(n))
        isv.append(np.ones(n, bool))
    out_x = np.concatenate(blocks) if blocks else x[:0]
    out_y = None if y is None else np.concatenate([y] * (len(blocks)))
    return Views(out_x.astype(np.float32), out_y, np.concatenate(src) if src else np.zeros(0, int),
                 np.concatenate(isv) if isv else np.zeros(0, bool))


class WithViews:
    """Wrap any method with the fit / predict_proba contract (:mod:`cropmeta.evaluate.methods`):
    :meth:`fit` trains it on the labelled samples plus ``n_views`` views of each; :meth:`predict_proba`
    hands the samples to the method untouched (views never reach a test set). Everything else
    (``prepare``, cached prepared state, …) is the wrapped method's."""

    def __init__(self, method, n_views: int = 4, controls=None, params: ViewControls | None = None,
                 name: str | None = None):
        if int(n_views) < 1:
            raise InputError(f"--views must be ≥ 1 to wrap a method, got {n_views}")
        self.method = method
        self.n_views = int(n_views)
        self.controls = _resolve_controls(controls)
        self.params = params
        self.name = name or f"{getattr(method, 'name', 'method')}+views"
        self.last_fit_size: int | None = None

    @property
    def needs_source(self) -> bool:
        return bool(getattr(self.method, "needs_source", False))

    def __getattr__(self, item):  # prepare, set_target, prepared_state, load_prepared_state, …
        if item in ("method",):
            raise AttributeError(item)
        return getattr(self.method, item)

    def prepare(self, *args, **kwargs):
        self.method.prepare(*args, **kwargs)
        return self

    def fit(self, x, y, seed: int = 0):
        v = make_views(x, y, self.n_views, seed=seed, controls=self.controls, params=self.params)
        self.last_fit_size = len(v.y)
        self.method.fit(v.x, v.y, seed=seed)
        return self

    def predict_proba(self, x):
        return self.method.predict_proba(x)
