"""The comparison protocol: resume, the test set never reaches training or calibration, paired
shot subsets, report contents. Uses cheap stand-in methods (the deep ones are tested in
test_methods.py) so the whole file stays within a few seconds of compute."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cropmeta.testing import make_samples
from cropmeta.errors import InputError
from cropmeta.evaluate import compare as cmp
from cropmeta.evaluate.targets import shot_indices
from cropmeta.evaluate.methods import Method, RandomForest
from cropmeta.schema import Normalizer

MARK = -98765.0  # poison written into every test sample: must never reach fit/prepare/calibration


class Spy:
    def __init__(self):
        self.calls = {"prepare": 0, "fit": 0, "zero": 0}
        self.fit_x: list[np.ndarray] = []
        self.source = []


class LogReg(Method):
    """A cheap 'prepared' method: prepare() learns a normaliser from the source data, fit() a logistic
    regression. Records what it is given."""

    needs_source = True

    def __init__(self, name: str, spy: Spy):
        self.name = name
        self.spy = spy
        self.norm = None
        self.clf = None

    def prepare(self, source, target, seed, workdir=None):
        self.spy.calls["prepare"] += 1
        self.spy.source.append(source)
        self.norm = Normalizer.fit(source.x)
        return self

    def prepared_state(self):
        return {"kind": "logreg"}, {"mean": self.norm.mean, "m2": self.norm.m2, "count": np.array([self.norm.count])}

    def load_prepared_state(self, meta, arrays):
        self.norm = Normalizer(mean=arrays["mean"], m2=arrays["m2"], count=int(arrays["count"][0]))
        return True

    def fit(self, x, y, seed=0):
        from sklearn.linear_model import LogisticRegression

        self.spy.calls["fit"] += 1
        self.spy.fit_x.append(np.array(x))
        self.clf = LogisticRegression(C=0.1, max_iter=200).fit(self.norm.transform(x).reshape(len(x), -1), y)
        return self

    def fit_zero_shot(self, seed=0):
        """Zero-shot stand-in: a fixed linear score of the prepared normaliser's features."""
        self.spy.calls["zero"] += 1
        self.clf = None
        return self

    def predict_proba(self, x):
        z = self.norm.transform(x).reshape(len(x), -1)
        if self.clf is None:
            return 1 / (1 + np.exp(-z.mean(axis=1)))
        return self.clf.predict_proba(z)[:, 1]


class SpyRF(RandomForest):
    def __init__(self, spy: Spy):
        super().__init__(n_estimators=15)
        self.spy = spy

    def fit(self, x, y, seed=0):
        self.spy.calls["fit"] += 1
        self.spy.fit_x.append(np.array(x))
        return super().fit(x, y, seed)


def factory(spy: Spy):
    def make(name):
        return SpyRF(spy) if name == "random-forest" else LogReg(name, spy)
    return make


@pytest.fixture(scope="module")
def samples():
    return make_samples(n_per_region=70, seed=1)


def poisoned(samples):
    """Test samples of every region carry the marker in band 0 at step 0."""
    s = make_samples(n_per_region=70, seed=1)
    test = s.meta["split"].to_numpy() == "test"
    s.x[test, 0, 0] = MARK
    return s


def _numbers(rep):
    """The summary without wall-clock timings (which differ between runs)."""
    return {k: {m: {v: row[v] for v in ("raw", "calibrated", "temperature")} for m, row in d.items()}
            for k, d in rep["summary"].items()}


@pytest.fixture()
def no_plots(monkeypatch):
    """Resume/leakage tests do not look at the report files: skip drawing them (test_report.py does)."""
    import cropmeta.evaluate.report as rp

    monkeypatch.setattr(rp, "write_report", lambda report, out: {})


def run(samples, out, spy, **kw):
    args = dict(seeds=2, shots="20,all", methods="timl,random-forest", out=out, samples=samples,
                method_factory=factory(spy), progress=False)
    args.update(kw)
    return cmp.compare("kenya", **args)


def test_test_set_never_reaches_training_or_calibration(tmp_path, samples, monkeypatch, no_plots):
    s = poisoned(samples)
    spy = Spy()
    seen_calib = []
    import cropmeta.evaluate.calibration as cal

    real_fit_t = cal.fit_temperature

    def spy_fit_temperature(p, y, **kw):
        seen_calib.append(len(np.asarray(p)))
        return real_fit_t(p, y, **kw)

    monkeypatch.setattr(cal, "fit_temperature", spy_fit_temperature)
    rep = run(s, tmp_path / "out", spy)
    test_ids = set(s.meta.loc[s.meta["split"] == "test", "sample_id"])
    assert spy.calls["fit"] > 0 and spy.calls["prepare"] == 2
    for x in spy.fit_x:
        assert not np.any(x == MARK), "a test sample reached fit()"
    for src in spy.source:
        assert (src.meta["split"] == "train").all()
        assert not np.any(src.x == MARK)
        assert not set(src.meta["sample_id"]) & test_ids
    # calibration is fitted on out-of-fold predictions of the training shots only
    n_train = {c["n_train"] for c in rep["cells"]}
    assert seen_calib and set(seen_calib) <= n_train
    n_test = len(rep["y_test"])
    assert n_test not in set(seen_calib) or n_test in n_train
    for c in rep["cells"]:
        assert not set(c["train_ids"]) & test_ids


def test_resume_reuses_every_cell_and_prepared_weights(tmp_path, samples, no_plots):
    out = tmp_path / "out"
    spy = Spy()
    first = run(samples, out, spy)
    assert first["run"]["computed"] == 2 * 2 * 2 and first["run"]["reused"] == 0
    n_fit = spy.calls["fit"]
    # rerun: nothing computed, identical numbers
    spy2 = Spy()
    second = run(samples, out, spy2)
    assert spy2.calls == {"prepare": 0, "fit": 0, "zero": 0}
    assert second["run"]["computed"] == 0 and second["run"]["reused"] == 8
    assert _numbers(second) == _numbers(first)
    # an interrupted run (one cell missing): only that cell is computed, prepared weights reloaded
    (out / "cells" / "timl" / "seed-1" / "shots-all.json").unlink()
    spy3 = Spy()
    third = run(samples, out, spy3)
    assert third["run"]["computed"] == 1 and third["run"]["prepared_reused"] == 1
    assert spy3.calls["prepare"] == 0 and 0 < spy3.calls["fit"] < n_fit
    assert _numbers(third) == _numbers(first)
    # a changed protocol setting invalidates the cells, not the prepared weights (they do not depend on it)
    spy4 = Spy()
    fourth = run(samples, out, spy4, calib_folds=2, seeds=[1], shots="20")
    assert fourth["run"]["computed"] == 2 and spy4.calls["prepare"] == 0 and fourth["run"]["prepared_reused"] == 1
    # other source data invalidates the prepared weights too
    other = make_samples(n_per_region=70, seed=2)
    spy5 = Spy()
    fifth = run(other, out, spy5, seeds=[1], shots="20")
    assert fifth["run"]["computed"] == 2 and spy5.calls["prepare"] == 1


def with_fields(samples, per_field: int = 4):
    """The samples with field ids: runs of ``per_field`` consecutive samples of a region share one."""
    s = samples.subset(np.arange(len(samples)))
    region = s.meta["region"].astype(str).to_numpy()
    idx = s.meta.groupby("region").cumcount().to_numpy()
    s.meta["field_id"] = [f"{r}-f{i // per_field}" for r, i in zip(region, idx)]
    return s


def test_field_ids_reach_the_report_and_cells_survive_them(tmp_path, samples, no_plots):
    """Test fields are counted beside test samples, every row gets a field-clustered test-set
    interval and a paired difference to TIML; field ids do not invalidate cached cells."""
    out = tmp_path / "out"
    plain = run(samples, out, Spy())
    n_test = len(plain["y_test"])
    assert plain["target"]["test"]["fields"] == n_test and not plain["target"]["field_ids"]
    s = with_fields(samples)
    rep = run(s, out, Spy())
    assert rep["run"]["computed"] == 0 and rep["run"]["reused"] == 8  # same cells
    test = s.meta["split"].to_numpy() == "test"
    kenya = (s.meta["region"] == "Kenya").to_numpy()
    assert rep["target"]["test"]["fields"] == s.meta.loc[test & kenya, "field_id"].nunique() < n_test
    assert rep["target"]["field_ids"] and len(rep["test_fields"]) == n_test
    assert rep["test_bootstrap"]["unit"] == "field" and rep["test_bootstrap"]["resamples"] == 1000
    for k in ("20", "all"):
        for m in ("timl", "random-forest"):
            row = rep["summary"][k][m]
            for met in ("auc_roc", "f1"):
                ci = row["test_ci"][met]
                assert ci["mean"] == pytest.approx(row["raw"][met]["mean"], abs=1e-6)
                assert ci["ci_low"] <= ci["mean"] <= ci["ci_high"] and ci["ci_high"] - ci["ci_low"] > 0
                # other field ids → another resampling, same point estimate
                assert ci != plain["summary"][k][m]["test_ci"][met]
        d = rep["summary"][k]["random-forest"]["vs_reference"]["auc_roc"]
        means = {m: rep["summary"][k][m]["raw"]["auc_roc"]["mean"] for m in ("timl", "random-forest")}
        assert d["mean_diff"] == pytest.approx(means["random-forest"] - means["timl"], abs=1e-6)
        assert d["ci_low"] <= d["mean_diff"] <= d["ci_high"]
        assert "vs_reference" not in rep["summary"][k]["timl"]
    from cropmeta.evaluate.report import data_table, difference_table, results_table

    assert data_table(rep)[2][-1] == str(rep["target"]["test"]["fields"])
    assert results_table(rep, "20")[0][10:12] == ["AUC-ROC [95 % CI, test fields]", "F1 [95 % CI, test fields]"]
    diff = difference_table(rep, "20")
    d20 = rep["summary"]["20"]["random-forest"]["vs_reference"]["auc_roc"]
    assert diff[1][0] == "Random forest" and diff[1][1] == (f"{d20['mean_diff']:+.3f} [{d20['ci_low']:.3f}, "
                                                             f"{d20['ci_high']:.3f}]")


def test_zero_shot_column_uses_no_target_label(tmp_path, samples, no_plots):
    """Shot count 0: the zero-shot-capable rows (TIML and the other-regions random forest here) are
    evaluated without fitting on any target label; the target-trained random forest has no such row
    and the report says why; the cells are cached like the others."""
    spy = Spy()
    out = tmp_path / "out"
    rep = run(samples, out, spy, shots="20", zero_shot=True)
    assert rep["config"]["shots_run"] == [0, 20]
    assert rep["config"]["methods"] == ["timl", "random-forest", "random-forest-source"]
    assert set(rep["summary"]["0"]) == {"timl", "random-forest-source"}
    assert set(rep["summary"]["20"]) == {"timl", "random-forest"}
    zero = [c for c in rep["cells"] if str(c["shots"]) == "0"]
    assert len(zero) == 4 and spy.calls["zero"] == 4
    for c in zero:
        assert c["n_train"] == 0 and c["train_ids"] == [] and c["temperature"] is None
        assert c["calibration"]["note"] == "no target labels: not calibrated"
    # every fit() saw 20 shots or fewer (the calibration folds), never a zero-shot cell's call
    assert all(0 < len(x) <= 20 for x in spy.fit_x)
    assert any("no zero-shot row for Random forest" in n for n in rep["config"]["protocol_notes"])
    assert rep["summary"]["0"]["random-forest-source"]["vs_reference"]["auc_roc"]["mean_diff"] == pytest.approx(
        rep["summary"]["0"]["random-forest-source"]["raw"]["auc_roc"]["mean"]
        - rep["summary"]["0"]["timl"]["raw"]["auc_roc"]["mean"], abs=1e-6)
    again = run(samples, out, Spy(), shots="20", zero_shot=True)
    assert again["run"]["computed"] == 0 and again["run"]["reused"] == 8
    with pytest.raises(InputError, match="too few"):
        cmp.parse_shots("0,2")


def test_shot_subsets_are_paired_nested_and_balanced():
    y = np.r_[np.ones(30), np.zeros(70)].astype(int)
    a20, a64 = shot_indices(y, 20, seed=3), shot_indices(y, 64, seed=3)
    assert len(a20) == 20 and y[a20].sum() == 10
    assert set(a20) <= set(a64) and len(a64) == 64 and y[a64].sum() == 30  # all 30 positives, 34 negatives
    assert not np.array_equal(a20, shot_indices(y, 20, seed=4))
    np.testing.assert_array_equal(shot_indices(y, "all", 0), np.arange(100))


def test_same_shots_for_every_method(tmp_path, samples, no_plots):
    rep = run(samples, tmp_path / "o", Spy(), seeds=1, shots="20")
    ids = {c["method"]: tuple(c["train_ids"]) for c in rep["cells"]}
    assert ids["timl"] == ids["random-forest"] and len(ids["timl"]) == 20


def test_shot_parsing_and_dedupe():
    assert cmp.parse_shots("20, 32,all,20") == [20, 32, "all"]
    with pytest.raises(InputError, match="neither"):
        cmp.parse_shots("20,lots")
    with pytest.raises(InputError):
        cmp.parse_shots("2")
    eff, notes = cmp.resolve_effective_shots([20, 64, 500, "all"], 100)
    assert eff == [20, 64, "all"] and "500" in notes[0]


def test_bad_target_errors(samples, tmp_path):
    with pytest.raises(InputError, match="unknown region"):
        run(samples, tmp_path / "x", Spy(), methods="random-forest") if False else cmp.compare(
            "atlantis", samples=samples, out=tmp_path / "x", method_factory=factory(Spy()), progress=False)
    with pytest.raises(InputError, match="unknown method"):
        cmp.compare("kenya", samples=samples, methods="timl,xgboost", out=tmp_path / "x", progress=False)


# --------------------------------------------------------------------------------------------------
# End to end with the real methods: the CropHarvest benchmark on the archive-layout fixture
# --------------------------------------------------------------------------------------------------
TINY = {"hidden": 16, "encoder_dims": [16, 16, 16], "iterations": 3, "tasks_per_step": 4, "k_support": 2,
        "k_query": 1, "ft_steps": 10, "pt_steps": 6, "pt_val_every": 3, "threads": 1, "device": "cpu"}


def _tiny_png(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def test_cropharvest_benchmark_end_to_end_on_archive_fixture(tmp_path, monkeypatch):
    import cropmeta.evaluate.report as rp
    from cropmeta.app.compare import compare
    from cropmeta.evaluate.benchmark import PUBLISHED
    from cropmeta.testing import make_archive_fixture

    monkeypatch.setattr(rp, "PLOTS", {name: _tiny_png for name in rp.PLOTS})  # plots: test_report.py
    root = make_archive_fixture(tmp_path / "archive", n_per_dataset=24, seed=0)
    out = tmp_path / "bench"
    res = compare(benchmark="cropharvest", root=root, seeds=1, shots="all", out=out, config=TINY,
                  calib_folds=2, method_options={"rf": {"n_estimators": 10}}, progress=False)
    assert set(res["targets"]) == {"kenya", "brazil", "togo"}
    for key, t in res["targets"].items():
        rep = json.loads((out / key / "report.json").read_text())
        assert rep["config"]["methods"] == ["timl", "maml", "pretrained", "scratch", "random-forest"]
        # the test set is the archive's test file for this target (its own labels, unlabelled -1 dropped)
        assert len(rep["y_test"]) == 23 and set(rep["y_test"]) == {0, 1}
        assert {c["method"] for c in rep["cells"]} == set(rep["config"]["methods"]) and len(rep["cells"]) == 5
        for m in rep["config"]["methods"]:
            assert t["methods"][m]["auc_roc"]["mean"] == pytest.approx(rep["summary"]["all"][m]["raw"]["auc_roc"]["mean"])
    md = (out / "benchmark.md").read_text()
    # the published numbers are printed beside ours
    for key in ("kenya", "brazil", "togo"):
        for m in ("timl", "random-forest"):
            assert f"{PUBLISHED[key][m]['auc_roc']:.3f}" in md and f"{PUBLISHED[key][m]['f1']:.3f}" in md
    row = next(r for r in res["table"] if r[0] == "Kenya maize" and r[1] == "TIML")
    assert row[4:] == ["0.838", "0.794"]
    assert row[3].startswith(f"{res['targets']['kenya']['methods']['timl']['auc_roc']['mean']:.3f}")
    assert (out / "benchmark.html").read_text().count("data:image/png;base64,") == 1


def test_flop_counting_follows_flop_seeds(tmp_path, samples, monkeypatch, no_plots):
    """FLOPs are counted on the first seed by default; ``flop_seeds`` moves that (a comparison split
    across processes by seed counts on seed 0 only, not on the first seed of every process)."""
    seen = []
    real = cmp.run_cell

    def spy_cell(method, data, seed, k, calib_folds=3, count_flops=False):
        seen.append((seed, count_flops))
        return real(method, data, seed, k, calib_folds, count_flops=False)

    monkeypatch.setattr(cmp, "run_cell", spy_cell)
    run(samples, tmp_path / "a", Spy(), seeds=[3, 4], shots="20")
    assert sorted(set(seen)) == [(3, True), (4, False)]
    seen.clear()
    run(samples, tmp_path / "b", Spy(), seeds=[3], shots="20", flop_seeds=[0])
    assert set(seen) == {(3, False)}


# --------------------------------------------------------------------------------------------------
# Oracle rows: a tiny simulated world
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_world(tmp_path_factory):
    from cropmeta.io.store import SampleSet, make_meta
    from cropmeta.sim import generate_world
    from cropmeta.sim.calibrate import world_samples

    w = generate_world(tmp_path_factory.mktemp("sim") / "world", seed=0, scene_size=32, regions=["Kenya", "Uganda"])
    x, meta = world_samples(w)
    return w, SampleSet(x, make_meta(meta))


def test_oracle_rows_on_a_simulated_world(tmp_path, sim_world, samples, monkeypatch):
    """The oracle rows: trained on the world's oracle samples (never a test point or test field),
    no target shots, one cell per seed shown at every shot count, never marked best; absent with a
    note when the data are not that world's."""
    import cropmeta.sim.calibrate as cal
    from cropmeta.evaluate.oracle import sim_oracle
    from cropmeta.evaluate.report import best_methods

    world, sim = sim_world
    seen = []
    real_rf = cal.rf_proba

    def spy_rf(x_train, y_train, x_test, random_state=0):
        seen.append((np.array(x_train), np.array(y_train)))
        return real_rf(x_train, y_train, x_test, random_state)

    monkeypatch.setattr(cal, "rf_proba", spy_rf)
    args = dict(seeds=1, shots="20,all", methods="random-forest", world=world, oracle_n=300, calib_folds=0,
                method_options={"rf": {"n_estimators": 10}, "oracle-lstm": {"lstm_steps": 20}}, progress=False,
                n_boot=200)
    out = tmp_path / "o"
    rep = cmp.compare("kenya", samples=sim, out=out, oracle=True, **args)
    assert rep["config"]["methods"] == ["random-forest", "oracle-rf", "oracle-lstm"]
    o = rep["config"]["oracle"]
    assert o["target"] == "kenya" and o["n"] == 300 and o["excluded_test_overlap"] == 0
    assert rep["target"]["test"]["fields"] < len(rep["y_test"])  # the world's test points share fields
    for m in ("oracle-rf", "oracle-lstm"):
        cells = [c for c in rep["cells"] if c["method"] == m]
        assert len(cells) == 1 and cells[0]["shots"] == "any" and cells[0]["n_train"] == 0
        assert all(rep["summary"]["20"][m]["raw"][met]["values"] == rep["summary"]["all"][m]["raw"][met]["values"]
                   for met in ("auc_roc", "f1", "ece"))
        assert rep["summary"]["20"][m]["fixed"] and rep["summary"]["20"][m]["test_ci"]["auc_roc"]["ci_low"] > 0
    # the oracle random forest was trained on the 300 oracle samples, none of them a test sample
    data = cmp.build_target(sim, "kenya")
    test_rows = {r.tobytes() for r in data.x_test}
    (xo, yo), = seen
    assert len(xo) == 300 and set(np.unique(yo)) == {0, 1}
    assert not any(r.tobytes() in test_rows for r in xo)
    assert not {"oracle-rf", "oracle-lstm"} & best_methods(rep["summary"]["all"], "auc_roc")
    assert "Oracle random forest" in (out / "report.md").read_text()
    again = cmp.compare("kenya", samples=sim, out=out, oracle=True, **args)
    assert again["run"]["computed"] == 0
    # other data than that world's: no oracle rows, and the report says why
    other = cmp.compare("kenya", samples=samples, out=tmp_path / "x", oracle=True, **args)
    assert other["config"]["methods"] == ["random-forest"] and other["config"]["oracle"] is None
    assert any("oracle rows absent" in n and "not the test set" in n for n in other["config"]["protocol_notes"])
    # the benchmark summary carries the oracle row as a ceiling, with the test field count
    from cropmeta.evaluate.benchmark import run_benchmark

    methods, shots = cmp.protocol_rows("random-forest", "all", oracle=True)
    bench = run_benchmark("sim", samples=sim, targets=["kenya"], methods=methods, shots=shots, seeds=1,
                          out=out / "bench", world=world, oracle_n=300, calib_folds=0, progress=False,
                          method_options=args["method_options"], n_boot=50)
    assert set(bench["targets"]["kenya"]["methods"]) == {"random-forest", "oracle-rf", "oracle-lstm"}
    text = bench["summary_text"][0]
    assert "best mean AUC-ROC Random forest" in text and "Oracle random forest (a ceiling, no target shots)" in text
    assert f"in {rep['target']['test']['fields']} fields" in text
    assert sim_oracle(None, "Kenya", "maize", [], [], [])[0] is None
    assert "not a simulated world" in sim_oracle(tmp_path, "Kenya", "maize", [], [], [])[1]


def test_cli_compare_zero_shot_flag(tmp_path, samples):
    """`cropmeta compare --zero-shot`: the zero-shot column and the other-regions random forest."""
    from typer.testing import CliRunner

    from cropmeta.io.store import dataset_dir, write_samples
    from cropmeta_cli.app import app

    write_samples(with_fields(samples), dataset_dir("toy"))
    out = tmp_path / "cmp"
    r = CliRunner().invoke(app, ["compare", "--region", "kenya", "--methods", "random-forest", "--seeds", "1",
                                 "--shots", "20", "--calib-folds", "0", "--zero-shot", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["config"]["methods"] == ["random-forest", "random-forest-source"]
    assert sorted(str(c["shots"]) for c in rep["cells"]) == ["0", "20"]
    assert f"in {rep['target']['test']['fields']} fields" in r.output
