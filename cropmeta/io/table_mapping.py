"""How to read a sample table: :class:`TableMapping`, the presets, mapping files and the CLI flags.

A mapping says which column of a sample table (:mod:`cropmeta.io.tables`) is what; it comes from a
preset (:data:`PRESETS`: ``worldcereal``, ``ndvi``), a small TOML/YAML/JSON file, keyword overrides
(the CLI flags), or all three in that order (:func:`table_mapping`, :func:`mapping_from_options`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from cropmeta.errors import InputError

LAYOUTS = ("auto", "long", "wide")
STEPS = ("auto", "month", "dekad")
#: what a wide table's numbered steps count: steps from the start date, or days of its year (MODIS X1 … X353)
WIDE_STEPS = ("index", "doy")


@dataclass
class TableMapping:
    """How to read a sample table (see the module doc and docs/data-formats.md §10).

    ``bands``/``static``: table column → schema band name (dynamic / static bands; order = schema
    order). ``scale``/``offset``/``log10``: per band (schema name or column name): value →
    ``value * scale + offset``, or ``log10 * log10(value) + offset`` where ``log10`` is set.
    ``derived``: ``"auto"`` (NDVI = (B8 − B4)/(B8 + B4) when both are bands and NDVI is not) or a
    list of ``[name, a, b]``. Label values: ``crop_values`` / ``non_crop_values`` name them; without
    them 1/0, true/false, crop/non-crop and known crop types (``maize`` …, with ``crop_types``) are
    understood; anything else is an "unknown label value" error.
    """

    schema_name: str | None = None
    layout: str = "auto"
    id_column: str = "sample_id"
    lon_column: str = "lon"
    lat_column: str = "lat"
    geometry_column: str | None = None
    crs: str | None = None
    date_column: str = "date"
    wide_pattern: str = "{band}_{step}"
    start_date: str | None = None
    start_date_column: str | None = None
    bands: dict = field(default_factory=dict)
    static: dict = field(default_factory=dict)
    derived: object = "auto"
    label_column: str | None = None
    crop_values: list | None = None
    non_crop_values: list | None = None
    unlabelled_values: list | None = None
    crop_names: dict = field(default_factory=dict)
    crop_types: bool = True
    crop_type_column: str | None = None
    split_column: str | None = None
    region_column: str | None = None
    field_column: str | None = None
    dataset: str | None = None
    nodata: list = field(default_factory=list)
    scale: dict = field(default_factory=dict)
    offset: dict = field(default_factory=dict)
    log10: dict = field(default_factory=dict)
    step: str = "auto"
    resample: str | None = None
    months: str | None = None
    wide_steps: str = "index"
    where: dict = field(default_factory=dict)
    cloud_column: str | None = None
    max_cloud: float | None = None
    quality_column: str | None = None
    quality_values: list | None = None
    max_missing: float = 0.5
    strict: bool = False
    label_table: str | None = None
    #: keys a mapping file or an override set (not a preset): a preset's layout variant leaves them alone
    explicit: frozenset = field(default_factory=frozenset, repr=False, compare=False)

    def updated(self, source: str = "table mapping", **kw) -> "TableMapping":
        """A copy with the non-None values of ``kw`` set (unknown keys → :class:`InputError`)."""
        known = {f.name for f in dataclasses.fields(self)} - {"explicit"}
        unknown = sorted(set(kw) - known)
        if unknown:
            import difflib

            near = [difflib.get_close_matches(k, sorted(known), n=1) for k in unknown]
            hint = "; ".join(f"did you mean {n[0]!r} for {k!r}?" for k, n in zip(unknown, near) if n)
            raise InputError(f"{source}: unknown table-mapping key(s) {unknown}; {hint + ' ' if hint else ''}known: "
                             f"{', '.join(sorted(known))}")
        kw = {k: v for k, v in kw.items() if v is not None}
        for k in ("where",):
            if k in kw:
                kw[k] = {**self.where, **{str(c): (list(v) if isinstance(v, (list, tuple)) else [v])
                                          for c, v in dict(kw[k]).items()}}
        if "quality_values" in kw and not isinstance(kw["quality_values"], (list, tuple)):
            kw["quality_values"] = [v.strip() for v in str(kw["quality_values"]).split(",") if v.strip()]
        for k in ("scale", "offset", "log10"):  # per-band settings add to (and override) earlier ones
            if k in kw:
                kw[k] = {**getattr(self, k), **dict(kw[k])}
        for k in ("nodata", "crop_values", "non_crop_values", "unlabelled_values"):
            if k in kw and not isinstance(kw[k], (list, tuple)):
                kw[k] = [v.strip() for v in str(kw[k]).split(",") if v.strip()]
        return dataclasses.replace(self, **kw)


#: WorldCereal point extractions, in either of the two layouts WorldCereal publishes; the preset
#: picks the layout from the columns (:func:`preset_variant`):
#:
#: - **long** (one row per sample and month): ``S2-L2A-B02 … B12``, ``S2-L2A-B8A``, ``S1-SIGMA0-VV/VH``,
#:   ``AGERA5-TMEAN``/``AGERA5-PRECIP`` and ``elevation``/``slope`` as in
#:   WorldCereal/worldcereal-classification ``src/worldcereal/utils/timeseries.py`` (COLUMN_RENAMES,
#:   REQUIRED_COLUMNS ``sample_id, timestamp, …``), or ``AGERA5-temperature-mean``/
#:   ``AGERA5-precipitation-flux`` and ``DEM-alt-20m``/``DEM-slo-20m`` as in the extractions
#:   WorldCereal/presto-worldcereal ships (``data/test_long_parquet_2017_CAN_AAFC-ACIGTD.parquet``);
#: - **wide** (one row per sample): ``OPTICAL-B02-ts0-10m … OPTICAL-B12-ts11-20m``, ``SAR-VV-ts0-20m``,
#:   ``METEO-temperature_mean-ts0-100m``, ``METEO-precipitation_flux-…``, ``DEM-alt-20m``, ``DEM-slo-20m``,
#:   steps ``ts<i>`` counted from the ``start_date`` column (WorldCereal/presto-worldcereal
#:   ``presto/dataset.py``: ``WorldCerealBase.BAND_MAPPING``, ``STATIC_BAND_MAPPING``).
#:
#: Units, verified against ``presto/dataset.py`` (``row_to_arrays``): nodata 65535 (NaN too); S2 =
#: reflectance × 10 000 (as CropHarvest's DN); S1 = uint16 ``10^((dB + 83) / 20)`` → dB = 20·log10(v) − 83
#: (only v > 0); AgERA5 temperature K × 100 → K; precipitation mm × 100 → m (÷ 100 000); DEM altitude m,
#: slope degrees. Tables without ``S2-L2A-B09`` (none of WorldCereal's have it) become their own schema
#: ("worldcereal") rather than CropHarvest-18; any preset band without a column is left out, with a
#: warning. Label column ``ewoc_code`` (or name ``CROPTYPE_LABEL``/``LANDCOVER_LABEL`` with
#: ``--class-column``): its values are WorldCereal legend codes, so name the crop ones (``--crop-values``).
_WC_S2 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _s2_name(b: str) -> str:
    return "B" + b.lstrip("B0") if b != "B8A" else "B8A"


PRESETS: dict[str, dict] = {
    "worldcereal": {
        "schema_name": "worldcereal",
        "layout": "long",
        "id_column": "sample_id",
        "date_column": "timestamp",
        "bands": {"S1-SIGMA0-VV": "VV", "S1-SIGMA0-VH": "VH",
                  **{f"S2-L2A-{b}": _s2_name(b) for b in _WC_S2},
                  "AGERA5-TMEAN|AGERA5-temperature-mean": "temperature_2m",
                  "AGERA5-PRECIP|AGERA5-precipitation-flux": "total_precipitation"},
        "static": {"elevation|DEM-alt-20m": "elevation", "slope|DEM-slo-20m": "slope"},
        "label_column": "ewoc_code",
        "nodata": [65535],
        "scale": {"temperature_2m": 0.01, "total_precipitation": 1e-5},
        "log10": {"VV": 20.0, "VH": 20.0},
        "offset": {"VV": -83.0, "VH": -83.0},
        "step": "month",
    },
    #: an NDVI-only series (e.g. MODIS MOD13Q1): one band, any step; scale e.g. 0.0001 for MODIS ints
    "ndvi": {
        "schema_name": "ndvi",
        "bands": {"NDVI": "NDVI"},
        "derived": [],
    },
}
#: a preset's layouts: keys that replace the preset's own when the table's columns are of that layout
PRESET_VARIANTS: dict[str, dict[str, dict]] = {
    "worldcereal": {
        "long": {},
        "wide": {
            "layout": "wide",
            "bands": {"OPTICAL-" + b: _s2_name(b) for b in _WC_S2} | {
                "SAR-VV": "VV", "SAR-VH": "VH", "METEO-temperature_mean": "temperature_2m",
                "METEO-precipitation_flux": "total_precipitation"},
            "static": {"DEM-alt-20m": "elevation", "DEM-slo-20m": "slope"},
            "wide_pattern": "{band}-ts{step}-*",
            "start_date_column": "start_date",
        },
    },
}


def _toml(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


def _yaml(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def _json(text: str) -> dict:
    import json

    return json.loads(text)


_MAPPING_PARSERS = {".toml": _toml, ".yaml": _yaml, ".yml": _yaml, ".json": _json}


#: mapping files shipped with cropmeta, usable by name (``--table-mapping worldcrops-s2-fis``)
SHIPPED_MAPPINGS = Path(__file__).resolve().parent / "mappings"


def shipped_mappings() -> list[str]:
    return sorted(p.stem for p in SHIPPED_MAPPINGS.glob("*.toml"))


def load_mapping_file(path: str | Path) -> dict:
    """A mapping file (``.toml``, ``.yaml``/``.yml`` or ``.json``), or the name of a shipped one
    (:func:`shipped_mappings`) → dict; never executes anything."""
    path = Path(path)
    if not path.exists() and not path.suffix and (SHIPPED_MAPPINGS / f"{path.name}.toml").exists():
        path = SHIPPED_MAPPINGS / f"{path.name}.toml"
    if not path.exists():
        raise InputError(f"{path}: table mapping file not found (shipped mappings, usable by name: "
                         f"{', '.join(shipped_mappings())})")
    parse = _MAPPING_PARSERS.get(path.suffix.lower())
    if parse is None:
        raise InputError(f"{path}: a table mapping is a .toml, .yaml or .json file")
    try:
        d = parse(path.read_text())
    except Exception as e:  # noqa: BLE001 - any parser failure is the file's fault
        raise InputError(f"{path}: cannot parse the table mapping ({type(e).__name__}: {e})") from e
    if not isinstance(d, dict):
        raise InputError(f"{path}: a table mapping must be a table of keys, got {type(d).__name__}")
    return d


def table_mapping(preset: str | None = None, mapping_file: str | Path | None = None, **overrides) -> TableMapping:
    """The mapping from ``preset`` (:data:`PRESETS`), then ``mapping_file``, then ``overrides``."""
    d = load_mapping_file(mapping_file) if mapping_file is not None else {}
    preset = preset if preset is not None else d.get("preset")
    d.pop("preset", None)
    m = TableMapping()
    if preset is not None:
        key = str(preset).strip().lower()
        if key not in PRESETS:
            raise InputError(f"--preset {preset!r}: unknown table preset; known: {', '.join(PRESETS)}")
        m = m.updated(f"preset {key}", **PRESETS[key])
    m = m.updated(str(mapping_file), **d)
    m = m.updated("table options", **overrides)
    explicit = set(d) | {k for k, v in overrides.items() if v is not None}
    return dataclasses.replace(m, explicit=frozenset(explicit))


def _pairs(items, flag: str, number: bool = False) -> dict | None:
    """``["A=B", …]`` (the repeatable CLI flags) → ``{A: B}``."""
    if not items:
        return None
    out = {}
    for it in items:
        key, sep, val = str(it).partition("=")
        if not sep or not key.strip() or not val.strip():
            raise InputError(f"{flag} {it!r}: expected NAME=VALUE")
        if number:
            try:
                out[key.strip()] = float(val)
            except ValueError:
                raise InputError(f"{flag} {it!r}: {val!r} is not a number") from None
        else:
            out[key.strip()] = val.strip()
    return out


def mapping_from_options(preset: str | None = None, mapping_file: str | Path | None = None, *,
                         band: list[str] | None = None, static_band: list[str] | None = None,
                         scale: list[str] | None = None, offset: list[str] | None = None,
                         where: list[str] | None = None, **flags) -> TableMapping:
    """The table mapping the ``cropmeta ingest --table`` flags describe: ``band``/``static_band``
    ``COLUMN=BAND``, ``scale``/``offset`` ``BAND=NUMBER``, ``where`` ``COLUMN=VALUE`` (repeatable), the
    rest :class:`TableMapping` keys (None = not given)."""
    wh = None
    if where:
        wh = {}
        for col, val in _pairs(where, "--where").items():
            wh.setdefault(col, []).append(val)
        wh = {c: [x.strip() for v in vals for x in v.split(",")] for c, vals in wh.items()}
    return table_mapping(preset, mapping_file, bands=_pairs(band, "--band"), static=_pairs(static_band, "--static-band"),
                         scale=_pairs(scale, "--scale", True), offset=_pairs(offset, "--offset", True), where=wh,
                         **flags)


def preset_of(m: TableMapping) -> str | None:
    return m.schema_name if m.schema_name in PRESETS else None


def optional_bands(m: TableMapping) -> set[str]:
    """Band columns that may be absent: every band of a preset whose bands the user did not name."""
    if preset_of(m) is None or {"bands", "static"} & m.explicit:
        return set()
    return set(m.bands) | set(m.static)


__all__ = ["LAYOUTS", "PRESETS", "PRESET_VARIANTS", "SHIPPED_MAPPINGS", "STEPS", "WIDE_STEPS", "shipped_mappings", "optional_bands", "TableMapping", "load_mapping_file",
           "mapping_from_options", "preset_of", "table_mapping"]
