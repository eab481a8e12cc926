"""The real time-series benchmark (issue 27): spatially separated test splits, leave one region out,
and `compare --benchmark worldcrops` end to end on a small table in WorldCrops' layout (per-date
Sentinel-2 field means in two product levels, a cloud fraction, a separate label table); the real
files in ../shared load through the same path when present."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cropmeta.evaluate.splits import block_split, min_distance_m

from test_byod_e2e import TINY

#: region name in the label table → (lat, lon, spread in degrees, {label: count})
REGIONS = {
    "Western Kenya (PlantVillage)": (0.6, 34.3, 0.2, {"Maize": 40, "Cassava": 24, "Fallowland": 16}),
    "Bavaria (Freising, TUM fields)": (48.4, 11.6, 0.05, {"Silomais": 24, "Winterweizen (Weichweizen)": 24,
                                                          "Weiden": 32}),
    "Fergana": (40.5, 71.5, 0.8, {"cotton": 40, "wheat-other": 40}),
    "Samarkand": (39.7, 66.5, 0.8, {"cotton": 40, "wheat": 40}),
}
PEAK = {"Maize": 5, "Silomais": 7, "cotton": 7, "Winterweizen (Weichweizen)": 4, "wheat-other": 3, "wheat": 3}
BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def worldcrops_files(folder, seed: int = 0):
    """``s2_field_timeseries.parquet`` and ``labels.parquet`` as SOURCE.md describes them."""
    rng = np.random.default_rng(seed)
    labels, rows = [], []
    n = 0
    for region, (lat, lon, spread, classes) in REGIONS.items():
        for label, count in classes.items():
            for _ in range(count):
                fid = f"f{n}"
                n += 1
                flat, flon = lat + rng.uniform(-spread, spread), lon + rng.uniform(-spread, spread)
                labels.append({"dataset": "x", "field_id": fid, "region": region, "label": label, "lat": flat,
                               "lon": flon, "year": 2019})
                peak = PEAK.get(label, rng.uniform(0, 12))
                for month in range(12):
                    green = np.exp(-((month - peak) ** 2) / 4.0) * rng.uniform(0.7, 1.0)
                    for day, cloud in ((4, 0.0), (14, 1.0), (24, 0.0)):
                        for level in ("L1C", "L2A"):
                            r = {"dataset": "x", "field_id": fid, "level": level,
                                 "date": f"2019-{month + 1:02d}-{day:02d}", "cloud_frac": cloud}
                            for j, b in enumerate(BANDS):
                                base = 0.05 + 0.01 * j
                                gain = 0.3 if b in ("B07", "B08", "B8A") else -0.03
                                r[b] = base + gain * green + rng.normal(0, 0.005) + (0.4 if cloud else 0.0)
                            rows.append(r)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "s2_field_timeseries.parquet")
    pd.DataFrame(labels).to_parquet(folder / "labels.parquet")
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return worldcrops_files(tmp_path_factory.mktemp("worldcrops"))


def test_block_split_keeps_every_pool_point_away_from_the_test_set():
    rng = np.random.default_rng(0)
    lat, lon = 0.6 + rng.uniform(-0.1, 0.1, 400), 34.3 + rng.uniform(-0.1, 0.1, 400)
    split, summary = block_split(lat, lon, "Kenya", block_km=2.0, buffer_m=500.0)
    test, pool = split == "test", split == "train"
    assert test.mean() >= 0.5 and pool.sum() > 50 and (split == "buffer").sum() == summary["buffer"] > 0
    assert min_distance_m(lat[pool], lon[pool], lat[test], lon[test]) >= 500.0
    # a random split would not: its nearest pool-test pair is metres apart
    again, _ = block_split(lat, lon, "Kenya", block_km=2.0, buffer_m=500.0)
    assert (again == split).all()
    other, _ = block_split(lat, lon, "Bavaria", block_km=2.0, buffer_m=500.0)
    assert (other != split).any()  # the permutation follows the region's name


def test_leave_one_region_out_removes_the_region_from_the_sources(root):
    from cropmeta.evaluate.targets import build_target, source_samples
    from cropmeta.evaluate.worldcrops import WORLDCROPS
    from cropmeta.io.worldcrops import load_worldcrops

    samples, rep = load_worldcrops(root)
    assert set(samples.meta["region"]) == {"Western Kenya", "Bavaria", "Fergana", "Samarkand"}
    assert rep["rows_not_clear"] == rep["rows"] // 3 and samples.t == 12
    assert (samples.meta.loc[samples.meta["region"] == "Bavaria", "label"] == "maize").sum() == 24
    view, split = WORLDCROPS.view(samples, "Western Kenya")
    assert split["test"] + split["pool"] + split["buffer"] == 80
    data = build_target(view, "Western Kenya", "maize")
    kept = source_samples(view, data)
    assert (kept.meta["region"] == "Western Kenya").any()  # its pool: the other Kenya tasks see it
    held = source_samples(view, data, hold_out_region=True)
    assert not (held.meta["region"] == "Western Kenya").any() and len(held) == len(kept) - split["pool"]


def test_benchmark_runs_end_to_end_on_a_worldcrops_layout(root, tmp_path):
    from cropmeta.evaluate.benchmark import run_benchmark

    r = run_benchmark("worldcrops", root=root, seeds=1, shots="0,8,all", methods="timl,random-forest,random-forest-source",
                      out=tmp_path / "b", progress=False, config=TINY, calib_folds=0, n_boot=10,
                      targets=["western_kenya_maize", "fergana_cotton"])
    assert list(r["targets"]) == ["western_kenya_maize", "fergana_cotton"]
    assert set(r["splits"]) == {"western_kenya_maize", "fergana_cotton"}
    acr = r["across_targets"]
    assert acr["targets"] == ["western_kenya_maize", "fergana_cotton"]
    import json

    rep = json.loads((tmp_path / "b" / "western_kenya_maize" / "report.json").read_text())
    assert rep["config"]["hold_out_region"] is True
    assert any("leave one region out" in n for n in rep["config"]["protocol_notes"])
    aucs = {(c["method"], str(c["shots"])): c["metrics"]["auc_roc"] for c in rep["cells"]}
    assert ("random-forest-source", "0") in aucs and all(0 <= v <= 1 for v in aucs.values())
    # issue 28 (8): the answer first, links that work, no interval or test from one seed
    page = (tmp_path / "b" / "benchmark.html").read_text()
    assert page.index("<h2>") < page.index("Notes (generated text)") and "<details>" in page
    import re

    for href in re.findall(r"href='([^']+)'", page):
        assert (tmp_path / "b" / href).exists(), href
    md = (tmp_path / "b" / "benchmark.md").read_text()
    assert "[n/a: one seed]" in md and md.index("## Notes (generated)") > md.index("## Per-target reports")


def test_real_worldcrops_loads(shared_data):
    from cropmeta.evaluate.worldcrops import WORLDCROPS
    from cropmeta.io.worldcrops import load_worldcrops

    samples, rep = load_worldcrops(shared_data / "worldcrops_s2_fis")
    assert rep["samples_in_table"] == 4496 and len(samples) == 4336 and samples.schema.name == "s2-fis"
    for key, region, crop in WORLDCROPS.targets():
        view, split = WORLDCROPS.view(samples, region)
        own = view.meta["region"] == region
        test, pool = own & (view.meta["split"] == "test"), own & (view.meta["split"] == "train")
        lab = view.meta["label"]
        # Bavaria (one 4-km cluster of fields, 6 blocks) keeps only 6 maize fields in its pool
        assert (lab[test] == crop).sum() >= 10 and (lab[pool] == crop).sum() >= 5, key
        m = view.meta
        assert min_distance_m(m.loc[pool, "lat"], m.loc[pool, "lon"], m.loc[test, "lat"], m.loc[test, "lon"]) >= 500


def test_train_on_the_ingested_benchmark_fine_tunes_on_the_cells_samples(root, tmp_path):
    """`cropmeta ingest --benchmark worldcrops` then `train --region "Western Kenya" --crop maize
    --shots 8 --seed 0` fine-tunes on the samples of the benchmark's (seed 0, 8 shots) cell."""
    import json

    from cropmeta.app.train import train
    from cropmeta.evaluate.benchmark import run_benchmark
    from cropmeta.ingest import ingest_benchmark

    res = ingest_benchmark("worldcrops", root=root, home=tmp_path / "h")
    assert sorted(res.datasets) == ["bavaria", "fergana", "samarkand", "western_kenya"]
    out = train("Western Kenya", "maize", home=tmp_path / "h", out=tmp_path / "run", overrides=TINY, seed=0, shots=8)
    run_ids = json.loads((tmp_path / "run" / "metrics.json").read_text())["finetune_ids"]
    assert out["counts"]["shots"] == 8 and len(run_ids) == 8
    run_benchmark("worldcrops", root=root, seeds=1, shots="8", methods="random-forest", out=tmp_path / "b",
                  progress=False, config=TINY, calib_folds=0, n_boot=10, targets=["western_kenya_maize"])
    cell = json.loads((tmp_path / "b" / "western_kenya_maize" / "cells" / "random-forest" / "seed-0" /
                       "shots-8.json").read_text())
    assert sorted(cell["train_ids"]) == sorted(run_ids)


def test_the_committed_summary_follows_from_its_per_target_records(tmp_path):
    """docs/results/worldcrops: the across-target means in benchmark.json are recomputed from the
    per-target report.json.gz records (every cell's test probabilities)."""
    import json
    import shutil
    from pathlib import Path

    from cropmeta.evaluate.benchmark import assemble_from_reports

    src = Path(__file__).resolve().parents[1] / "docs" / "results" / "worldcrops"
    keys = ["western_kenya_maize", "bavaria_maize", "bavaria_wheat", "fergana_cotton", "samarkand_cotton"]
    for k in keys:
        (tmp_path / k).mkdir()
        shutil.copy(src / k / "report.json.gz", tmp_path / k / "report.json.gz")
    got = assemble_from_reports("worldcrops", tmp_path, keys)["across_targets"]
    want = json.loads((src / "benchmark.json").read_text())["across_targets"]
    for k in ("20", "all"):
        for m in ("timl", "random-forest", "presto"):
            assert abs(got["summary"][k][m]["auc_roc"]["mean"] - want["summary"][k][m]["auc_roc"]["mean"]) < 1e-9
    assert round(want["summary"]["20"]["random-forest"]["auc_roc"]["mean"], 3) == 0.896


def test_compare_hold_out_region_from_the_api_and_cli(root, tmp_path):
    """`cropmeta compare --hold-out-region` (and the API's hold_out_region) on a user's own datasets."""
    from cropmeta.app.compare import compare
    from cropmeta.ingest import ingest_benchmark

    ingest_benchmark("worldcrops", root=root, home=tmp_path / "h")
    rep = compare("Western Kenya", "maize", home=tmp_path / "h", seeds=1, shots=["8"], methods=["random-forest"],
                  calib_folds=0, progress=False, n_boot=10, out=tmp_path / "c", hold_out_region=True)
    assert rep["config"]["hold_out_region"] is True
    assert any("leave one region out" in n for n in rep["config"]["protocol_notes"])
    from test_issue14 import cli

    assert "--hold-out-region" in cli("compare", "--help").stdout
