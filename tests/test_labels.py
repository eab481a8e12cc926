"""Label files: real CropHarvest raw labels (exact counts) and every supported format."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, MultiPoint, Point, box

from cropmeta.errors import DataError, InputError
from cropmeta.io.labels import read_labels, togo_eval_points

RAW = "cropharvest_raw_labels"


def _in_box(g, min_lat, max_lat, min_lon, max_lon):
    return g["lat"].between(min_lat, max_lat) & g["lon"].between(min_lon, max_lon)


@pytest.mark.shared
def test_togo_eval_rebuilt_by_cropharvest_rule(shared_data):
    g = togo_eval_points(shared_data / RAW / "togo")
    assert len(g) == 306
    assert g["is_crop"].value_counts().to_dict() == {0: 200, 1: 106}
    assert g["votes"].value_counts().sort_index().to_dict() == {0: 131, 1: 69, 3: 56, 4: 50}
    assert g["lat"].min() == pytest.approx(6.25, abs=0.01) and g["lat"].max() == pytest.approx(11.05, abs=0.01)
    assert g["lon"].min() == pytest.approx(-0.01, abs=0.01) and g["lon"].max() == pytest.approx(1.76, abs=0.01)
    assert set(g["split"]) == {"test"} and set(g["region"]) == {"Togo"} and g["sample_id"].is_unique
    assert g.crs.to_epsg() == 4326


@pytest.mark.shared
def test_kenya_plantvillage_from_utm(shared_data):
    g = read_labels(shared_data / RAW / "kenya" / "ref_african_crops_kenya_01_labels", crop_type_column="Crop1",
                    id_column="Field ID")
    assert len(g) == 319
    counts = g["label"].value_counts().to_dict()
    assert counts == {"maize": 197, "cassava": 59, "fallowland": 23, "millet": 16, "groundnut": 10,
                      "sugarcane": 3, "sorghum": 2, "bean": 2, "tomato": 2, "soybean": 2, "sweetpotato": 1,
                      "banana": 1, "cabbage": 1}
    assert (g["is_crop"] == 1).all()
    assert g.loc[g["label"] == "maize", "crop_group"].eq("cereals").all()
    # reprojected from EPSG:32636: field centroids sit next to the surveyed lat/lon (western Kenya)
    assert g["lat"].between(0.0, 1.0).all() and g["lon"].between(33.9, 34.6).all()
    # CropHarvest's Kenya_maize_2020_0 test box (config.TEST_REGIONS) holds 23 field centroids
    inside = g[_in_box(g, 0.47190, 0.47749, 34.22847, 34.23266)]
    assert len(inside) == 23
    assert inside["label"].value_counts().to_dict() == {"maize": 11, "cassava": 4, "fallowland": 3, "millet": 2,
                                                        "sugarcane": 1, "sweetpotato": 1, "banana": 1}
    assert g["footprint"].notna().all()  # polygons kept for pixel sampling


@pytest.mark.shared
def test_brazil_lem(shared_data):
    g = read_labels(shared_data / RAW / "brazil" / "lem_brazil" / "LEM_dataset.shp", class_column="Sep_2020",
                    crop_values="Coffee,Cotton,Corn,Millet,Sorghum")
    assert len(g) == 1854  # 1,771 polygons + 83 multi-polygons, one centroid each
    assert g["label"].value_counts().to_dict() == {"millet": 64, "sorghum": 60, "coffee": 19, "cotton": 16, "corn": 13}
    assert (g["is_crop"] == 1).sum() == 172
    assert g.loc[g["is_crop"] == 0, "class_value"].value_counts()["uncultivated soil"] == 1137
    # Brazil_coffee_2020_0 test box. Measured: 33 centroids (12 Cerrado, 9 Coffee, 5 Hay, 4 Conversion
    # area, 3 Pasture). SOURCE.md says 32 with 2 Pasture: field 35's centroid is 0.0004° inside the
    # box's west edge (-45.8234 vs -45.8238); representative points give 32.
    inside = g[_in_box(g, -12.1995, -12.1226, -45.8238, -45.7579)]
    assert inside["class_value"].value_counts().to_dict() == {"cerrado": 12, "coffee": 9, "hay": 5,
                                                              "conversion area": 4, "pasture": 3}


def _points(crs="EPSG:4326"):
    g = gpd.GeoDataFrame({"pid": [10, 11, 12], "klass": ["Maize", "grass", "Cassava"], "kind": [1, 0, 1]},
                         geometry=[Point(34.1, 0.5), Point(34.2, 0.6), Point(34.3, 0.7)], crs="EPSG:4326")
    return g.to_crs(crs)


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp", ".parquet", ".csv"])
def test_every_format_reads_the_same(tmp_path, suffix):
    g = _points("EPSG:32636")  # stored in UTM except CSV (lat/lon columns)
    path = tmp_path / f"labels{suffix}"
    if suffix == ".csv":
        pd.DataFrame({"pid": [10, 11, 12], "klass": g["klass"], "latitude": [0.5, 0.6, 0.7],
                      "longitude": [34.1, 34.2, 34.3]}).to_csv(path, index=False)
        kw = {"lat_column": "latitude", "lon_column": "longitude"}
    elif suffix == ".parquet":
        g.to_parquet(path)
        kw = {}
    else:
        g.to_file(path)
        kw = {}
    out = read_labels(path, class_column="klass", crop_values=["maize", "CASSAVA"], id_column="pid", **kw)
    assert out.crs.to_epsg() == 4326
    np.testing.assert_allclose(out["lat"], [0.5, 0.6, 0.7], atol=1e-9)
    np.testing.assert_allclose(out["lon"], [34.1, 34.2, 34.3], atol=1e-9)
    assert out["is_crop"].tolist() == [1, 0, 1]
    assert out["label"].tolist() == ["maize", None, "cassava"]
    assert out["crop_group"].tolist() == ["cereals", "non_crop", "root_tuber"]
    assert out["sample_id"].tolist() == ["10", "11", "12"]
    assert set(out["split"]) == {"train"}


def test_polygon_centroid_in_metric_crs(tmp_path):
    # a 100 m square in UTM 36N: its centroid is its centre, exactly
    sq = gpd.GeoDataFrame({"is_crop": [1]}, geometry=[box(500000, 50000, 500100, 50100)], crs="EPSG:32636")
    sq.to_file(tmp_path / "sq.geojson")
    out = read_labels(tmp_path / "sq.geojson")
    centre = gpd.GeoSeries([Point(500050, 50050)], crs="EPSG:32636").to_crs(4326).iloc[0]
    assert out["lon"].iloc[0] == pytest.approx(centre.x, abs=1e-9)
    assert out["lat"].iloc[0] == pytest.approx(centre.y, abs=1e-9)
    assert out["footprint"].iloc[0].geom_type == "Polygon"
    # a large high-latitude lon/lat box: its area centroid lies south of the degree-space centre (62°N)
    # because the box narrows northwards
    big = gpd.GeoDataFrame({"is_crop": [0]}, geometry=[box(10, 60, 14, 64)], crs="EPSG:4326")
    big.to_file(tmp_path / "big.geojson")
    out = read_labels(tmp_path / "big.geojson")
    assert 61.9 < out["lat"].iloc[0] < 61.99 and out["crop_group"].iloc[0] == "non_crop"


def test_class_values_and_unlabelled(tmp_path):
    g = _points()
    g["klass"] = ["Maize", None, "cassava"]
    g.to_file(tmp_path / "l.gpkg")
    out = read_labels(tmp_path / "l.gpkg", class_column="klass", crop_values="maize")
    assert out["is_crop"].tolist() == [1, -1, 0] and out["crop_group"].tolist() == ["cereals", None, "non_crop"]
    # 0/1 class column without crop values
    out = read_labels(tmp_path / "l.gpkg", class_column="kind")
    assert out["is_crop"].tolist() == [1, 0, 1] and out["label"].tolist() == [None, None, None]
    with pytest.raises(InputError, match=r"l\.gpkg: class column 'klass' holds values .*cassava.*crop-values"):
        read_labels(tmp_path / "l.gpkg", class_column="klass")
    # every row of a file is one class
    out = read_labels(tmp_path / "l.gpkg", default_is_crop=0)
    assert out["is_crop"].tolist() == [0, 0, 0]
    with pytest.raises(InputError, match="cannot tell crop from non-crop.*pid, klass, kind"):
        read_labels(tmp_path / "l.gpkg")


def test_missing_column_is_named(tmp_path):
    _points().to_file(tmp_path / "l.geojson")
    with pytest.raises(InputError,
                       match=r"l\.geojson: class column 'crop' does not exist; available columns: pid, klass, kind"):
        read_labels(tmp_path / "l.geojson", class_column="crop")
    with pytest.raises(InputError, match="crop type column 'Crop1' does not exist"):
        read_labels(tmp_path / "l.geojson", crop_type_column="Crop1")
    pd.DataFrame({"y": [0.5], "x": [34.0]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match=r"t\.csv: latitude column 'lat' does not exist; available columns: y, x"):
        read_labels(tmp_path / "t.csv", default_is_crop=1)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_layers_crs_and_geometry_types(tmp_path):
    gpkg = tmp_path / "two.gpkg"
    _points().to_file(gpkg, layer="a")
    _points().iloc[:1].to_file(gpkg, layer="b")
    with pytest.raises(InputError, match=r"two\.gpkg: holds 2 layers \(a, b\)"):
        read_labels(gpkg, class_column="kind")
    assert len(read_labels(gpkg, class_column="kind", layer="b")) == 1
    # a file without CRS needs crs=
    g = _points()
    g.set_crs(None, allow_override=True).to_file(tmp_path / "nocrs.shp")
    (tmp_path / "nocrs.prj").unlink(missing_ok=True)
    with pytest.raises(InputError, match=r"nocrs\.shp: the file declares no coordinate reference system"):
        read_labels(tmp_path / "nocrs.shp", class_column="kind")
    assert len(read_labels(tmp_path / "nocrs.shp", class_column="kind", crs="EPSG:4326")) == 3
    # multi-points explode; lines are refused
    mp = gpd.GeoDataFrame({"is_crop": [0]}, geometry=[MultiPoint([(34, 0), (35, 1)])], crs="EPSG:4326")
    mp.to_file(tmp_path / "mp.geojson")
    assert len(read_labels(tmp_path / "mp.geojson")) == 2
    ln = gpd.GeoDataFrame({"is_crop": [0]}, geometry=[LineString([(34, 0), (35, 1)])], crs="EPSG:4326")
    ln.to_file(tmp_path / "ln.geojson")
    with pytest.raises(InputError, match=r"ln\.geojson: geometry type\(s\) \['LineString'\]"):
        read_labels(tmp_path / "ln.geojson")


def test_directory_and_bad_files(tmp_path):
    d = tmp_path / "labels"
    d.mkdir()
    _points().iloc[:2].to_file(d / "a.geojson")
    _points().iloc[2:].to_file(d / "b.geojson")
    (d / "notes.csv").write_text("Property,Description\n")  # documentation tables are not labels
    out = read_labels(d, class_column="kind")
    assert len(out) == 3 and out["sample_id"].is_unique and set(out["dataset"]) == {"labels"}
    (tmp_path / "broken.geojson").write_text("{not json")
    with pytest.raises(InputError, match=r"broken\.geojson: cannot read label file"):
        read_labels(tmp_path / "broken.geojson")
    with pytest.raises(InputError, match="label file not found"):
        read_labels(tmp_path / "absent.geojson")
    empty = gpd.GeoDataFrame({"is_crop": [1]}, geometry=[None], crs="EPSG:4326")
    empty.to_file(tmp_path / "empty.geojson")
    with pytest.raises(DataError, match="no labels with a geometry"):
        read_labels(tmp_path / "empty.geojson")


def test_crop_values_that_match_no_row_are_refused(tmp_path, caplog):
    """Issue 28 (1): --crop-values Maize on a column holding Cropland/Grass silently made every label
    non-crop; now it is refused with the values the column holds and a 'did you mean'."""
    g = gpd.GeoDataFrame({"landcover": ["Cropland", "Grass", "Cropland"]},
                         geometry=gpd.points_from_xy([1.0, 1.1, 1.2], [8.0, 8.1, 8.2]), crs="EPSG:4326")
    g.to_file(tmp_path / "l.geojson")
    with pytest.raises(InputError, match=r"l\.geojson: --crop-values maize match\(es\) no row of class column "
                                         r"'landcover'; it holds 'cropland', 'grass'"):
        read_labels(tmp_path / "l.geojson", class_column="landcover", crop_values="Maize")
    with pytest.raises(InputError, match=r"did you mean 'cropland'\?"):
        read_labels(tmp_path / "l.geojson", class_column="landcover", crop_values="Croplands")
    out = read_labels(tmp_path / "l.geojson", class_column="landcover", crop_values="Cropland,Maize")
    assert out["is_crop"].tolist() == [1, 0, 1]
    assert any("--crop-values maize match no row" in r.getMessage() for r in caplog.records)
