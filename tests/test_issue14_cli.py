"""Issue 14, the export commands of the issue run as a new user runs them: the real Earth-Engine
exports in shared/data, a real (tiny) trained run, the installed command. Each either works or stops
with one line naming the input, exits non-zero and leaves every existing file as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from test_export_e2e import kenya_run  # noqa: F401 - a real tiny trained run (module scope)
from test_issue14 import cli

pytestmark = pytest.mark.slow
TOGO = "98-togo_2019-02-06_2020-02-01.tif"
RUSSIA = "373-croplands_2016-02-07_2017-02-01.tif"


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _one_error_line(r) -> str:
    # warnings about the run itself (e.g. a Kenya model mapping Togo) may come first; the error is one line
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), (r.returncode, r.stderr)
    return lines[0]


def test_issue_export_commands(kenya_run, shared_data, tmp_path):
    run, _ = kenya_run
    tifs = shared_data / "cropharvest_eo_tifs"
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(tifs / TOGO, work / "same.tif")
    before = _files(work)

    # item 1: the map never overwrites its input; a .png is not a map name
    line = _one_error_line(cli("export", "--run", str(run), "--input", "same.tif", "--out", "same.tif", cwd=work))
    assert "same.tif" in line and "is the input" in line
    line = _one_error_line(cli("export", "--run", str(run), "--input", "same.tif", "--out", "t.png", cwd=work))
    assert "t.png" in line
    assert _files(work) == before

    # item 2: an all-NaN band is refused, naming the file and the band
    (work / "allnan").mkdir()
    with rasterio.open(tifs / TOGO) as src:
        profile, data, desc = src.profile, src.read(), src.descriptions
    data[[i for i, d in enumerate(desc) if d == "B2" or (d or "").startswith("B2_")]] = np.nan
    with rasterio.open(work / "allnan" / TOGO, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(desc, start=1):
            dst.set_band_description(i, d)
    before = _files(work)
    line = _one_error_line(cli("export", "--run", str(run), "--input", f"allnan/{TOGO}", "--out", "m.tif", cwd=work))
    assert f"allnan/{TOGO}" in line and "'B2'" in line and "no valid pixel" in line
    assert _files(work) == before

    # item 3: Togo + Russia as one COG is refused with its size and the alternatives, before any work
    shutil.copy(tifs / RUSSIA, work / RUSSIA)
    before = _files(work)
    line = _one_error_line(cli("export", "--run", str(run), "--input", "same.tif", "--input", RUSSIA,
                               "--out", "mosaic.tif", "--mosaic", "cog", cwd=work))
    assert "GB uncompressed" in line and "mosaic.vrt" in line and "--max-mosaic-gb" in line
    assert _files(work) == before

    # the plain command works, says how many pixels are valid, and a second run needs --overwrite
    r = cli("export", "--run", str(run), "--input", "same.tif", "--out", "map.tif", cwd=work)
    assert r.returncode == 0, r.stderr
    assert "valid pixels: 289 of 289 (100.0%)" in r.stdout
    made = _files(work)
    line = _one_error_line(cli("export", "--run", str(run), "--input", "same.tif", "--out", "map.tif", cwd=work))
    assert "map.tif: exists; pass --overwrite" in line
    assert _files(work) == made
    # item 11: a folder of tiles with --out m.tif is one map at m.tif; with .vrt a VRT over per-tile COGs
    (work / "tiles").mkdir()
    shutil.copy(tifs / TOGO, work / "tiles" / TOGO)
    shutil.copy(tifs / TOGO, work / "tiles" / "copy-of-togo.tif")
    r = cli("export", "--run", str(run), "--input", "tiles", "--out", "m.tif", cwd=work)
    assert r.returncode == 0, r.stderr
    assert (work / "m.tif").is_file() and not (work / "m.vrt").exists() and not (work / "m.tiles").exists()
