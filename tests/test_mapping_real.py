"""Maps of the real Earth-Engine exports in ../shared/data/cropharvest_eo_tifs/: the map keeps the
input's exact grid, CRS and transform; values 0–100; nodata exactly where the input is missing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import rasterio

from cropmeta.errors import DataError
from cropmeta.mapping.export import export
from cropmeta.testing import make_double_run
from cropmeta.mapping.validate import check_cog

LOADER = "cropmeta.testing:load_double"
TOGO = "98-togo_2019-02-06_2020-02-01.tif"
CROPLANDS = "373-croplands_2016-02-07_2017-02-01.tif"

pytestmark = pytest.mark.shared


@pytest.fixture()
def eo(shared_data):
    d = shared_data / "cropharvest_eo_tifs"
    if not (d / TOGO).exists():
        pytest.skip(f"{d / TOGO} not available")
    return d


@pytest.mark.parametrize("name, shape", [(TOGO, (17, 17)), (CROPLANDS, (17, 29))])
def test_real_export_keeps_grid(eo, tmp_path, name, shape):
    run = make_double_run(tmp_path / "run", kind="lstm", hidden=8)
    out = tmp_path / "map.tif"
    res = export(run, out, inputs=[eo / name], loader=LOADER, region="Togo" if name == TOGO else None,
                 progress=False)
    assert check_cog(out) == []
    with rasterio.open(eo / name) as src, rasterio.open(out) as m:
        assert (m.height, m.width) == shape
        assert m.crs == src.crs and m.crs.to_epsg() == 4326
        assert m.transform == src.transform
        assert m.bounds == src.bounds
        prob, cls = m.read(1), m.read(2)
    # every pixel has data (only slope is missing, and that is filled) → no nodata, values 0–100
    assert prob.max() <= 100 and (prob != 255).all() and set(np.unique(cls)) <= {0, 1}
    assert res["pixels_valid"] == shape[0] * shape[1]
    tags_dates = res["tags"]["DATE_RANGE"]
    assert name.split("_")[1] in tags_dates  # start date from the EE file name


def test_real_export_nodata_where_input_missing(eo, tmp_path):
    tif = tmp_path / TOGO
    shutil.copy(eo / TOGO, tif)  # a scratch copy in tmp (never in the project)
    with rasterio.open(tif, "r+") as d:
        a = d.read()
        a[:, 3:6, 4:9] = np.nan  # 15 pixels missing in every band
        a[: 17 * 3, 10, 10] = np.nan  # one pixel missing the first 3 months only: still mapped
        d.write(a)
    run = make_double_run(tmp_path / "run", kind="ndvi")
    out = tmp_path / "map.tif"
    export(run, out, inputs=[tif], loader=LOADER, progress=False, quicklook=False)
    with rasterio.open(out) as m:
        prob = m.read(1)
    missing = np.zeros((17, 17), dtype=bool)
    missing[3:6, 4:9] = True
    assert ((prob == 255) == missing).all()
    assert prob[10, 10] <= 100


def test_real_export_region_elsewhere(eo, tmp_path):
    run = make_double_run(tmp_path / "run", kind="ndvi")
    with pytest.raises(DataError, match="does not overlap"):
        export(run, tmp_path / "m.tif", inputs=[eo / TOGO], loader=LOADER, region="Ghana", progress=False)
