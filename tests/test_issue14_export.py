"""Issue 14, map export: nothing the user has is lost (items 1, 3, 11) and nothing goes silently
wrong (item 2). Each test reproduces a failure of the original code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cropmeta.errors import DataError, InputError
from cropmeta.mapping.manifest import work_dir_for
from cropmeta.testing import make_double_run, make_ee_tile
from test_mapping import LOADER, _export, run  # noqa: F401 - the ndvi double's run fixture

REPO = Path(__file__).resolve().parent.parent


def _listing(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ---- item 1: export never overwrites its input or an existing map ------------------------------
def test_out_equal_to_input_is_refused_and_input_kept(tmp_path, run):
    tif = make_ee_tile(tmp_path / "same.tif", height=6, width=6)
    before = tif.read_bytes()
    with pytest.raises(InputError, match=r"--out .*same\.tif: the map is the input .*same\.tif"):
        _export(run, tif, [tif])
    assert tif.read_bytes() == before
    # an output inside an input folder is refused too
    with pytest.raises(InputError, match=r"lies inside the input"):
        _export(run, tmp_path / "m.tif", [tmp_path])
    assert tif.read_bytes() == before and not (tmp_path / "m.tif").exists()


def test_png_out_is_refused_and_quicklook_never_takes_the_maps_name(tmp_path, run):
    tif = make_ee_tile(tmp_path / "in" / "a.tif", height=6, width=6)
    with pytest.raises(InputError, match=r"--out .*t\.png: a map is written as \.tif"):
        _export(run, tmp_path / "t.png", [tif])
    assert list(tmp_path.glob("t.*")) == []
    with pytest.raises(InputError, match=r"exists; pass --overwrite|T=12"):  # refused after its folder was made
        _export(run, tmp_path / "new" / "deeper" / "m.tif", [make_ee_tile(tmp_path / "t3.tif", height=2, width=2, t=3)])
    assert not (tmp_path / "new").exists()
    res = _export(run, tmp_path / "t.tif", [tif])
    assert res["quicklook"] != res["map"] and Path(res["quicklook"]).suffix == ".png"
    with rasterio.open(res["map"]) as m:
        assert m.driver == "GTiff"


def test_existing_map_needs_overwrite(tmp_path, run):
    tif = make_ee_tile(tmp_path / "in" / "a.tif", height=6, width=6)
    out = tmp_path / "m.tif"
    out.write_bytes(b"precious")
    with pytest.raises(InputError, match=r"m\.tif: exists; pass --overwrite"):
        _export(run, out, [tif])
    assert out.read_bytes() == b"precious"
    _export(run, out, [tif], overwrite=True)
    with rasterio.open(out) as m:
        assert m.count == 2


# ---- item 2: an all-NaN band is refused like ingestion refuses it ---------------------------------
def test_all_nan_band_is_an_error_naming_the_band(tmp_path, run):
    import rasterio as rio

    tif = make_ee_tile(tmp_path / "in" / "allnan.tif", height=5, width=5)
    with rio.open(tif, "r+") as ds:  # band 4 of each step is B2: NaN at every step
        t = (ds.count - 2) // 17
        for step in range(t):
            ds.write(np.full((5, 5), np.nan, np.float32), step * 17 + 4)
    out = tmp_path / "m.tif"
    with pytest.raises(DataError, match=r"allnan\.tif: band\(s\) 'B2' \(25 of 25 samples\) are NaN at every "
                                        r"time step.*no valid pixel"):
        _export(run, out, [tif])
    assert not out.exists() and not work_dir_for(out).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m.tif")] == []


def test_valid_share_is_reported(tmp_path, run):
    miss = np.zeros((4, 5), dtype=bool)
    miss[0] = True
    tif = make_ee_tile(tmp_path / "in" / "a.tif", height=4, width=5, missing=miss)
    res = _export(run, tmp_path / "m.tif", [tif], quicklook=False)
    assert res["pixels_valid"] == 15 and res["valid_share"] == pytest.approx(0.75)


# ---- item 3: size guard for a one-COG mosaic; temporaries removed on interruption --------------
def test_huge_cog_mosaic_is_refused_before_any_work(tmp_path, run):
    a = make_ee_tile(tmp_path / "in" / "a.tif", height=4, width=4, origin=(300000, 9990000))
    b = make_ee_tile(tmp_path / "in" / "b.tif", height=4, width=4, origin=(800000, 9000000))
    out = tmp_path / "m.tif"
    with pytest.raises(InputError, match=r"would be 50,004 x 99,004 px \(9\.9 GB uncompressed.*--max-mosaic-gb 4.*"
                                         r"m\.vrt"):
        _export(run, out, [a, b], mosaic="cog")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "run"]
    # the user can raise the limit (here: check it passes the guard on a smaller pair)
    c = make_ee_tile(tmp_path / "in2" / "c.tif", height=4, width=4, origin=(300040, 9990000))
    res = _export(run, out, [a, c], mosaic="cog", max_mosaic_gb=1e-6 * 1000, quicklook=False)
    assert res["map"] == str(out)


def test_interrupted_cog_write_leaves_no_temporary(tmp_path, run, monkeypatch):
    """A KeyboardInterrupt (SIGINT, or SIGTERM during export) while GDAL writes overviews removes
    the partial COG, GDAL's ``.ovr.tmp`` beside it and the assembled GeoTIFFs."""
    import rasterio.shutil

    tif = make_ee_tile(tmp_path / "in" / "a.tif", height=6, width=6)

    def interrupted(src, dst, **kw):
        Path(dst).write_bytes(b"partial")
        Path(str(dst) + ".ovr.tmp").write_bytes(b"x" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(rasterio.shutil, "copy", interrupted)
    out = tmp_path / "maps" / "m.tif"
    with pytest.raises(KeyboardInterrupt):
        _export(run, out, [tif], quicklook=False)
    left = [p.name for p in (tmp_path / "maps").rglob("*") if p.is_file()]
    assert not any(n.endswith(".tmp") or n.endswith(".ovr") for n in left), left
    assert not (work_dir_for(out) / "assembled").exists() and not out.exists()


@pytest.mark.slow
def test_sigterm_stops_export_and_cleans_up(tmp_path):
    run = make_double_run(tmp_path / "run", kind="ndvi")
    tile = make_ee_tile(tmp_path / "in" / "wide.tif", height=8, width=512 * 6, seed=5)
    out = tmp_path / "map" / "map.tif"
    code = (
        "from cropmeta.mapping.export import export\n"
        f"export({str(run)!r}, {str(out)!r}, inputs=[{str(tile)!r}], loader={LOADER!r}, progress=False)\n"
    )
    env = dict(os.environ, CROPMETA_TEST_PREDICT_DELAY="0.3", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    work = work_dir_for(out)
    deadline = time.monotonic() + 60
    try:
        while not (work / "done.jsonl").exists() or not (work / "done.jsonl").read_text().strip():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and b"KeyboardInterrupt" in proc.stdout.read()
    left = [p.name for p in (tmp_path / "map").rglob("*") if p.is_file()]
    assert not out.exists() and not any(n.endswith(".tmp") for n in left), left


# ---- item 11: final names only for complete outputs; what --out names is what is written -------
def test_folder_of_tiles_with_tif_out_writes_that_tif(tmp_path, run):
    make_ee_tile(tmp_path / "in" / "a.tif", height=4, width=4, origin=(300000, 9990000))
    make_ee_tile(tmp_path / "in" / "b.tif", height=4, width=4, origin=(300040, 9990000))
    out = tmp_path / "maps" / "m.tif"
    res = _export(run, out, [tmp_path / "in"], quicklook=False)
    assert res["map"] == str(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.stac.json", "m.tif"]  # the map and its STAC Item
    with pytest.raises(InputError, match=r"--mosaic vrt writes a VRT mosaic; name it .*m2\.vrt"):
        _export(run, tmp_path / "m2.tif", [tmp_path / "in"], mosaic="vrt")
    res = _export(run, tmp_path / "maps" / "v.vrt", [tmp_path / "in"], quicklook=False)
    tiles = tmp_path / "maps" / "v.tiles"
    assert res["map"].endswith("v.vrt") and tiles.is_dir()
    assert os.stat(tiles).st_mode & 0o077 != 0  # not 0700: the folder has the usual permissions


def test_overwriting_a_vrt_never_leaves_it_over_missing_tiles(tmp_path, run, monkeypatch):
    import cropmeta.mapping.export as ex

    make_ee_tile(tmp_path / "in" / "a.tif", height=4, width=4, origin=(300000, 9990000))
    make_ee_tile(tmp_path / "in" / "b.tif", height=4, width=4, origin=(300040, 9990000))
    out = tmp_path / "maps" / "v.vrt"
    _export(run, out, [tmp_path / "in"], quicklook=False)
    real = ex.copy_to_cog
    calls = {"n": 0}

    def killed_mid_tiles(src, dst, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(src, dst, **kw)

    monkeypatch.setattr(ex, "copy_to_cog", killed_mid_tiles)
    with pytest.raises(KeyboardInterrupt):
        _export(run, out, [tmp_path / "in"], quicklook=False, overwrite=True, threshold=0.3)
    # the old tiles are intact and no final-named VRT points at a half-written set
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "maps" / "v.tiles").iterdir()) == ["a.tif", "b.tif"]


def test_refused_workers_leaves_no_staging_folder(tmp_path, run):
    tif = make_ee_tile(tmp_path / "in" / "a.tif", height=4, width=4)
    before = _listing(tmp_path)
    with pytest.raises(InputError, match=r"--workers must be >= 1, got 0"):
        _export(run, tmp_path / "m.tif", [tif], workers=0)
    assert _listing(tmp_path) == before and not work_dir_for(tmp_path / "m.tif").exists()


# ---- item 6 (export half): a 12-step window of a longer input ---------------------------------
def test_start_month_takes_a_window_of_a_longer_input(tmp_path, run):
    long = make_ee_tile(tmp_path / "in" / "long.tif", height=4, width=4, t=24)
    with pytest.raises(InputError, match=r"long\.tif: input has T=24 time steps"):
        _export(run, tmp_path / "m.tif", [long])
    res = _export(run, tmp_path / "m.tif", [long], start_month=7, quicklook=False)
    assert res["pixels_valid"] == 16
    with pytest.raises(InputError, match=r"long\.tif: --start-month 14 needs 25 time steps"):
        _export(run, tmp_path / "m2.tif", [long], start_month=14)
