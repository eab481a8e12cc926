"""Writing the map product: a tiled GeoTIFF assembled block by block, then copied to a
Cloud-Optimised GeoTIFF with GDAL's COG driver (the route that keeps overviews correct: rioxarray's
``to_raster(driver="COG")`` on dask arrays leaves zero-filled overviews), plus VRT mosaics.

Bands: 1 ``probability`` (uint8 0–100, scale 0.01; or float32 0–1), 2 ``class`` (0/1 at the
threshold). Nodata 255 (uint8) or NaN (float32). Overviews: nearest for both bands — for the class
band that is required (no invented classes), for the probability band it keeps every overview pixel
a real model output consistent with the class band at the same level.
"""

from __future__ import annotations

import math
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from cropmeta.errors import InputError
from cropmeta._fs import atomic_path, atomic_write_text
from cropmeta.mapping.infer import quantize
from cropmeta.mapping.sources import Grid

BLOCK = 512
NODATA_U8 = 255
BAND_NAMES = ("probability", "class")


def map_dtype(as_float: bool) -> str:
    return "float32" if as_float else "uint8"


def map_nodata(as_float: bool) -> float:
    return float("nan") if as_float else float(NODATA_U8)


def overview_count(width: int, height: int, block: int = BLOCK) -> int:
    """Halvings until the map fits one block (GDAL's rule), and at least one for any map ≥ 2 px."""
    size, n = max(width, height), 0
    while size > block:
        size = math.ceil(size / 2)
        n += 1
    return max(n, 1) if max(width, height) >= 2 else 0


def band_tags(threshold: float, as_float: bool) -> list[dict[str, str]]:
    prob = {"meaning": "probability of the positive class (crop / target crop), calibrated",
            "scale": "1" if as_float else "0.01", "valid_range": "0-1" if as_float else "0-100"}
    cls = {"meaning": f"1 where probability >= {threshold:g}, else 0", "threshold": f"{threshold:g}"}
    return [prob, cls]


class GTiffWriter:
    """The intermediate tiled GeoTIFF (512-px blocks, DEFLATE), written block by block."""

    def __init__(self, path: Path, grid: Grid, as_float: bool, threshold: float):
        self.path, self.grid, self.as_float, self.threshold = Path(path), grid, as_float, threshold
        profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=2, dtype=map_dtype(as_float),
                       nodata=map_nodata(as_float), crs=grid.crs, transform=grid.affine, tiled=True,
                       blockxsize=BLOCK, blockysize=BLOCK, compress="deflate", interleave="pixel",
                       BIGTIFF="IF_SAFER")
        if grid.crs is None:
            profile.pop("crs")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dst = rasterio.open(self.path, "w", **profile)
        # start from nodata everywhere (blocks never computed — outside the ROI — stay nodata)
        self._fill = NODATA_U8 if not as_float else np.nan

    def write_block(self, window: Window, prob: np.ndarray) -> None:
        p, c = quantize(prob, self.threshold, self.as_float)
        self.dst.write(p, 1, window=window)
        self.dst.write(c, 2, window=window)

    def fill_block(self, window: Window) -> None:
        prob = np.full((int(window.height), int(window.width)), np.nan, dtype=np.float32)
        self.write_block(window, prob)

    def finish(self, tags: dict[str, str]) -> Path:
        d = self.dst
        for i, name in enumerate(BAND_NAMES, start=1):
            d.set_band_description(i, name)
        d.scales = (1.0, 1.0) if self.as_float else (0.01, 1.0)
        d.offsets = (0.0, 0.0)
        d.units = ("probability", "class")
        d.update_tags(**tags)
        for i, bt in enumerate(band_tags(self.threshold, self.as_float), start=1):
            d.update_tags(i, **bt)
        d.close()
        return self.path

    def abort(self) -> None:
        try:
            self.dst.close()
        finally:
            if self.path.exists():
                self.path.unlink()


def cog_options(width: int, height: int) -> dict:
    return dict(COMPRESS="DEFLATE", BLOCKSIZE=BLOCK, OVERVIEW_RESAMPLING="NEAREST", BIGTIFF="IF_SAFER",
                OVERVIEW_COUNT=overview_count(width, height), PREDICTOR="NO")


def copy_to_cog(src: Path, out: Path, check: bool = True) -> Path:
    """Copy a raster (GTiff or VRT) to a COG at ``out`` atomically: the previous file at ``out`` is
    replaced only by a complete, checked COG."""
    from cropmeta.mapping.validate import check_cog

    out = Path(out)
    with rasterio.open(src) as s:
        opts = cog_options(s.width, s.height)
    try:
        with atomic_path(out, suffix=".tif") as tmp:
            rasterio.shutil.copy(str(src), str(tmp), driver="COG", **opts)
            if check:
                problems = check_cog(tmp, deep=False)
                if problems:
                    raise InputError(f"{out}: the written map is not a valid COG: {'; '.join(problems)}")
    except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError, OSError) as e:
        raise InputError(f"{out}: cannot write the map ({e})") from e
    return out


def check_writable(out: Path) -> None:
    """Fail before any work when ``out``'s folder cannot take a new file (unwritable, a file, ...)."""
    out = Path(out)
    if out.exists() and out.is_dir():
        raise InputError(f"{out}: output path is a directory; give a file name such as map.tif")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(prefix=f".{out.name}.", suffix=".probe", dir=out.parent):
            pass
    except OSError as e:
        raise InputError(f"{out}: cannot write the map there ({e.strerror or e})") from e


# ------------------------------------------------------------------------------------------------
# VRT mosaic
# ------------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return repr(float(v))


def write_vrt(tiles: list[Path], out: Path, tags: dict[str, str] | None = None, threshold: float = 0.5,
              relative: bool = True) -> Path:
    """A VRT mosaic of map files on one grid (same CRS, pixel size and pixel alignment). Later tiles
    are drawn over earlier ones except where they hold nodata."""
    if not tiles:
        raise InputError(f"{out}: no map tiles to mosaic")
    infos = []
    for p in tiles:
        with rasterio.open(p) as s:
            infos.append((Path(p), s.crs, s.transform, s.width, s.height, s.dtypes[0], s.nodata, s.count,
                          s.block_shapes[0]))
    p0, crs0, t0 = infos[0][0], infos[0][1], infos[0][2]
    for p, crs, t, *_ in infos[1:]:
        if crs != crs0:
            raise InputError(f"{p}: CRS {crs} differs from {p0}'s {crs0}; a mosaic needs one CRS "
                             "(export these tiles separately, mosaic='none')")
        if not (math.isclose(t.a, t0.a, rel_tol=1e-9) and math.isclose(t.e, t0.e, rel_tol=1e-9)
                and t.b == 0 and t.d == 0):
            raise InputError(f"{p}: pixel size {(t.a, t.e)} differs from {p0}'s {(t0.a, t0.e)}; "
                             "a mosaic needs one grid (export these tiles separately, mosaic='none')")
    xres, yres = t0.a, t0.e
    lefts = [t.c for _, _, t, *_ in infos]
    tops = [t.f for _, _, t, *_ in infos]
    rights = [t.c + w * xres for _, _, t, w, *_ in infos]
    bottoms = [t.f + h * yres for _, _, t, _, h, *_ in infos]
    left, top = min(lefts), (max(tops) if yres < 0 else min(tops))
    right, bottom = max(rights), (min(bottoms) if yres < 0 else max(bottoms))
    width = int(round((right - left) / xres))
    height = int(round((bottom - top) / yres))
    dtype, nodata, count = infos[0][5], infos[0][6], infos[0][7]
    gdal_type = {"uint8": "Byte", "float32": "Float32"}[dtype]

    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    if crs0 is not None:
        ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="2,1" if crs0.is_geographic else "1,2").text = \
            crs0.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(_fmt(v) for v in (left, xres, 0.0, top, 0.0, yres))
    if tags:
        md = ET.SubElement(root, "Metadata")
        for k, v in tags.items():
            ET.SubElement(md, "MDI", key=k).text = str(v)
    nd_text = "nan" if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)) else _fmt(nodata)
    as_float = dtype == "float32"
    for b in range(1, count + 1):
        band = ET.SubElement(root, "VRTRasterBand", dataType=gdal_type, band=str(b))
        bmd = ET.SubElement(band, "Metadata")
        for k, v in band_tags(threshold, as_float)[b - 1].items():
            ET.SubElement(bmd, "MDI", key=k).text = v
        ET.SubElement(band, "Description").text = BAND_NAMES[b - 1]
        ET.SubElement(band, "NoDataValue").text = nd_text
        ET.SubElement(band, "UnitType").text = BAND_NAMES[b - 1]
        ET.SubElement(band, "Offset").text = "0"
        ET.SubElement(band, "Scale").text = "1" if as_float else ("0.01" if b == 1 else "1")
        for p, _, t, w, h, _, _, _, (bh, bw) in infos:
            xoff = (t.c - left) / xres
            yoff = (t.f - top) / yres
            if abs(xoff - round(xoff)) > 1e-6 or abs(yoff - round(yoff)) > 1e-6:
                raise InputError(f"{p}: not aligned to the mosaic's pixel grid (offset {xoff:.3f}, {yoff:.3f} px)")
            src = ET.SubElement(band, "ComplexSource")
            rel = os.path.relpath(p, out.parent) if relative else str(Path(p).resolve())
            ET.SubElement(src, "SourceFilename", relativeToVRT="1" if relative else "0").text = rel
            ET.SubElement(src, "SourceBand").text = str(b)
            ET.SubElement(src, "SourceProperties", RasterXSize=str(w), RasterYSize=str(h), DataType=gdal_type,
                          BlockXSize=str(bw), BlockYSize=str(bh))
            ET.SubElement(src, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
            ET.SubElement(src, "DstRect", xOff=str(int(round(xoff))), yOff=str(int(round(yoff))), xSize=str(w),
                          ySize=str(h))
            ET.SubElement(src, "NODATA").text = nd_text
    ET.indent(root)
    atomic_write_text(out, ET.tostring(root, encoding="unicode") + "\n")
    return out


def iter_blocks(width: int, height: int, block: int = BLOCK) -> Iterable[Window]:
    """Output blocks in row-major order (the COG's own tiling)."""
    for r in range(0, height, block):
        for c in range(0, width, block):
            yield Window(c, r, min(block, width - c), min(block, height - r))
