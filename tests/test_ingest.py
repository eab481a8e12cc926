"""Ingestion: simulated-world layout, user tiles + labels, polygons, resumability, the real Togo export."""

from __future__ import annotations

import json
import os
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box

from cropmeta.testing import make_world, pixel_centre, tiny_tile
from cropmeta.errors import DataError, InputError
from cropmeta.ingest import ingest
from cropmeta.datasets import list_datasets, load_datasets
from cropmeta.io.eetiff import read_ee_tiff
from cropmeta.io.sampling import sample_points
from cropmeta.io.store import read_report, read_samples
from cropmeta.regions import get_region

DATE = "2019-02-06_2020-02-01"


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = make_world(tmp_path / "world")
    calls = []

    def ensure_world(seed: int = 0, home=None):
        calls.append((seed, home))
        return w

    monkeypatch.setattr("cropmeta.sim.ensure_world", ensure_world, raising=False)
    return w, calls


def _pixel_values(world, meta_row):
    da = read_ee_tiff(world / meta_row["tile"])
    return da.values[:, :, int(meta_row["pixel_row"]), int(meta_row["pixel_col"])]


def test_sim_world_default_source(world, tmp_path):
    world, calls = world
    home = tmp_path / "home"
    r = ingest(seed=7, home=home, progress=False)
    assert calls == [(7, home)]
    assert set(r.datasets) == {"kenya", "togo"} and list_datasets(home) == ["kenya", "togo"]
    kenya = read_samples(r.datasets["kenya"])
    assert len(kenya) == 16 and kenya.t == 3 and set(kenya.meta["region"]) == {"Kenya"}
    # each point takes the pixel holding it: values equal the reader's pixel, exactly
    for i in (0, 5, 15):
        np.testing.assert_array_equal(kenya.x[i], _pixel_values(world, kenya.meta.iloc[i]))
    labels = gpd.read_parquet(world / "labels.parquet").set_index("sample_id")
    m = kenya.meta.set_index("sample_id")
    assert (m["is_crop"] == labels.loc[m.index, "is_crop"]).all()
    assert (m["split"] == labels.loc[m.index, "split"]).all()
    rep = read_report(r.datasets["kenya"])
    assert rep["class_balance"] == {"test": {"crop": 1, "non_crop": 1, "unlabelled": 0, "labels": {"maize": 1}},
                                    "train": {"crop": 7, "non_crop": 7, "unlabelled": 0, "labels": {"maize": 7}}}
    assert r.report["summary"]["samples"] == 32 and r.report["summary"]["tiles_complete"] == 2
    both = load_datasets(home)
    assert len(both) == 32
    assert len(load_datasets(home, names=["Togo"])) == 16
    with pytest.raises(InputError, match=r"no dataset\(s\) \['peru'\]; stored: kenya, togo"):
        load_datasets(home, names=["peru"])


def test_region_filter_and_rerun_is_idempotent(world, tmp_path):
    world, _ = world
    home = tmp_path / "home"
    r1 = ingest(region=get_region("kenya"), home=home, progress=False)
    assert list(r1.datasets) == ["kenya"] and r1.report["labels_outside_region"] == 16
    arrays = r1.datasets["kenya"] / "arrays.nc"
    stamp = arrays.stat().st_mtime_ns
    r2 = ingest(region="Kenya", home=home, progress=False)
    assert r2.report["tiles"]["cached"] == 1 and r2.report["tiles"]["complete"] == 0
    assert r2.report["datasets"]["kenya"]["data_hash"] == r1.report["datasets"]["kenya"]["data_hash"]
    # same content: the store is not rewritten, only its report refreshed
    assert r2.report["datasets"]["kenya"]["unchanged"] is True and arrays.stat().st_mtime_ns == stamp
    assert read_report(r2.datasets["kenya"])["tiles"]["cached"] == 1
    # a changed tile (new mtime) is read again; the untouched one stays cached
    tile = world / "tiles" / "kenya" / f"0-sim-kenya_{DATE}.tif"
    os.utime(tile, ns=(tile.stat().st_atime_ns, tile.stat().st_mtime_ns + 10**9))
    r3 = ingest(region=get_region("kenya"), home=home, progress=False)
    assert r3.report["tiles"]["complete"] == 1 and r3.report["tiles"]["cached"] == 0
    # all regions: Kenya's tile is staged now, Togo's is new
    r4 = ingest(home=home, progress=False)
    assert r4.report["tiles"]["complete"] == 1 and r4.report["tiles"]["cached"] == 1
    assert set(r4.datasets) == {"kenya", "togo"}


def test_failed_tile_is_resumable(world, tmp_path):
    world, _ = world
    home = tmp_path / "home"
    togo = world / "tiles" / "togo" / f"1-sim-togo_{DATE}.tif"
    good = togo.read_bytes()
    togo.write_bytes(good[: len(good) // 3])  # truncated
    with pytest.raises(InputError, match=r"1-sim-togo.*\.tif: .*(corrupt or truncated|not a readable)"):
        ingest(home=home, progress=False)
    assert list_datasets(home) == []  # nothing written
    r = ingest(home=home, progress=False, allow_failed=True)  # skip it: Kenya only, failure reported
    assert set(r.datasets) == {"kenya"} and r.report["tiles"]["failed"] == 1
    assert "Togo" in r.report["regions_skipped"] and r.report["summary"]["tiles_failed"] == 1
    assert r.report["tiles"]["cached"] == 1  # Kenya was staged by the failed run
    togo.write_bytes(good)
    r = ingest(home=home, progress=False)
    assert set(r.datasets) == {"kenya", "togo"}
    assert r.report["tiles"]["cached"] == 1 and r.report["tiles"]["complete"] == 1


def _user_tiles(tmp_path, crs="EPSG:4326", west=34.30, north=0.70, res=0.001):
    d = tmp_path / "tiles"
    path, dyn, static, tr = tiny_tile(d / f"5-mine_{DATE}.tif", t=3, h=4, w=6, west=west, north=north, res=res,
                                      crs=crs, seed=4)
    return d, path, tr


def test_user_tiles_labels_outside_raster_reported(tmp_path):
    d, path, tr = _user_tiles(tmp_path)
    pts = [Point(*pixel_centre(tr, 1, 2)), Point(*pixel_centre(tr, 3, 5)), Point(34.5, 0.5), Point(34.6, 0.4)]
    gpd.GeoDataFrame({"id": ["a", "b", "c", "d"], "crop": ["Maize", "bare", "Maize", "bare"]}, geometry=pts,
                     crs="EPSG:4326").to_file(tmp_path / "l.geojson")
    r = ingest(region=get_region("Kenya"), source=d, labels=tmp_path / "l.geojson", home=tmp_path / "h",
               label_options={"class_column": "crop", "crop_values": ["maize"], "id_column": "id"}, progress=False)
    rep = r.report["datasets"]["kenya"]
    assert rep["labels"] == 4 and rep["samples"] == 2 and rep["outside_raster"] == 2
    assert rep["outside_raster_ids"] == ["c", "d"]
    s = read_samples(r.datasets["kenya"])
    assert s.meta["sample_id"].tolist() == ["a", "b"] and s.meta["label"].tolist()[0] == "maize"
    da = read_ee_tiff(path)
    np.testing.assert_array_equal(s.x[0], da.values[:, :, 1, 2])
    np.testing.assert_array_equal(s.x[1], da.values[:, :, 3, 5])
    assert s.meta["start_date"].tolist() == ["2019-02-06"] * 2


def test_regions_from_countries_and_skipped_regions(tmp_path):
    d, path, tr = _user_tiles(tmp_path)
    pts = [Point(*pixel_centre(tr, 0, 1)), Point(32.5, 0.3), Point(0.0, 0.0)]  # Kenya (on the tile), Uganda, sea
    gpd.GeoDataFrame({"is_crop": [1, 0, 1]}, geometry=pts, crs="EPSG:4326").to_file(tmp_path / "l.geojson")
    r = ingest(source=d, labels=tmp_path / "l.geojson", home=tmp_path / "h", progress=False)
    assert list(r.datasets) == ["kenya"]
    assert r.report["labels_outside_all_regions"] == 1
    assert list(r.report["regions_skipped"]) == ["Uganda"]
    assert "none of the 1 labels" in r.report["regions_skipped"]["Uganda"]
    assert r.report["summary"]["regions_skipped"] == 1
    # asking for Uganda explicitly is an error naming the problem
    with pytest.raises(DataError, match=r"region 'Uganda': .*l\.geojson: none of the 1 labels .* lies on any raster"):
        ingest(region="Uganda", source=d, labels=tmp_path / "l.geojson", home=tmp_path / "h", progress=False)


def test_utm_tile_is_sampled_at_the_right_pixel(tmp_path):
    # a tile in UTM 36N; labels in EPSG:4326 are reprojected to find their pixel
    d, path, tr = _user_tiles(tmp_path, crs="EPSG:32636", west=700000, north=60000, res=10)
    xy = [pixel_centre(tr, 2, 4), pixel_centre(tr, 0, 0)]
    ll = gpd.GeoSeries([Point(*p) for p in xy], crs="EPSG:32636").to_crs(4326)
    labels = gpd.GeoDataFrame({"is_crop": [1, 0]}, geometry=ll.values, crs="EPSG:4326")
    labels.to_parquet(tmp_path / "l.parquet")
    r = ingest(source=path, labels=tmp_path / "l.parquet", home=tmp_path / "h", progress=False)
    s = read_samples(r.datasets["kenya"])
    da = read_ee_tiff(path)
    assert s.meta[["pixel_row", "pixel_col"]].values.tolist() == [[2, 4], [0, 0]]
    np.testing.assert_array_equal(s.x[0], da.values[:, :, 2, 4])
    np.testing.assert_array_equal(s.x[1], da.values[:, :, 0, 0])


def test_polygons_centroid_or_every_pixel(tmp_path):
    d, path, tr = _user_tiles(tmp_path)
    x0, y1 = tr * (1, 1)  # a polygon covering pixels rows 1-2, cols 1-2
    x1, y0 = tr * (3, 3)
    gpd.GeoDataFrame({"is_crop": [1]}, geometry=[box(x0 + 1e-6, y0 + 1e-6, x1 - 1e-6, y1 - 1e-6)],
                     crs="EPSG:4326").to_file(tmp_path / "p.geojson")
    r = ingest(source=d, labels=tmp_path / "p.geojson", home=tmp_path / "h", progress=False)
    assert r.report["datasets"]["kenya"]["samples"] == 1
    r = ingest(source=d, labels=tmp_path / "p.geojson", home=tmp_path / "h2", progress=False,
               label_options={"polygons": "pixels"})
    s = read_samples(r.datasets["kenya"])
    assert sorted(map(tuple, s.meta[["pixel_row", "pixel_col"]].values.tolist())) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert s.meta["sample_id"].is_unique
    # the pixels of one polygon are one field (one cluster of the comparison's field bootstrap)
    assert s.meta["field_id"].nunique() == 1 and s.meta["field_id"].notna().all()
    da = read_ee_tiff(path)
    for i, (rr, cc) in enumerate(s.meta[["pixel_row", "pixel_col"]].values):
        np.testing.assert_array_equal(s.x[i], da.values[:, :, rr, cc])
        assert (s.meta["lon"].iloc[i], s.meta["lat"].iloc[i]) == pytest.approx(pixel_centre(tr, rr, cc))


def test_field_ids_flow_from_the_labels_into_the_store(world, tmp_path):
    """A ``field_id`` column (or the column named by ``field_column``) reaches the sample store;
    without one every sample is its own field."""
    from cropmeta.io.store import field_ids

    world, _ = world
    labels = gpd.read_parquet(world / "labels.parquet")
    labels["parcel"] = [f"{sid.split('-')[0]}-f{int(sid.split('-')[1]) // 4}" for sid in labels["sample_id"]]
    labels.rename(columns={"parcel": "field_id"}).to_parquet(world / "labels.parquet")
    s = read_samples(ingest(home=tmp_path / "h", progress=False).datasets["kenya"])
    want = labels.set_index("sample_id").loc[s.meta["sample_id"], "parcel"].tolist()
    assert s.meta["field_id"].tolist() == want and s.meta["field_id"].nunique() == 4
    assert field_ids(s.meta).tolist() == want
    # another column name, given explicitly
    labels.to_parquet(world / "labels.parquet")
    s2 = read_samples(ingest(home=tmp_path / "h2", progress=False, label_options={"field_column": "parcel"})
                      .datasets["kenya"])
    assert s2.meta["field_id"].tolist() == want
    # no field column: no field_id, each sample its own field
    labels.drop(columns="parcel").to_parquet(world / "labels.parquet")
    s3 = read_samples(ingest(home=tmp_path / "h3", progress=False).datasets["kenya"])
    assert "field_id" not in s3.meta.columns
    assert len(set(field_ids(s3.meta))) == len(s3)


def test_duplicates_and_missing_values_reported(tmp_path):
    def gaps(dyn, static):
        dyn[0, 0, 1, 2] = np.nan  # VV missing in step 0 at (1, 2)
        static[1, 0, :] = np.nan  # slope missing on the top row

    d = tmp_path / "tiles"
    path, dyn, static, tr = tiny_tile(d / f"5-mine_{DATE}.tif", t=3, h=4, w=6, west=34.30, north=0.70, mutate=gaps)
    p12, p02 = pixel_centre(tr, 1, 2), pixel_centre(tr, 0, 2)
    pd.DataFrame({"sample_id": ["a", "a", "b", "c"], "is_crop": [1, 1, 0, 1], "lat": [p12[1], p12[1], p12[1], p02[1]],
                  "lon": [p12[0], p12[0], p12[0], p02[0]]}).to_csv(tmp_path / "l.csv", index=False)
    r = ingest(source=d, labels=tmp_path / "l.csv", home=tmp_path / "h", progress=False)
    rep = r.report["datasets"]["kenya"]
    assert rep["duplicates"] == {"sample_ids_dropped": 1, "same_pixel": 2, "same_pixel_conflicting_class": 2}
    assert rep["missing_values"] == {"VV": 2, "slope": 3}  # 2 samples at (1,2); slope x 3 steps for c
    assert rep["slope_filled_with_tile_mean"] == 1
    s = read_samples(r.datasets["kenya"])
    c = s.x[s.meta.index[s.meta["sample_id"] == "c"][0]]
    assert c[:, 16] == pytest.approx(np.nanmean(static[1]))
    assert not np.isnan(s.x).any()


def test_sample_points_direct(tmp_path):
    d, path, tr = _user_tiles(tmp_path)
    labels = gpd.GeoDataFrame({"sample_id": ["x"], "is_crop": [1], "lat": [pixel_centre(tr, 2, 2)[1]],
                               "lon": [pixel_centre(tr, 2, 2)[0]], "label": ["maize"], "crop_group": ["cereals"],
                               "dataset": ["d"], "split": ["train"]},
                              geometry=[Point(*pixel_centre(tr, 2, 2))], crs="EPSG:4326")
    s, rep = sample_points(labels, [path], region="Kenya")
    assert rep["samples"] == 1 and s.meta["region"].iloc[0] == "Kenya"
    np.testing.assert_array_equal(s.x[0], read_ee_tiff(path).values[:, :, 2, 2])


@pytest.mark.shared
def test_real_togo_export_with_real_labels(shared_data, tmp_path):
    tif = shared_data / "cropharvest_eo_tifs" / "98-togo_2019-02-06_2020-02-01.tif"
    labels = shared_data / "cropharvest_raw_labels" / "togo" / "crop_merged_v2"
    r = ingest(region=get_region("Togo"), source=tif, labels=labels, home=tmp_path / "h", progress=False,
               label_options={"default_is_crop": 1, "dataset": "togo"})
    rep = r.report["datasets"]["togo"]
    # 688 crop polygons, 581 of them inside Togo's borders (the others: Benin 68, Ghana 25, Burkina
    # Faso 14); only #98 lies on this export (it was exported for that polygon)
    assert r.report["labels_read"] == 688 and r.report["labels_outside_region"] == 107
    assert rep["labels"] == 581 and rep["samples"] == 1 and rep["outside_raster"] == 580
    s = read_samples(r.datasets["togo"])
    assert s.meta["sample_id"].iloc[0] == "crop_merged_v2:98"
    assert (s.meta["pixel_row"].iloc[0], s.meta["pixel_col"].iloc[0]) == (8, 8)  # the centre of 17 x 17
    np.testing.assert_array_equal(s.x[0], read_ee_tiff(tif, fill=True).values[:, :, 8, 8])
    assert json.loads((r.datasets["togo"] / "report.json").read_text())["class_balance"]["train"]["crop"] == 1


def test_cli_ingest_exit_code(tmp_path):
    """The CLI turns an InputError into one line and exit code 2 (wired by cli/app.py)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    d, path, tr = _user_tiles(tmp_path)
    labels = tmp_path / "l.geojson"
    gpd.GeoDataFrame({"k": [1]}, geometry=[Point(*pixel_centre(tr, 0, 0))], crs="EPSG:4326").to_file(labels)
    env = dict(os.environ, PYTHONPATH=str(repo))
    code = "import sys; from cli.app import main; sys.argv = ['cropmeta'] + sys.argv[1:]; main()"
    p = subprocess.run([sys.executable, "-c", code, "ingest", "--source", str(d), "--labels", str(labels),
                        "--class-column", "nope", "--home", str(tmp_path / "h")], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "class column 'nope' does not exist; available columns: k" in " ".join(p.stderr.split())
    assert not (tmp_path / "h" / "datasets").exists()
    shutil.rmtree(tmp_path / "h", ignore_errors=True)
