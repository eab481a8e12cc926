"""Issue 18, scale-out: the export on a dask.distributed cluster reached by address (the CLI's
``--scheduler``) and on in-process local workers gives the serial map's probabilities exactly, with
cropmeta's real (folded) TIML model; the folded model's explicit fused-gate loop equals nn.LSTM."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from cropmeta.mapping.export import export
from cropmeta.testing import make_ee_tile, make_timl_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("scaleout")
    run = make_timl_run(d / "run", hidden=8)
    tile = make_ee_tile(d / "in" / "0-a_2021-01-01_2021-12-31.tif", height=20, width=1100, seed=3)
    serial = d / "serial" / "map.tif"
    export(run, serial, inputs=[tile], as_float=True, progress=False, quicklook=False)
    return d, run, tile, serial


def _prob(path):
    with rasterio.open(path) as m:
        return m.read(1)


def test_cli_scheduler_equals_serial(world):
    from dask.distributed import LocalCluster
    from typer.testing import CliRunner

    from cli.app import app

    d, run, tile, serial = world
    out = d / "cli" / "map.tif"
    out.parent.mkdir()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        r = CliRunner().invoke(app, ["export", "--run", str(run), "--input", str(tile), "--out", str(out), "--float",
                                     "--scheduler", cluster.scheduler_address])
    assert r.exit_code == 0, r.output
    p, ps = _prob(out), _prob(serial)
    assert np.isfinite(ps).sum() > 1000 and np.array_equal(p, ps, equal_nan=True)
    assert out.read_bytes() == serial.read_bytes()


def test_in_process_workers_equal_serial_and_restore_threads(world):
    d, run, tile, serial = world
    before = torch.get_num_threads()
    out = d / "threads" / "map.tif"
    res = export(run, out, inputs=[tile], as_float=True, workers=2, progress=False, quicklook=False)
    assert res["executor"] == "dask" and res["blocks_computed"] == 3
    assert out.read_bytes() == serial.read_bytes()
    assert torch.get_num_threads() == before


def test_fused_loop_equals_nn_lstm():
    from cropmeta.models.inference import FoldedTIML, FusedLoopLSTM

    torch.manual_seed(0)
    net = FoldedTIML(5, 18, 16)
    with torch.no_grad():
        for p in net.lstm.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(37, 5, 18)
    with torch.no_grad():
        _, (h, _) = net.lstm(x)
        assert torch.allclose(FusedLoopLSTM(net)(x), h[-1], atol=1e-6)


def test_read_budget_sets_strips_not_the_map(world, tmp_path):
    from cropmeta.errors import InputError
    from cropmeta.mapping.infer import bytes_per_pixel, read_pixels_for_budget
    from cropmeta.mapping.sources import MAX_READ_PIXELS, open_source

    d, run, tile, serial = world
    src = open_source(tile)
    assert read_pixels_for_budget([src], None) == MAX_READ_PIXELS
    assert read_pixels_for_budget([src], 1.0) == 2**20 // bytes_per_pixel(src)
    out = tmp_path / "budget.tif"
    export(run, out, inputs=[tile], as_float=True, progress=False, quicklook=False, read_budget_mb=0.5)  # 1-row strips
    np.testing.assert_allclose(_prob(out), _prob(serial), rtol=0, atol=1e-6)
    with pytest.raises(InputError, match="read-budget-mb"):
        export(run, tmp_path / "x.tif", inputs=[tile], progress=False, quicklook=False, read_budget_mb=0)
