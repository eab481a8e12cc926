"""PNG quick-look of a map, as a person wants to see it: the probability and the class side by side,
titled with the region, crop, learner and season; longitude/latitude axes in degrees (a projected map
keeps its own metres, named); the crop share and area of the mapped pixels under the class panel;
nodata transparent; the region's outline on top. Each input of a VRT mosaic is drawn on its own
footprint, so a sparse mosaic of small tiles far apart is not a blank picture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from cropmeta._fs import atomic_path

#: class colours (not crop, crop) — also the class band's colours in the STAC Item
CLASS_COLOURS = ("#e8e4d8", "#2e7d32")


def _read(path: str, max_px: int) -> tuple[np.ndarray, np.ndarray, tuple, object, str]:
    """(probability 0–1 masked, class masked, (left, right, bottom, top), crs, dtype) at ≤ max_px."""
    with rasterio.open(path) as ds:
        scale = max(ds.width, ds.height) / max_px
        h, w = (ds.height, ds.width) if scale <= 1 else (max(1, round(ds.height / scale)),
                                                         max(1, round(ds.width / scale)))
        try:
            a = ds.read(1, out_shape=(h, w), resampling=Resampling.nearest, masked=True).astype("float32")
            c = ds.read(2, out_shape=(h, w), resampling=Resampling.nearest, masked=True).astype("float32") \
                if ds.count >= 2 else np.ma.masked_less(a, 0.5 * (100 if ds.dtypes[0] == "uint8" else 1))
        except rasterio.errors.RasterioError as e:
            from cropmeta.errors import InputError

            raise InputError(f"{path}: cannot read the map for its quick-look ({e})") from e
        if ds.dtypes[0] == "uint8":
            a = a * 0.01
        left, bottom, right, top = ds.bounds
        return np.ma.masked_invalid(a), np.ma.masked_invalid(c), (left, right, bottom, top), ds.crs, ds.dtypes[0]


def _parts(map_path: Path) -> list[str]:
    """The files to draw: a VRT's inputs (each on its footprint) when it has several, else the map."""
    if map_path.suffix.lower() == ".vrt":
        with rasterio.open(map_path) as ds:
            files = [f for f in ds.files if Path(f).suffix.lower() in (".tif", ".tiff") and Path(f) != map_path]
        if len(files) > 1:
            return files
    return [str(map_path)]


def crop_area(map_path: str | Path, rows: int = 512) -> dict:
    """Mapped pixels, crop pixels, crop share and crop area (ha; each pixel's equal-area size, as
    :func:`cropmeta.mapping.accuracy.pixel_areas` measures it for ``assess``; NaN without a CRS) of a
    map, every part of a mosaic, read in strips of ``rows`` rows."""
    from rasterio.windows import Window

    from cropmeta.mapping.accuracy import pixel_areas

    n = crop = 0
    area = 0.0
    for part in _parts(Path(map_path)):
        with rasterio.open(part) as ds:
            for r in range(0, ds.height, rows):
                win = Window(0, r, ds.width, min(rows, ds.height - r))
                cls = ds.read(2 if ds.count >= 2 else 1, window=win, masked=True)
                valid = ~np.ma.getmaskarray(cls)
                is_crop = valid & (np.ma.filled(cls, 0) >= 1)
                n += int(valid.sum())
                crop += int(is_crop.sum())
                if ds.crs is None:
                    area = float("nan")
                elif is_crop.any() and np.isfinite(area):
                    area += float(pixel_areas(ds.transform, ds.crs, win)[is_crop].sum()) / 1e4
    return {"pixels": n, "crop_pixels": crop, "crop_share": crop / n if n else float("nan"), "crop_area_ha": area}


def map_title(tags: dict) -> str:
    """"Kenya maize — TIML — 2019-02 … 2020-01" from a map's tags (what is known of it)."""
    task = json.loads(tags.get("TASK") or "null") or {}
    config = json.loads(tags.get("CONFIG") or "null") or {}
    season = json.loads(tags.get("DATE_RANGE") or "null")
    what = " ".join(str(v) for v in (task.get("region") or tags.get("REGION"), task.get("crop") or
                                      ("crop" if task.get("region") else None)) if v) or "crop map"
    learner = config.get("learner") if isinstance(config, dict) else None
    parts = [what] + ([str(learner)] if learner else [])
    if season:
        parts.append(f"{str(season[0])[:7]} … {str(season[1])[:7]}")
    return " — ".join(parts)


def _axes(ax, crs) -> None:
    from matplotlib.ticker import ScalarFormatter

    if crs is None:
        ax.set_xlabel("column (no CRS)", fontsize=8)
        ax.set_ylabel("row", fontsize=8)
        return
    if crs.is_geographic:
        ax.set_xlabel("longitude (°)", fontsize=8)
        ax.set_ylabel("latitude (°)", fontsize=8)
    else:
        unit = crs.linear_units or "m"
        ax.set_xlabel(f"x ({unit}, {crs.to_string()})", fontsize=8)
        ax.set_ylabel(f"y ({unit})", fontsize=8)
    for axis in (ax.xaxis, ax.yaxis):
        fmt = ScalarFormatter(useOffset=False)
        fmt.set_scientific(False)
        axis.set_major_formatter(fmt)


def quicklook(map_path: str | Path, out_png: str | Path, region_geometry: BaseGeometry | None = None,
              title: str | None = None, max_px: int = 1024, cmap: str = "YlGn") -> Path:
    """Write the quick-look PNG atomically; ``region_geometry`` is in EPSG:4326; ``title`` default:
    :func:`map_title` of the map's tags."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    map_path, out_png = Path(map_path), Path(out_png)
    with rasterio.open(map_path) as ds:
        tags = ds.tags()
        left, bottom, right, top = ds.bounds
        crs = ds.crs
        aspect = ds.height / max(ds.width, 1)
    parts = _parts(map_path)
    fig, (ax_p, ax_c) = plt.subplots(1, 2, figsize=(12, max(3.5, 6 * min(max(aspect, 0.3), 2.0))), dpi=100)
    prob_cm = plt.get_cmap(cmap).with_extremes(bad=(0, 0, 0, 0))
    class_cm = ListedColormap(list(CLASS_COLOURS)).with_extremes(bad=(0, 0, 0, 0))
    im = None
    for part in parts:
        prob, cls, extent, _, _ = _read(part, max_px if len(parts) == 1 else max(64, max_px // 4))
        im = ax_p.imshow(prob, cmap=prob_cm, vmin=0, vmax=1, extent=extent, interpolation="nearest")
        ax_c.imshow(cls, cmap=class_cm, vmin=0, vmax=1, extent=extent, interpolation="nearest")
        if len(parts) > 1:  # each tile's footprint, so a sparse mosaic is visible
            small = (extent[1] - extent[0]) < 0.02 * (right - left) and (extent[3] - extent[2]) < 0.02 * (top - bottom)
            for ax, values, cm in ((ax_p, prob, prob_cm), (ax_c, cls, class_cm)):
                if small and values.count():  # too small to see at this scale: a marker of its mean value
                    ax.scatter([(extent[0] + extent[1]) / 2], [(extent[2] + extent[3]) / 2], s=160, marker="s",
                               c=[float(values.mean())], cmap=cm, vmin=0, vmax=1, edgecolors="0.3", linewidths=0.6,
                               zorder=3)
                ax.add_patch(plt.Rectangle((extent[0], extent[2]), extent[1] - extent[0], extent[3] - extent[2],
                                           fill=False, edgecolor="0.4", linewidth=0.6))
    fig.colorbar(im, ax=ax_p, fraction=0.046, pad=0.04, label="P(crop)")
    positive = (json.loads(tags.get("TASK") or "null") or {}).get("crop") or "crop"
    area = crop_area(map_path)
    share = f"{area['crop_share']:.1%}" if np.isfinite(area["crop_share"]) else "n/a"
    ha = f"{area['crop_area_ha']:,.0f} ha" if np.isfinite(area["crop_area_ha"]) else "area n/a (no CRS)"
    ax_p.set_title("probability", fontsize=10)
    ax_c.set_title(f"class (threshold {tags.get('THRESHOLD', '0.5')}): {positive} {share} of {area['pixels']:,} "
                   f"mapped pixels, {ha}", fontsize=9)
    from matplotlib.patches import Patch

    ax_c.legend(handles=[Patch(color=CLASS_COLOURS[1], label=str(positive)),
                         Patch(color=CLASS_COLOURS[0], label=f"not {positive}")],
                loc="best", fontsize=7, framealpha=0.8)
    for ax in (ax_p, ax_c):
        if region_geometry is not None and crs is not None:
            import geopandas as gpd

            g = gpd.GeoSeries([region_geometry], crs="EPSG:4326").to_crs(crs)
            g.boundary.plot(ax=ax, color="black", linewidth=1.0)
        pad = 0.05 if len(parts) > 1 else 0.0  # a mosaic's edge tiles are not cut in half
        ax.set_xlim(left - pad * (right - left), right + pad * (right - left))
        ax.set_ylim(bottom - pad * (top - bottom), top + pad * (top - bottom))
        _axes(ax, crs)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or map_title(tags), fontsize=12)
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    return out_png


__all__ = ["CLASS_COLOURS", "crop_area", "map_title", "quicklook"]
