"""The real MODIS benchmark (issue 27): CAWa's 16-day NDVI field series in cropharvest's flat layout
become monthly NDVI samples through the shipped mapping, each region split into a spatially
separated test set, cotton targets compared leaving the region out; `ingest --benchmark cawa` keeps
the same splits; the real table in ../shared loads through the same path when present."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cropmeta.evaluate.splits import min_distance_m

from test_byod_e2e import TINY

#: region → (lat, lon, spread in degrees, {label_1: count})
REGIONS = {"Fergana": (40.5, 71.5, 0.3, {"cotton": 40, "wheat-other": 30, "rice": 10}),
           "Khorezm": (41.5, 60.6, 0.3, {"cotton": 30, "wheat": 30, "fallow": 10}),
           "Dushanbe": (38.6, 68.8, 0.2, {"cotton": 30, "alfalfa": 30})}
PEAK = {"cotton": 14, "wheat-other": 6, "wheat": 6, "rice": 12, "fallow": 30, "alfalfa": 10}
DOYS = list(range(1, 354, 16))


def cawa_table(folder, seed: int = 0):
    """``cawa_flat.parquet`` as SOURCE.md describes it (23 columns X1 … X353), some fields too gappy."""
    rng = np.random.default_rng(seed)
    rows = []
    for region, (lat, lon, spread, classes) in REGIONS.items():
        for label, count in classes.items():
            for i in range(count):
                r = {"sampler": "x", "country": "Uzbekistan", "region": region, "date": "2016-06-01", "year": 2016,
                     "label_1": label, "label_2": "summer", "lat": lat + rng.uniform(-spread, spread),
                     "lon": lon + rng.uniform(-spread, spread)}
                for j, d in enumerate(DOYS):
                    r[f"X{d}"] = 0.15 + 0.6 * np.exp(-((j - PEAK[label]) ** 2) / 8.0) + rng.normal(0, 0.03)
                if i == 0:  # NDVI at under half of the months: left out, counted
                    for d in DOYS[:14]:
                        r[f"X{d}"] = np.nan
                rows.append(r)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "cawa_flat.parquet")
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return cawa_table(tmp_path_factory.mktemp("cawa"))


def test_cawa_loads_as_monthly_ndvi_and_splits_each_region_apart(root):
    from cropmeta.evaluate.cawa import CAWA
    from cropmeta.evaluate.targets import build_target, source_samples
    from cropmeta.io.cawa import load_cawa

    samples, rep = load_cawa(root)
    assert samples.schema.bands == ("NDVI",) and samples.t == 12 and set(samples.meta["dataset"]) == {"cawa"}
    assert sum(rep["left_out"].values()) == 8 == 210 - len(samples)  # one gappy field per class, said
    assert (samples.meta.loc[samples.meta["label"] == "fallow", "is_crop"] == 0).all()
    view, split = CAWA.view(samples, "Fergana")
    own = view.meta["region"] == "Fergana"
    test, pool = own & (view.meta["split"] == "test"), own & (view.meta["split"] == "train")
    assert split["test"] == int(test.sum()) and split["pool"] == int(pool.sum()) and split["test"] >= 39
    assert min_distance_m(view.meta.loc[pool, "lat"], view.meta.loc[pool, "lon"], view.meta.loc[test, "lat"],
                          view.meta.loc[test, "lon"]) >= CAWA.buffer_m
    data = build_target(view, "Fergana", "cotton")
    held = source_samples(view, data, hold_out_region=True)
    assert not (held.meta["region"] == "Fergana").any() and set(held.meta["region"]) == {"Khorezm", "Dushanbe"}


def test_cawa_benchmark_runs_end_to_end_and_ingests_with_its_splits(root, tmp_path):
    from cropmeta.evaluate.benchmark import run_benchmark
    from cropmeta.ingest import ingest_benchmark

    r = run_benchmark("cawa", root=root, seeds=1, shots="0,8", methods="ensemble,random-forest,random-forest-source",
                      out=tmp_path / "b", progress=False, config={**TINY, "finetune.max_steps": 25,
                                                                  "ensemble.trees": 10},
                      calib_folds=0, n_boot=10, targets=["fergana_cotton"])
    assert list(r["targets"]) == ["fergana_cotton"] and "fergana_cotton" in r["splits"]
    rep = json.loads((tmp_path / "b" / "fergana_cotton" / "report.json").read_text())
    assert rep["config"]["hold_out_region"] is True
    aucs = {(c["method"], str(c["shots"])): c["metrics"]["auc_roc"] for c in rep["cells"]}
    assert {("ensemble", "8"), ("random-forest", "8"), ("random-forest-source", "0")} <= set(aucs)
    assert all(0 <= v <= 1 for v in aucs.values())
    res = ingest_benchmark("cawa", root=root, home=tmp_path / "h")
    # dataset names apart from WorldCrops' regions of the same names (Fergana, Samarkand)
    assert sorted(res.datasets) == ["cawa_dushanbe", "cawa_fergana", "cawa_khorezm"]
    assert res.report["splits"]["Fergana"] == r["splits"]["fergana_cotton"]  # the compare cell's split


@pytest.mark.shared
def test_real_cawa_loads(shared_data):
    from cropmeta.evaluate.cawa import CAWA
    from cropmeta.evaluate.targets import build_target
    from cropmeta.io.cawa import load_cawa

    samples, rep = load_cawa(shared_data / "cawa_modis_ndvi")
    assert len(samples) + sum(rep["left_out"].values()) == 8435
    assert set(samples.meta["region"]) == {"Fergana", "Samarkand", "Kashkadarya", "Khorezm", "Dushanbe"}
    for key, region, crop in CAWA.targets():
        view, split = CAWA.view(samples, region)
        data = build_target(view, region, crop)
        assert data.summary["train"]["positive"] >= 10 and data.summary["test"]["positive"] >= 20, key
