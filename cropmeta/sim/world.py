"""The simulated world on disk: :func:`generate_world`, :func:`ensure_world`, :func:`load_world`.

Layout (the contract read by ingestion exactly like a user's own data)::

    <world>/world.json        kind, version, seed, t, regions, targets, scenes, region_info
    <world>/labels.parquet    GeoParquet points (EPSG:4326): sample_id, lat, lon, is_crop, label,
                              crop_group, cover, region, dataset, split, start_date, tile
    <world>/tiles/<region_slug>/<idx>-<dataset>_<start>_<end>.tif   Earth-Engine-layout GeoTIFFs
    <world>/scenes/<target>/<idx>-<dataset>_<start>_<end>.tif + truth.tif

Every labelled point lies at the centre of a pixel of the tile named in its ``tile`` column.
Generation is deterministic: the same seed (and parameters) writes the same bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from cropmeta._fs import atomic_dir, recover_dir
from cropmeta.errors import DataError, InputError
from cropmeta.sim.common import get_region
from cropmeta.sim.params import load_params
from cropmeta.sim.scenes import make_scene
from cropmeta.sim.tiles import simulate_group, oracle_positions, points_per_field, simulate_region

WORLD_KIND = "cropmeta-sim-world"


# ==================================================================================================
# Public API
# ==================================================================================================
def _check_int(name: str, v, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {v!r}")
    if not lo <= int(v) <= hi:
        raise InputError(f"{name}={v} is outside the sane range {lo}..{hi}")
    return int(v)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory; choose another --out")
    if not any(out.iterdir()):
        return
    if not (out / "world.json").exists():
        raise InputError(f"{out}: exists and is not a cropmeta world (no world.json); refusing to write "
                         "into it — choose an empty or new directory")
    load_world(out)  # raises when world.json is not a world's
    if not overwrite:
        raise InputError(f"{out}: already holds a simulated world; pass overwrite=True (--overwrite) to replace it")


def generate_world(out_dir: str | Path, seed: int = 0, scene_size: int = 128, overwrite: bool = False, *,
                   regions: list[str] | None = None) -> Path:
    """Write a simulated world to ``out_dir`` (atomically) and return its path.

    ``regions`` restricts the world to some of the simulator's regions (names as in
    ``cropmeta regions``; tests use it to stay small); their data are identical to those of the
    full world with the same seed. Raises :class:`InputError` for a seed or scene size outside
    sane bounds, an unknown region, or an output directory that exists and is not a world (or is
    one and ``overwrite`` is false)."""
    p = load_params()
    w = p.world
    seed = _check_int("seed", seed, 0, int(w["max_seed"]))
    scene_size = _check_int("scene_size", scene_size, int(w["min_scene"]), int(w["max_scene"]))
    out = Path(out_dir)
    recover_dir(out)
    _check_out_dir(out, overwrite)
    if regions is None:
        names = list(p.regions)
    else:
        if isinstance(regions, str) or not list(regions):
            raise InputError("regions: give a non-empty list of region names (or None for all)")
        names = []
        for r in regions:
            nm = get_region(r).name  # InputError for unknown names
            if nm not in p.regions:
                raise InputError(f"region {r!r} is not simulated; simulated regions: {', '.join(p.regions)}")
            names.append(nm)
        names = [n for n in p.regions if n in set(names)]  # canonical order

    with atomic_dir(out) as tmp:
        frames, info = [], {}
        for name in names:
            df, summ = simulate_region(p, name, seed, tmp)
            frames.append(df)
            info[name] = summ
        labels = pd.concat(frames, ignore_index=True)
        gdf = gpd.GeoDataFrame(labels, geometry=gpd.points_from_xy(labels["lon"], labels["lat"]), crs="EPSG:4326")
        gdf.to_parquet(tmp / "labels.parquet", index=False)
        targets, scenes = {}, {}
        for tkey, t in p.targets().items():
            if t["region"] not in names:
                continue
            targets[tkey] = t
            scenes[tkey] = make_scene(p, tkey, t["region"], seed, scene_size, tmp)
        doc = {
            "kind": WORLD_KIND,
            "version": p.version,
            "seed": seed,
            "t": p.t,
            "scene_size": scene_size,
            "pixel_deg": float(w["pixel_deg"]),
            "params_sha256": p.digest,
            "regions": names,
            "targets": targets,
            "scenes": scenes,
            "region_info": info,
            "n_samples": int(len(gdf)),
        }
        (tmp / "world.json").write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return out


def load_world(path: str | Path) -> dict:
    """The parsed ``world.json`` of a world directory (or the file itself), validated: kind,
    version, seed, regions, targets and scenes present, ``labels.parquet`` and the scene files
    exist. Adds ``"path"``: the world directory (absolute)."""
    path = Path(path)
    root = path.parent if path.name == "world.json" else path
    f = root / "world.json"
    if not f.exists():
        raise InputError(f"{root}: not a cropmeta world (no world.json); create one with `cropmeta sim --out DIR`")
    try:
        doc = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{f}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("kind") != WORLD_KIND:
        raise InputError(f"{f}: not a cropmeta world (kind is {doc.get('kind') if isinstance(doc, dict) else None!r}, "
                         f"expected {WORLD_KIND!r})")
    for k in ("version", "seed", "t", "regions", "targets", "scenes"):
        if k not in doc:
            raise InputError(f"{f}: world.json lacks key {k!r}")
    if not (root / "labels.parquet").exists():
        raise InputError(f"{root}: world is incomplete (labels.parquet missing); regenerate it")
    for tkey, sc in doc["scenes"].items():
        for part in ("tif", "truth"):
            if not (root / sc[part]).exists():
                raise InputError(f"{root}: scene {tkey!r} lacks its {part} file {sc[part]}; regenerate the world")
    doc["path"] = str(root.resolve())
    return doc


def generate_oracle(world: str | Path, target: str, n: int = 4000) -> Path:
    """Correctly labelled samples of a target's test districts and test year (never its test
    tiles): the oracle of the calibration (docs/simulator.md). Written once, atomically, under
    ``<world>/oracle/<target>-<n>/`` (``labels.parquet`` + tiles, the world's layout); ingestion
    never reads them. Returns that directory."""
    doc = load_world(world)
    if target not in doc["targets"]:
        raise InputError(f"{doc['path']}: no target {target!r}; targets: {', '.join(doc['targets'])}")
    n = _check_int("n", n, 100, 100_000)
    out = Path(doc["path"]) / "oracle" / f"{target}-{n}"
    recover_dir(out)
    if (out / "labels.parquet").exists():
        return out
    p = load_params()
    if p.version != doc["version"]:
        raise InputError(f"{doc['path']}: world version {doc['version']} differs from the simulator's "
                         f"{p.version}; regenerate the world before drawing its oracle")
    seed, name = int(doc["seed"]), doc["targets"][target]["region"]
    region = p.regions[name]
    S = int(p.world["tile_px"])
    est = max(1.0, 0.5 * S * S / float(region["field_px"]) * points_per_field(p, region, True))
    n_tiles = int(math.ceil(n / est * 1.3)) + 2
    with atomic_dir(out) as tmp:
        for _attempt in range(6):
            lat0, lon0 = oracle_positions(p, name, seed, n_tiles)
            res = simulate_group(p, name, seed, tmp, "oracle", lat0, lon0, n, 0, "tiles")
            if res is not None:
                break
            n_tiles *= 2
        else:
            raise DataError(f"{name}: could not place {n} oracle points")
        df = res[0]
        df["tile"] = [f"oracle/{target}-{n}/{t}" for t in df["tile"]]
        gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326").to_parquet(
            tmp / "labels.parquet", index=False)
    return out


def world_version() -> str:
    """The version string a world generated now carries (model, code version, parameter hash)."""
    return load_params().version


def ensure_world(seed: int = 0, home: str | Path | None = None) -> Path:
    """The cached world ``<home>/worlds/seed-<seed>`` (home: ``$CROPMETA_HOME`` or ./cropmeta-data):
    generated on first use, regenerated when its version differs from the simulator's."""
    from cropmeta.io.store import workspace_home

    p = load_params()
    seed = _check_int("seed", seed, 0, int(p.world["max_seed"]))
    path = Path(home or workspace_home()) / "worlds" / f"seed-{seed}"
    recover_dir(path)
    if (path / "world.json").exists():
        try:
            doc = load_world(path)
        except InputError as e:
            raise InputError(f"{path}: the cached world is damaged ({e}); delete the directory and retry") from e
        if doc.get("version") == p.version and int(doc.get("seed", -1)) == seed:
            return path
        return generate_world(path, seed=seed, overwrite=True)
    return generate_world(path, seed=seed)
