"""Simulator parameters: ``data/sim/{world,regions,covers}.toml`` loaded and validated.

Every number of the simulated world lives in those three committed files (documented in
``docs/simulator.md``); their SHA-256 is part of the world version, so a cached world is rebuilt
whenever a parameter changes.
"""

from __future__ import annotations

import copy
import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cropmeta.errors import InputError
from cropmeta.regions import data_dir
from cropmeta.schema import DEFAULT_T
from cropmeta.crops import CROP_TO_GROUP
from cropmeta.sim.common import get_region

PARAM_FILES = ("world.toml", "systems.toml", "regions.toml", "covers.toml")
#: bump when the simulator's code changes what it writes (the parameter hash covers the files)
CODE_VERSION = 2
#: knobs of sensor noise, clouds and field mixtures: the target's test tiles, its oracle tiles and its
#: map scene see the world defaults of these (difficulty comes from the training pool, not from the
#: test pixels; docs/simulator.md)
TEST_DEFAULT_KNOBS = ("pixel_sd", "s2_noise", "s1_speckle", "cloud", "intercrop", "intercrop_w", "intercrop_crop")
#: region keys a cropping system may give its member regions (a region's own value wins)
SYSTEM_KEYS = ("rain", "rain_mm", "onset_lat", "field_px", "crop_frac", "crops", "noncrop", "soil", "irrigated",
               "season", "warm", "cool", "continentality", "years")
NONCROP_COVERS = ("forest", "grassland", "shrub", "water", "built_up", "bare")
S2_MEMBER_BANDS = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]


def sim_dir() -> Path:
    return data_dir() / "sim"


@dataclass(frozen=True)
class Cover:
    """One land cover: a crop type (annual or perennial) or a non-crop cover."""

    name: str
    kind: str  # "annual" | "perennial" | "noncrop"
    p: dict = field(default_factory=dict)

    @property
    def is_crop(self) -> bool:
        return self.kind != "noncrop"

    @property
    def group(self) -> str:
        return CROP_TO_GROUP[self.name] if self.is_crop else "non_crop"


@dataclass
class SimParams:
    world: dict
    climate: dict
    s1: dict
    s2: dict
    terrain: dict
    difficulty: dict
    covers: dict[str, Cover]
    spectra: dict[str, list[float]]
    regions: dict[str, dict]  # keyed by Natural Earth name
    digest: str

    @property
    def t(self) -> int:
        return int(self.world.get("t", DEFAULT_T))

    @property
    def version(self) -> str:
        return f"{self.world['model']}.{CODE_VERSION}+{self.digest[:12]}"

    @property
    def cover_names(self) -> list[str]:
        """Cover names in code order (the truth raster's cover codes are index + 1)."""
        return list(self.covers)

    def targets(self) -> dict[str, dict]:
        out = {}
        for name, r in self.regions.items():
            if r.get("target"):
                out[r["target"]] = {"region": name, "crop": r.get("target_crop")}
        return out


def _load(path: Path) -> dict:
    if not path.exists():
        raise InputError(f"{path}: simulator parameter file missing")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML ({e})") from e


def _check_mix(where: str, mix: dict, allowed: set[str]) -> None:
    bad = sorted(set(mix) - allowed)
    if bad:
        raise InputError(f"{where}: unknown cover(s) {bad}")
    if not mix or sum(float(v) for v in mix.values()) <= 0:
        raise InputError(f"{where}: weights must sum to a positive number")


def load_params(directory: str | Path | None = None) -> SimParams:
    """Load and validate the simulator parameters (cached per directory)."""
    return copy.deepcopy(_load_params(str(Path(directory or sim_dir()).resolve())))


@lru_cache(maxsize=4)
def _load_params(directory: str) -> SimParams:
    d = Path(directory)
    h = hashlib.sha256()
    raw = {}
    for name in PARAM_FILES:
        p = d / name
        raw[name] = _load(p)
        h.update(name.encode() + b"\0" + p.read_bytes())
    w, reg, cov, systems = raw["world.toml"], raw["regions.toml"], raw["covers.toml"], raw["systems.toml"]
    for sect in ("world", "climate", "sentinel1", "sentinel2", "terrain", "difficulty"):
        if sect not in w:
            raise InputError(f"{d / 'world.toml'}: missing section [{sect}]")
    covers: dict[str, Cover] = {}
    for kind in ("noncrop", "annual", "perennial"):
        for name, p in cov.get(kind, {}).items():
            if kind != "noncrop" and name not in CROP_TO_GROUP:
                raise InputError(f"{d / 'covers.toml'}: crop {name!r} has no crop group in schema.CROP_TO_GROUP")
            covers[name] = Cover(name, kind, dict(p))
    missing = [c for c in NONCROP_COVERS if c not in covers]
    if missing:
        raise InputError(f"{d / 'covers.toml'}: non-crop cover(s) {missing} missing")
    spectra = cov.get("spectra", {})
    for k in ("green", "dry", "soil", "water", "built_up", "cloud", "snow", "path", "shadow"):
        if len(spectra.get(k, [])) != len(S2_MEMBER_BANDS):
            raise InputError(f"{d / 'covers.toml'}: [spectra] {k} needs {len(S2_MEMBER_BANDS)} values "
                             f"({' '.join(S2_MEMBER_BANDS)})")
    crops = {n for n, c in covers.items() if c.is_crop}
    regions: dict[str, dict] = {}
    for sname, sys_ in systems.items():
        bad = sorted(set(sys_) - set(SYSTEM_KEYS) - {"difficulty", "year_onset_sd", "year_rain_cv", "about"})
        if bad:
            raise InputError(f"{d / 'systems.toml'} [{sname}]: unknown key(s) {bad}")
        bad = sorted(set(sys_.get("difficulty", {})) - set(w["difficulty"]))
        if bad:
            raise InputError(f"{d / 'systems.toml'} [{sname}]: unknown difficulty knob(s) {bad}")
    for key, r in reg.items():
        r = dict(r)
        name = r.pop("name", key)
        where = f"{d / 'regions.toml'} [{key}]"
        sname = r.get("system")
        if sname is not None:
            if sname not in systems:
                raise InputError(f"{where}: unknown cropping system {sname!r}; systems: {', '.join(systems)}")
            sys_ = systems[sname]
            for k in SYSTEM_KEYS:
                if k in sys_ and k not in r:
                    r[k] = copy.deepcopy(sys_[k])
            r["difficulty"] = {**sys_.get("difficulty", {}), **r.get("difficulty", {})}
            for k in ("year_onset_sd", "year_rain_cv"):
                r.setdefault(k, sys_.get(k, w["climate"][k]))
        else:
            for k in ("year_onset_sd", "year_rain_cv"):
                r.setdefault(k, w["climate"][k])
        try:
            get_region(name)
        except InputError as e:
            raise InputError(f"{where}: {e}") from e
        for req in ("zone", "end", "rain_mm", "rain", "elev", "soil", "field_px", "crop_frac", "crops", "noncrop"):
            if req not in r:
                raise InputError(f"{where}: missing key {req!r}")
        _check_mix(where + " crops", r["crops"], crops)
        if "test_crops" in r:
            _check_mix(where + " test_crops", r["test_crops"], set(r["crops"]))
        if "crops" in r.get("pool", {}):
            _check_mix(where + " pool.crops", r["pool"]["crops"], set(r["crops"]))
        _check_mix(where + " noncrop", r["noncrop"], set(NONCROP_COVERS))
        for part in ("difficulty", "pool"):
            bad = sorted(set(r.get(part, {})) - set(w["difficulty"]) - ({"crop_frac", "crops"} if part == "pool" else set()))
            if bad:
                raise InputError(f"{where}: unknown {part} knob(s) {bad}")
        r["difficulty"] = {**w["difficulty"], **r.get("difficulty", {})}
        r.setdefault("years", list(w["world"]["train_years"]))
        if not r["years"] or not all(isinstance(y, int) and -10 <= y <= 0 for y in r["years"]):
            raise InputError(f"{where}: years must be a non-empty list of year offsets -10..0 (0 = the export year)")
        if r.get("target_crop") is not None and r["target_crop"] not in r["crops"]:
            raise InputError(f"{where}: target crop {r['target_crop']!r} is not grown there")
        r["key"] = key
        regions[name] = r
    return SimParams(world=w["world"], climate=w["climate"], s1=w["sentinel1"], s2=w["sentinel2"],
                     terrain=w["terrain"], difficulty=w["difficulty"], covers=covers, spectra=spectra,
                     regions=regions, digest=h.hexdigest())


def tile_settings(p: SimParams, region: dict, group: str) -> dict:
    """The region as one group of its tiles sees it.

    - ``"train"``: the labelled pool: the region's difficulty plus, for a target, its ``pool``
      overrides (label noise of field surveys, ...), over the region's label ``years``;
    - ``"test"`` and ``"scene"``: a target's test tiles and map scene in the export year, with the
      world-default sensor noise, clouds and mixtures (:data:`TEST_DEFAULT_KNOBS`) and the careful
      test labellers' noise;
    - ``"oracle"``: like ``"test"`` (same districts, same year), with correct labels.
    """
    if group not in ("train", "test", "scene", "oracle"):
        raise ValueError(f"unknown tile group {group!r}")
    r = dict(region)
    diff = dict(region["difficulty"])
    if group == "train":
        pool = dict(region.get("pool", {}))
        for k in ("crop_frac", "crops"):  # who the survey labelled: the composition of the negatives
            if k in pool:
                r[k] = pool.pop(k)
        diff.update(pool)
    else:
        for k in TEST_DEFAULT_KNOBS:
            diff[k] = p.difficulty[k]
        diff["label_noise"], diff["type_noise"] = diff["test_label_noise"], diff["test_type_noise"]
        if group == "oracle":
            diff["label_noise"] = diff["type_noise"] = 0.0
        r["years"] = [0]
        if "test_crops" in region:  # what the test districts grow (e.g. the classes of a survey)
            r["crops"] = dict(region["test_crops"])
    r["difficulty"] = diff
    return r
