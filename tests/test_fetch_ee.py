"""``fetch --source ee`` offline: the Earth Engine request for a label box and for a region, built
without credentials through earthengine-api's own offline test support (``ee.apitestcase``: the
algorithm signatures from its ``tests/algorithms.json``, no server) and checked as a serialised graph;
download, batch export, retries and the task cap with stand-ins for the network."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rasterio.io import MemoryFile

from cropmeta.errors import FetchError, InputError
from cropmeta.fetch.common import (
    Target,
    export_windows,
    label_box,
    region_targets,
    snap_grid,
    start_for_year,
    with_retries,
)
from cropmeta.fetch.ee import (
    COLLECTIONS,
    NODATA,
    EEConfig,
    build_image,
    download_params,
    export_task,
    initialize,
    run_ee,
    wait_for_slot,
)
from cropmeta.io.eetiff import ee_tiff_info, read_ee_raw
from cropmeta.schema import S1_BANDS, S2_BANDS_RAW, n_raw_bands, raw_band_names

ee = pytest.importorskip("ee")


@pytest.fixture()
def ee_offline():
    from ee import apitestcase

    case = apitestcase.ApiTestCase("setUp")
    case.setUp()  # ee.Initialize against the packaged algorithm list; no network, no credentials
    yield case
    case.tearDown()


def _label_target(t: int = 12) -> Target:
    tr, h, w = snap_grid(label_box(7.7197, 1.4222))
    return Target("98", "togo", tr, w, h, start_for_year(2019, t), t, "togo:98")


def _resolve(node, values):
    """The serialised graph with references inlined, arrays and constants as plain values."""
    if isinstance(node, dict):
        if "valueReference" in node:
            return _resolve(values[node["valueReference"]], values)
        if "constantValue" in node:
            return node["constantValue"]
        if "arrayValue" in node:
            return [_resolve(v, values) for v in node["arrayValue"]["values"]]
        if "functionDefinitionValue" in node:  # a mapped function: its body is a key into values
            fn = node["functionDefinitionValue"]
            return {"argumentNames": fn.get("argumentNames"), "body": _resolve(values[fn["body"]], values)}
        if "dictionaryValue" in node:
            return {k: _resolve(v, values) for k, v in node["dictionaryValue"]["values"].items()}
        return {k: _resolve(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, values) for v in node]
    return node


def _walk(node, calls, consts):
    if isinstance(node, dict):
        if "functionName" in node:
            calls.append(node["functionName"])
        for v in node.values():
            _walk(v, calls, consts)
    else:
        consts.append(node)
        if isinstance(node, list):
            for v in node:
                _walk(v, calls, consts)


def _graph(serialised: str):
    g = json.loads(serialised)
    tree = _resolve(g["values"][g["result"]], g["values"])
    calls, consts = [], []
    _walk(tree, calls, consts)
    return tree, calls, consts


def test_label_box_graph_bands_dates_collections(ee_offline):
    target = _label_target()
    tree, calls, consts = _graph(build_image(target).serialize())
    top = tree["functionInvocationValue"]
    assert top["functionName"] == "Image.toFloat"
    rename = top["arguments"]["value"]["functionInvocationValue"]
    assert rename["functionName"] == "Image.rename"
    names = rename["arguments"]["names"]
    assert names == raw_band_names(12) and len(names) == n_raw_bands(12) == 206
    # every window's dates; the collections of the CropHarvest recipe
    for a, b in export_windows(target.start, 12):
        assert a.isoformat() in consts and b.isoformat() in consts
    for cid in COLLECTIONS.values():
        assert cid in consts
    assert S2_BANDS_RAW in consts and S1_BANDS in consts  # band selections
    assert 40 in consts  # s2cloudless threshold
    assert {"Join.saveFirst", "Terrain.slope", "reduce.median", "reduce.mean", "Filter.listContains"} <= set(calls)
    assert consts.count("IW") >= 12  # one Sentinel-1 filter per window


def test_download_request_is_the_exact_grid(ee_offline):
    target = _label_target()
    build_image(target).getDownloadURL(download_params(target))
    sent = ee_offline.last_download_call["data"]
    assert sent["crs"] == "EPSG:4326" and sent["dimensions"] == [17, 17]
    assert sent["crs_transform"] == list(target.transform)[:6] and sent["format"] == "GEO_TIFF"


def test_region_export_tasks(ee_offline):
    from cropmeta.regions import region_from_bbox

    targets = region_targets(region_from_bbox((1.40, 7.70, 1.45, 7.75)), 2019, tile_px=256)
    assert len(targets) == 9  # 557 x 557 px → 3 x 3 tiles
    task = export_task(targets[4], EEConfig(mode="drive", folder="togo"))
    dest = task.config["fileExportOptions"]
    assert dest["driveDestination"] == {"folder": "togo", "filenamePrefix": targets[4].filename[:-4]}
    assert dest["fileFormat"] == "GEO_TIFF" and dest["geoTiffOptions"] == {"noData": {"floatValue": NODATA}}
    expr = task.config["expression"]
    _, calls, consts = _graph(expr if isinstance(expr, str) else ee.serializer.toJSON(expr))
    assert raw_band_names(12) in consts and {"Image.clip", "Image.reproject"} <= set(calls)
    assert list(targets[4].transform)[:6] in consts  # exported on the tile's exact grid
    gcs = export_task(targets[0], EEConfig(mode="gcs", bucket="my-bucket"))
    assert gcs.config["fileExportOptions"]["cloudStorageDestination"]["bucket"] == "my-bucket"
    with pytest.raises(InputError, match="needs --bucket"):
        export_task(targets[0], EEConfig(mode="gcs"))


def _fake_geotiff(target: Target, fill: float) -> bytes:
    n = n_raw_bands(target.t)
    data = np.full((n, target.height, target.width), fill, np.float32)
    data[:, 0, 0] = -9999.0  # a masked pixel, under the file's own nodata value
    data[:3, 1, 1] = NODATA  # a pixel masked in the first bands: the unmask value cropmeta asked for
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", count=n, height=target.height, width=target.width, dtype="float32",
                      crs="EPSG:4326", transform=target.transform, nodata=-9999.0) as dst:
            dst.write(data)
        return mem.read()


def test_download_mode_writes_layout_and_resumes(ee_offline, tmp_path, monkeypatch):
    import cropmeta.fetch.ee as ee_mod

    monkeypatch.setattr(ee_mod, "initialize", lambda config: ee)
    target = _label_target(t=2)
    calls = []

    def http_get(url):
        calls.append(url)
        if len(calls) == 1:
            raise ConnectionError("Connection reset by peer")  # transient: retried
        return _fake_geotiff(target, 7.0)

    cfg = EEConfig(project="p", retries=3)
    res = run_ee([target], tmp_path / "out", cfg, http_get=http_get, sleep=lambda s: None)
    assert len(calls) == 2 and [p.name for p in res.written] == [target.filename]
    sent = ee_offline.last_download_call["data"]
    assert sent["dimensions"] == [target.width, target.height]
    _, fns, consts = _graph(ee.serializer.toJSON(sent["image"]))
    assert "Image.unmask" in fns and NODATA in consts  # masked pixels come back as NODATA
    info = ee_tiff_info(res.written[0])  # cropmeta's band names were written
    data, _ = read_ee_raw(res.written[0], info=info)
    assert info.t == 2 and np.isnan(data[:, 0, 0]).all() and np.isnan(data[:3, 1, 1]).all()
    assert (data[3:, 1:, 1:] == 7.0).all() and (data[:, 2:, 2:] == 7.0).all()
    entry = json.loads(res.manifest.read_text())["files"][target.filename]
    assert entry["items"]["dem"] == [COLLECTIONS["dem"]] and entry["sample_id"] == "togo:98"
    again = run_ee([target], tmp_path / "out", cfg, http_get=http_get, sleep=lambda s: None)
    assert not again.written and len(again.skipped) == 1 and len(calls) == 2


def test_download_refuses_region_sized_tiles(tmp_path):
    big = Target("0", "r", snap_grid((1.0, 7.0, 1.1, 7.1))[0], 1024, 1024, start_for_year(2019))
    with pytest.raises(InputError, match="download limit; use --ee-mode drive or gcs"):
        run_ee([big], tmp_path, EEConfig(project="p"))


def test_batch_mode_caps_queued_tasks(ee_offline, tmp_path, monkeypatch):
    import cropmeta.fetch.ee as ee_mod

    monkeypatch.setattr(ee_mod, "initialize", lambda config: ee)
    started = []

    class Task:
        def __init__(self, target, config):
            self.id = f"TASK_{target.index}"

        def start(self):
            started.append(self.id)

    monkeypatch.setattr(ee_mod, "export_task", Task)
    queue = iter([3, 3, 1, 2, 0, 2])  # queued/running counts seen before each start
    sleeps = []
    targets = [Target(str(i), "r", snap_grid((1.0, 7.0, 1.01, 7.01))[0], 16, 16, start_for_year(2019))
               for i in range(3)]
    res = run_ee(targets, tmp_path / "out", EEConfig(project="p", mode="drive", max_tasks=3),
                 count_active=lambda: next(queue), sleep=sleeps.append)
    assert started == ["TASK_0", "TASK_1", "TASK_2"] and res.queued == started
    assert len(sleeps) == 2  # waited twice while 3 tasks were queued
    files = json.loads(res.manifest.read_text())["files"]
    assert {f["status"] for f in files.values()} == {"queued"} and files[targets[0].filename]["task_id"] == "TASK_0"
    again = run_ee(targets, tmp_path / "out", EEConfig(project="p", mode="drive", max_tasks=3),
                   count_active=lambda: 0, sleep=sleeps.append)
    assert not again.queued and len(again.skipped) == 3 and len(started) == 3  # not queued twice


def test_retries_and_waits():
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("Too many concurrent aggregations")
        return "ok"

    slept = []
    assert with_retries(flaky, "x", attempts=4, sleep=slept.append) == "ok" and slept == [1.0, 2.0]
    with pytest.raises(FetchError, match="Earth Engine: y failed after 1 attempt"):
        with_retries(lambda: (_ for _ in ()).throw(ValueError("Image.select: band 'B99' not found")), "y",
                     source="Earth Engine")
    with pytest.raises(FetchError, match="failed after 2 attempt"):
        with_retries(lambda: (_ for _ in ()).throw(RuntimeError("HTTP 503")), "z", attempts=2, sleep=slept.append)
    with pytest.raises(FetchError, match="still queued"):
        wait_for_slot(lambda: 5, 5, poll_s=10, sleep=lambda s: None, timeout_s=30)


def test_missing_project_or_login_is_one_clear_error(monkeypatch, tmp_path):
    for k in ("EE_PROJECT", "GOOGLE_CLOUD_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no stored credentials
    with pytest.raises(FetchError, match="set EE_PROJECT .* or use --source stac"):
        initialize(EEConfig())
    monkeypatch.setenv("EE_PROJECT", "my-project")
    with pytest.raises(FetchError, match="not logged in .*earthengine authenticate.*--source stac"):
        initialize(EEConfig())
