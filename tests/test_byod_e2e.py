"""Bring your own data, end to end (issue 16): an NDVI-only sample table of three regions is ingested,
trained on (a 1-band TIML model) and predicts, and maps a per-date NDVI image folder on its own grid; a
24-month Earth-Engine export windowed to 12 months trains exactly like the 12-month export."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

from cropmeta.testing import pixel_centre, tiny_tile
from cropmeta.errors import DataError
from cropmeta.ingest import ingest
from cropmeta.datasets import load_datasets
from cropmeta.io.eewrite import write_ee_tiff
from cropmeta.io.store import SampleSet
from cropmeta.io.table_mapping import table_mapping
from cropmeta.schema import BAND_INDEX, CROPHARVEST
from cropmeta.testing import toy_samples

REGIONS = [("Kenya", 0.2, 37.9, ["maize"]), ("Togo", 8.5, 0.9, ["maize"]), ("Uganda", 1.3, 32.4, ["maize"])]
TINY = {"hidden": 8, "encoder_dims": [8, 8], "encoder_channels_per_group": 4, "iterations": 3, "tasks_per_step": 2,
        "val_every": 3, "checkpoint_every": 3, "ft_steps": 5, "pt_steps": 4, "pt_val_every": 2, "threads": 1,
        "device": "cpu", "k_support": 4, "k_query": 2}


def ndvi_table(path, t: int = 12):
    """The toy world's NDVI as a long table (one row per sample and month), as a user would hold it."""
    s = toy_samples(n_per_label=12, n_noncrop=12, t=t, seed=2, regions=REGIONS)
    ndvi = s.x[..., BAND_INDEX["NDVI"]]
    rows = []
    for i, m in s.meta.iterrows():
        for k in range(t):
            rows.append({"id": m["sample_id"], "lon": m["lon"], "lat": m["lat"], "month": f"2021-{k + 1:02d}-01",
                         "ndvi": float(ndvi[i, k]), "crop": m["label"] if m["is_crop"] == 1 else "non-crop",
                         "split": m["split"], "country": m["region"]})
    pd.DataFrame(rows).to_csv(path, index=False)
    return s


def _compare_rows(home, region, out, tag):
    """`cropmeta compare` on the ingested table: TIML, from scratch and the random forest, one seed,
    8 shots and all; every (method, shot) cell has finite metrics on the table's own band schema."""
    from cropmeta.app.compare import compare

    rep = compare(region, home=home, seeds=1, shots="8,all", methods="timl,scratch,random-forest", config=TINY,
                  calib_folds=0, progress=False, n_boot=20, out=out)
    cells = {(c["method"], str(c["shots"])): c for c in rep["cells"]}
    assert set(cells) == {(m, k) for m in ("timl", "scratch", "random-forest") for k in ("8", "all")}, tag
    for c in cells.values():
        assert 0.0 <= c["metrics"]["auc_roc"] <= 1.0 and np.isfinite(c["metrics"]["f1"]), (tag, c["method"])
    assert cells[("timl", "8")]["n_train"] == 8 and cells[("timl", "all")]["n_train"] > 8
    assert (out / "report.md").exists()
    return rep


def test_ndvi_table_ingests_trains_predicts_and_maps(tmp_path):
    from cropmeta.mapping.export import export
    from cropmeta.train.checkpoint import load_predictor
    from cropmeta.app.train import train
    from test_stacks import monthly_stack

    home = tmp_path / "h"
    toy = ndvi_table(tmp_path / "ndvi.csv")
    m = table_mapping("ndvi", bands={"ndvi": "NDVI"}, id_column="id", date_column="month", label_column="crop",
                      region_column="country")
    res = ingest(table=tmp_path / "ndvi.csv", table_mapping=m, home=home, progress=False)
    assert sorted(res.datasets) == ["kenya", "togo", "uganda"]
    data = load_datasets(home)
    assert data.schema.bands == ("NDVI",) and data.t == 12 and len(data) == len(toy)
    out = train("kenya", home=home, out=tmp_path / "run", overrides=TINY, seed=0)
    assert np.isfinite(out["metrics"]["auc_roc"])
    pred = load_predictor(tmp_path / "run")
    assert pred.model.schema.bands == ("NDVI",)
    _compare_rows(home, "kenya", tmp_path / "cmp", "ndvi table")
    p = pred.predict_proba(data.subset(np.arange(6)))
    assert p.shape == (6,) and np.all((p >= 0) & (p <= 1))
    # the same run maps a folder of monthly NDVI images (MODIS sinusoidal) on their own grid
    folder = monthly_stack(tmp_path / "modis", n=14, first="2020-12")
    mp = export(tmp_path / "run", tmp_path / "map.tif", inputs=[folder], months="2021-01:2021-12", progress=False,
                quicklook=False)
    with rasterio.open(mp["map"]) as ds:
        assert (ds.width, ds.height) == (7, 6) and "Sinusoidal" in ds.crs.to_wkt()
        assert (ds.read(1) <= 100).all()
    # an 18-band input to this 1-band model is refused, naming the bands
    from cropmeta.testing import make_ee_tile

    tif = make_ee_tile(tmp_path / "ee" / "x.tif", height=4, width=4)
    with pytest.raises(DataError, match=r"x.tif: band schema 'cropharvest-18' does not match 'ndvi': "
                                        r"extra band\(s\) VV, VH, B2"):
        export(tmp_path / "run", tmp_path / "map2.tif", inputs=[tif], progress=False, quicklook=False)


def _togo_labels(tr, path):
    pts = [pixel_centre(tr, r, c) for r in range(6) for c in range(6)]
    lab = gpd.GeoDataFrame({"is_crop": [(i + i // 6) % 2 for i in range(36)],
                            "split": ["test" if i >= 24 else "train" for i in range(36)]},
                           geometry=gpd.points_from_xy(*zip(*pts)), crs="EPSG:4326")
    lab.to_file(path)
    return path


def test_a_24_month_export_windowed_to_12_trains_like_a_12_month_one(tmp_path):
    from cropmeta.app.train import train

    west, north = 1.10, 8.60
    long_tif, dyn, static, tr = tiny_tile(tmp_path / "long" / "98-togo_2019-02-06_2021-01-26.tif", t=24, h=6, w=6,
                                          west=west, north=north, res=0.001)
    labels = _togo_labels(tr, tmp_path / "labels.geojson")
    # the 12-month export of the same pixels: steps 3 … 14 (30-day steps from 2019-04-07)
    short_tif = write_ee_tiff(tmp_path / "short" / "98-togo_2019-04-07_2020-04-01.tif", dyn[2:14], static, tr)
    ingest(source=long_tif.parent, labels=labels, home=tmp_path / "a", progress=False, months="2019-04:2020-03")
    ingest(source=short_tif.parent, labels=labels, home=tmp_path / "b", progress=False)
    a, b = load_datasets(tmp_path / "a"), load_datasets(tmp_path / "b")
    assert a.t == b.t == 12 and a.schema == b.schema == CROPHARVEST.with_t(12)
    np.testing.assert_array_equal(a.x, b.x)
    assert list(a.meta["start_date"]) == list(b.meta["start_date"]) == ["2019-04-07"] * 36
    others = toy_samples(n_per_label=10, n_noncrop=10, t=12, seed=3, regions=[REGIONS[0], REGIONS[2]])
    runs = []
    for name, s in (("a", a), ("b", b)):
        both = SampleSet.concat([others, s])
        runs.append(train("togo", samples=both, out=tmp_path / f"run-{name}", overrides=TINY, seed=0))
    assert runs[0]["metrics"] == runs[1]["metrics"]
    assert np.isfinite(runs[0]["metrics"]["auc_roc"])


def worldcereal_of(s: SampleSet) -> pd.DataFrame:
    """Canonical samples written back as a WorldCereal extraction (their column names and encodings:
    S1 uint16 10^((dB + 83) / 20), AgERA5 temperature K x 100, precipitation mm x 100, 65535 nodata)."""
    from cropmeta.io.table_mapping import PRESETS

    inv = {b: c.split("|")[0] for c, b in {**PRESETS["worldcereal"]["bands"], **PRESETS["worldcereal"]["static"]}.items()}
    enc = {"VV": lambda v: 10 ** ((v + 83) / 20), "VH": lambda v: 10 ** ((v + 83) / 20),
           "temperature_2m": lambda v: v * 100, "total_precipitation": lambda v: v * 1e5}
    centre = {name: (lat, lon) for name, lat, lon, _ in REGIONS}
    rows = []
    for i, m in s.meta.iterrows():
        lat, lon = centre[m["region"]]
        for k in range(s.t):
            r = {"sample_id": m["sample_id"], "lat": lat + 1e-4 * i, "lon": lon, "timestamp": f"2021-{k + 1:02d}-01",
                 "ewoc_code": 1101060000 if m["is_crop"] == 1 else 1700000000, "split": m["split"]}
            for band, col in inv.items():
                v = float(s.x[i, k, CROPHARVEST.index(band)])
                r[col] = enc.get(band, lambda v: v)(v)
            rows.append(r)
    df = pd.DataFrame(rows)
    df.loc[0, "S2-L2A-B03"] = 65535
    return df


def test_worldcereal_extraction_round_trip_and_train(tmp_path):
    from cropmeta.app.train import train

    toy = toy_samples(n_per_label=16, n_noncrop=16, t=12, seed=4, regions=REGIONS)
    p = tmp_path / "extractions.parquet"
    worldcereal_of(toy).to_parquet(p)
    m = table_mapping("worldcereal", crop_values="1101060000", non_crop_values="1700000000")
    res = ingest(table=p, table_mapping=m, home=tmp_path / "h", progress=False)
    assert sorted(res.datasets) == ["kenya", "togo", "uganda"]  # regions from the coordinates
    back = load_datasets(tmp_path / "h")
    assert back.schema == CROPHARVEST.with_t(12)
    order = {sid: i for i, sid in enumerate(toy.meta["sample_id"])}
    idx = np.array([order[sid] for sid in back.meta["sample_id"]])
    keep = np.ones(back.x.shape, dtype=bool)
    keep[back.meta["sample_id"] == toy.meta["sample_id"][0], 0, CROPHARVEST.index("B3")] = False  # the nodata value
    np.testing.assert_allclose(back.x[keep], toy.x[idx][keep], rtol=2e-5, atol=1e-6)
    assert back.meta.loc[back.meta["is_crop"] == 1, "label"].isna().all()  # codes are not crop names
    out = train("uganda", home=tmp_path / "h", out=tmp_path / "run", overrides=TINY, seed=0)
    assert np.isfinite(out["metrics"]["auc_roc"])
    _compare_rows(tmp_path / "h", "uganda", tmp_path / "cmp", "worldcereal table")


def test_random_forest_baseline_takes_any_band_schema():
    from cropmeta.evaluate.methods import RandomForest

    s = toy_samples(n_per_label=10, n_noncrop=10, t=6, seed=5, regions=REGIONS[:1])
    x = s.x[..., [BAND_INDEX["NDVI"]]]
    y = s.meta["is_crop"].to_numpy()
    p = RandomForest().fit(x, y, seed=0).predict_proba(x)
    assert p.shape == (len(x),) and np.all((p >= 0) & (p <= 1))
