"""Quick-looks a person wants (issue 28, item 7): title from the map's own tags (region, crop,
learner, season), degrees on the axes, probability and class side by side with the crop share and
area, and a sparse mosaic drawn on its tiles' footprints instead of a blank picture."""

from __future__ import annotations

import json

import numpy as np
import rasterio
from rasterio.transform import from_origin

from cropmeta.mapping.quicklook import CLASS_COLOURS, crop_area, map_title, quicklook


def _map(path, west, north, res, crs, prob, tags=None):
    cls = np.where(prob == 255, 255, (prob >= 50).astype(np.uint8))
    with rasterio.open(path, "w", driver="GTiff", width=prob.shape[1], height=prob.shape[0], count=2, dtype="uint8",
                       nodata=255, crs=crs, transform=from_origin(west, north, res, res)) as d:
        d.write(prob, 1)
        d.write(cls, 2)
        d.update_tags(**(tags or {}))
    return path


def test_crop_area_and_share_from_the_class_band(tmp_path):
    prob = np.full((10, 20), 20, np.uint8)
    prob[:, :5] = 90  # 50 crop pixels of 10 m x 10 m = 0.5 ha
    prob[0, :] = 255  # one row unmapped
    m = _map(tmp_path / "m.tif", 500000, 100000, 10.0, "EPSG:32636", prob)
    a = crop_area(m)
    assert a["pixels"] == 180 and a["crop_pixels"] == 45 and abs(a["crop_share"] - 0.25) < 1e-12
    # 45 pixels of 10 m x 10 m in UTM: 0.45 ha, measured in the equal-area projection `assess` uses
    # (UTM's scale factor makes the true area differ from the nominal one by < 0.1 %)
    assert abs(a["crop_area_ha"] - 0.45) < 0.45e-3


def test_title_comes_from_the_maps_tags():
    tags = {"TASK": json.dumps({"region": "Kenya", "crop": "maize"}), "CONFIG": json.dumps({"learner": "timl"}),
            "DATE_RANGE": json.dumps(["2019-02-06", "2020-01-31"])}
    assert map_title(tags) == "Kenya maize — timl — 2019-02 … 2020-01"
    assert map_title({}) == "crop map"


def test_a_sparse_mosaic_is_drawn_on_its_tiles(tmp_path):
    """Two 8-px tiles 2° apart: read at the mosaic's scale they vanished (a blank PNG)."""
    import matplotlib.image as mpimg

    a = _map(tmp_path / "a.tif", 30.0, 1.0, 0.0001, "EPSG:4326", np.full((8, 8), 90, np.uint8))
    b = _map(tmp_path / "b.tif", 32.0, -1.0, 0.0001, "EPSG:4326", np.full((8, 8), 90, np.uint8))
    from cropmeta.mapping.cog import write_vrt

    vrt = write_vrt([a, b], tmp_path / "m.vrt")
    png = quicklook(vrt, tmp_path / "m.png")
    img = mpimg.imread(png)[..., :3]
    green = np.array([int(CLASS_COLOURS[1][i:i + 2], 16) / 255 for i in (1, 3, 5)])
    crop_px = (np.abs(img - green).max(axis=-1) < 0.02).sum()
    assert crop_px > 300  # both tiles on the picture (the legend's patch alone is ~150 px)
    assert crop_area(vrt)["crop_pixels"] == 128
