"""The Earth-Engine-layout GeoTIFF writer (:func:`write_ee_tiff`), used by the simulator, the
fetchers and tests; the layout is :mod:`cropmeta.io.eetiff`'s, and the reader is there too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

from cropmeta._fs import atomic_path
from cropmeta.errors import InputError
from cropmeta.schema import N_STATIC, RAW_PER_STEP, raw_band_names


def write_ee_tiff(
    path: str | Path,
    dynamic: np.ndarray,
    static: np.ndarray,
    transform: Affine,
    crs: str = "EPSG:4326",
    dtype: str = "float32",
    tags: dict | None = None,
    creation_options: dict | None = None,
) -> Path:
    """Write an Earth-Engine-layout GeoTIFF atomically.

    dynamic: ``[T, 17, H, W]`` in :data:`DYNAMIC_BANDS_RAW` order; static: ``[2, H, W]``.
    """
    dynamic = np.asarray(dynamic)
    static = np.asarray(static)
    if dynamic.ndim != 4 or dynamic.shape[1] != RAW_PER_STEP:
        raise InputError(f"{path}: dynamic array must be [T, {RAW_PER_STEP}, H, W], got {list(dynamic.shape)}")
    if static.shape != (N_STATIC,) + dynamic.shape[2:]:
        raise InputError(f"{path}: static array must be [{N_STATIC}, H, W], got {list(static.shape)}")
    t, _, h, w = dynamic.shape
    data = np.concatenate([dynamic.reshape(t * RAW_PER_STEP, h, w), static], axis=0).astype(dtype)
    names = raw_band_names(t)
    profile = dict(driver="GTiff", width=w, height=h, count=len(names), dtype=dtype, crs=crs,
                   transform=transform, compress="deflate", interleave="pixel")
    if h >= 16 and w >= 16 and h % 16 == 0 and w % 16 == 0:
        profile.update(tiled=True, blockxsize=min(256, w - w % 16), blockysize=min(256, h - h % 16))
    profile.update(creation_options or {})
    path = Path(path)
    with atomic_path(path, suffix=".tif") as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            for i, name in enumerate(names, start=1):
                dst.set_band_description(i, name)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
    return path


__all__ = ["write_ee_tiff"]
