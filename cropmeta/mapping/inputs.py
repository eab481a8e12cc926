"""What a map export reads: its inputs (files, folders, stacks), the model's and the sources' band
schemas and time window, the run's record, and the simulated scene of a run's target when no input is given."""

from __future__ import annotations

import json
from pathlib import Path

from cropmeta.errors import InputError
from cropmeta.mapping.sources import Source, window_source


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------
def expand_inputs(inputs) -> list:
    if inputs is None:
        return []
    if isinstance(inputs, (str, Path)) or not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    out: list = []
    for item in inputs:
        if isinstance(item, (str, Path)) and _is_stack(Path(item)):
            from cropmeta.mapping.stacks import open_stack

            out.append(open_stack(item))  # dated one-band images: one input on their own grid
        elif isinstance(item, (str, Path)) and Path(item).is_dir():
            found = sorted(p for p in Path(item).iterdir() if p.suffix.lower() in (".tif", ".tiff", ".nc"))
            if not found:
                raise InputError(f"{item}: folder holds no .tif or .nc map inputs")
            out.extend(found)
        else:
            out.append(item)
    return out


def _is_stack(path: Path) -> bool:
    """A folder of dated one-band images, or a list file naming them (:mod:`cropmeta.mapping.stacks`)."""
    from cropmeta.mapping.stacks import is_stack_folder

    return path.suffix.lower() in (".txt", ".lst") and path.is_file() or is_stack_folder(path)


def model_schema(predictor):
    """The band schema a predictor takes (its ``schema``, its model's, else CropHarvest-18)."""
    from cropmeta.schema import CROPHARVEST

    for obj in (predictor, getattr(predictor, "model", None)):
        schema = getattr(obj, "schema", None)
        if schema is not None:
            return schema
    return CROPHARVEST


def source_schema(s: Source):
    """The band schema of a map input (Earth-Engine tiles and datacubes: CropHarvest-18)."""
    from cropmeta.schema import CROPHARVEST

    return (getattr(s, "schema", None) or CROPHARVEST).with_t(s.t)


def window_months(s: Source, model_t: int, months: str) -> Source:
    """``s`` cut to the months ``START:END``: a stack by its dates, an Earth-Engine tile by the start
    date its file name carries (30-day steps)."""
    from cropmeta.io.eenames import parse_ee_filename
    from cropmeta.io.windows import parse_months, step_offset

    name = str(s.ref) if isinstance(s.ref, (str, Path)) else s.name
    if getattr(s, "kind", None) == "stack":
        from cropmeta.mapping.stacks import window_stack

        return window_stack(s, months)
    parsed = parse_ee_filename(name)
    if parsed is None:
        raise InputError(f"{name}: --months needs the export's start date in its file name "
                         "('{index}-{dataset}_{start}_{end}.tif'); use --start-month N instead")
    window = parse_months(months)
    first = step_offset(parsed.start, s.t, window, 30, name)
    if window.n_months != model_t:
        raise InputError(f"--months {months}: {window.n_months} months, but the model takes T={model_t} steps")
    return window_source(s, model_t, first + 1)


def _run_record(run_dir: Path, predictor) -> dict:
    """What the run says about its data: ``config.json`` merged under the predictor's metadata."""
    rec: dict = {}
    p = run_dir / "config.json"
    if p.exists():
        try:
            rec.update(json.loads(p.read_text()))
        except ValueError:
            pass
    meta = dict(getattr(predictor, "metadata", None) or {})
    for k in ("task", "seed", "source", "world"):
        if meta.get(k) is not None:
            rec[k] = meta[k]
    if "task" not in rec and isinstance(rec.get("target"), dict):
        rec["task"] = rec["target"]
    return rec


def find_world(run_dir: Path, predictor=None, world: str | Path | None = None) -> Path:
    """The simulated world a run was trained on: ``world``; the run's ``source`` when it is a world;
    else the cached world of the run's seed (``$CROPMETA_HOME/worlds/seed-<seed>``)."""
    from cropmeta.io.store import workspace_home

    rec = _run_record(run_dir, predictor)
    candidates: list[Path] = []
    if world is not None:
        candidates.append(Path(world))
    for key in ("world", "source"):
        if isinstance(rec.get(key), str) and rec[key]:
            candidates.append(Path(rec[key]))
    seed = rec.get("seed")
    candidates.append(workspace_home() / "worlds" / f"seed-{int(seed) if isinstance(seed, int) else 0}")
    for c in candidates:
        if (c / "world.json").exists():
            return c
    raise InputError(
        f"{run_dir}: no map inputs given and no simulated world found (looked in "
        f"{', '.join(str(c) for c in candidates)}); pass the input tile(s)")


def scene_for_run(run_dir: Path, predictor=None, world: str | Path | None = None) -> tuple[Path, Path | None, str]:
    """(scene tif, truth tif or None, target key) of the run's target in its simulated world: the
    target with the run's region and crop (crop/non-crop when the run has no crop)."""
    from cropmeta.regions import slugify

    wdir = find_world(run_dir, predictor, world)
    w = json.loads((wdir / "world.json").read_text())
    scenes = w.get("scenes") or {}
    task = _run_record(run_dir, predictor).get("task") or {}
    region = task.get("region") if isinstance(task, dict) else None
    crop = task.get("crop") if isinstance(task, dict) else None
    if not region:
        raise InputError(f"{run_dir}: the run records no target region; pass the input tile(s)")
    same_region = [k for k, sc in scenes.items()
                   if slugify(str(sc.get("region") or "")) == slugify(region) or slugify(k) == slugify(region)]
    exact = [k for k in same_region if (scenes[k].get("crop") or None) == (crop or None)]
    keys = exact or same_region
    if not keys:
        raise InputError(f"{run_dir}: the simulated world {wdir} has no scene of {region!r} "
                         f"(scenes: {', '.join(scenes) or 'none'}); pass the input tile(s)")
    key = keys[0]
    scene = scenes[key]
    tif = wdir / scene["tif"]
    truth = wdir / scene["truth"] if scene.get("truth") else None
    return tif, (truth if truth is not None and truth.exists() else None), key


def _date_range(sources: list[Source]) -> list[str] | None:
    """First and last export date of the inputs, from their file names (the reader's one parser,
    :func:`cropmeta.io.eenames.parse_ee_filename`)."""
    from cropmeta.io.eenames import parse_ee_filename

    names = [parse_ee_filename(s.name) for s in sources]
    dates = [n for n in names if n is not None]
    return [min(n.start for n in dates).isoformat(), max(n.end for n in dates).isoformat()] if dates else None
