"""Ingestion's per-tile sampling, staged and resumable: every tile's samples are staged in
``$CROPMETA_HOME/.cache/ingest/<key>/`` (key = tile path + size + mtime + the labels it holds +
options), so a rerun (or a run after a failure) reuses completed tiles and reads only the rest.
The entry point is :func:`cropmeta.ingest.ingest`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from cropmeta._fs import atomic_dir
from cropmeta.errors import InputError
from cropmeta.io.eenames import list_ee_tiffs
from cropmeta.io.eetiff import EETiffInfo
from cropmeta.io.sampling import TileSamples, check_same_t, index_tiles, locate_points, sample_tile, tile_bounds_4326

#: bump when the staged per-tile format or sampling semantics change (invalidates the cache)
CACHE_VERSION = 2  # 2: field ids (the pixels of a polygon share one)


def _row_hashes(labels: gpd.GeoDataFrame) -> np.ndarray:
    """One uint64 per label row over everything that affects its samples (computed once per run)."""
    cols = [c for c in ("sample_id", "lat", "lon", "is_crop", "label", "crop_group", "dataset", "split",
                        "start_date", "region", "class_value", "field_id") if c in labels.columns]
    frame = pd.DataFrame({c: labels[c].astype(str).to_numpy() for c in cols})
    if "footprint" in labels.columns:
        frame["footprint"] = [g.wkb_hex if g is not None else "-" for g in labels["footprint"]]
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _tile_key(info: EETiffInfo, row_hashes: np.ndarray, polygons: str) -> str:
    st = info.path.stat()
    ident = {"v": CACHE_VERSION, "path": str(info.path.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns,
             "polygons": polygons, "start": info.start.isoformat() if info.start else None,
             "labels": hashlib.sha256(np.ascontiguousarray(row_hashes).tobytes()).hexdigest()}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def _load_staged(d: Path) -> TileSamples | None:
    try:
        x = np.load(d / "x.npy", allow_pickle=False)
        meta = pd.read_parquet(d / "meta.parquet")
        stats = json.loads((d / "stats.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    return TileSamples(x, meta, np.asarray(stats["nan_counts"], np.int32).reshape(len(x), -1),
                       np.asarray(stats["label_rows"], np.int64))


def _stage(d: Path, part: TileSamples) -> None:
    with atomic_dir(d) as tmp:
        np.save(tmp / "x.npy", part.x, allow_pickle=False)
        pd.DataFrame(part.meta).to_parquet(tmp / "meta.parquet")
        (tmp / "stats.json").write_text(json.dumps({"nan_counts": part.nan_counts.tolist(),
                                                    "label_rows": [int(i) for i in part.label_rows]}))


def _tile_candidates(info: EETiffInfo, labels: gpd.GeoDataFrame, where: np.ndarray, i: int,
                     polygons: str) -> np.ndarray:
    """Rows of ``labels`` to sample in tile ``i``."""
    if polygons != "pixels" or "footprint" not in labels.columns:
        return np.where(where == i)[0]
    x0, y0, x1, y1 = tile_bounds_4326(info)
    fp = gpd.GeoSeries(labels["footprint"], crs="EPSG:4326")
    b = fp.bounds.to_numpy()
    has = fp.notna().to_numpy()
    hit = has & (b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0)
    return np.where(hit | (where == i))[0]


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


def sample_tiles(labels: gpd.GeoDataFrame, tiles_src: Path, root: Path | None, home: Path, polygons: str,
                  start_date, allow_failed: bool,
                  progress: bool) -> tuple[dict[int, TileSamples], dict, list, np.ndarray]:
    """Sample every tile holding labels, staged per tile. Returns (tile index → samples, tile counts,
    infos, mask of labels held by tiles that failed)."""
    failed: dict[str, str] = {}
    kinds: list[type] = []  # the error class of each failure (DataError stays DataError)

    def on_error(p, e):
        failed[str(p)] = str(e)
        kinds.append(type(e))

    infos = index_tiles(list_ee_tiffs(tiles_src), start_date=start_date, on_error=on_error)
    if not infos:
        first = next(iter(failed.values()), f"{tiles_src}: no usable tiles")
        kind = kinds[0] if kinds else InputError
        raise kind(first if len(failed) <= 1 else f"all {len(failed)} tiles failed; first: {first}")
    check_same_t(infos)
    where = locate_points(labels, infos, root=root)
    cache = home / ".cache" / "ingest"
    hashes = _row_hashes(labels)
    jobs = [(i, _tile_candidates(info, labels, where, i, polygons)) for i, info in enumerate(infos)]
    jobs = [(i, rows) for i, rows in jobs if len(rows)]
    parts: dict[int, TileSamples] = {}
    failed_rows = np.zeros(len(labels), dtype=bool)
    counts = {"total": len(infos) + len(failed), "with_labels": len(jobs), "complete": 0, "cached": 0}
    with _progress(progress) as bar:
        task = bar.add_task("sampling tiles", total=len(jobs))
        for i, rows in jobs:
            info = infos[i]
            key_dir = cache / _tile_key(info, hashes[rows], polygons)
            part = _load_staged(key_dir) if key_dir.exists() else None
            if part is not None:
                counts["cached"] += 1
            else:
                try:
                    name = str(info.path.relative_to(root)) if root is not None and info.path.is_relative_to(root) \
                        else str(info.path)
                    part = sample_tile(info, labels.iloc[rows], polygons=polygons, tile_name=name)
                except InputError as e:  # DataError included
                    on_error(info.path, e)
                    failed_rows[rows] = True
                    bar.advance(task)
                    continue
                _stage(key_dir, part)
                counts["complete"] += 1
            part.label_rows = rows[part.label_rows]
            parts[i] = part
            bar.advance(task)
    counts["failed"] = len(failed)
    counts["failed_files"] = failed
    if failed and not allow_failed:
        path, msg = next(iter(failed.items()))
        more = f" (and {len(failed) - 1} more tile(s), listed in the report)" if len(failed) > 1 else ""
        raise kinds[0](f"{msg}{more}. Nothing was written; completed tiles are staged, so a rerun after fixing "
                         "or removing the bad file(s) resumes (or pass --allow-failed to skip them)")
    return parts, counts, infos, failed_rows


__all__ = ["CACHE_VERSION", "sample_tiles"]
