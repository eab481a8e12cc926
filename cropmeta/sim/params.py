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
from cropmeta.schema import CROP_TO_GROUP, DEFAULT_T

PARAM_FILES = ("world.toml", "regions.toml", "covers.toml")
#: bump when the simulator's code changes what it writes (the parameter hash covers the files)
CODE_VERSION = 1
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
    w, reg, cov = raw["world.toml"], raw["regions.toml"], raw["covers.toml"]
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
    for key, r in reg.items():
        r = dict(r)
        name = r.pop("name", key)
        where = f"{d / 'regions.toml'} [{key}]"
        from cropmeta.sim.world import get_region

        try:
            get_region(name)
        except InputError as e:
            raise InputError(f"{where}: {e}") from e
        for req in ("zone", "end", "rain_mm", "rain", "elev", "soil", "field_px", "crop_frac", "crops", "noncrop"):
            if req not in r:
                raise InputError(f"{where}: missing key {req!r}")
        _check_mix(where + " crops", r["crops"], crops)
        _check_mix(where + " noncrop", r["noncrop"], set(NONCROP_COVERS))
        bad = sorted(set(r.get("difficulty", {})) - set(w["difficulty"]))
        if bad:
            raise InputError(f"{where}: unknown difficulty knob(s) {bad}")
        r["difficulty"] = {**w["difficulty"], **r.get("difficulty", {})}
        if r.get("target_crop") is not None and r["target_crop"] not in r["crops"]:
            raise InputError(f"{where}: target crop {r['target_crop']!r} is not grown there")
        r["key"] = key
        regions[name] = r
    return SimParams(world=w["world"], climate=w["climate"], s1=w["sentinel1"], s2=w["sentinel2"],
                     terrain=w["terrain"], difficulty=w["difficulty"], covers=covers, spectra=spectra,
                     regions=regions, digest=h.hexdigest())
