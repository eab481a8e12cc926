"""Map export on Dask: 2-worker runs are byte-identical to a serial run (an existing scheduler with
the torch LSTM double; a new local cluster with the NDVI double), the model is loaded once per
worker, an unreachable scheduler is a clear error."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import rasterio

from cropmeta.errors import InputError
from cropmeta.mapping.export import export
from cropmeta.testing import make_double_run, make_ee_tile

LOADER = "cropmeta.testing:load_double"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("daskmap")
    runs = {k: make_double_run(d / f"run_{k}", kind=k, hidden=8) for k in ("lstm", "ndvi")}
    tiles = [make_ee_tile(d / "in" / "a.tif", height=24, width=1100, seed=3),
             make_ee_tile(d / "in" / "b.tif", height=24, width=40, origin=(311000, 9990000), seed=4)]
    serial = {}
    for k, run in runs.items():
        serial[k] = d / f"serial_{k}" / "map.tif"
        export(run, serial[k], inputs=tiles, loader=LOADER, mosaic="cog", progress=False, quicklook=False)
    return d, runs, tiles, serial


def _export(run, out, tiles, **kw):
    return export(run, out, inputs=tiles, loader=LOADER, mosaic="cog", progress=False, quicklook=False, **kw)


def test_existing_scheduler_byte_identical_model_loaded_once_per_worker(world):
    from dask.distributed import Client, LocalCluster

    from cropmeta.mapping.model import load_counts

    d, runs, tiles, serial = world
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        for i in range(2):  # two exports on one cluster: still one model load per worker
            out = d / f"sched{i}" / "map.tif"
            res = _export(runs["lstm"], out, tiles, scheduler=cluster.scheduler_address)
            assert res["executor"] == "dask" and res["blocks_computed"] == 4
            assert out.read_bytes() == serial["lstm"].read_bytes()
        counts = client.run(load_counts)
    per_worker = [sum(c.values()) for c in counts.values()]
    assert len(per_worker) == 2 and max(per_worker) == 1 and sum(per_worker) >= 1
    with rasterio.open(serial["lstm"]) as m:
        p = m.read(1)
    assert len(np.unique(p[p != 255])) > 10  # a real, varied map, not a constant


def test_local_cluster_two_workers_byte_identical(world):
    d, runs, tiles, serial = world
    out = d / "w2" / "map.tif"
    res = _export(runs["ndvi"], out, tiles, workers=2)
    assert res["executor"] == "dask" and res["workers"] == 2
    assert out.read_bytes() == serial["ndvi"].read_bytes()


def test_unreachable_scheduler_is_named(world):
    import dask

    d, runs, tiles, _ = world
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        with pytest.raises(InputError, match=f"cannot reach the Dask scheduler at {addr}"):
            _export(runs["ndvi"], d / "x.tif", tiles[1:], scheduler=addr)
    assert not (d / "x.tif").exists()


def _malloc_env():
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_local_worker_processes_keep_glibcs_adaptive_malloc(monkeypatch):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its worker processes, which switches off glibc's
    adaptive mmap threshold (a Presto map ran 1.7x slower per core there); cropmeta's own local
    cluster leaves it unset, and Dask's default for other clusters is untouched. (A value already in
    this process's environment — the user's, or one an earlier Dask cluster left there, as Dask
    writes it into the parent's environment — is inherited.)"""
    import dask

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)

    from cropmeta.mapping.dask_exec import DaskExecutor

    ex = DaskExecutor(workers=1, processes=True)
    try:
        assert list(ex.client.run(_malloc_env).values()) == [None]
    finally:
        ex.close()
    assert dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_") == 65536
