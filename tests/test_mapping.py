"""Map export: the COG product, values, nodata, ROI, mosaics, datacube input, bad input (serial path).

The model is the ``ndvi`` test double (P = sigmoid(10·(mean NDVI − 0.4))), so every map value is
checked against an independent computation from the input file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cropmeta.errors import DataError, InputError
from cropmeta.mapping.export import export
from cropmeta.testing import make_double_run, make_ee_tile, ndvi_probability
from cropmeta.mapping.validate import check_cog
from cropmeta.schema import N_STATIC, RAW_PER_STEP, canonical_from_raw

LOADER = "cropmeta.testing:load_double"


def expected_prob(tif: Path) -> np.ndarray:
    """[H, W] probability the ndvi double gives, NaN where every band is missing (independent of
    cropmeta.mapping's reader)."""
    with rasterio.open(tif) as s:
        a = s.read().astype(np.float64)
    t = (a.shape[0] - N_STATIC) // RAW_PER_STEP
    h, w = a.shape[1:]
    dyn = a[: t * RAW_PER_STEP].reshape(t, RAW_PER_STEP, h * w).transpose(2, 0, 1)
    stat = a[t * RAW_PER_STEP :].reshape(N_STATIC, h * w).T
    x = canonical_from_raw(dyn, stat)
    p = ndvi_probability(np.nan_to_num(x, nan=0.0))
    p[np.isnan(dyn).all(axis=(1, 2))] = np.nan
    return p.reshape(h, w)


@pytest.fixture()
def run(tmp_path):
    return make_double_run(tmp_path / "run", kind="ndvi")


def _export(run, out, inputs, **kw):
    kw.setdefault("progress", False)
    return export(run, out, inputs=inputs, loader=LOADER, **kw)


def test_single_tile_cog_product(tmp_path, run):
    missing = np.zeros((40, 600), dtype=bool)
    missing[5:9, 100:130] = True
    tif = make_ee_tile(tmp_path / "in" / "7-kenya_2021-01-01_2021-12-31.tif", height=40, width=600, missing=missing)
    out = tmp_path / "maps" / "map.tif"
    res = _export(run, out, [tif])

    assert res["map"] == str(out) and check_cog(out) == []
    with rasterio.open(tif) as src, rasterio.open(out) as m:
        # native grid, no resampling
        assert (m.width, m.height, m.crs, m.transform) == (src.width, src.height, src.crs, src.transform)
        assert m.dtypes == ("uint8", "uint8") and m.nodatavals == (255.0, 255.0)
        assert m.descriptions == ("probability", "class") and m.scales[0] == 0.01
        assert m.block_shapes[0] == (512, 512) and m.overviews(1) == [2] and m.overviews(2) == [2]
        tags = m.tags()
        prob, cls = m.read(1), m.read(2)
    exp = expected_prob(tif)
    nod = np.isnan(exp)
    assert nod.sum() == missing.sum() and (nod == missing).all()
    assert (prob[nod] == 255).all() and (cls[nod] == 255).all()
    np.testing.assert_array_equal(prob[~nod], np.rint(exp[~nod] * 100).astype(np.uint8))
    np.testing.assert_array_equal(cls[~nod], (exp[~nod] >= 0.5).astype(np.uint8))
    assert prob[~nod].min() < 10 and prob[~nod].max() > 90  # the ramp spans both classes
    assert json.loads(tags["DATE_RANGE"]) == ["2021-01-01", "2021-12-31"]
    assert json.loads(tags["CONFIG"])["double"]["kind"] == "ndvi" and len(tags["MODEL_SHA256"]) == 64
    assert tags["THRESHOLD"] == "0.5"
    png = out.with_suffix(".png")
    assert res["quicklook"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out.parent / f".{out.name}.cropmeta-export").exists()  # work dir cleaned


def test_float_output_and_threshold(tmp_path, run):
    tif = make_ee_tile(tmp_path / "a.tif", height=20, width=30)
    out = tmp_path / "f.tif"
    _export(run, out, [tif], as_float=True, threshold=0.7, quicklook=False)
    assert check_cog(out) == []
    with rasterio.open(out) as m:
        assert m.dtypes == ("float32", "float32") and np.isnan(m.nodata)
        prob, cls = m.read(1), m.read(2)
    exp = expected_prob(tif)
    np.testing.assert_allclose(prob, exp, atol=1e-6)
    np.testing.assert_array_equal(cls, (exp >= 0.7).astype(np.float32))
    assert 0 < cls.mean() < 1


def test_region_outside_is_nodata(tmp_path, run):
    tif = make_ee_tile(tmp_path / "g.tif", height=30, width=40, origin=(36.0, -1.0), res=0.001, crs="EPSG:4326")
    out = tmp_path / "roi.tif"
    # box covering the western half of the tile (lon 36.000–36.020)
    _export(run, out, [tif], bbox="35.9,-1.5,36.0201,-0.5")
    with rasterio.open(out) as m:
        prob = m.read(1)
    assert (prob[:, 20:] == 255).all()
    assert (prob[:, :20] != 255).all()
    assert check_cog(out) == []


def test_region_that_cannot_be_projected(tmp_path, run):
    tif = make_ee_tile(tmp_path / "ortho.tif", height=8, width=8, origin=(0, 0), res=10.0,
                       crs="+proj=ortho +lat_0=0 +lon_0=-140 +datum=WGS84 +units=m")
    with pytest.raises(InputError, match=r"ortho\.tif.*cannot be projected"):
        _export(run, tmp_path / "x.tif", [tif], region="Kenya")


def test_region_not_overlapping(tmp_path, run):
    tif = make_ee_tile(tmp_path / "g.tif", height=8, width=8, origin=(36.0, -1.0), res=0.001, crs="EPSG:4326")
    with pytest.raises(DataError, match="does not overlap"):
        _export(run, tmp_path / "x.tif", [tif], region="Togo")


def test_wrong_layout_and_t_are_named(tmp_path, run):
    t24 = make_ee_tile(tmp_path / "t24.tif", height=4, width=4, t=24)
    with pytest.raises(InputError, match=r"t24\.tif.*T=24.*expects T=12"):
        _export(run, tmp_path / "x.tif", [t24])
    bad = tmp_path / "bad.tif"
    with rasterio.open(bad, "w", driver="GTiff", width=4, height=4, count=50, dtype="float32") as d:
        d.write(np.zeros((50, 4, 4), dtype=np.float32))
    with pytest.raises(InputError, match=r"bad\.tif: 50 bands"):
        _export(run, tmp_path / "x.tif", [bad])
    swapped = tmp_path / "swapped.tif"
    make_ee_tile(swapped, height=4, width=4)
    with rasterio.open(swapped, "r+") as d:
        d.set_band_description(1, "VH")
        d.set_band_description(2, "VV")
    with pytest.raises(InputError, match=r"swapped\.tif: band 1 is described as 'VH', expected 'VV'"):
        _export(run, tmp_path / "x.tif", [swapped])


def test_unwritable_output_and_previous_map_kept(tmp_path, run):
    tif = make_ee_tile(tmp_path / "a.tif", height=10, width=10)
    out = tmp_path / "keep.tif"
    _export(run, out, [tif], quicklook=False)
    before = out.read_bytes()
    # a failing export (T mismatch) leaves the previous map untouched
    with pytest.raises(InputError):
        _export(run, out, [make_ee_tile(tmp_path / "t3.tif", height=4, width=4, t=3)], overwrite=True)
    assert out.read_bytes() == before
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match=r"a_file/m\.tif: cannot write the map there"):
        _export(run, blocker / "m.tif", [tif])
    with pytest.raises(InputError, match="is a directory"):
        _export(run, tmp_path, [tif])
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if not os.access(ro, os.W_OK):  # (root can write anywhere)
            with pytest.raises(InputError, match=r"ro/m\.tif: cannot write"):
                _export(run, ro / "m.tif", [tif])
    finally:
        os.chmod(ro, 0o700)


def test_disk_full_keeps_previous_map(tmp_path, run, monkeypatch):
    """A write failure at the COG copy (disk full) leaves the previous map byte-identical."""
    import rasterio.shutil

    tif = make_ee_tile(tmp_path / "a.tif", height=10, width=10)
    out = tmp_path / "m.tif"
    _export(run, out, [tif], quicklook=False)
    before = out.read_bytes()

    def full(*a, **k):
        raise rasterio.errors.RasterioIOError("No space left on device")

    monkeypatch.setattr(rasterio.shutil, "copy", full)
    with pytest.raises(InputError, match=r"m\.tif: cannot write the map.*No space left"):
        _export(run, out, [tif], quicklook=False, overwrite=True)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.tif.") and p.suffix == ".tif"] == []


def test_many_tiles_vrt_and_cog_mosaic(tmp_path, run):
    # two tiles side by side on one 10 m grid, the second with missing pixels
    a = make_ee_tile(tmp_path / "in" / "a.tif", height=20, width=30, origin=(300000, 9990000), seed=1)
    miss = np.zeros((20, 30), dtype=bool)
    miss[0:3, 0:3] = True
    b = make_ee_tile(tmp_path / "in" / "b.tif", height=20, width=30, origin=(300300, 9990000), seed=2, missing=miss)
    res = _export(run, tmp_path / "mos" / "map.vrt", [tmp_path / "in"])
    vrt = Path(res["map"])
    assert vrt.suffix == ".vrt" and len(res["tiles"]) == 2
    for tpath in res["tiles"]:
        assert check_cog(tpath) == []
    with rasterio.open(vrt) as m:
        assert (m.width, m.height) == (60, 20)
        mos = m.read(1)
        assert m.descriptions == ("probability", "class") and m.nodata == 255
    exp = np.concatenate([expected_prob(a), expected_prob(b)], axis=1)
    ok = ~np.isnan(exp)
    np.testing.assert_array_equal(mos[ok], np.rint(exp[ok] * 100))
    assert (mos[~ok] == 255).all() and (~ok).sum() == 9

    none = _export(run, tmp_path / "mos0" / "map.tif", [a, b], mosaic="none", quicklook=False)
    assert none["map"].endswith("map.tiles") and [Path(p).name for p in none["tiles"]] == ["a.tif", "b.tif"]
    assert not (tmp_path / "mos0" / "map.vrt").exists()

    one = tmp_path / "mos1" / "map.tif"
    res1 = _export(run, one, [a, b], mosaic="cog")
    assert res1["map"] == str(one) and check_cog(one) == []
    with rasterio.open(one) as m:
        np.testing.assert_array_equal(m.read(1), mos)


def test_mosaic_needs_one_grid(tmp_path, run):
    a = make_ee_tile(tmp_path / "a.tif", height=4, width=4)
    b = make_ee_tile(tmp_path / "b.tif", height=4, width=4, crs="EPSG:32736")
    with pytest.raises(InputError, match=r"b\.tif: CRS .* differs"):
        _export(run, tmp_path / "m.tif", [a, b])


def test_datacube_input_matches_tif(tmp_path, run):
    import rioxarray  # noqa: F401
    import xarray as xr

    from cropmeta.schema import BANDS

    tif = make_ee_tile(tmp_path / "a.tif", height=12, width=16, nan_slope_rows=0)
    with rasterio.open(tif) as s:
        a = s.read().astype(np.float32)
        transform, crs = s.transform, s.crs
    t = 12
    dyn = a[: t * RAW_PER_STEP].reshape(t, RAW_PER_STEP, 12, 16).transpose(2, 3, 0, 1)
    stat = a[t * RAW_PER_STEP :].transpose(1, 2, 0)
    x = canonical_from_raw(dyn, stat)  # [y, x, T, 18]
    ys = transform.f + (np.arange(12) + 0.5) * transform.e
    xs = transform.c + (np.arange(16) + 0.5) * transform.a
    cube = xr.DataArray(x.transpose(2, 3, 0, 1), dims=("time", "band", "y", "x"),
                        coords={"time": np.arange(t), "band": BANDS, "y": ys, "x": xs}, name="samples")
    cube = cube.rio.write_crs(crs).rio.write_transform(transform)
    out_t, out_c = tmp_path / "t.tif", tmp_path / "c.tif"
    _export(run, out_t, [tif], quicklook=False)
    _export(run, out_c, [cube], quicklook=False)
    nc = tmp_path / "cube.nc"
    cube.to_dataset().to_netcdf(nc, engine="h5netcdf")
    out_n = tmp_path / "n.tif"
    _export(run, out_n, [nc], quicklook=False)
    with rasterio.open(out_t) as mt, rasterio.open(out_c) as mc, rasterio.open(out_n) as mn:
        assert mc.transform == mt.transform and mc.crs == mt.crs and mn.transform == mt.transform
        np.testing.assert_array_equal(mc.read(), mt.read())
        np.testing.assert_array_equal(mn.read(), mt.read())


def test_failed_tile_is_retried_then_named(tmp_path, run):
    good = make_ee_tile(tmp_path / "good.tif", height=8, width=8)
    broken = make_ee_tile(tmp_path / "broken.tif", height=64, width=64, origin=(300080, 9990000))
    # keep the header (IFD, tags) but corrupt the compressed pixel data of its block
    with rasterio.open(broken) as s:
        off = int(s.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
        size = int(s.get_tag_item("BLOCK_SIZE_0_0", "TIFF", bidx=1))
    data = bytearray(broken.read_bytes())
    data[off : off + size] = bytes(size)
    broken.write_bytes(bytes(data))
    with pytest.raises(DataError) as ei:
        _export(run, tmp_path / "m.tif", [good, broken], mosaic="cog")
    msg = str(ei.value)
    assert "broken.tif" in msg and "good.tif" not in msg.split("failed (")[1].split(")")[0]
    assert "after 3 attempt(s)" in msg and "rerun resumes" in msg
    assert not (tmp_path / "m.tif").exists()


@pytest.mark.parametrize("workers", [None, 2])
def test_export_reads_with_a_gdal_block_cache_of_the_requested_mib(tmp_path, run, monkeypatch, workers):
    """``gdal_cache_mb`` is MiB: the cache GDAL reports while blocks are read is that many MiB (an
    integer GDAL_CACHEMAX given to rasterio is bytes — 256 would be a 256-byte cache, and every
    strip would decode its tiles again)."""
    from rasterio.env import get_gdal_config

    import cropmeta.mapping.dask_exec as dx

    seen = []
    real = dx.run_job

    def spy(*a, **kw):
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return real(*a, **kw)

    monkeypatch.setattr(dx, "run_job", spy)  # serial and in-process Dask blocks both run through it
    tif = make_ee_tile(tmp_path / "t_2021-01-01_2021-12-31.tif", height=8, width=8)
    _export(run, tmp_path / "m.tif", [tif], gdal_cache_mb=48, workers=workers)
    assert seen and set(seen) == {48 * 2**20}


def test_export_takes_one_options_object_and_names_an_unknown_option(tmp_path):
    """Issue 24: export's options travel as one ExportOptions (keywords of its fields still work and
    win); a misspelt option is refused with the closest name, before any work."""
    from cropmeta.mapping.export import ExportOptions

    base = ExportOptions(threshold=0.7, workers=2)
    opts = ExportOptions.make(base, workers=None)
    assert (opts.threshold, opts.workers, base.workers) == (0.7, None, 2)
    with pytest.raises(InputError, match="unknown option 'treshold' \\(did you mean 'threshold'\\?\\)"):
        export(tmp_path / "run", tmp_path / "m.tif", treshold=0.3)
    with pytest.raises(InputError, match="--threshold must be between 0 and 1"):
        export(tmp_path / "run", tmp_path / "m.tif", options=ExportOptions(threshold=1.5))
    assert not (tmp_path / "m.tif").exists()
