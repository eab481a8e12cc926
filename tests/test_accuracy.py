"""Map accuracy: the Olofsson et al. (2014) estimator against the paper's worked example, and
``assess`` on hand-made maps whose confusion matrix, F1, AUC and areas are known by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cropmeta.errors import InputError
from cropmeta.mapping.accuracy import assess, olofsson_area, pixel_areas


def test_olofsson_2014_worked_example():
    """Olofsson et al. 2014 (RSE 148:42–57), section 5 example: 4 classes, 10 million 30 m pixels
    (0.09 ha). Published: deforestation 21,158 ± 6,158 ha, forest gain 11,686 ± 3,756 ha, stable
    forest 285,770 ha, stable non-forest 581,386 ha; user's accuracy of deforestation 0.88,
    producer's 0.75; overall accuracy 0.95."""
    counts = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]
    mapped_ha = np.array([200_000, 150_000, 3_200_000, 6_450_000]) * 0.09
    r = olofsson_area(counts, mapped_ha)
    np.testing.assert_allclose(r["area"], [21_158, 11_686, 285_770, 581_386], atol=1.0)
    np.testing.assert_allclose(r["ci"][:2], [6_158, 3_756], atol=1.0)
    assert r["users_accuracy"][0] == pytest.approx(0.88)
    assert r["producers_accuracy"][0] == pytest.approx(0.75, abs=0.005)
    assert r["overall_accuracy"] == pytest.approx(0.95, abs=0.005)
    assert r["area"].sum() == pytest.approx(mapped_ha.sum())


def test_olofsson_undefined_when_a_stratum_has_no_sample():
    r = olofsson_area([[0, 0], [3, 7]], [5.0, 5.0])
    assert np.isnan(r["area"]).all()
    r = olofsson_area([[1, 0], [3, 7]], [5.0, 5.0])  # one sample in stratum 0: no variance
    assert np.isfinite(r["area"]).all() and np.isnan(r["se"]).all()


def _write(path, bands, crs="ESRI:54034", transform=None, nodata=255, dtype="uint8", desc=None):
    bands = np.asarray(bands)
    if bands.ndim == 2:
        bands = bands[None]
    transform = transform or from_origin(1_000_000, 500_000, 10, 10)
    with rasterio.open(path, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1],
                       count=bands.shape[0], dtype=dtype, crs=crs, transform=transform, nodata=nodata) as d:
        d.write(bands.astype(dtype))
        if desc:
            for i, n in enumerate(desc, 1):
                d.set_band_description(i, n)
        if bands.shape[0] == 2:
            d.update_tags(2, threshold="0.5")
    return path


@pytest.fixture()
def hand_map(tmp_path):
    """10×11 map of 10 m pixels (100 m² each) in an equal-area CRS: columns 0–5 class 1 (p 0.80),
    6–9 class 0 (p 0.20), column 10 nodata. Truth: columns 0–4 crop, 5–10 not crop."""
    prob = np.full((10, 11), 20, np.uint8)
    prob[:, :6] = 80
    cls = (prob >= 50).astype(np.uint8)
    prob[:, 10] = 255
    cls[:, 10] = 255
    truth = np.zeros((10, 11), np.uint8)
    truth[:, :5] = 1
    m = _write(tmp_path / "map.tif", [prob, cls], desc=["probability", "class"])
    t = _write(tmp_path / "truth.tif", truth, nodata=None)
    return m, t


def test_assess_hand_made_map(hand_map, tmp_path):
    m, t = hand_map
    r = assess(m, t, out_json=tmp_path / "acc.json")
    assert r["confusion_matrix"]["matrix"] == [[40, 10], [0, 50]]
    assert r["f1"] == pytest.approx(100 / 110)
    assert r["precision"] == pytest.approx(50 / 60) and r["recall"] == 1.0
    # crops all at 0.8; non-crops 10 at 0.8 (ties count 1/2), 40 at 0.2 → 0.8 + 0.5 · 0.2
    assert r["auc_roc"] == pytest.approx(0.9)
    assert r["mapped_area_ha"] == pytest.approx(1.0, rel=1e-6)
    assert r["mapped_crop_area_ha"] == pytest.approx(0.6, rel=1e-6)
    assert r["reference_crop_area_ha"] == pytest.approx(0.5, rel=1e-6)
    # stratified estimate: W1 = 0.6 · 50/60 = 0.5 of 1 ha; SE = sqrt(0.36 · (5/6)(1/6) / 59)
    assert r["adjusted_crop_area_ha"] == pytest.approx(0.5, rel=1e-6)
    se = np.sqrt(0.36 * (5 / 6) * (1 / 6) / 59)
    assert r["adjusted_crop_area_se_ha"] == pytest.approx(se, rel=1e-6)
    assert r["adjusted_crop_area_ci95_ha"] == pytest.approx(1.959964 * se, rel=1e-5)
    assert json.loads((tmp_path / "acc.json").read_text())["f1"] == pytest.approx(r["f1"])


def test_assess_with_label_points(hand_map, tmp_path):
    import geopandas as gpd

    m, _ = hand_map
    # pixel centres: x = 1_000_005 + 10 col, y = 499_995 − 10 row
    rows = [(0, 0, 1), (1, 2, 1), (2, 5, 0), (3, 7, 0), (4, 8, 1), (5, 10, 1), (6, 3, -1)]
    xs = [1_000_005 + 10 * c for _, c, _ in rows] + [0.0]
    ys = [499_995 - 10 * r for r, _, _ in rows] + [0.0]
    lab = [v for *_, v in rows] + [1]
    g = gpd.GeoDataFrame({"is_crop": lab}, geometry=gpd.points_from_xy(xs, ys), crs="ESRI:54034")
    g.to_crs("EPSG:4326").to_file(tmp_path / "labels.geojson")
    r = assess(m, tmp_path / "labels.geojson")
    # (0,0) tp, (1,2) tp, (2,5) fp, (3,7) tn, (4,8) fn; (5,10) on nodata, last point off the map,
    # (6,3) unlabelled
    assert r["confusion_matrix"]["matrix"] == [[1, 1], [1, 2]]
    assert r["n_reference"] == 5 and r["n_points_outside_map"] == 2
    assert r["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_stratified_sample_is_seeded_and_sized(tmp_path):
    rng = np.random.default_rng(0)
    truth = (rng.random((60, 60)) < 0.3).astype(np.uint8)
    prob = np.where(truth == 1, rng.integers(40, 101, truth.shape), rng.integers(0, 61, truth.shape)).astype(np.uint8)
    cls = (prob >= 50).astype(np.uint8)
    m = _write(tmp_path / "m.tif", [prob, cls], desc=["probability", "class"])
    t = _write(tmp_path / "t.tif", truth, nodata=None)
    a = assess(m, t, per_class=50, seed=1)
    b = assess(m, t, per_class=50, seed=1)
    full = assess(m, t)
    assert a == b
    mat = np.array(a["confusion_matrix"]["matrix"])
    assert mat[:, 1].sum() == 50 and mat[:, 0].sum() == 50  # 50 per map class
    # census estimate equals the true crop area; the sample's CI covers it
    assert full["adjusted_crop_area_ha"] == pytest.approx(full["reference_crop_area_ha"], rel=1e-9)
    lo, hi = a["adjusted_crop_area_interval_ha"]
    assert lo <= full["reference_crop_area_ha"] <= hi and hi - lo > 0


def test_areas_in_equal_area_projection_not_degrees(tmp_path):
    """0.001° pixels at 60° N: each is ~111 m × 56 m, computed by projecting, checked against
    pyproj's geodesic area."""
    from pyproj import Geod

    tr = from_origin(10.0, 60.01, 0.001, 0.001)
    a = pixel_areas(tr, "EPSG:4326", rasterio.windows.Window(0, 0, 3, 10))
    geod = Geod(ellps="WGS84")
    lon0, lat0 = 10.0, 60.01
    ring_lons = [lon0, lon0 + 0.001, lon0 + 0.001, lon0, lon0]
    ring_lats = [lat0, lat0, lat0 - 0.001, lat0 - 0.001, lat0]
    expect = abs(geod.polygon_area_perimeter(ring_lons, ring_lats)[0])
    assert a[0, 0] == pytest.approx(expect, rel=1e-3)
    assert 5000 < a[0, 0] < 7000 and a[9, 0] > a[0, 0]  # grows towards the equator
    with pytest.raises(InputError, match="no CRS"):
        pixel_areas(tr, None, rasterio.windows.Window(0, 0, 1, 1))


def test_assess_bad_input(hand_map, tmp_path):
    m, _ = hand_map
    with pytest.raises(InputError, match="truth.*not found"):
        assess(m, tmp_path / "truth_missing.tif")
    (tmp_path / "l.csv").write_text("lat,lon\n1,2\n")
    with pytest.raises(InputError, match=r"l\.csv: cannot tell crop from non-crop: no 'is_crop' column"):
        assess(m, tmp_path / "l.csv")
    disjoint = _write(tmp_path / "far.tif", np.ones((5, 5)), nodata=None, transform=from_origin(0, 0, 10, 10))
    with pytest.raises(InputError, match="does not overlap"):
        assess(m, disjoint)
