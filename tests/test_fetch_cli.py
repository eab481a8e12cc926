"""As a new user would, offline: ``cropmeta fetch --source stac --catalog <local catalogue> --labels
labels.geojson --year 2019 --out tifs/`` then ``cropmeta ingest --source tifs/ --labels
labels.geojson`` and a map export of a fetched tif, end to end; Earth Engine without an account fails
with one line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from cropmeta.fetch.testing import write_static_catalogue
from cropmeta_cli.app import app

from test_fetch_stac import BBOX, POINTS, START, write_labels

runner = CliRunner()
LOADER = "cropmeta.testing:load_double"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("fetch_cli")
    spec = write_static_catalogue(d / "cat", BBOX, START, t=12)
    return d, spec, write_labels(d / "labels.geojson")


def test_fetch_then_ingest_then_export(world, tmp_path):
    d, spec, labels = world
    tifs = tmp_path / "tifs"
    res = runner.invoke(app, ["fetch", "--source", "stac", "--catalog", str(spec.href), "--labels", str(labels),
                              "--year", "2019", "--out", str(tifs)])
    assert res.exit_code == 0, res.output
    assert "fetched 2 file(s), 0 already complete" in res.output
    res = runner.invoke(app, ["fetch", "--catalog", str(spec.href), "--labels", str(labels), "--year", "2019",
                              "--out", str(tifs)])
    assert res.exit_code == 0 and "fetched 0 file(s), 2 already complete" in res.output

    res = runner.invoke(app, ["ingest", "--source", str(tifs), "--labels", str(labels)])
    assert res.exit_code == 0, res.output
    from cropmeta.io.eetiff import read_ee_tiff
    from cropmeta.io.store import dataset_dir, read_samples, workspace_home

    samples = read_samples(dataset_dir("togo", workspace_home()))
    assert len(samples) == 2 and samples.t == 12
    meta = samples.meta.set_index("sample_id")
    assert meta.loc["a", "is_crop"] == 1 and meta.loc["b", "is_crop"] == 0
    # the ingested sample is the fetched pixel under the label point
    da = read_ee_tiff(tifs / "0-demo_2019-02-06_2020-02-01.tif", fill=True)
    px = da.sel(x=POINTS[0][1], y=POINTS[0][2], method="nearest").values  # [T, 18]
    i = list(meta.index).index("a")
    np.testing.assert_allclose(samples.x[i], px, rtol=1e-5)

    from cropmeta.mapping.export import export
    from cropmeta.testing import make_double_run, ndvi_probability
    from cropmeta.io.eetiff import pixels_array

    run = make_double_run(tmp_path / "run", kind="ndvi")
    out = tmp_path / "map.tif"
    export(run, out, inputs=[tifs / "0-demo_2019-02-06_2020-02-01.tif"], loader=LOADER, progress=False,
           quicklook=False)
    with rasterio.open(out) as m:
        prob = m.read(1).astype(float)
        assert (m.height, m.width) == (17, 17) and m.crs.to_epsg() == 4326
    want = 100 * ndvi_probability(pixels_array(da)).reshape(17, 17)
    assert np.abs(prob - want).max() <= 1.0


def test_cli_errors_are_one_line(world, tmp_path):
    d, spec, labels = world
    env = {k: v for k, v in os.environ.items() if k not in ("EE_PROJECT", "GOOGLE_CLOUD_PROJECT")}
    env.update(HOME=str(tmp_path), COLUMNS="200", PYTHONPATH=os.pathsep.join(sys.path))
    code = "import sys; from cropmeta_cli.app import main; sys.argv = ['cropmeta'] + sys.argv[1:]; main()"
    p = subprocess.run([sys.executable, "-c", code, "fetch", "--source", "ee", "--labels", str(labels), "--year",
                        "2019", "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.count("error:") == 1
    assert "EE_PROJECT" in p.stderr and "--source stac" in p.stderr
    res = runner.invoke(app, ["fetch", "--catalog", str(tmp_path / "missing"), "--labels", str(labels),
                              "--year", "2019", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "no such STAC catalogue" in str(res.exception)
