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


@pytest.mark.slow
def test_real_togo_export_with_a_presto_run(eo, shared_presto, tmp_path):
    """A `presto` run (the published weights, a logistic regression fitted on toy samples placed in
    Togo) maps the real Togo export on its own grid; each pixel is embedded at its own centre and the
    export's start month (February 2019, from the file name)."""
    import json

    from rasterio.transform import xy
    from rasterio.warp import transform as warp

    from cropmeta.learners import get_learner
    from cropmeta.mapping.sources import open_eetiff
    from cropmeta.models.weights import weights_dir
    from cropmeta.models.published import PRESTO
    from cropmeta.testing import toy_samples
    from cropmeta.train import checkpoint as ck

    dest = weights_dir(PRESTO) / PRESTO.safetensors_name  # the workspace copy (a tmp workspace)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_presto / "default_model.safetensors", dest)
    toy = toy_samples(n_per_label=10, n_noncrop=10, t=12, seed=0, regions=[("Togo", 8.0, 1.0, ["maize"])])
    y = toy.meta["is_crop"].to_numpy().astype(int)
    model = get_learner("presto").start(12).adapt(toy.x, y, lat=toy.meta["lat"].to_numpy(),
                                                   lon=toy.meta["lon"].to_numpy(),
                                                   start_dates=toy.meta["start_date"].tolist())
    run = tmp_path / "run"
    ck.save_model(run, model, {"seed": 0, "date_range": ["2019-02-06", "2019-02-06"]})
    (run / "config.json").write_text(json.dumps({"seed": 0}))
    out = tmp_path / "map.tif"
    res = export(run, out, inputs=[eo / TOGO], region="Togo", progress=False, as_float=True)
    assert check_cog(out) == [] and res["pixels_valid"] == 17 * 17
    with rasterio.open(eo / TOGO) as src, rasterio.open(out) as m:
        assert (m.crs, m.transform, m.width, m.height) == (src.crs, src.transform, src.width, src.height)
        got, tf = m.read(1), src.transform
    source = open_eetiff(eo / TOGO)
    x, valid = source.read(rasterio.windows.Window(0, 0, 17, 17))
    rows, cols = np.nonzero(valid)
    lon, lat = warp(source.grid.crs, "EPSG:4326", *map(list, xy(tf, rows, cols)))
    assert source.first_date() == "2019-02-06"
    want = model.predict_proba(x, lat=np.array(lat), lon=np.array(lon), start_dates=["2019-02-06"] * len(x))
    assert np.allclose(got[valid], want, atol=1e-6)
    # the same map on 2 Dask workers (each loads the run and the Presto encoder once)
    res2 = export(run, tmp_path / "map2.tif", inputs=[eo / TOGO], region="Togo", progress=False, as_float=True,
                  workers=2)
    with rasterio.open(res2["map"]) as m2:
        assert np.array_equal(m2.read(1), got)


def test_api_predict_on_raw_pixels_answers_as_the_map_does(eo, tmp_path):
    """Issue 28 (4): `cropmeta.predict(model, pixels_array(read_ee_tiff(tif)))` returned NaN for 109
    of the real Togo tif's 289 pixels (the slope border) while the map filled them; now both apply
    the export's fill rule and agree on every pixel."""
    import cropmeta
    from cropmeta.io.eetiff import pixels_array, read_ee_tiff

    run = make_double_run(tmp_path / "run", kind="lstm", hidden=8)
    out = tmp_path / "map.tif"
    export(run, out, inputs=[eo / TOGO], loader=LOADER, progress=False, quicklook=False, as_float=True)
    da = read_ee_tiff(eo / TOGO)
    x = pixels_array(da)
    assert np.isnan(x).any(axis=(1, 2)).sum() > 100  # the slope border
    from cropmeta.testing import load_double

    double = load_double(run)

    class Model:  # the test double behind the API's predict_proba(x, batch_size=…)
        bands = double.bands if hasattr(double, "bands") else None

        def predict_proba(self, x, batch_size=None):
            return double.predict_proba(x)

    model = Model()
    if model.bands is None:
        del Model.bands
    prob = cropmeta.predict(model, x)
    with rasterio.open(out) as m:
        want = m.read(1).reshape(-1)
    assert np.isfinite(prob).all()
    np.testing.assert_allclose(prob, want, atol=1e-6)


def test_map_records_what_it_maps_and_warns_when_far_or_off_season(eo, tmp_path, caplog):
    """Issue 28 (2): the map's DATE_RANGE was the training data's range; nothing said a Kenya model
    mapped a tile in Togo. Now: the mapped season, the training season, input hashes and versions in
    the tags and in a STAC Item beside the map, and a warning for each mismatch."""
    import hashlib
    import json

    import pystac

    kenya = {"id": "Kenya:maize", "name": "Kenya maize", "region": "Kenya", "crop": "maize", "lat": -0.02,
             "lon": 37.9}
    run = make_double_run(tmp_path / "run", kind="lstm", hidden=8, task=kenya, date_range=["2019-09-01", "2019-09-01"])
    out = tmp_path / "map.tif"
    res = export(run, out, inputs=[eo / TOGO], loader=LOADER, progress=False)
    tags = res["tags"]
    assert json.loads(tags["DATE_RANGE"])[0] == "2019-02-06"  # the Togo export's own season
    assert json.loads(tags["TRAINING_DATE_RANGE"]) == ["2019-09-01", "2019-09-01"]
    sha = hashlib.sha256((eo / TOGO).read_bytes()).hexdigest()
    assert json.loads(tags["INPUT_SHA256"]) == {TOGO: sha}
    assert {"cropmeta", "rasterio", "gdal", "numpy"} <= set(json.loads(tags["SOFTWARE"]))
    warns = res["warnings"]
    assert any("km from the model's target 'Kenya'" in w for w in warns)
    assert any("mapped season starts in February" in w and "September" in w for w in warns)
    assert any("far from where it was trained" in r.getMessage() for r in caplog.records)
    item = pystac.Item.from_file(str(res["stac_item"]))
    assert item.properties["start_datetime"].startswith("2019-02-06")
    assert item.properties["proj:shape"] == [17, 17] and item.properties.get("proj:epsg", 4326) == 4326
    assert item.properties["cropmeta:model"]["target"]["region"] == "Kenya"
    assert item.properties["cropmeta:inputs"] == {TOGO: sha} and len(item.properties["cropmeta:warnings"]) == 2
    assert set(item.assets) >= {"map", "quicklook"} and item.assets["map"].href == "map.tif"
    bands = item.assets["map"].extra_fields["raster:bands"]
    assert len(bands) == 2 and [c["color_hint"] for c in bands[1]["classification:classes"]] == ["E8E4D8", "2E7D32"]
    with rasterio.open(out) as m:
        assert json.loads(m.tags()["DATE_RANGE"])[0] == "2019-02-06"


def test_inputs_of_two_seasons_are_named(eo):
    from cropmeta.mapping.provenance import map_provenance
    from cropmeta.mapping.sources import open_source

    tags, warns = map_provenance({"DATE_RANGE": "null", "TASK": "null"},
                                 [open_source(eo / TOGO), open_source(eo / CROPLANDS)])
    assert json_loads(tags["DATE_RANGE"]) == ["2016-02-07", json_loads(tags["DATE_RANGE"])[1]]
    assert any("the inputs mix seasons: their first steps run from 2016-02-07 to 2019-02-06" in w for w in warns)


def json_loads(s):
    import json

    return json.loads(s)
