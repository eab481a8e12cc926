"""PNG quick-look of a map: the probability band (read from the overviews, at most ``max_px`` on the
long side) in a colour map, nodata transparent, the region's outline on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from cropmeta._fs import atomic_path


def quicklook(map_path: str | Path, out_png: str | Path, region_geometry: BaseGeometry | None = None,
              title: str | None = None, max_px: int = 1024, cmap: str = "YlGn") -> Path:
    """Write the quick-look PNG atomically; ``region_geometry`` is in EPSG:4326."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    map_path, out_png = Path(map_path), Path(out_png)
    with rasterio.open(map_path) as ds:
        scale = max(ds.width, ds.height) / max_px
        h, w = (ds.height, ds.width) if scale <= 1 else (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        try:
            a = ds.read(1, out_shape=(h, w), resampling=Resampling.nearest, masked=True).astype("float32")
        except rasterio.errors.RasterioError as e:
            from cropmeta.errors import InputError

            raise InputError(f"{map_path}: cannot read the map for its quick-look ({e})") from e
        if ds.dtypes[0] == "uint8":
            a = a * 0.01
        left, bottom, right, top = ds.bounds
        crs = ds.crs
    prob = np.ma.masked_invalid(a)
    fig, ax = plt.subplots(figsize=(7, 7 * max(h / max(w, 1), 0.3)), dpi=100)
    cm = plt.get_cmap(cmap).with_extremes(bad=(0, 0, 0, 0))
    im = ax.imshow(prob, cmap=cm, vmin=0, vmax=1, extent=(left, right, bottom, top), interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="probability")
    if region_geometry is not None and crs is not None:
        import geopandas as gpd

        g = gpd.GeoSeries([region_geometry], crs="EPSG:4326").to_crs(crs)
        g.boundary.plot(ax=ax, color="black", linewidth=1.0)
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
    ax.set_title(title or map_path.name, fontsize=10)
    ax.set_xlabel(f"x ({crs.to_string() if crs else 'no CRS'})", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
    return out_png
