"""A map export's output checks, made before any work (nothing the user has is overwritten by
surprise: existing outputs, an output that is an input, the mosaic's size), and the helpers of its
bookkeeping (valid-pixel counts, source signatures, the work folder, the blocks' progress bar)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import box

from cropmeta.errors import DataError, InputError
from cropmeta.mapping.infer import Job, part_path
from cropmeta.mapping.manifest import load_part, work_dir_for
from cropmeta.mapping.sources import Source


# ------------------------------------------------------------------------------------------------
# output checks (before any work: nothing the user has is ever overwritten by surprise)
# ------------------------------------------------------------------------------------------------
def tiles_dir_for(out: Path) -> Path:
    return out.parent / f"{out.stem}.tiles"


def mosaic_mode(mosaic: str, out: Path, n_inputs: int) -> str:
    """``auto`` → ``vrt`` for an ``.vrt`` output, else one COG; a VRT is only written at a ``.vrt`` name."""
    is_vrt = out.suffix.lower() == ".vrt"
    if mosaic == "auto":
        return "vrt" if is_vrt else "cog"
    if mosaic == "vrt" and not is_vrt and n_inputs > 1:
        raise InputError(f"--out {out}: --mosaic vrt writes a VRT mosaic; name it {out.with_suffix('.vrt')} "
                         "(or use --mosaic cog for one GeoTIFF)")
    if mosaic == "cog" and is_vrt:
        raise InputError(f"--out {out}: --mosaic cog writes one GeoTIFF; name it {out.with_suffix('.tif')}")
    if is_vrt and n_inputs == 1 and mosaic != "none":
        raise InputError(f"--out {out}: one input gives one GeoTIFF map; name it {out.with_suffix('.tif')}")
    return mosaic


def refuse_existing(out: Path, mode: str, n_inputs: int, overwrite: bool) -> None:
    """An existing map (or tiles folder) at the output is replaced only with ``overwrite``."""
    if overwrite:
        return
    existing = [out] if out.exists() and not (mode == "none" and n_inputs > 1) else []
    if n_inputs > 1 and mode in ("vrt", "none") and tiles_dir_for(out).exists():
        existing.append(tiles_dir_for(out))
    if existing:
        raise InputError(f"{existing[0]}: exists; pass --overwrite to replace it (or choose another --out)")


def check_not_an_input(out: Path, items: list, inputs, truth) -> None:
    """Refuse an output that is, or lies inside, an input (file or folder) or the truth file."""
    targets = [out, out.with_suffix(".png"), out.with_suffix(".accuracy.json"), out.with_suffix(".stac.json"),
               tiles_dir_for(out)]
    given = list(items)
    if inputs is not None:
        given += [i for i in (inputs if isinstance(inputs, (list, tuple)) else [inputs]) if isinstance(i, (str, Path))]
    if truth is not None:
        given.append(truth)
    for item in given:
        if not isinstance(item, (str, Path)):
            continue
        src = Path(item).resolve()
        for t in targets:
            tr = t.resolve()
            if tr == src or (Path(item).is_dir() and src in tr.parents):
                what = "is" if tr == src else "lies inside"
                raise InputError(f"--out {out}: {t.name if t != out else 'the map'} {what} the input {item}; "
                                 "write the map elsewhere")


def check_mosaic_size(sources: list[Source], out: Path, as_float: bool, max_gb: float) -> None:
    """Refuse a one-COG mosaic whose (uncompressed) size is beyond ``max_gb``, before any work."""
    from rasterio.crs import CRS

    crs = [CRS.from_wkt(s.grid.crs) if s.grid.crs else None for s in sources]
    for s, c in zip(sources[1:], crs[1:]):
        if c != crs[0]:
            raise InputError(f"{s.ref if isinstance(s.ref, (str, Path)) else s.name}: CRS {c} differs from "
                             f"{sources[0].name}'s {crs[0]}; a mosaic needs one CRS (export these tiles "
                             "separately, --mosaic none)")
    ts = [s.grid.affine for s in sources]
    xres, yres = abs(ts[0].a), abs(ts[0].e)
    left = min(t.c for t in ts)
    right = max(t.c + s.grid.width * xres for t, s in zip(ts, sources))
    top = max(t.f for t in ts)
    bottom = min(t.f - s.grid.height * yres for t, s in zip(ts, sources))
    w, h = int(round((right - left) / xres)), int(round((top - bottom) / yres))
    gb = w * h * 2 * (4 if as_float else 1) / 1e9
    if gb > max_gb:
        covered = sum(s.grid.width * s.grid.height for s in sources) / max(w * h, 1)
        raise InputError(
            f"--out {out}: one GeoTIFF over the {len(sources)} inputs would be {w:,} x {h:,} px "
            f"({gb:,.1f} GB uncompressed, {covered:.2%} of it covered by an input), over the limit "
            f"--max-mosaic-gb {max_gb:g}; write a VRT over per-tile maps (--out {out.with_suffix('.vrt')}), "
            "per-tile maps only (--mosaic none), or raise --max-mosaic-gb")


def valid_counts(jobs: list[Job], work: Path, n_tiles: int) -> list[int]:
    counts = [0] * n_tiles
    for j in jobs:
        counts[j.tile] += int(np.isfinite(load_part(part_path(work, j))).sum())
    return counts


def no_valid_pixel_message(sources: list[Source], roi: list) -> str:
    """Why a map has no valid pixel: ingestion's own rule (:func:`cropmeta.io.eetiff.fill_pixels`)
    applied to the first block of each input names the band(s) that are missing everywhere."""
    from rasterio.windows import Window

    from cropmeta.io.eetiff import fill_pixels

    for s in sources:
        if getattr(s, "kind", None) == "stack":  # one band: "no value at any step" says it all
            continue
        w = Window(0, 0, min(s.grid.width, 512), min(s.grid.height, 512))
        try:
            x = s.read_canonical(w)
            fill_pixels(x, s.get_slope_fill, source=str(s.ref if isinstance(s.ref, (str, Path)) else s.name))
        except DataError as e:
            return f"{e}; the map would have no valid pixel"
    where = " inside the region" if any(g is not None for g in roi) else ""
    return (f"{', '.join(s.name for s in sources)}: no pixel{where} has a value in every band; "
            "the map would have no valid pixel")


def renamed_output(s: Source, name: str) -> Source:
    import dataclasses

    return dataclasses.replace(s, name=name)


def source_signature(s: Source) -> Any:
    if getattr(s, "files", None):  # a per-date stack: every image counts (and the months read)
        return [[str(Path(f).resolve()), Path(f).stat().st_size, Path(f).stat().st_mtime_ns] for f in s.files] + \
            [s.t_start, s.t]
    if isinstance(s.ref, (str, Path)):
        p = Path(s.ref)
        st = p.stat()
        return [str(p.resolve()), st.st_size, st.st_mtime_ns, s.t_start, s.t]
    return f"in-memory:{id(s.ref)}:{time.time_ns()}"  # never resumed


def window_touches(geom, s: Source, w) -> bool:
    from rasterio.windows import bounds as wbounds

    x0, y0, x1, y1 = wbounds(w, s.grid.affine)
    return bool(geom.intersects(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))


def remove_work(out: str | Path) -> None:
    """Forget an interrupted export's finished blocks (the next run starts afresh)."""
    shutil.rmtree(work_dir_for(Path(out)), ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# progress
# ------------------------------------------------------------------------------------------------
class BlockProgress:
    def __init__(self, enabled: bool, total: int, label: str):
        from cropmeta.logs import quiet

        self.bar = None
        if enabled and total and not quiet():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
