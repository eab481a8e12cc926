"""The band schema as a value: which bands a sample set holds, in which order, over how many steps.

A :class:`BandSchema` describes the model input ``x [N, T, n_bands]`` of a sample set or a
checkpoint: the per-step (dynamic) bands, the static bands (repeated at every step), the derived
indices appended after them (name → the normalised difference of two bands), the number of steps
``t`` and the step length (``month``, ``dekad``, ``season`` …). The CropHarvest 18-band monthly
layout is its default instance, :data:`cropmeta.schema.CROPHARVEST` (defined once, in
:mod:`cropmeta.schema`); a dataset with other bands carries its own value, and every consumer asks
the value (``schema.n_bands``, ``schema.index("B8")``) instead of assuming 18 bands or 12 months.

Example::

    >>> from cropmeta.bandschema import BandSchema
    >>> s = BandSchema("ndvi-only", dynamic=("NDVI",), t=36, step="dekad")
    >>> s.bands, s.n_bands
    (('NDVI',), 1)
    >>> s.check_compatible(s.with_t(12), "model")  # another T is allowed; other bands are not
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cropmeta.errors import DataError

#: step lengths a schema may declare, with their nominal length in days
STEP_DAYS = {"month": 30, "dekad": 10, "season": 182, "week": 7, "day": 1}


@dataclass(frozen=True)
class BandSchema:
    """Bands, derived indices, number of steps and step length of a sample set (see module doc).

    ``derived``: ``((name, a, b), ...)`` — the index ``name`` = (a − b) / (a + b), e.g.
    ``("NDVI", "B8", "B4")``. ``units``: band → unit (free text, for reports and docs).
    """

    name: str
    dynamic: tuple[str, ...]
    static: tuple[str, ...] = ()
    derived: tuple[tuple[str, str, str], ...] = ()
    t: int = 12
    step: str = "month"
    units: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dynamic", tuple(str(b) for b in self.dynamic))
        object.__setattr__(self, "static", tuple(str(b) for b in self.static))
        object.__setattr__(self, "derived", tuple(tuple(str(v) for v in d) for d in self.derived))
        where = f"band schema {self.name!r}"
        if not self.dynamic and not self.static:
            raise DataError(f"{where}: no bands")
        names = self.bands
        dup = sorted({b for b in names if names.count(b) > 1})
        if dup:
            raise DataError(f"{where}: band(s) {dup} listed twice")
        for d in self.derived:
            if len(d) != 3:
                raise DataError(f"{where}: derived index {d!r} must be (name, band_a, band_b)")
            missing = [b for b in d[1:] if b not in self.dynamic]
            if missing:
                raise DataError(f"{where}: derived index {d[0]!r} uses band(s) {missing} that are not dynamic bands")
        if int(self.t) < 1:
            raise DataError(f"{where}: t must be ≥ 1, got {self.t}")
        object.__setattr__(self, "t", int(self.t))
        if self.step not in STEP_DAYS:
            raise DataError(f"{where}: unknown step {self.step!r}; expected one of {', '.join(STEP_DAYS)}")

    # ---------------------------------------------------------------------------------------------
    @property
    def bands(self) -> tuple[str, ...]:
        """The input bands in order: dynamic, static, derived."""
        return self.dynamic + self.static + tuple(d[0] for d in self.derived)

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def days_per_step(self) -> int:
        return STEP_DAYS[self.step]

    def index(self, band: str) -> int:
        """Position of ``band`` in :attr:`bands` (:class:`DataError` naming the band when absent)."""
        try:
            return self.bands.index(band)
        except ValueError:
            raise DataError(f"band schema {self.name!r} has no band {band!r} (bands: {', '.join(self.bands)})") from None

    def has(self, *bands: str) -> bool:
        return all(b in self.bands for b in bands)

    def with_t(self, t: int) -> "BandSchema":
        """The same bands over ``t`` steps."""
        return dataclasses.replace(self, t=int(t))

    def same_bands(self, other: "BandSchema") -> bool:
        return self.bands == other.bands and self.derived == other.derived and self.step == other.step

    def check_compatible(self, other: "BandSchema", what: str = "input") -> None:
        """Raise :class:`DataError` when ``other`` (the ``what``: e.g. "input file x.tif") does not hold
        exactly this schema's bands in this order and step; names the missing and extra bands. The
        number of steps may differ (checked by the consumer that needs it)."""
        if self.same_bands(other):
            return
        missing = [b for b in self.bands if b not in other.bands]
        extra = [b for b in other.bands if b not in self.bands]
        parts = []
        if missing:
            parts.append(f"missing band(s) {', '.join(missing)}")
        if extra:
            parts.append(f"extra band(s) {', '.join(extra)}")
        if not parts and self.bands != other.bands:
            parts.append(f"bands in another order ({', '.join(other.bands)})")
        if self.derived != other.derived and not parts:
            parts.append(f"derived indices {list(other.derived)} instead of {list(self.derived)}")
        if self.step != other.step:
            parts.append(f"{other.step} steps instead of {self.step} steps")
        raise DataError(f"{what}: band schema {other.name!r} does not match {self.name!r}: " + "; ".join(parts))

    def input_array(self, x, what: str = "samples"):
        """``x`` as float32 ``[N, T, n_bands]`` model input of this schema. ``x``: an array, or anything
        with ``.schema`` and ``.x`` (a :class:`~cropmeta.io.store.SampleSet`), whose schema must match
        (:meth:`check_compatible`: the error names the missing and extra bands). An array of another
        width → :class:`DataError` naming this schema's bands."""
        import numpy as np

        other = getattr(x, "schema", None)
        if isinstance(other, BandSchema):
            self.check_compatible(other, what)
            x = x.x
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != self.n_bands:
            raise DataError(f"{what} must be [N, T, {self.n_bands}] (band schema {self.name!r}: "
                            f"{', '.join(self.bands)}), got {list(x.shape)}")
        return x

    # ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"name": self.name, "dynamic": list(self.dynamic), "static": list(self.static),
                "derived": [list(d) for d in self.derived], "t": self.t, "step": self.step,
                "units": dict(self.units)}

    @classmethod
    def from_dict(cls, d: dict, source: str = "band schema") -> "BandSchema":
        """Inverse of :meth:`to_dict`; unknown or missing keys → :class:`DataError` naming ``source``."""
        if not isinstance(d, dict):
            raise DataError(f"{source}: a band schema must be a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"{source}: unknown band-schema key(s) {unknown}; known: {', '.join(sorted(known))}")
        if "name" not in d or "dynamic" not in d:
            raise DataError(f"{source}: a band schema needs 'name' and 'dynamic'")
        kw = dict(d)
        kw["derived"] = tuple(tuple(x) for x in kw.get("derived", ()))
        kw["units"] = dict(kw.get("units") or {})
        return cls(**kw)
