"""Earth-Engine GeoTIFF reader: real CropHarvest exports (exact values) and tiny written tiles."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from cropmeta.testing import tiny_tile
from cropmeta.errors import DataError, InputError
from cropmeta.io.eenames import list_ee_tiffs, parse_ee_filename
from cropmeta.io.eetiff import (
    ee_tiff_info,
    pixels_array,
    read_ee_raw,
    read_ee_tiff,
)
from cropmeta.schema import BANDS, DYNAMIC_BANDS_RAW, RAW_PER_STEP, true_ndvi

TOGO = "cropharvest_eo_tifs/98-togo_2019-02-06_2020-02-01.tif"
CROPLANDS = "cropharvest_eo_tifs/373-croplands_2016-02-07_2017-02-01.tif"


def _raw_index(band: str, step: int, t: int) -> int:
    """0-based raster band index of a canonical band at a step in the raw export layout."""
    if band == "elevation":
        return t * RAW_PER_STEP
    if band == "slope":
        return t * RAW_PER_STEP + 1
    return step * RAW_PER_STEP + DYNAMIC_BANDS_RAW.index(band)


@pytest.mark.shared
def test_real_togo_export_exact(shared_data):
    path = shared_data / TOGO
    da = read_ee_tiff(path)
    assert da.dims == ("time", "band", "y", "x")
    assert da.shape == (12, 18, 17, 17)
    assert da.sizes["y"] * da.sizes["x"] == 289
    assert [str(b) for b in da.band.values] == BANDS
    # monthly (30-day) steps from the date in the file name
    assert str(da.time.values[0])[:10] == "2019-02-06"
    assert np.all(np.diff(da.time.values) == np.timedelta64(30, "D"))
    # static bands constant over time; temperature in (0 K, 329.85 K)
    for b in ("elevation", "slope"):
        v = da.sel(band=b).values
        np.testing.assert_array_equal(v, np.broadcast_to(v[0], v.shape))
    temp = da.sel(band="temperature_2m").values
    assert np.nanmin(temp) > 0 and np.nanmax(temp) < 329.85
    # every canonical band equals a plain rasterio read of its raw band, exactly (as float32)
    with rasterio.open(path) as src:
        raw = src.read()
        crs, transform = src.crs, src.transform
    for band in BANDS[:-1]:
        for step in (0, 5, 11):
            np.testing.assert_array_equal(da.sel(band=band).values[step],
                                          raw[_raw_index(band, step, 12)].astype(np.float32))
    b8, b4 = raw[_raw_index("B8", 3, 12)], raw[_raw_index("B4", 3, 12)]
    np.testing.assert_allclose(da.sel(band="NDVI").values[3], true_ndvi(b8, b4), rtol=1e-6)
    assert da.rio.crs == crs and da.rio.transform() == transform
    # pixel centres as coordinates
    assert da.x.values[0] == pytest.approx(transform.c + transform.a / 2)
    # the file's NaNs (slope border) are kept by default and filled on request
    assert np.isnan(da.sel(band="slope").values).any()
    filled = read_ee_tiff(path, fill=True)
    assert not np.isnan(filled.values).any()
    border = np.isnan(da.sel(band="slope").values[0])
    expect = np.nanmean(raw[-1])
    np.testing.assert_allclose(filled.sel(band="slope").values[0][border], expect, rtol=1e-6)


@pytest.mark.shared
def test_real_croplands_export(shared_data):
    da = read_ee_tiff(shared_data / CROPLANDS)
    assert (da.sizes["time"], da.sizes["band"], da.sizes["y"], da.sizes["x"]) == (12, 18, 17, 29)
    assert str(da.time.values[0])[:10] == "2016-02-07"
    info = ee_tiff_info(shared_data / CROPLANDS)
    assert (info.t, info.height, info.width) == (12, 17, 29)
    assert info.bounds[0] == pytest.approx(65.354, abs=1e-3) and info.bounds[1] == pytest.approx(55.710, abs=1e-3)


def test_filename_conventions(tmp_path):
    p = parse_ee_filename("98-togo_2019-02-06_2020-02-01.tif")
    assert (p.index, p.dataset, p.start.isoformat(), p.end.isoformat()) == ("98", "togo", "2019-02-06", "2020-02-01")
    p = parse_ee_filename("12-kenya-non-crop_2019-01-01_2019-12-27.tif")
    assert (p.index, p.dataset) == ("12", "kenya-non-crop")
    p = parse_ee_filename("min_lat=0.1_min_lon=34.2_max_lat=0.2_max_lon=34.3_dates=2020-02-01_2021-02-01_all.tif")
    assert p.index is None and p.start.isoformat() == "2020-02-01"
    p = parse_ee_filename("scene_2021-01-01_2021-12-27.tif")  # any name ending in _{start}_{end}
    assert (p.index, p.start.isoformat(), p.end.isoformat()) == (None, "2021-01-01", "2021-12-27")
    assert parse_ee_filename("scene.tif") is None
    assert parse_ee_filename("1-x_2019-13-45_2020-02-01.tif") is None

    path, *_ = tiny_tile(tmp_path / "scene.tif", t=3)
    with pytest.raises(InputError, match=r"scene\.tif: cannot tell the export's start date"):
        read_ee_tiff(path)
    da = read_ee_tiff(path, start_date="2021-03-01")
    assert [str(v)[:10] for v in da.time.values] == ["2021-03-01", "2021-03-31", "2021-04-30"]
    with pytest.raises(InputError, match="not an ISO date"):
        read_ee_tiff(path, start_date="March")


@pytest.mark.parametrize("t", [1, 3])
def test_any_t_roundtrip(tmp_path, t):
    path, dyn, static, transform = tiny_tile(tmp_path / f"0-demo_2020-01-01_2021-01-01.tif", t=t, h=4, w=5)
    da = read_ee_tiff(path)
    assert da.shape == (t, 18, 4, 5)
    for i, band in enumerate(BANDS[:-3]):  # the 15 dynamic bands
        np.testing.assert_array_equal(da.values[:, i], dyn[:, DYNAMIC_BANDS_RAW.index(band)])
    np.testing.assert_array_equal(da.sel(band="elevation").values, np.broadcast_to(static[0], (t, 4, 5)))
    ndvi = true_ndvi(dyn[:, DYNAMIC_BANDS_RAW.index("B8")], dyn[:, DYNAMIC_BANDS_RAW.index("B4")])
    np.testing.assert_allclose(da.sel(band="NDVI").values, ndvi, rtol=1e-6)
    # pixels_array: row-major pixel order
    px = pixels_array(da)
    assert px.shape == (20, t, 18)
    np.testing.assert_array_equal(px[7], da.values[:, :, 1, 2])


def test_window_and_raw(tmp_path):
    path, dyn, *_ = tiny_tile(tmp_path / "0-demo_2020-01-01_2021-01-01.tif", t=2, h=6, w=5)
    full = read_ee_tiff(path)
    win = read_ee_tiff(path, window=Window(1, 2, 3, 2))
    np.testing.assert_array_equal(win.values, full.values[:, :, 2:4, 1:4])
    np.testing.assert_array_equal(win.x.values, full.x.values[1:4])
    raw, info = read_ee_raw(path)
    assert raw.shape == (2 * 17 + 2, 6, 5) and info.t == 2
    np.testing.assert_array_equal(raw[17:34], dyn[1].astype(np.float64))


def test_fill_policy(tmp_path):
    def holes(dyn, static):
        dyn[1, DYNAMIC_BANDS_RAW.index("VV"), 0, 0] = np.nan  # one missing step
        static[1, 0, :] = np.nan  # slope NaN along the top border

    path, dyn, static, _ = tiny_tile(tmp_path / "0-demo_2020-01-01_2021-01-01.tif", t=3, mutate=holes)
    da = read_ee_tiff(path, fill=True)
    vv = dyn[:, DYNAMIC_BANDS_RAW.index("VV"), 0, 0]
    assert da.sel(band="VV").values[1, 0, 0] == pytest.approx(np.nanmean(vv), rel=1e-6)
    np.testing.assert_allclose(da.sel(band="slope").values[:, 0, :], np.nanmean(static[1]), rtol=1e-6)
    np.testing.assert_array_equal(da.sel(band="slope").values[0, 1:, :], static[1, 1:, :])

    def no_temp(dyn, static):
        dyn[:, DYNAMIC_BANDS_RAW.index("temperature_2m"), 2, 3] = np.nan

    bad, *_ = tiny_tile(tmp_path / "1-demo_2020-01-01_2021-01-01.tif", t=3, mutate=no_temp)
    with pytest.raises(DataError, match=r"1-demo.*temperature_2m"):
        read_ee_tiff(bad, fill=True)
    assert np.isnan(read_ee_tiff(bad).sel(band="temperature_2m").values[:, 2, 3]).all()


def test_other_crs_kept(tmp_path):
    path, *_ = tiny_tile(tmp_path / "0-utm_2020-01-01_2021-01-01.tif", t=2, west=500000, north=10000, res=10,
                         crs="EPSG:32636")
    da = read_ee_tiff(path)
    assert da.rio.crs.to_epsg() == 32636
    assert da.x.values[0] == pytest.approx(500005.0)


def test_list_tiles(tmp_path):
    a, *_ = tiny_tile(tmp_path / "d" / "0-a_2020-01-01_2021-01-01.tif", t=1)
    b, *_ = tiny_tile(tmp_path / "d" / "sub" / "1-a_2020-01-01_2021-01-01.TIF", t=1)
    (tmp_path / "d" / "notes.txt").write_text("x")
    assert list_ee_tiffs(tmp_path / "d") == sorted([a, b])
    assert list_ee_tiffs(a) == [a]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .tif"):
        list_ee_tiffs(tmp_path / "empty")
    with pytest.raises(InputError, match="notes.txt: not a GeoTIFF"):
        list_ee_tiffs(tmp_path / "d" / "notes.txt")
    with pytest.raises(InputError, match="no such file"):
        list_ee_tiffs(tmp_path / "nope")


def _every_pixel_as_a_label(info):
    """One point label at the centre of every pixel of a tile (row-major)."""
    import geopandas as gpd

    rows, cols = np.divmod(np.arange(info.height * info.width), info.width)
    lon = info.transform.c + info.transform.a * (cols + 0.5)
    lat = info.transform.f + info.transform.e * (rows + 0.5)
    labels = gpd.GeoDataFrame({"sample_id": [f"p{i}" for i in range(len(rows))], "lon": lon, "lat": lat},
                              geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    return labels, rows, cols


@pytest.mark.shared
@pytest.mark.parametrize("name, no_slope", [(TOGO, False), (CROPLANDS, False), (TOGO, True)])
def test_ingestion_and_map_export_read_identical_pixels(shared_data, tmp_path, name, no_slope):
    """The one Earth-Engine reader: every pixel of a real export, sampled by ingestion (a label at
    its centre) and read by map export's source (whole tile, an odd window, after pickling for Dask),
    is the same float32 array bit for bit — also for a tile whose slope band is NaN everywhere
    (ingestion used to fail there while export filled 0.0; now both take 0.0)."""
    import pickle

    from cropmeta.io.eetiff import SLOPE_FILL_WITHOUT_DATA
    from cropmeta.io.sampling import sample_tile
    from cropmeta.mapping.sources import open_source
    from cropmeta.io.handles import close_cached

    path = shared_data / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    if no_slope:  # a scratch copy in tmp with the slope band (the last one) NaN everywhere
        path = tmp_path / path.name
        path.write_bytes((shared_data / name).read_bytes())
        with rasterio.open(path, "r+") as d:
            d.write(np.full((d.height, d.width), np.nan), d.count)
    info = ee_tiff_info(path)
    labels, rows, cols = _every_pixel_as_a_label(info)
    ingested = sample_tile(info, labels)
    assert (ingested.meta["pixel_row"].to_numpy() == rows).all() and (ingested.meta["pixel_col"].to_numpy() == cols).all()

    source = open_source(path)
    x_map, valid = source.read(Window(0, 0, info.width, info.height))
    assert valid.all() and x_map.shape == ingested.x.shape == (info.height * info.width, 12, 18)
    assert x_map.dtype == ingested.x.dtype == np.float32 and not np.isnan(x_map).any()
    np.testing.assert_array_equal(x_map, ingested.x)  # every pixel, every band, every step: identical
    np.testing.assert_array_equal(pixels_array(read_ee_tiff(path, fill=True)), ingested.x)
    close_cached()
    block, ok = pickle.loads(pickle.dumps(source)).read(Window(3, 2, 7, 5))  # a Dask worker's window
    assert ok.all()
    np.testing.assert_array_equal(block, ingested.x.reshape(info.height, info.width, 12, 18)[2:7, 3:10].reshape(-1, 12, 18))

    slope = ingested.x[..., BANDS.index("slope")]
    with rasterio.open(path) as src:
        raw_slope = src.read(src.count)
    if no_slope:
        assert (slope == SLOPE_FILL_WITHOUT_DATA).all()
    else:  # the border pixels without slope take the tile's mean slope
        border = np.isnan(raw_slope).ravel()
        assert border.any() and (slope[border] == np.float32(np.nanmean(raw_slope))).all()


@pytest.mark.parametrize("slope_rows", [1, 6])
def test_ingestion_and_map_export_agree_on_a_written_tile(tmp_path, slope_rows, caplog):
    """The same check without ../shared: a written tile with NaN slope on its first rows (all of them:
    no slope anywhere) and gaps in S2; ingestion and export's source give identical pixels."""
    from cropmeta.io.eetiff import SLOPE_FILL_WITHOUT_DATA
    from cropmeta.io.sampling import sample_tile
    from cropmeta.mapping.sources import open_source

    def holes(dyn, static):
        static[1, :slope_rows] = np.nan
        dyn[1:3, DYNAMIC_BANDS_RAW.index("B4")] = np.nan  # cloudy months: NDVI missing too, filled over time

    path, *_ = tiny_tile(tmp_path / "0-demo_2020-01-01_2021-01-01.tif", t=4, h=6, w=5, mutate=holes)
    info = ee_tiff_info(path)
    labels, rows, cols = _every_pixel_as_a_label(info)
    ingested = sample_tile(info, labels)
    x_map, valid = open_source(path).read(Window(0, 0, info.width, info.height))
    assert valid.all() and not np.isnan(x_map).any()
    np.testing.assert_array_equal(x_map, ingested.x)
    slope = x_map[:, 0, BANDS.index("slope")].reshape(6, 5)
    if slope_rows == 6:
        assert (slope == SLOPE_FILL_WITHOUT_DATA).all() and "'slope' has no valid pixel" in caplog.text
    else:
        assert len(set(slope[0])) == 1 and slope[0, 0] != SLOPE_FILL_WITHOUT_DATA
