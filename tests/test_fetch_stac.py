"""``fetch --source stac`` offline: a static STAC catalogue over generated COGs with the real
collections' asset keys, dtypes, nodata and scale/offset conventions → Earth-Engine-layout tifs whose
values are checked against what the catalogue holds (cloud-masked pixels excluded, dB, slope)."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from cropmeta.errors import FetchError, InputError
from cropmeta.fetch import fetch, stac_config
from cropmeta.fetch.common import RES_DEG, export_windows, snap_grid, start_for_year
from cropmeta.fetch.stac import S2_SCL_CLEAR
from cropmeta.fetch.testing import SCL_CLOUD, dem_plane, s1_linear, s2_dn, write_static_catalogue
from cropmeta.io.eenames import parse_ee_filename
from cropmeta.io.eetiff import ee_tiff_info, read_ee_raw, split_raw
from cropmeta.schema import DYNAMIC_BANDS_RAW, S2_BANDS_RAW, raw_band_names

BBOX = (1.4200, 7.7180, 1.4245, 7.7215)  # ~500 x 400 m in Togo
START = "2019-02-06"  # --year 2019 → 12 x 30 days ending 2020-02-01
POINTS = [("a", 1.4222, 7.7197, 1), ("b", 1.4230, 7.7205, 0)]


def write_labels(path, points=POINTS, start_date=None):
    feats = [{"type": "Feature", "properties": {"sample_id": sid, "is_crop": c, "dataset": "demo",
                                                  **({"start_date": start_date} if start_date else {})},
              "geometry": {"type": "Point", "coordinates": [lon, lat]}} for sid, lon, lat, c in points]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    d = tmp_path_factory.mktemp("stac")
    spec = write_static_catalogue(d / "cat", BBOX, START, t=12)
    labels = write_labels(d / "labels.geojson")
    res = fetch(d / "tifs", labels=labels, year=2019, stac=stac_config(catalog=str(spec.href)))
    return spec, labels, res


def _centres(info):
    tr = info.transform
    cols, rows = np.meshgrid(np.arange(info.width), np.arange(info.height))
    return tr.c + (cols + 0.5) * tr.a, tr.f + (rows + 0.5) * tr.e


def test_layout_grid_and_names(fetched):
    spec, _, res = fetched
    assert len(res.written) == 2 and not res.skipped
    for path in res.written:
        info = ee_tiff_info(path)  # validates T*17+2 bands and every band description
        assert info.t == 12 and info.crs.to_epsg() == 4326
        assert math.isclose(info.transform.a, RES_DEG) and math.isclose(-info.transform.e, RES_DEG)
        assert (info.height, info.width) == (17, 17)  # CropHarvest's 80 m box at ~10 m (Togo: 17 x 17)
        name = parse_ee_filename(path)
        assert (name.dataset, name.start.isoformat(), name.end.isoformat()) == ("demo", START, "2020-02-01")
        # pixel edges on multiples of the resolution (Earth Engine's grid)
        assert abs(info.transform.c / RES_DEG - round(info.transform.c / RES_DEG)) < 1e-6
    # the label point lies inside its box
    info = ee_tiff_info(res.written[0])
    x0, y0, x1, y1 = info.bounds
    assert x0 < POINTS[0][1] < x1 and y0 < POINTS[0][2] < y1


def test_values_match_the_catalogue(fetched):
    spec, _, res = fetched
    info = ee_tiff_info(res.written[0])
    data, _ = read_ee_raw(res.written[0], info=info)
    dyn, static = split_raw(data, info.t)
    lon, lat = _centres(info)
    r, c = spec.pixel("s2", lon, lat)
    rs, cs = spec.pixel("scl", lon, lat)
    lon_scl = spec.grids["scl"].c + (cs + 0.5) * spec.grids["scl"].a
    masked_somewhere = both_somewhere = False
    for k in range(12):
        items = [it for it in spec.s2_items if it["window"] == k]
        for b, band in enumerate(S2_BANDS_RAW):
            got = dyn[k, DYNAMIC_BANDS_RAW.index(band)]
            if band == "B10":  # not in L2A
                assert np.isnan(got).all()
                continue
            obs = []
            for it in items:
                v = s2_dn(it["n"], b, r, c).astype(float)
                cloudy = it["cloudy"] & (lon_scl < BBOX[0] + 0.5 * (BBOX[2] - BBOX[0]))
                obs.append(np.where(cloudy, np.nan, v))
            expected = np.nanmedian(np.stack(obs), axis=0)
            np.testing.assert_allclose(got, expected, atol=1e-3, err_msg=f"window {k} band {band}")
            n_clear = np.isfinite(np.stack(obs)).sum(axis=0)
            masked_somewhere |= bool((n_clear == 1).any())
            both_somewhere |= bool((n_clear == 2).any())
        # Sentinel-1: one RTC scene per window, linear → dB
        for p, band in enumerate(("VV", "VH")):
            np.testing.assert_allclose(dyn[k, DYNAMIC_BANDS_RAW.index(band)],
                                       10 * np.log10(s1_linear(k, p, r, c).astype(float)), atol=1e-4)
        # ERA5: mean of the months overlapping the window
        w0, w1 = export_windows(START, 12)[k]
        months = [m for m in spec.era5 if m < w1 and dt.date(m.year + m.month // 12, m.month % 12 + 1, 1) > w0]
        for j, band in enumerate(("temperature_2m", "total_precipitation")):
            np.testing.assert_allclose(dyn[k, DYNAMIC_BANDS_RAW.index(band)],
                                       np.mean([spec.era5[m][j] for m in months]), rtol=1e-6)
    assert masked_somewhere and both_somewhere  # the cloud mask really split the box
    assert SCL_CLOUD not in S2_SCL_CLEAR
    # DEM: bilinear heights of the plane; slope = atan(|gradient|) everywhere, border included
    np.testing.assert_allclose(static[0], dem_plane(lon, lat, spec.dem_origin, spec.dem_gradient), atol=0.5)
    want = math.degrees(math.atan(math.hypot(*spec.dem_gradient)))
    assert np.isfinite(static[1]).all()
    np.testing.assert_allclose(static[1], want, atol=0.02)


def test_manifest_records_items_windows_versions(fetched):
    spec, _, res = fetched
    doc = json.loads(res.manifest.read_text())
    assert {"pystac-client", "odc-stac", "rasterio", "gdal", "cropmeta"} <= set(doc["software"])
    assert doc["settings"]["collections"]["s2"] == "sentinel-2-l2a"
    entry = doc["files"][res.written[0].name]
    assert entry["sample_id"] == "a" and entry["windows"][0] == [START, "2019-03-08"]
    assert set(entry["items"]["s2"]) == {it["id"] for it in spec.s2_items}
    assert set(entry["items"]["s1"]) == {it["id"] for it in spec.s1_items}
    assert entry["items"]["dem"] == ["Copernicus_DSM_COG_10_TEST_DEM"]
    assert len(entry["items"]["era5"]) == 12  # Feb 2019 … Jan 2020 overlap the 12 windows


def test_rerun_skips_complete_and_redoes_damaged(fetched, tmp_path):
    spec, labels, res = fetched
    import shutil

    out = tmp_path / "tifs"
    shutil.copytree(res.out, out)
    again = fetch(out, labels=labels, year=2019, stac=stac_config(catalog=str(spec.href)))
    assert not again.written and len(again.skipped) == 2
    first = out / res.written[0].name
    first.write_bytes(first.read_bytes()[:5000])  # a damaged file is not complete
    mtime = (out / res.written[1].name).stat().st_mtime_ns
    again = fetch(out, labels=labels, year=2019, stac=stac_config(catalog=str(spec.href)))
    assert [p.name for p in again.written] == [first.name]
    assert ee_tiff_info(first).t == 12 and (out / res.written[1].name).stat().st_mtime_ns == mtime
    # the same names for another box size are not "complete": fetched again on the new grid
    again = fetch(out, labels=labels, year=2019, box_metres=40, stac=stac_config(catalog=str(spec.href)))
    assert len(again.written) == 2 and (ee_tiff_info(first).height, ee_tiff_info(first).width) == (9, 9)


def test_transient_read_errors_are_retried(fetched, tmp_path, monkeypatch):
    import odc.stac

    from cropmeta.fetch import common

    spec, labels, _ = fetched
    real, calls, slept = odc.stac.load, [], []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CURL error: Connection reset by peer")
        return real(*a, **k)

    monkeypatch.setattr(odc.stac, "load", flaky)
    monkeypatch.setattr(common.time, "sleep", slept.append)
    lab = write_labels(tmp_path / "l.geojson", POINTS[:1])
    res = fetch(tmp_path / "o", labels=lab, year=2019, t=1, stac=stac_config(catalog=str(spec.href)))
    assert len(res.written) == 1 and slept == [1.0] and len(calls) == 5  # S2 twice, then S1, ERA5, DEM

    def broken(*a, **k):
        raise ValueError("not a TIFF file")

    monkeypatch.setattr(odc.stac, "load", broken)
    with pytest.raises(FetchError, match=r"STAC: reading assets \['B01'.* failed after 1 attempt\(s\): ValueError"):
        fetch(tmp_path / "o2", labels=lab, year=2019, t=1, stac=stac_config(catalog=str(spec.href)))


def test_failure_leaves_complete_files_only(fetched, tmp_path, monkeypatch):
    spec, labels, _ = fetched
    from cropmeta.fetch import stac as stac_mod

    calls = {"n": 0}
    real = stac_mod.StacFetcher.__call__

    def flaky(self, target):
        calls["n"] += 1
        if calls["n"] == 2:
            raise FetchError("simulated network loss")
        return real(self, target)

    monkeypatch.setattr(stac_mod.StacFetcher, "__call__", flaky)
    out = tmp_path / "tifs"
    with pytest.raises(FetchError, match="network loss"):
        fetch(out, labels=labels, year=2019, stac=stac_config(catalog=str(spec.href)))
    names = sorted(p.name for p in out.iterdir())
    assert names == ["0-demo_2019-02-06_2020-02-01.tif", "manifest.json"]  # no temporary leftovers
    monkeypatch.setattr(stac_mod.StacFetcher, "__call__", real)
    done = fetch(out, labels=labels, year=2019, stac=stac_config(catalog=str(spec.href)))
    assert [p.name for p in done.written] == ["1-demo_2019-02-06_2020-02-01.tif"] and len(done.skipped) == 1


def test_earth_search_conventions_and_region_tiles(tmp_path):
    """Earth Search asset keys (blue, red, nir, scl …) with declared scale 1e-4 / offset −0.1, and a
    --bbox fetched as abutting tiles."""
    spec = write_static_catalogue(tmp_path / "cat", BBOX, start_for_year(2020, 2), t=2, style="earth-search",
                                  s2_per_window=1)
    from cropmeta.regions import region_from_bbox

    region = region_from_bbox((1.4210, 7.7190, 1.4235, 7.7205))
    res = fetch(tmp_path / "tiles", region=region, year=2020, t=2, tile_px=16,
                stac=stac_config("earth-search", catalog=str(spec.href)))
    tr, h, w = snap_grid(region.bounds)
    assert (h, w) == (18, 29)
    assert len(res.written) == 4  # 18 x 29 px → 2 x 2 tiles of ≤ 16 px
    infos = [ee_tiff_info(p) for p in res.written]
    offsets = sorted((round((i.transform.f - tr.f) / tr.e), round((i.transform.c - tr.c) / tr.a), i.height, i.width)
                     for i in infos)
    assert offsets == [(0, 0, 16, 16), (0, 16, 16, 13), (16, 0, 2, 16), (16, 16, 2, 13)]  # abutting, no gaps
    for info in infos:
        data, _ = read_ee_raw(info.path, info=info)
        lon, lat = _centres(info)
        r, c = spec.pixel("s2", lon, lat)
        dyn, _ = split_raw(data, 2)
        # window 0: DN + 1000 with offset −0.1 declared; window 1: flagged boa_offset_applied, DN as is
        assert [it["offset_dn"] for it in spec.s2_items] == [1000, 0]
        for k in range(2):
            np.testing.assert_allclose(dyn[k, DYNAMIC_BANDS_RAW.index("B4")],
                                       s2_dn(k, S2_BANDS_RAW.index("B4"), r, c), atol=1e-3)
        assert data.shape[0] == len(raw_band_names(2))


def test_bad_input_names_what_is_wrong(fetched, tmp_path):
    spec, labels, _ = fetched
    with pytest.raises(InputError, match="no such STAC catalogue"):
        fetch(tmp_path / "o", labels=labels, year=2019, stac=stac_config(catalog=str(tmp_path / "nope.json")))
    with pytest.raises(InputError, match="no collection 'sentinel-2-c1-l2a'.*sentinel-2-l2a"):
        fetch(tmp_path / "o", labels=labels, year=2019,
              stac=stac_config(catalog=str(spec.href), collections=["s2=sentinel-2-c1-l2a"]))
    with pytest.raises(InputError, match="KIND=NAME"):
        stac_config(collections=["s2"])
    with pytest.raises(InputError, match="has no start_date; give the season with --year"):
        fetch(tmp_path / "o", labels=labels, stac=stac_config(catalog=str(spec.href)))
    with pytest.raises(FetchError, match="no ERA5 item .* covers"):  # 2023 is outside the catalogue
        fetch(tmp_path / "o", labels=labels, year=2023, stac=stac_config(catalog=str(spec.href)))
    with pytest.raises(InputError, match="exactly one of --labels"):
        fetch(tmp_path / "o", year=2019)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.tif"))


def test_label_start_date_sets_the_window(fetched, tmp_path):
    spec, _, _ = fetched
    labels = write_labels(tmp_path / "l.geojson", POINTS[:1], start_date="2019-03-08")
    res = fetch(tmp_path / "o", labels=labels, t=2, stac=stac_config(catalog=str(spec.href)))
    assert [p.name for p in res.written] == ["0-demo_2019-03-08_2019-05-07.tif"]
    assert ee_tiff_info(res.written[0]).t == 2


def test_season_without_scenes_and_zarr_assets_fail_clearly(fetched, tmp_path):
    spec, labels, _ = fetched
    with pytest.raises(FetchError, match=r"no S1 item in 'cop-dem-glo-30' .* for 2019-02-06..2020-02-01"):
        fetch(tmp_path / "o", labels=labels, year=2019,
              stac=stac_config(catalog=str(spec.href), collections=["s1=cop-dem-glo-30"]))
    with pytest.raises(InputError, match=r"STAC item S2_TEST_\w+ has no asset 'vv' \(assets: B01, "):
        fetch(tmp_path / "o", labels=labels, year=2019,  # a collection mix-up
              stac=stac_config(catalog=str(spec.href), collections=["s1=sentinel-2-l2a"]))
    import pystac

    from cropmeta.fetch.stac import PLANETARY_COMPUTER, load_stack

    item = pystac.Item("era5-pds-2019-02", None, None, dt.datetime(2019, 2, 1), {})
    item.add_asset("temperature_2m", pystac.Asset("abfs://era5/2019/02/air_temperature_at_2_metres.zarr",
                                                  media_type="application/vnd+zarr"))
    item.add_asset("total_precipitation", pystac.Asset("abfs://era5/2019/02/precip.zarr"))
    from rasterio.transform import from_origin

    with pytest.raises(FetchError, match="is Zarr .*--catalog-for era5=URL"):
        load_stack([item], list(PLANETARY_COMPUTER.era5_assets), from_origin(1, 8, 0.1, 0.1), 2, 2, "nearest")


def test_planetary_computer_urls_are_signed_whatever_the_preset(monkeypatch):
    import planetary_computer

    from cropmeta.fetch import stac as stac_mod

    c = stac_config("earth-search", catalogs=["s1=https://planetarycomputer.microsoft.com/api/stac/v1"])
    assert [c.signed(k) for k in ("s2", "s1", "dem", "era5")] == [False, True, False, False]
    assert c.catalog("s2") == "https://earth-search.aws.element84.com/v1" and c.collection("s2") == "sentinel-2-c1-l2a"
    assert stac_config().signed("s2") and not stac_config(catalog="cat/catalog.json").signed("s2")
    assert stac_mod._pc_modifier() is planetary_computer.sign_inplace
    seen = {}

    class FakeClient:
        @classmethod
        def open(cls, href, modifier=None):
            seen.update(href=href, modifier=modifier)
            raise ConnectionError("no network here")

    import pystac_client

    monkeypatch.setattr(pystac_client, "Client", FakeClient)
    with pytest.raises(FetchError, match="cannot open STAC catalogue https://planetarycomputer.*--source ee"):
        stac_mod.Catalogue(stac_config().catalog("s2"), sign=True)
    assert seen["modifier"] is planetary_computer.sign_inplace


def test_era5_catalogue_from_cds_netcdf(fetched, tmp_path):
    """A CDS 'ERA5-Land monthly averaged' download (t2m K, tp m/day) → local era5-monthly catalogue →
    the values of the cell under each label, through --catalog-for era5=…"""
    import xarray as xr

    from cropmeta.fetch.catalogue import era5_catalogue

    spec, labels, _ = fetched
    months = np.array(["2019-02-01", "2019-03-01", "2019-04-01"], dtype="datetime64[ns]")
    lat = np.round(np.arange(7.9, 7.5, -0.1), 1)
    lon = np.round(np.arange(361.2, 361.7, 0.1) - 360, 1) + 360  # 0–360° longitudes, as CDS may give
    t2m = 290 + np.arange(3)[:, None, None] + 0.01 * np.arange(len(lat))[None, :, None] + 0 * lon
    tp = 0.002 * (1 + np.arange(3))[:, None, None] + 0 * lat[:, None] + 0 * lon
    ds = xr.Dataset({"t2m": (("valid_time", "latitude", "longitude"), t2m),
                     "tp": (("valid_time", "latitude", "longitude"), tp)},
                    coords={"valid_time": months, "latitude": lat, "longitude": lon})
    nc = tmp_path / "era5_land_monthly.nc"
    ds.to_netcdf(nc, engine="h5netcdf")
    from typer.testing import CliRunner

    from cropmeta_cli.app import app

    run = CliRunner().invoke(app, ["era5-catalogue", str(nc), "--out", str(tmp_path / "era5")])
    assert run.exit_code == 0, run.output
    cat = tmp_path / "era5" / "catalog.json"
    lab = write_labels(tmp_path / "l.geojson", POINTS[:1], start_date=START)
    res = fetch(tmp_path / "o", labels=lab, t=2, stac=stac_config(catalog=str(spec.href), catalogs=[f"era5={cat}"]))
    data, info = read_ee_raw(res.written[0])
    dyn, _ = split_raw(data, 2)
    row = int(np.argmin(np.abs(lat - POINTS[0][2])))  # the 0.1° cell holding the label (7.7197 → 7.7)
    # window 0 = 2019-02-06..03-08 overlaps Feb and Mar; window 1 = 03-08..04-07 overlaps Mar and Apr
    for k, (a, b) in enumerate([(0, 1), (1, 2)]):
        np.testing.assert_allclose(dyn[k, DYNAMIC_BANDS_RAW.index("temperature_2m")], (t2m[a, row, 0] + t2m[b, row, 0]) / 2,
                                   rtol=1e-6)
        np.testing.assert_allclose(dyn[k, DYNAMIC_BANDS_RAW.index("total_precipitation")], (tp[a, 0, 0] + tp[b, 0, 0]) / 2,
                                   rtol=1e-6)
    doc = json.loads(res.manifest.read_text())
    assert doc["files"][res.written[0].name]["items"]["era5"] == ["era5-2019-02", "era5-2019-03", "era5-2019-04"]
    with pytest.raises(InputError, match="variable\\(s\\) \\['tp'\\] missing"):
        ds[["t2m"]].to_netcdf(tmp_path / "t_only.nc", engine="h5netcdf")
        era5_catalogue(tmp_path / "t_only.nc", tmp_path / "bad")


@pytest.mark.shared
@pytest.mark.parametrize("name", ["98-togo_2019-02-06_2020-02-01.tif", "373-croplands_2016-02-07_2017-02-01.tif"])
def test_label_grid_and_name_match_real_cropharvest_exports(shared_data, name):
    """A box around the centre of a real CropHarvest export is that export's exact grid (17 x 17 in
    Togo, 17 x 29 at 55.7° N) and its file name (the season's 12 x 30 days ending 1 February)."""
    import rasterio

    from cropmeta.fetch.common import Target, label_box

    path = shared_data / "cropharvest_eo_tifs" / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    with rasterio.open(path) as src:
        b = src.bounds
        tr, h, w = snap_grid(label_box((b.bottom + b.top) / 2, (b.left + b.right) / 2))
        assert (h, w) == src.shape
        assert tr.almost_equals(src.transform, precision=1e-12)
    year = int(name.split("_")[1][:4])
    index, dataset = name.split("_")[0].split("-")
    assert Target(index, dataset, tr, w, h, start_for_year(year)).filename == name
