"""The per-process cache of open map and sample inputs: each Dask worker (or the driver) opens a
file once and keeps it, keyed by path, size and modification time, so a changed file is reopened."""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["file_key", "cached", "close_cached", "CachedValue", "gdal_cache_env"]


def gdal_cache_env(mb: float):
    """``rasterio.Env`` capping GDAL's raster block cache at ``mb`` MiB. The cap is given to rasterio
    in **bytes**: rasterio hands an integer ``GDAL_CACHEMAX`` to ``GDALSetCacheMax64``, which takes
    bytes, so ``GDAL_CACHEMAX=256`` would mean a 256-byte cache (rasterio issue 2336) — every strip
    read then decodes its tiles again."""
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=int(float(mb) * 2**20))

_HANDLES: dict[tuple, object] = {}
_HANDLES_LOCK = threading.RLock()


def file_key(path: str | Path) -> tuple:
    """``(path, size, mtime)``: a cache key that changes when the file does."""
    st = os.stat(path)
    return (str(path), st.st_size, st.st_mtime_ns)


def cached(key: tuple, opener):
    """The per-process cache of open inputs (and values derived from them): ``opener()`` once per
    key and process, so that Dask workers open each input once. :func:`close_cached` empties it."""
    with _HANDLES_LOCK:
        obj = _HANDLES.get(key)
        if obj is None:
            obj = opener()
            _HANDLES[key] = obj
        return obj


def close_cached() -> None:
    """Close every input this process holds open (:func:`cached`)."""
    with _HANDLES_LOCK:
        for obj in _HANDLES.values():
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - closing best effort
                pass
        _HANDLES.clear()


class CachedValue:
    """A value kept in the :func:`cached` cache (nothing to close)."""

    def __init__(self, value):
        self.value = value

    def close(self):
        pass
