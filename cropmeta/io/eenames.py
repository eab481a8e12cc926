"""Earth-Engine export file names and dates: the CropHarvest name :func:`ee_filename`, the one
reading of export names :func:`parse_ee_filename`, the steps' dates :func:`time_coords`, and the
tiles of a path :func:`list_ee_tiffs`. The pixels are :mod:`cropmeta.io.eetiff`'s.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cropmeta.errors import InputError
from cropmeta.schema import DAYS_PER_STEP


def ee_filename(index: int | str, dataset: str, start: str, end: str) -> str:
    """CropHarvest's file name ``{index}-{dataset}_{start}_{end}.tif`` (dates ``YYYY-MM-DD``)."""
    return f"{index}-{dataset}_{start}_{end}.tif"



#: file suffixes treated as GeoTIFFs when a directory of tiles is given
TIFF_SUFFIXES = (".tif", ".tiff")

_DATE = r"(\d{4}-\d{2}-\d{2})"
#: CropHarvest: ``{index}-{dataset}_{start}_{end}.tif``
_CROPHARVEST_NAME = re.compile(rf"^(?P<index>[^-]+)-(?P<dataset>.+)_{_DATE}_{_DATE}$")
#: openmapflow: ``min_lat=…_min_lon=…_max_lat=…_max_lon=…_dates={start}_{end}_all.tif``
_OPENMAPFLOW_NAME = re.compile(rf"dates={_DATE}_{_DATE}")
#: any other name ending in ``_{start}_{end}`` (e.g. ``scene_2021-01-01_2021-12-27.tif``)
_DATED_NAME = re.compile(rf"_{_DATE}_{_DATE}$")


@dataclass(frozen=True)
class EEFileName:
    """What a tile's file name says: first/last export date, and (CropHarvest names) index/dataset."""

    start: _dt.date
    end: _dt.date
    index: str | None = None
    dataset: str | None = None


def parse_ee_filename(path: str | Path) -> EEFileName | None:
    """Dates (and CropHarvest index/dataset) from an export's file name; ``None`` if it has none.
    The one reading of export file names: ingestion takes the first step's date from it, map export
    the ``DATE_RANGE`` tag.

    >>> parse_ee_filename("98-togo_2019-02-06_2020-02-01.tif").start
    datetime.date(2019, 2, 6)
    """
    stem = Path(path).name
    for suf in TIFF_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    m = _CROPHARVEST_NAME.match(stem)
    try:
        if m:
            return EEFileName(_dt.date.fromisoformat(m.group(3)), _dt.date.fromisoformat(m.group(4)),
                              m.group("index"), m.group("dataset"))
        m = _OPENMAPFLOW_NAME.search(stem) or _DATED_NAME.search(stem)
        if m:
            return EEFileName(_dt.date.fromisoformat(m.group(1)), _dt.date.fromisoformat(m.group(2)))
    except ValueError:  # e.g. 2019-13-45: not a date, so the name carries none
        return None
    return None


def time_coords(start: str | _dt.date, t: int) -> np.ndarray:
    """``t`` monthly step dates: ``start + i * 30 days`` (datetime64[ns])."""
    start = _dt.date.fromisoformat(start) if isinstance(start, str) else start
    base = np.datetime64(start.isoformat(), "D")
    return (base + np.arange(t) * np.timedelta64(DAYS_PER_STEP, "D")).astype("datetime64[ns]")


def list_ee_tiffs(path: str | Path) -> list[Path]:
    """One GeoTIFF, or every ``*.tif``/``*.tiff`` under a directory (recursive, sorted)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix.lower() not in TIFF_SUFFIXES:
            raise InputError(f"{path}: not a GeoTIFF (expected a .tif/.tiff file or a directory of them)")
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise InputError(f"{path}: directory holds no .tif/.tiff files")
    return files


__all__ = ["EEFileName", "TIFF_SUFFIXES", "ee_filename", "list_ee_tiffs", "parse_ee_filename", "time_coords"]
