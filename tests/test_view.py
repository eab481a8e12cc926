"""`cropmeta view MAP` (issue 28, item 7): a self-contained HTML page of a map; offline it draws the
map on its own lon/lat grid, which headless Chromium shows (skips where no browser is installed)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from test_issue14 import cli


@pytest.fixture()
def small_map(tmp_path):
    prob = np.tile(np.linspace(0, 100, 40).astype(np.uint8), (30, 1))
    prob[:5, :5] = 255
    cls = np.where(prob == 255, 255, (prob >= 50).astype(np.uint8))
    path = tmp_path / "m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=30, count=2, dtype="uint8", nodata=255,
                       crs="EPSG:4326", transform=from_origin(34.29, 0.59, 0.0001, 0.0001)) as d:
        d.write(prob, 1)
        d.write(cls, 2)
        d.update_tags(TASK='{"region": "Kenya", "crop": "maize"}', THRESHOLD="0.5")
    return path


def test_view_writes_one_self_contained_page(small_map, tmp_path):
    r = cli("view", str(small_map), "-o", str(tmp_path / "v.html"))
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "v.html").read_text()
    assert "data:image/png;base64," in page and "Kenya maize" in page and "[34.29, 0.587, 34.294, 0.59]" in page
    assert "maize: 51.1% of 1,175 mapped pixels" in page  # 1,200 pixels less the 25 nodata ones; 600 of them crop
    r = cli("view", str(tmp_path / "none.tif"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "none.tif: map not found" in r.stderr


def test_view_screenshot_shows_the_map(small_map, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no headless browser (chromium) installed: `apt-get install chromium` runs this test")
    import matplotlib.image as mpimg

    from cropmeta.mapping.view import write_view

    page = write_view(small_map, tmp_path / "v.html")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=900,700", "--virtual-time-budget=4000", f"--screenshot={shot}",
                    page.resolve().as_uri()], capture_output=True, timeout=120, check=False)
    assert shot.exists(), "the browser wrote no screenshot"
    img = mpimg.imread(shot)[..., :3]
    dark_green = (img[..., 1] > img[..., 0] + 0.15) & (img[..., 1] > img[..., 2] + 0.15)
    assert dark_green.sum() > 2000  # the map's greens fill a good part of the page
