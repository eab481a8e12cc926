"""``check_cog``: the checks ``rio cogeo validate`` makes that matter for cropmeta's maps, plus the
map product's own contract (nodata, tags, band names). rio-cogeo is not a dependency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

BLOCK = 512
REQUIRED_TAGS = ("CROPMETA_VERSION", "MODEL_SHA256", "CONFIG", "TASK", "SEED", "DATE_RANGE")
EXPECTED_BANDS = ("probability", "class")


def _ghost_header(path: Path) -> dict[str, str]:
    """GDAL's COG 'ghost area' after the TIFF header: ``KEY=VALUE`` lines."""
    with open(path, "rb") as fh:
        head = fh.read(16 + 1024)
    marker = b"GDAL_STRUCTURAL_METADATA_SIZE="
    i = head.find(marker)
    if i < 0:
        return {}
    j = i + len(marker)
    try:
        size = int(head[j : j + 6])
    except ValueError:
        return {}
    start = head.find(b"\n", j) + 1
    text = head[start : start + size].decode("ascii", "replace")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _has_nonzero_base(ds, band: int) -> bool:
    for _, win in ds.block_windows(band):
        if np.any(ds.read(band, window=win)):
            return True
    return False


def check_cog(path: str | Path, deep: bool = True, block: int = BLOCK,
              required_tags: tuple[str, ...] = REQUIRED_TAGS) -> list[str]:
    """Problems that keep ``path`` from being a valid cropmeta map COG; empty when it is one.

    Checks: GeoTIFF with GDAL's COG layout (IFDs before data, ghost header not broken), 512-px tiles,
    DEFLATE, internal overviews (required when the map is larger than one block; present ones must be
    smaller at each level), nodata on every band, band names, the provenance tags. ``deep`` also reads
    the data: every overview level must hold non-zero values where the full-resolution band does
    (the zero-filled-overview trap)."""
    path = Path(path)
    problems: list[str] = []
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        return [f"cannot open {path}: {e}"]
    with ds:
        if ds.driver != "GTiff":
            problems.append(f"driver is {ds.driver}, not GTiff")
            return problems
        ist = ds.tags(ns="IMAGE_STRUCTURE")
        if ist.get("LAYOUT") != "COG":
            problems.append(f"layout is {ist.get('LAYOUT', 'plain GeoTIFF')!r}, not COG")
        ghost = _ghost_header(path)
        if ghost.get("LAYOUT") != "IFDS_BEFORE_DATA":
            problems.append("IFDs are not before the data (no COG ghost header)")
        if ghost.get("KNOWN_INCOMPATIBLE_EDITION", "NO") != "NO":
            problems.append("the file was edited after it was written as a COG (KNOWN_INCOMPATIBLE_EDITION)")
        if str(ist.get("COMPRESSION", "")).upper() != "DEFLATE":
            problems.append(f"compression is {ist.get('COMPRESSION', 'none')}, not DEFLATE")
        for b, shape in enumerate(ds.block_shapes, start=1):
            if tuple(shape) != (block, block):
                problems.append(f"band {b} blocks are {shape[1]}x{shape[0]}, not {block}x{block} tiles")
        if any(v is None for v in ds.nodatavals):
            problems.append("nodata is not set on every band")
        if tuple(ds.descriptions) != EXPECTED_BANDS[: ds.count] or ds.count != len(EXPECTED_BANDS):
            problems.append(f"bands are {ds.descriptions}, expected {EXPECTED_BANDS}")
        tags = ds.tags()
        missing = [t for t in required_tags if t not in tags or tags[t] == ""]
        if missing:
            problems.append(f"missing tag(s) {', '.join(missing)}")
        ovr = ds.overviews(1)
        if max(ds.width, ds.height) > block and not ovr:
            problems.append(f"no internal overviews on a {ds.width}x{ds.height} map")
        if ovr != sorted(ovr) or len(set(ovr)) != len(ovr):
            problems.append(f"overview factors {ovr} are not increasing")
        for b in range(2, ds.count + 1):
            if ds.overviews(b) != ovr:
                problems.append(f"band {b} overviews {ds.overviews(b)} differ from band 1's {ovr}")
        if deep and ovr:
            for b in range(1, ds.count + 1):
                if not _has_nonzero_base(ds, b):
                    continue
                for level in range(len(ovr)):
                    with rasterio.open(path, overview_level=level) as o:
                        if not np.any(o.read(b)):
                            problems.append(f"band {b} overview level {level} (1/{ovr[level]}) is all zeros")
    return problems
