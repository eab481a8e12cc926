"""One unit of map work: read one output block of one input, batch its pixels through the model,
return the block's probabilities (float32, NaN = nodata).

The same function runs in-process (serial) and on Dask workers. Reads are split into strips of at
most :data:`~cropmeta.mapping.sources.MAX_READ_PIXELS` pixels and the model sees fixed batches of
``batch_size`` pixels that depend only on the block, never on the executor, so a serial run and a
2-worker run compute bit-identical probabilities.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from cropmeta.errors import DataError, InputError
from cropmeta.mapping.model import get_predictor, set_threads
from cropmeta.mapping.sources import MAX_READ_PIXELS, Source

DEFAULT_BATCH = 1024


@dataclass(frozen=True)
class Job:
    """Block ``window`` of input number ``tile``; ``key`` names it in the manifest."""

    tile: int
    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def window(self) -> Window:
        return Window(self.col_off, self.row_off, self.width, self.height)

    @property
    def key(self) -> str:
        return f"{self.tile}/{self.row_off}_{self.col_off}_{self.height}x{self.width}"


@dataclass(frozen=True)
class ModelSpec:
    run_dir: str
    loader: str | None = None
    threads: int = 1
    batch_size: int = DEFAULT_BATCH
    device: str = "cpu"
    sha: str | None = None  # the model's SHA-256 (names the Dask worker plugin that preloads it)


def predict_samples(predictor, x: np.ndarray, batch_size: int = DEFAULT_BATCH, context: dict | None = None
                    ) -> np.ndarray:
    """``predict_proba`` over ``x [n, T, 18]`` in fixed batches; float32 ``[n]``. ``context``: per-sample
    keywords (``lat``, ``lon``, ``start_dates``, each of length n) passed along, batch by batch."""
    out = np.empty(len(x), dtype=np.float32)
    for i in range(0, len(x), batch_size):
        extra = {k: v[i : i + batch_size] for k, v in (context or {}).items()}
        p = np.asarray(predictor.predict_proba(x[i : i + batch_size], **extra), dtype=np.float32).reshape(-1)
        if len(p) != len(x[i : i + batch_size]):
            raise DataError(f"model returned {len(p)} probabilities for {len(x[i:i + batch_size])} pixels")
        out[i : i + batch_size] = p
    return out


def bytes_per_pixel(source: Source) -> int:
    """Working memory of one pixel while a strip is read and prepared: GDAL's float32 read of every
    band of the file, plus ~5 float32-equivalents of the canonical ``[T, 18]`` series (canonical
    conversion in float64, filled samples, the model's input copy)."""
    raw = ((source.t_file or source.t) * 17 + 2) * 4
    return int(raw + source.t * 18 * 4 * 5)


def read_pixels_for_budget(sources: list[Source], budget_mb: float | None) -> int:
    """Pixels per read strip so that one strip's working memory stays within ``budget_mb`` (None:
    :data:`~cropmeta.mapping.sources.MAX_READ_PIXELS`, the default whose maps are the reference)."""
    if budget_mb is None:
        return MAX_READ_PIXELS
    if not budget_mb > 0:
        raise InputError(f"--read-budget-mb must be > 0, got {budget_mb}")
    bpp = max(bytes_per_pixel(s) for s in sources)
    return max(1, int(budget_mb * 2**20) // bpp)


def run_job(job: Job, source: Source, model: ModelSpec, roi_mask: np.ndarray | None = None,
            read_lock=None, read_pixels: int = MAX_READ_PIXELS) -> np.ndarray:
    """Probabilities of one block ``[height, width]`` float32; NaN where the input is missing or the
    pixel lies outside the region (``roi_mask`` False). ``read_lock``: held while reading (threads
    of one process share the input's open dataset); the model runs outside it. ``read_pixels``: the
    largest strip read at once (whole rows, at least one)."""
    predictor = get_predictor(model.run_dir, model.loader, model.device)
    set_threads(model.threads)
    out = np.full((job.height, job.width), np.nan, dtype=np.float32)
    if roi_mask is not None and not roi_mask.any():
        return out
    rows = max(1, int(read_pixels) // max(job.width, 1))
    for r in range(0, job.height, rows):
        h = min(rows, job.height - r)
        inside = None if roi_mask is None else roi_mask[r : r + h]
        if inside is not None and not inside.any():
            continue
        win = Window(job.col_off, job.row_off + r, job.width, h)
        with read_lock if read_lock is not None else contextlib.nullcontext():
            x, valid = source.read(win)
        if inside is not None:
            keep = inside[valid]
            x = x[keep.ravel()]
            valid = valid & inside
        if len(x):
            # a model reading each pixel's place and time (Presto) gets the pixel centres' lat/lon
            context = source.pixel_context(win, valid) if getattr(predictor, "uses_locations", False) else None
            p = predict_samples(predictor, x, model.batch_size, context)
            if not np.isfinite(p).all():
                raise DataError(f"{source.name}: model returned non-finite probabilities in block {job.key}")
            strip = out[r : r + h]
            strip[valid] = np.clip(p, 0.0, 1.0)
    return out


def quantize(prob: np.ndarray, threshold: float, as_float: bool) -> tuple[np.ndarray, np.ndarray]:
    """(probability band, class band) for the map file.

    uint8: probability ``rint(100 p)`` 0–100, class ``p >= threshold``, 255 = nodata.
    float32: probability ``p``, class 0/1, NaN = nodata."""
    nod = np.isnan(prob)
    cls = prob >= threshold
    if as_float:
        c = cls.astype(np.float32)
        c[nod] = np.nan
        return prob.astype(np.float32), c
    p = np.rint(np.where(nod, 0, prob) * 100.0).clip(0, 100).astype(np.uint8)
    c = cls.astype(np.uint8)
    p[nod] = 255
    c[nod] = 255
    return p, c


def part_path(work: Path, job: Job) -> Path:
    return work / "parts" / str(job.tile) / f"{job.row_off}_{job.col_off}.npy"
