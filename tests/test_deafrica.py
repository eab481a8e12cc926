"""DE Africa crop-mask loader and ``--benchmark deafrica`` (issue 16).

The real files live in the shared data folder (never copied into the project): the tests that read
them look for ``$CROPMETA_SHARED`` or the project's sibling ``../shared`` and skip, saying so, when
neither holds ``data/deafrica_cropmask``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cropmeta.errors import DataError, InputError
from cropmeta.io import deafrica as dea

#: rows per region (SOURCE.md)
ROWS = {"central": 3509, "eastern": 4444, "indian_ocean": 1777, "northern": 3447, "sahel": 6153,
        "south_eastern": 4177, "southern": 4445, "western": 2113}
COUNTRIES = ["Algeria", "Benin", "Egypt", "Ethiopia", "Ghana", "Guinea", "Ivory Coast", "Kenya", "Libya", "Morocco",
             "Nigeria", "Sierra Leone", "Tanzania", "Togo", "Tunisia", "Uganda"]


def _root():
    try:
        return dea.data_root(None)
    except InputError as e:
        pytest.skip(f"DE Africa data absent ({e}); set CROPMETA_SHARED to the shared folder to run this test")


@pytest.fixture(scope="module")
def samples():
    return dea.load_deafrica(_root())


def test_counts_per_region(samples):
    m = samples.meta
    assert m.groupby("deafrica_region").size().to_dict() == ROWS
    assert len(samples) == sum(ROWS.values()) == 30_065
    assert m["sample_id"].is_unique


def test_countries_assigned(samples):
    m = samples.meta
    pts = m[m["location"] == "point"]
    assert set(pts["deafrica_region"]) == set(dea.COORDINATE_FILES)
    assert not pts["region"].isin(dea.REGIONS).any()  # every point got a country
    assert dea.benchmark_countries(m) == COUNTRIES
    cen = m[m["location"] == "region-centroid"]
    assert set(cen["region"]) == set(dea.REGIONS) - set(dea.COORDINATE_FILES)
    assert (cen.groupby("region")[["lat", "lon"]].nunique() == 1).all().all()
    assert m["lat"].between(-36, 38).all() and m["lon"].between(-20, 52).all()  # Africa


def test_schema_and_values(samples):
    assert samples.schema == dea.DEAFRICA and samples.schema.n_bands == 17
    assert samples.schema.t == 2 and samples.schema.step == "season" and samples.schema.derived == ()
    assert samples.x.shape == (30_065, 2, 17)
    assert np.isfinite(samples.x).all()
    slope = samples.schema.index("slope")
    assert np.array_equal(samples.x[:, 0, slope], samples.x[:, 1, slope])
    table = dea.read_table(_root() / "raw" / "central_training_data.txt")
    x = samples.x[samples.meta["deafrica_region"].to_numpy() == "central"]
    np.testing.assert_allclose(x[:, 1, samples.schema.index("NDVI")], table["NDVI_S2"], rtol=1e-6)
    np.testing.assert_array_equal(samples.meta.loc[samples.meta["deafrica_region"] == "central", "is_crop"], table["Class"])


def test_split_is_half_of_each_class_of_each_target(samples):
    m = samples.meta
    for c in COUNTRIES:
        own = m[m["region"] == c]
        for cls in (0, 1):
            n, n_test = int((own["is_crop"] == cls).sum()), int(((own["is_crop"] == cls) & (own["split"] == "test")).sum())
            assert n_test == round(n / 2)
    assert (m.loc[~m["region"].isin(COUNTRIES), "split"] == "train").all()


def test_task_list_leaves_the_target_out(samples):
    from cropmeta.evaluate.benchmark import benchmark_targets, target_samples
    from cropmeta.evaluate.compare import build_target, source_samples
    from cropmeta.evaluate.forests import other_region_labels
    from cropmeta.tasks import build_tasks

    targets = benchmark_targets("deafrica", samples)
    assert [t[1] for t in targets] == COUNTRIES and all(t[2] == "crop" for t in targets)
    for key, country, crop in (targets[0], targets[7]):  # Algeria, Kenya (whose default crop would be maize)
        view, split = target_samples("deafrica", samples, country)  # the spatial split by default
        assert split["test"] + split["pool"] + split["buffer"] == int((samples.meta["region"] == country).sum())
        data = build_target(view, country, crop)
        assert data.task.crop is None  # crop vs non-crop, not a default crop (kenya → maize)
        src = source_samples(view, data)
        assert not set(src.meta["sample_id"]) & set(data.ids_test)  # test half removed everywhere
        others = view.meta[(view.meta["region"] != country)]
        assert (others["split"] == "train").all()  # other targets' test halves are source data here
        ids = [p.id for p in build_tasks(src, exclude=data.task.extra["task"])]
        assert f"{country}:crop" not in ids
        assert {f"{c}:crop" for c in COUNTRIES if c != country} <= set(ids) and "sahel:crop" in ids
        _, _, counts = other_region_labels(src, data.task, "test")
        assert counts["n"] == int((src.meta["region"] != country).sum())


def test_bad_table_names_file_and_column(tmp_path):
    p = tmp_path / "x_training_data.txt"
    cols = [c for c in dea.COLUMNS if c != "rain_S2"]
    p.write_text("# " + " ".join(cols) + "\n" + " ".join("1" for _ in cols) + "\n")
    with pytest.raises(DataError, match=r"x_training_data.txt.*missing column\(s\) \['rain_S2'\]"):
        dea.read_table(p)
    vals = ["1"] * len(dea.COLUMNS)
    vals[3] = "nan"
    p.write_text("# " + " ".join(dea.COLUMNS) + "\n" + " ".join(vals) + "\n")
    with pytest.raises(DataError, match=r"column 'red_S1' row 2"):
        dea.read_table(p)


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="DE Africa crop-mask data not found"):
        dea.data_root(tmp_path)


def test_tiny_benchmark_end_to_end(tmp_path):
    """One small target (Togo) of the western region alone, forests of 5 trees, 1 seed."""
    from cropmeta.evaluate.benchmark import run_benchmark

    s = dea.load_deafrica(_root(), regions=("western",))
    opts = {"random-forest": {"n_estimators": 5}, "random-forest-source": {"n_estimators": 5, "max_source": 200},
            "random-forest-both": {"n_estimators": 5, "max_source": 200}}
    r = run_benchmark("deafrica", samples=s, seeds=1, shots=[0, 20, "all"], out=tmp_path / "b", progress=False,
                      methods=["random-forest", "random-forest-source", "random-forest-both"], targets=["togo"],
                      method_options=opts, n_boot=20, calib_folds=2)
    acr = r["across_targets"]
    assert acr["targets"] == ["togo"]
    assert set(acr["summary"]["20"]) == {"random-forest", "random-forest-both"}
    assert set(acr["summary"]["0"]) == {"random-forest-source"}
    assert r["published"] == {}
    rep = (tmp_path / "b" / "togo" / "report.json").read_text()
    assert '"max_source": 200' in rep
    md = (tmp_path / "b" / "benchmark.md").read_text()
    assert md.count("Mean AUC-ROC over the 1 targets") == 1
    assert "published numbers" not in md.replace("No published numbers exist", "")  # none exist: no empty columns
    assert r["table"][0] == ["Target", "Method", "F1 (ours)", "AUC-ROC (ours)"]
    per_target = acr["summary"]["20"]["random-forest"]["auc_roc"]["per_target"]["togo"]
    assert "## AUC-ROC per target, 20 labels (mean over seeds)" in md and f"| togo | {per_target:.3f} |" in md
    from cropmeta.evaluate.benchmark import assemble_from_reports

    again = assemble_from_reports("deafrica", tmp_path / "b", ["togo"])  # the finished targets, nothing recomputed
    assert again["across_targets"]["summary"] == json.loads(json.dumps(acr["summary"]))
    from cropmeta.evaluate.benchmark import publish_results

    pub = tmp_path / "pub"  # the compact copy a results folder commits: the same benchmark again from it
    files = {p.relative_to(pub).as_posix() for p in publish_results(tmp_path / "b", pub)}
    assert "togo/report.json.gz" in files and "togo/report.md" in files and "benchmark.md" in files
    assert not (pub / "togo" / "report.html").exists() and not (pub / "togo" / "report.json").exists()
    from_pub = assemble_from_reports("deafrica", pub, ["togo"])
    assert from_pub["across_targets"]["summary"] == again["across_targets"]["summary"]
    first = (pub / "togo" / "report.json.gz").read_bytes()
    publish_results(tmp_path / "b", tmp_path / "pub2", ["togo"])
    assert (tmp_path / "pub2" / "togo" / "report.json.gz").read_bytes() == first  # reproducible bytes


def test_committed_benchmark_summary_follows_from_its_reports():
    """docs/results/deafrica: the across-target summary and tests in benchmark.json are what the
    committed per-target records (report.json.gz) give — nothing in the summary was edited by hand."""
    import gzip
    from pathlib import Path

    from cropmeta.evaluate.across import across_targets

    folder = Path(__file__).resolve().parent.parent / "docs" / "results" / "deafrica"
    bench = json.loads((folder / "benchmark.json").read_text())
    keys = bench["across_targets"]["targets"]
    assert len(keys) == 16
    reports = {}
    for k in keys:
        with gzip.open(folder / k / "report.json.gz", "rt") as fh:
            reports[k] = json.load(fh)
        assert reports[k]["config"]["seeds"] == [0, 1, 2, 3, 4]
    again = json.loads(json.dumps(across_targets(reports)))
    for k, col in bench["across_targets"]["summary"].items():
        for m, row in col.items():
            for met in ("auc_roc", "f1"):
                assert again["summary"][k][m][met]["mean"] == pytest.approx(row[met]["mean"], abs=1e-12)
                assert again["summary"][k][m][met]["wins"] == row[met]["wins"]
    for k, t in bench["across_targets"]["tests"].items():
        for m, r in t["auc_roc"].items():
            assert again["tests"][k]["auc_roc"][m]["p_holm"] == pytest.approx(r["p_holm"], abs=1e-12)
    # the headline of README.md: plain pretraining above TIML at 20 labels, the local forest with all labels
    s = bench["across_targets"]["summary"]
    assert s["20"]["pretrained"]["auc_roc"]["mean"] > s["20"]["timl"]["auc_roc"]["mean"]
    assert s["all"]["random-forest"]["auc_roc"]["mean"] > s["all"]["pretrained"]["auc_roc"]["mean"]
