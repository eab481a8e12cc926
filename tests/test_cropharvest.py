"""CropHarvest archive layout: a fixture in exactly that layout, read back and ingested."""

from __future__ import annotations

import shutil

import geopandas as gpd
import h5py
import numpy as np
import pytest

from cropmeta.errors import InputError
from cropmeta.ingest import ingest
from cropmeta.datasets import load_datasets
from cropmeta.io.cropharvest import is_cropharvest_archive, read_cropharvest
from cropmeta.schema import BAND_INDEX, true_ndvi
from cropmeta.testing import FIXTURE_DATASETS, make_archive_fixture

N = 4


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_archive_fixture(tmp_path_factory.mktemp("ch") / "cropharvest", n_per_dataset=N, seed=3)


def test_fixture_has_the_exact_layout(archive):
    assert is_cropharvest_archive(archive)
    labels = gpd.read_file(archive / "labels.geojson")
    for c in ("index", "is_crop", "lat", "lon", "dataset", "collection_date", "export_end_date", "geometry",
              "is_test", "externally_contributed_dataset", "label", "classification_label", "harvest_date",
              "planting_date"):
        assert c in labels.columns
    assert len(labels) == N * len(FIXTURE_DATASETS)
    row = labels.iloc[5]
    with h5py.File(archive / "features" / "arrays" / f"{row['index']}_{row['dataset']}.h5") as h5:
        a = h5["array"][()]
    assert a.shape == (12, 18)
    # upstream's NDVI column is (B7 - B3) / (B7 + B3)
    np.testing.assert_allclose(a[:, BAND_INDEX["NDVI"]], true_ndvi(a[:, BAND_INDEX["B7"]], a[:, BAND_INDEX["B3"]]))
    with h5py.File(archive / "test_features" / "Kenya_maize_2020_0.h5") as h5:
        assert h5["x"].shape == (N, 12, 18) and set(h5["y"][()]) <= {-1, 0, 1}
        assert h5["lats"].shape == h5["lons"].shape == (N,)


def test_read_archive(archive):
    s, rep = read_cropharvest(archive)
    assert len(s) == N * len(FIXTURE_DATASETS) + 3 * N and rep["missing_arrays"] == 0
    m = s.meta
    # NDVI recomputed as true NDVI from B8/B4; every other column exactly as stored
    first = m.index[m["sample_id"] == "togo:0"][0]
    with h5py.File(archive / "features" / "arrays" / "0_togo.h5") as h5:
        a = h5["array"][()]
    np.testing.assert_array_equal(s.x[first][:, :17], a[:, :17].astype(np.float32))
    np.testing.assert_allclose(s.x[first][:, BAND_INDEX["NDVI"]],
                               true_ndvi(a[:, BAND_INDEX["B8"]], a[:, BAND_INDEX["B4"]]), rtol=1e-6)
    assert rep["ndvi_max_abs_change"] > 0.01
    # regions from the points' countries; start = export end - 12 x 30 days
    assert set(m.loc[m["dataset"] == "kenya-non-crop", "region"]) == {"Kenya"}
    assert set(m.loc[m["dataset"] == "lem-brazil", "region"]) == {"Brazil"}
    assert set(m.loc[m["split"] == "train", "start_date"]) == {"2019-02-06"}
    assert (m.loc[m["dataset"] == "kenya-non-crop", "crop_group"] == "non_crop").all()
    kenya = m[m["dataset"] == "kenya"]
    assert kenya["label"].isin(["maize", "cassava", "millet"]).all()
    assert (kenya.loc[kenya["label"] == "maize", "crop_group"] == "cereals").all()
    # test files: crop-type file keeps y in `target`; y=0 is "not maize", crop status unknown
    t = m[m["dataset"] == "Kenya_maize_2020_0"]
    with h5py.File(archive / "test_features" / "Kenya_maize_2020_0.h5") as h5:
        y = h5["y"][()]
    assert t["target"].tolist() == y.tolist() and set(t["split"]) == {"test"} and set(t["region"]) == {"Kenya"}
    assert t.loc[t["target"] == 1, "label"].eq("maize").all()
    assert (t.loc[t["target"] != 1, "is_crop"] == -1).all()
    togo = m[m["dataset"] == "Togo_crop_2019_0"]
    assert togo["is_crop"].tolist() == togo["target"].tolist()


def test_archive_problems(tmp_path, archive):
    root = tmp_path / "ch"
    shutil.copytree(archive, root)
    (root / "features" / "arrays" / "1_togo.h5").unlink()
    s, rep = read_cropharvest(root)
    assert rep["missing_arrays"] == 1 and rep["missing_array_files"] == ["features/arrays/1_togo.h5"]
    assert "togo:1" not in set(s.meta["sample_id"])
    (root / "features" / "arrays" / "2_togo.h5").write_bytes(b"\x89HDF\r\n garbage")
    with pytest.raises(InputError, match=r"2_togo\.h5: not a readable HDF5 file"):
        read_cropharvest(root)
    with h5py.File(root / "features" / "arrays" / "2_togo.h5", "w") as h5:
        h5.create_dataset("array", data=np.zeros((12, 17)))
    with pytest.raises(InputError, match=r"2_togo\.h5: array shaped \[12, 17\], expected \[T, 18\]"):
        read_cropharvest(root)
    with pytest.raises(InputError, match="not a CropHarvest archive"):
        read_cropharvest(tmp_path)


def test_ingest_archive_per_region(archive, tmp_path):
    home = tmp_path / "home"
    r = ingest(source=archive, home=home, progress=False)
    assert set(r.datasets) == {"togo", "kenya", "brazil", "ethiopia", "mali"}
    kenya = load_datasets(home, ["Kenya"])
    assert set(kenya.meta["dataset"]) == {"kenya", "kenya-non-crop", "Kenya_maize_2020_0"}
    bal = r.report["datasets"]["kenya"]["class_balance"]
    assert bal["train"]["crop"] == N and bal["train"]["non_crop"] == N
    assert r.report["summary"]["samples"] == N * len(FIXTURE_DATASETS) + 3 * N
    # rerun: the archive read is cached; same data
    r2 = ingest(source=archive, home=home, progress=False)
    assert r2.report["archive"].get("cached") is True
    assert r2.report["datasets"]["kenya"]["data_hash"] == r.report["datasets"]["kenya"]["data_hash"]
    with pytest.raises(InputError, match="drop --labels"):
        ingest(source=archive, labels=archive / "labels.geojson", home=home, progress=False)


def test_cropharvest_rules_have_one_home(archive):
    """Test-file names, the published targets and numbers are defined once
    (:mod:`cropmeta.io.cropharvest_rules`); the archive reader, tasks, the benchmark and the
    simulator's calibration use that definition."""
    from pathlib import Path

    from cropmeta import tasks
    from cropmeta.evaluate import benchmark
    from cropmeta.io import cropharvest_rules as rules
    from cropmeta.sim import calibrate

    assert tasks.BENCHMARK_TARGETS is rules.BENCHMARK_TARGETS
    assert benchmark.TARGETS == [("kenya", "Kenya", "maize"), ("brazil", "Brazil", "coffee"), ("togo", "Togo", None)]
    assert benchmark.PUBLISHED is rules.PUBLISHED
    assert calibrate.PUBLISHED_RF_AUC == {"kenya": 0.578, "brazil": 0.941, "togo": 0.892}
    assert rules.parse_test_file("test_features/Togo_croplands_2019_1.h5") == rules.TestFile("Togo", None, 2019, 1)
    assert rules.parse_test_file("Kenya_Sweet_Potato_2020") == rules.TestFile("Kenya", "sweetpotato", 2020, None)
    assert rules.parse_test_file("kenya-maize.h5") is None
    # the reader's test rows are exactly the rows tasks attribute to each test file's own task
    samples, report = read_cropharvest(archive)
    assert report["test_files"]
    for name in report["test_files"]:
        named = rules.parse_test_file(name)
        rows = tasks.test_file_rows(samples.meta, tasks.make_task(named.region, named.crop))
        assert rows.any() and set(samples.meta.loc[rows, "dataset"]) == {Path(name).stem}
    # nobody else spells the naming rule
    pkg = Path(rules.__file__).parent.parent
    spelt = [p for p in pkg.rglob("*.py") if r"(?P<year>\d{4})" in p.read_text() and p.name != "cropharvest_rules.py"]
    assert spelt == []
