"""Bad input: each case gives one clear InputError/DataError naming the file and the problem, and
the previously written store stays exactly as it was (no half-written output, no temp dirs)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Point

from cropmeta.testing import pixel_centre, raw_stack, tiny_tile
from cropmeta.errors import DataError, InputError
from cropmeta.ingest import ingest
from cropmeta.io.store import read_samples
from cropmeta.regions import get_region, region_from_bbox
from cropmeta.schema import DYNAMIC_BANDS_RAW, raw_band_names

NAME = "7-mine_2019-02-06_2020-02-01.tif"
WEST, NORTH, RES = 34.30, 0.70, 0.001
KENYA = get_region("Kenya")


def _labels(path, tr, crs="EPSG:4326"):
    pts = [Point(*pixel_centre(tr, r, c)) for r, c in ((0, 0), (1, 2), (3, 3))]
    g = gpd.GeoDataFrame({"id": ["a", "b", "c"], "klass": ["maize", "bush", "maize"]}, geometry=pts, crs="EPSG:4326")
    g.to_crs(crs).to_file(path)
    return path


@pytest.fixture
def store(tmp_path):
    """A good ingest into ``home``; returns (home, labels file, content hash of the Kenya dataset)."""
    home = tmp_path / "home"
    d = tmp_path / "good"
    _, _, _, tr = tiny_tile(d / NAME, t=3, h=4, w=4, west=WEST, north=NORTH, res=RES)
    labels = _labels(tmp_path / "labels.geojson", tr)
    r = ingest(region=KENYA, source=d, labels=labels, home=home, progress=False,
               label_options={"class_column": "klass", "crop_values": "maize", "id_column": "id"})
    return home, labels, read_samples(r.datasets["kenya"]).content_hash()


def _bad_ingest(store, source, exc=InputError, match=None, region=KENYA, labels=None, **opts):
    home, good_labels, before = store
    options = {"class_column": "klass", "crop_values": "maize", "id_column": "id"}
    options.update(opts)
    with pytest.raises(exc, match=match) as err:
        ingest(region=region, source=source, labels=labels or good_labels, home=home, progress=False,
               label_options=options)
    # the previous store is intact and nothing half-written lies around
    assert read_samples(home / "datasets" / "kenya").content_hash() == before
    assert sorted(p.name for p in (home / "datasets").iterdir()) == ["kenya"]
    return str(err.value)


def _tile_dir(tmp_path, **kw):
    d = tmp_path / "bad"
    tiny_tile(d / NAME, t=3, h=4, w=4, west=WEST, north=NORTH, res=RES, **kw)
    return d


def test_corrupt_geotiff(store, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / NAME).write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    msg = _bad_ingest(store, d, match=r"7-mine_2019-02-06_2020-02-01\.tif: not a readable GeoTIFF")
    assert "corrupt or truncated" in msg


@pytest.mark.parametrize("keep", [0.3, 0.97])
def test_truncated_geotiff(store, tmp_path, keep):
    d = _tile_dir(tmp_path)
    data = (d / NAME).read_bytes()
    (d / NAME).write_bytes(data[: int(len(data) * keep)])
    _bad_ingest(store, d, match=r"7-mine_2019-02-06_2020-02-01\.tif: .*corrupt or truncated")


def _write_raw(path, count, descriptions=None, crs="EPSG:4326"):
    data = np.ones((count, 4, 4), dtype="float32")
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=count, dtype="float32", crs=crs,
                       transform=from_origin(WEST, NORTH, RES, RES)) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, name)


def test_wrong_band_count(store, tmp_path):
    _write_raw(tmp_path / "bad" / NAME, 20)
    _bad_ingest(store, tmp_path / "bad", match=r"7-mine.*\.tif: 20 bands is not an Earth-Engine export layout "
                                                 r"\(expected T\*17\+2 bands")


def test_missing_or_wrong_band_descriptions(store, tmp_path):
    _write_raw(tmp_path / "bad" / NAME, 3 * 17 + 2)
    _bad_ingest(store, tmp_path / "bad", match=r"7-mine.*\.tif: band 1 has no description \(expected 'VV'\)")
    names = raw_band_names(3)
    names[2], names[3] = names[3], names[2]  # B1 and B2 swapped
    _write_raw(tmp_path / "bad" / NAME, 3 * 17 + 2, descriptions=names)
    _bad_ingest(store, tmp_path / "bad", match=r"7-mine.*\.tif: band 3 is described as 'B2', expected 'B1'")


def test_all_nan_band(store, tmp_path):
    def no_temperature(dyn, static):
        dyn[:, DYNAMIC_BANDS_RAW.index("temperature_2m")] = np.nan

    d = _tile_dir(tmp_path, mutate=no_temperature)
    _bad_ingest(store, d, DataError, match=r"7-mine.*\.tif: band\(s\) 'temperature_2m' \(3 of 3 samples\) are NaN "
                                           r"at every time step")


def test_all_nan_slope_is_filled_not_an_error(tmp_path):
    """The documented exception: an all-NaN slope takes the tile mean (SRTM border pixels)."""
    def slope_border(dyn, static):
        static[1, 0, :] = np.nan

    d = _tile_dir(tmp_path, mutate=slope_border)
    labels = _labels(tmp_path / "l.geojson", from_origin(WEST, NORTH, RES, RES))
    r = ingest(region=KENYA, source=d, labels=labels, home=tmp_path / "h", progress=False,
               label_options={"class_column": "klass", "crop_values": "maize"})
    assert r.report["datasets"]["kenya"]["slope_filled_with_tile_mean"] == 1


def test_labels_outside_region(store, tmp_path):
    d = tmp_path / "good"
    msg = _bad_ingest(store, d, DataError, region=get_region("Togo"),
                      match=r"labels\.geojson: region 'Togo' holds none of the 3 labels")
    assert "lon 34.3005..34.3035" in msg  # says where the labels are


def test_labels_outside_raster(store, tmp_path):
    far = tmp_path / "far.geojson"
    gpd.GeoDataFrame({"id": ["x", "y"], "klass": ["maize", "bush"]}, geometry=[Point(36.0, -1.0), Point(36.1, -1.1)],
                     crs="EPSG:4326").to_file(far)
    _bad_ingest(store, tmp_path / "good", DataError, labels=far,
                match=r"far\.geojson: none of the 2 labels .* lies on any raster: "
                      r"7-mine.*\.tif: lon 34\.3000\.\.34\.3040")


def test_crs_other_than_4326(store, tmp_path):
    # (1) a tile without any CRS cannot be placed: clear error
    names = raw_band_names(3)
    _write_raw(tmp_path / "bad" / NAME, 3 * 17 + 2, descriptions=names, crs=None)
    _bad_ingest(store, tmp_path / "bad", match=r"7-mine.*\.tif: the raster has no coordinate reference system")
    # (2) labels stored in UTM and a tile in UTM are handled: exact pixels, same result as EPSG:4326
    home, labels, before = store
    utm_labels = _labels(tmp_path / "utm.geojson", from_origin(WEST, NORTH, RES, RES), crs="EPSG:32636")
    r = ingest(region=KENYA, source=tmp_path / "good", labels=utm_labels, home=tmp_path / "h2", progress=False,
               label_options={"class_column": "klass", "crop_values": "maize", "id_column": "id"})
    assert read_samples(r.datasets["kenya"]).content_hash() == before


def test_label_column_does_not_exist(store, tmp_path):
    _bad_ingest(store, tmp_path / "good", class_column="Crop",
                match=r"labels\.geojson: class column 'Crop' does not exist; available columns: id, klass")


def test_empty_region(store, tmp_path):
    empty = region_from_bbox("35.0,-2.0,35.1,-1.9", name="empty-box")
    _bad_ingest(store, tmp_path / "good", DataError, region=empty,
                match=r"region 'empty-box' holds none of the 3 labels")


def test_unknown_option_and_missing_labels(store, tmp_path):
    _bad_ingest(store, tmp_path / "good", match=r"unknown label option\(s\) \['colour'\]", colour="red")
    home, labels, _ = store
    with pytest.raises(InputError, match=r"GeoTIFF sources need a label file"):
        ingest(region=KENYA, source=tmp_path / "good", home=home, progress=False)
    with pytest.raises(InputError, match=r"--source .*nowhere: no such file or directory"):
        ingest(region=KENYA, source=tmp_path / "nowhere", labels=labels, home=home, progress=False)


@pytest.mark.parametrize("args", [
    ("ingest", "--region", "togo", "--home", "{f}/h"),
    ("train", "--region", "kenya", "--home", "{f}"),
    ("compare", "--region", "kenya", "--home", "{f}"),
    ("sim", "--out", "{f}/world"),
    ("export", "--run", "{f}", "--out", "{f}/map.tif"),
    ("calibrate", "--run", "{f}"),
    ("assess", "{f}", "--truth", "{f}", "--out", "{f}/acc.json"),
    ("view", "{f}", "-o", "{f}/v.html"),
    ("fetch", "--out", "{f}/tifs", "--region", "togo", "--year", "2020"),
    ("models", "download", "presto", "--home", "{f}"),
    ("era5-catalogue", "{f}", "--out", "{f}/cat"),
], ids=["ingest", "train", "compare", "sim", "export", "calibrate", "assess", "view", "fetch", "models-download",
        "era5-catalogue"])
def test_an_unwritable_workspace_or_output_is_one_line_exit_2(tmp_path, args):
    """Issue 28 (3): a file where the workspace or output folder should be gave a 65-line traceback
    and exit 1; now every command says it in one line naming the path, exit 2, and writes nothing."""
    from test_issue14 import cli

    f = tmp_path / "a-file"
    f.write_text("not a folder")
    r = cli(*[a.format(f=f) for a in args], cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and str(f) in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"] and f.read_text() == "not a folder"
