"""Issue 26: fine-tuning whose length is chosen from the shots (the auto budget), the forest stored as
arrays, and the ensemble learner (a prior + a forest on the local labels, weighed by inner
cross-validation) — trained, compared, saved without pickle and mapped like any learner."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cropmeta.errors import ConfigError, ModelError
from cropmeta.learners import get_learner
from cropmeta.learners.ensemble import WEIGHTS, EnsembleModel, rank_transform
from cropmeta.models.forest import ForestArrays, fit_forest
from cropmeta.tasks import resolve_target, target_data
from cropmeta.testing import toy_samples
from cropmeta.train.checkpoint import load_model, load_predictor, save_model
from cropmeta.train.config import resolve_config
from cropmeta.train.finetune import auto_finetune, auto_steps, shot_folds

REGIONS = [("Kenya", 0.2, 37.9, ["maize"]), ("Togo", 8.5, 0.9, ["maize"]), ("Uganda", 1.3, 32.4, ["maize"])]
TINY = {"hidden": 8, "encoder_dims": [8, 8], "encoder_channels_per_group": 4, "iterations": 2, "tasks_per_step": 2,
        "val_every": 2, "checkpoint_every": 2, "pt_steps": 4, "pt_val_every": 2, "threads": 1, "device": "cpu",
        "k_support": 4, "k_query": 2, "finetune.budget": "auto", "finetune.max_steps": 100, "ensemble.trees": 20}


@pytest.fixture(scope="module")
def data():
    s = toy_samples(n_per_label=14, n_noncrop=14, t=4, seed=3, regions=REGIONS)
    task = resolve_target(s, "kenya")
    return s, task, target_data(s, task)


@pytest.fixture(scope="module")
def cfg():
    return resolve_config("quick", overrides=TINY)


# ---- the forest as arrays ---------------------------------------------------------------------------
def test_forest_arrays_predict_as_scikit_learn_and_fill_missing_values():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    rf = RandomForestClassifier(n_estimators=15, random_state=2).fit(x, y)
    fill = np.median(x, axis=0)
    forest = ForestArrays.from_sklearn(rf, fill)
    xt = rng.normal(size=(5000, 6))  # more than one chunk
    np.testing.assert_allclose(forest.predict(xt), rf.predict_proba(xt)[:, 1], atol=1e-12)
    xm = xt[:10].copy()
    xm[:, 3] = np.nan
    filled = xt[:10].copy()
    filled[:, 3] = fill[3]
    np.testing.assert_allclose(forest.predict(xm), rf.predict_proba(filled)[:, 1], atol=1e-12)
    with pytest.raises(ModelError, match="6 features"):
        forest.predict(xt[:, :5])


def test_forest_arrays_round_trip_and_refuse_a_damaged_node_table():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 3)), np.r_[np.zeros(30), np.ones(30)].astype(int)
    forest = fit_forest(x, y, 5, seed=0)
    arrays = forest.to_arrays()
    back = ForestArrays.from_arrays(arrays)
    np.testing.assert_array_equal(back.predict(x), forest.predict(x))
    inner = int(np.nonzero(arrays["forest.left"] >= 0)[0][1])
    for key, value, msg in (("forest.left", 0, "cycle"), ("forest.feature", 99, "outside"),
                            ("forest.right", 10**6, "outside")):
        bad = {k: v.copy() for k, v in arrays.items()}
        bad[key][inner] = value
        with pytest.raises(ModelError, match=msg):
            ForestArrays.from_arrays(bad)
    with pytest.raises(ModelError, match="missing"):
        ForestArrays.from_arrays({k: v for k, v in arrays.items() if k != "forest.value"})


# ---- the auto budget ----------------------------------------------------------------------------------
def test_auto_budget_is_chosen_from_the_shots_and_recorded(data, cfg):
    s, task, td = data
    base = get_learner("pretrained", cfg).fit(s, task, seed=0)
    model, oof = auto_finetune(base, td.x_train, td.y_train, task.info, cfg, seed=1)
    rec = model.info["finetune"]["budget"]
    assert auto_steps(cfg.ft_max_steps) == [25, 50, 100]
    assert rec["rule"] == "auto" and rec["chosen_steps"] in [0, 25, 50, 100]  # 0: the pretrained prior as it is
    assert model.info["finetune"]["steps"] == rec["chosen_steps"] and model.info["finetune"]["lr"] == cfg.ft_auto_lr
    best = max(rec["candidates"], key=lambda c: (c["oof_auc"], -c["oof_log_loss"]))
    assert best["steps"] == rec["chosen_steps"]
    # the out-of-fold predictions are those of the chosen length, one per shot, and score as recorded
    from sklearn.metrics import roc_auc_score

    assert oof.shape == td.y_train.shape and np.all((oof >= 0) & (oof <= 1))
    assert roc_auc_score(td.y_train, oof) == pytest.approx(best["oof_auc"], abs=1e-4)
    # the adapt() of the learner contract takes the same path under the auto budget, deterministically
    again = base.adapt(td.x_train, td.y_train, task_info=task.info, cfg=cfg, seed=1)
    np.testing.assert_array_equal(again.predict_proba(td.x_test), model.predict_proba(td.x_test))
    assert base.info.get("finetune") is None  # the prior itself is untouched


def test_choose_steps_keeps_a_prior_that_fine_tuning_spoils_and_stops_early():
    """With 0 steps a candidate, a prior whose out-of-fold AUC only falls with training is kept as it
    is; without it (from scratch) the shortest candidate wins; the search stops ``patience`` trained
    candidates after the best trained one — "0 steps" never stops it, since fine-tuning often gets
    worse before it gets better (a prior kept at 0.55 AUC on CAWa Khorezm that 64 labels beat)."""
    from cropmeta.train.finetune import choose_steps

    y = np.r_[np.ones(9), np.zeros(9)].astype(int)
    noise = np.random.default_rng(0).normal(size=len(y))
    calls = []

    class Run:
        def __init__(self):
            self.steps = 0

        def run(self, n):
            self.steps += n
            calls.append(self.steps)
            return self

    def spoiling(f, tr):
        r = Run()
        return r, lambda val: (y[val] * np.exp(-r.steps / 30) + noise[val] * (1 + r.steps / 10)).clip(-50, 50)

    cfg = resolve_config("quick", overrides={"finetune.max_steps": 3200})
    rec, oof = choose_steps(y, cfg, 0, spoiling)
    assert rec["chosen_steps"] == 0 and [c["steps"] for c in rec["candidates"]] == [0, 25, 50, 100]  # stopped
    assert max(calls) == 100 and oof.shape == y.shape
    rec, _ = choose_steps(y, cfg, 0, spoiling, with_zero=False)
    assert rec["chosen_steps"] == 25 and [c["steps"] for c in rec["candidates"]] == [25, 50, 100]

    quality = {0: 0.5, 25: 0.1, 50: 0.2, 100: 0.05, 200: 3.0, 400: 2.0, 800: 1.5, 1600: 1.0}

    def dip_then_rise(f, tr):
        r = Run()
        return r, lambda val: y[val] * quality[r.steps] + noise[val]

    rec, _ = choose_steps(y, cfg, 0, dip_then_rise)
    assert rec["chosen_steps"] == 200  # the dip at 25–100 steps did not end the search


def test_auto_budget_falls_back_to_the_fixed_one_without_two_shots_of_a_class(data, cfg):
    s, task, td = data
    base = get_learner("scratch", cfg).start(td.x_train.shape[1], 0, s.schema)
    y = td.y_train
    keep = np.r_[np.where(y == 1)[0][:1], np.where(y == 0)[0][:6]]
    model, oof = auto_finetune(base, td.x_train[keep], y[keep], None, cfg, seed=0)
    assert oof is None and model.info["finetune"]["budget"]["rule"] == "fixed"
    assert "fewer than 2" in model.info["finetune"]["budget"]["why"] and model.info["finetune"]["steps"] == cfg.ft_steps
    assert shot_folds(np.r_[np.ones(2), np.zeros(9)], 3, 0) is not None and len(shot_folds(np.r_[np.ones(2), np.zeros(9)], 3, 0)) == 2


def test_budget_options_and_the_explicit_steps_rule():
    assert resolve_config("quick").ft_budget == "auto" and resolve_config("paper").ft_budget == "fixed"
    assert resolve_config("quick", overrides={"finetune.steps": 40}).ft_budget == "fixed"  # asked for: run as asked
    assert resolve_config("quick", overrides={"finetune.steps": 40, "finetune.budget": "auto"}).ft_budget == "auto"
    with pytest.raises(ConfigError, match="budget must be fixed or auto"):
        resolve_config("quick", overrides={"finetune.budget": "long"})
    with pytest.raises(ConfigError, match="max_steps must be ≥ 25"):
        resolve_config("quick", overrides={"finetune.max_steps": 10})


# ---- the ensemble -------------------------------------------------------------------------------------
def test_rank_transform_is_the_mid_rank_cdf():
    ref = np.array([0.1, 0.2, 0.2, 0.9])
    np.testing.assert_allclose(rank_transform(ref, ref), [0.125, 0.5, 0.5, 0.875])
    assert rank_transform(ref, np.array([0.0, 1.0])).tolist() == [0.0, 1.0]
    assert 0.5 < rank_transform(ref, np.array([0.5]))[0] < 0.875


def test_ensemble_weighs_its_members_on_out_of_fold_predictions_and_round_trips(data, cfg, tmp_path):
    s, task, td = data
    learner = get_learner("ensemble", cfg)
    assert learner.needs_source and learner.zero_shot and learner.prior.kind == "pretrained"
    base = learner.fit(s, task, seed=0)
    model = base.adapt(td.x_train, td.y_train, task_info=task.info, cfg=cfg, seed=0)
    info = model.info
    assert model.weight in WEIGHTS and info["weight_prior"] == model.weight and info["folds"] == 3
    assert set(info["oof_auc"]) == {str(w) for w in WEIGHTS}
    assert info["oof_auc"][str(model.weight)] == max(info["oof_auc"].values())
    assert info["prior_finetune"]["budget"]["rule"] == "auto"
    # the weighted ranks of the out-of-fold predictions score as recorded
    from sklearn.metrics import roc_auc_score

    s_oof = (model.weight * rank_transform(model.ref_prior, model.ref_prior)
             + (1 - model.weight) * rank_transform(model.ref_forest, model.ref_forest))
    assert roc_auc_score(td.y_train, s_oof) == pytest.approx(info["oof_auc"][str(model.weight)], abs=1e-4)
    p = model.predict_proba(td.x_test)
    assert p.shape == (len(td.x_test),) and np.all((p > 0) & (p < 1))
    # a forest-only weight predicts from the forest's rank alone
    forest_only = EnsembleModel(model.prior, model.forest, 0.0, model.platt, model.ref_prior, model.ref_forest)
    q = model.forest.predict(td.x_test.reshape(len(td.x_test), -1))
    np.testing.assert_allclose(forest_only.predict_proba(td.x_test),
                               1 / (1 + np.exp(-(model.platt[0] * rank_transform(model.ref_forest, q) + model.platt[1]))))
    # safetensors + JSON, no pickle: the same predictions after loading, through the map's predictor too
    rec = save_model(tmp_path / "run", model, {"seed": 0})
    assert rec["kind"] == "ensemble" and not list((tmp_path / "run").glob("*.pkl"))
    back, _ = load_model(tmp_path / "run")
    np.testing.assert_array_equal(back.predict_proba(td.x_test), p)
    np.testing.assert_array_equal(load_predictor(tmp_path / "run").predict_proba(td.x_test, calibrated=False), p)
    # zero-shot: the prior as it is
    zs = base.zero_shot(task.info)
    np.testing.assert_allclose(zs.predict_proba(td.x_test), base.prior.zero_shot(task.info).predict_proba(td.x_test))


def test_ensemble_prefers_the_member_that_ranks_the_shots(data, cfg):
    """A prior whose weights are noise on a task the forest separates perfectly gets little weight."""
    s, task, td = data
    x, y = td.x_train.copy(), td.y_train
    x[:, :, 0] = np.where(y[:, None] == 1, 5.0, -5.0)  # band 0 gives the class away
    prior = get_learner("scratch", resolve_config("quick", overrides={**TINY, "finetune.max_steps": 25})).start(
        x.shape[1], 0, s.schema)
    model = EnsembleModel(prior).adapt(x, y, cfg=resolve_config("quick", overrides={**TINY, "finetune.max_steps": 25}),
                                       seed=0)
    assert model.info["oof_auc_forest"] == 1.0 and model.weight <= 0.5


def test_ensemble_refuses_itself_as_prior_and_a_damaged_record(data, cfg, tmp_path):
    with pytest.raises(ConfigError, match="its own prior"):
        get_learner("ensemble", resolve_config("quick", overrides={**TINY, "ensemble.prior": "ensemble"}))
    s, task, td = data
    model = get_learner("ensemble", cfg).fit(s, task, seed=0).adapt(td.x_train, td.y_train, task_info=task.info,
                                                                   cfg=cfg, seed=0)
    save_model(tmp_path / "run", model, {"seed": 0})
    j = tmp_path / "run" / "model.json"
    meta = json.loads(j.read_text())
    meta["weight_prior"] = 3.0
    j.write_text(json.dumps(meta))
    with pytest.raises(ModelError):
        load_model(tmp_path / "run")


def test_train_and_compare_take_the_ensemble_like_any_learner(data, tmp_path):
    from cropmeta.app.compare import compare
    from cropmeta.app.train import train

    s, task, td = data
    res = train("kenya", samples=s, learner="ensemble", overrides=TINY, out=tmp_path / "run", progress=False)
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["kind"] == "ensemble" and meta["prior"]["kind"] == "pretrained" and 0 <= meta["weight_prior"] <= 1
    big = toy_samples(n_per_label=30, n_noncrop=30, t=4, seed=5, regions=REGIONS)
    rep = compare("kenya", seeds=[0], shots=[12, "all"], methods=["ensemble", "random-forest"], samples=big,
                  out=tmp_path / "cmp", progress=False, config=TINY, calib_folds=2, n_boot=0,
                  method_options={"random-forest": {"n_estimators": 10}})
    cells = {(c["method"], str(c["shots"])): c for c in rep["cells"]}
    assert ("ensemble", "12") in cells and ("ensemble", "all") in cells
    # F1 at each method's own threshold (chosen on its shots' out-of-fold predictions) is reported beside F1 at 0.5
    c = cells[("random-forest", "all")]
    assert c["threshold"] is not None and 0 <= c["threshold"] <= 1 and "f1" in c["metrics_own_threshold"]
    assert rep["summary"]["all"]["random-forest"]["f1_own_threshold"]["n"] == 1
    # what the ensemble chose from its shots is in its cells, the summary and the report
    ad = cells[("ensemble", "all")]["adaptation"]
    assert ad["weight_prior"] in WEIGHTS and ad["finetune"]["rule"] == "auto" and ad["finetune"]["steps"] in (0, 25, 50, 100)
    assert rep["summary"]["all"]["ensemble"]["chosen"]["weight_prior"] == [ad["weight_prior"]]
    assert cells[("random-forest", "all")]["adaptation"] is None
    assert "What each learner chose from its shots" in (tmp_path / "cmp" / "report.md").read_text()


def test_the_ensemble_is_cropmeta_trains_default_and_timl_one_flag_away(data, tmp_path):
    """`cropmeta train` without --learner trains the ensemble (quick preset; the paper preset stays TIML);
    its run predicts a sample set as it predicts arrays, and `calibrate` says why it does not apply."""
    from cropmeta.app.train import train
    from cropmeta.errors import InputError
    from cropmeta.evaluate.calibration import calibrate_run

    assert resolve_config("quick").learner == "ensemble" and resolve_config("paper").learner == "timl"
    s, task, td = data
    train("kenya", samples=s, overrides=TINY, out=tmp_path / "run", progress=False)
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["kind"] == "ensemble"
    pred = load_predictor(tmp_path / "run")
    sub = s.subset(np.arange(5))
    assert np.array_equal(pred.predict_proba(sub), pred.predict_proba(sub.x))
    with pytest.raises(InputError, match="already calibrated"):
        calibrate_run(tmp_path / "run", samples=s)
    train("kenya", samples=s, learner="timl", overrides=TINY, out=tmp_path / "timl", progress=False)
    assert json.loads((tmp_path / "timl" / "model.json").read_text())["kind"] == "timl"


def test_platt_scaling_is_unpenalised_so_few_crop_shots_still_map_crop():
    """A clean score with fewer crop than other shots: the sigmoid crosses 0.5 between the classes
    (an L2-penalised fit put every probability under 0.5: a map without crop)."""
    from cropmeta.learners.ensemble import _platt

    y = np.r_[np.ones(6), np.zeros(14)].astype(int)
    score = np.r_[np.linspace(0.7, 1.0, 6), np.linspace(0.0, 0.6, 14)]
    a, b = _platt(score, y)
    p = 1 / (1 + np.exp(-(a * score + b)))
    assert a > 5 and (p[y == 1] > 0.5).all() and (p[y == 0] < 0.5).mean() > 0.9
    assert np.isfinite([a, b]).all()  # separable scores: Platt's targets keep the slope finite


def test_sim_pretraining_warm_starts_the_ensembles_prior(data, tmp_path, monkeypatch):
    from cropmeta.train.sim_then_real import sim_then_real

    s, task, td = data
    c = resolve_config("quick", overrides=TINY)
    model = sim_then_real(s, task, c, learner="ensemble", sim=s, seed=0)
    assert isinstance(model, EnsembleModel) and model.info["pretrain"]["source"] == "sim"


def test_random_forest_learner_trains_saves_and_refuses_like_any_learner(data, tmp_path):
    """Issue 24: the forest the real benchmarks favour is a learner: `train --learner random-forest`
    makes a run (safetensors node table, no pickle) whose predictions are scikit-learn's."""
    from sklearn.ensemble import RandomForestClassifier

    from cropmeta.app.train import train

    s, task, td = data
    res = train("kenya", samples=s, learner="random-forest", overrides={**TINY, "forest.trees": 15},
                out=tmp_path / "run", progress=False)
    model, meta = load_model(tmp_path / "run")
    assert meta["kind"] == "random-forest" and model.info["fit"]["trees"] == 15
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["learner"] == "random-forest" and "auc_roc" in res["metrics"]
    rf = RandomForestClassifier(n_estimators=15, random_state=0, n_jobs=1).fit(
        td.x_train.reshape(len(td.x_train), -1).astype(np.float64), td.y_train)
    np.testing.assert_allclose(load_predictor(tmp_path / "run").predict_proba(td.x_test, calibrated=False),
                               rf.predict_proba(td.x_test.reshape(len(td.x_test), -1).astype(np.float64))[:, 1])
    unfitted = get_learner("random-forest", resolve_config("quick", overrides=TINY)).fit(s, task)
    with pytest.raises(Exception, match="never fitted"):
        unfitted.predict_proba(td.x_test)
    save_model(tmp_path / "bare", unfitted, {"seed": 0})
    with pytest.raises(ModelError, match="never fitted"):
        load_predictor(tmp_path / "bare")
    with pytest.raises(Exception, match="T=4"):
        model.predict_proba(td.x_test[:, :3])


@pytest.mark.shared
@pytest.mark.parametrize("learner", ["ensemble", "random-forest"])
def test_maps_of_the_real_togo_tif_serially_and_on_two_dask_workers(shared_data, tmp_path, learner):
    """An ensemble and a random forest adapted on toy samples of the CropHarvest layout map the real
    Togo export: the map is the model's probability of each pixel, the same on 2 Dask workers."""
    import rasterio

    from cropmeta.mapping.export import export
    from cropmeta.mapping.sources import open_eetiff

    tif = shared_data / "cropharvest_eo_tifs" / "98-togo_2019-02-06_2020-02-01.tif"
    if not tif.exists():
        pytest.skip(f"{tif} not available")
    toy = toy_samples(n_per_label=12, n_noncrop=12, t=12, seed=0, regions=[("Togo", 8.0, 1.0, ["maize"])])
    y = toy.meta["is_crop"].to_numpy().astype(int)
    over = {**TINY, "finetune.max_steps": 25}
    c = resolve_config("quick", overrides=over)
    ens = get_learner(learner, resolve_config("quick", overrides={**over, "ensemble.prior": "scratch"}))
    assert not ens.needs_source  # a scratch prior / a forest: nothing to fit before the target
    model = ens.start(12, 0, toy.schema).adapt(toy.x, y, cfg=c, seed=0)
    run = tmp_path / "run"
    save_model(run, model, {"seed": 0, "date_range": ["2019-02-06", "2020-02-01"]})
    (run / "config.json").write_text(json.dumps({"seed": 0}))
    local = tmp_path / tif.name
    shutil.copy(tif, local)
    res = export(run, tmp_path / "map.tif", inputs=[local], region="Togo", progress=False, as_float=True)
    with rasterio.open(res["map"]) as m:
        got = m.read(1)
    x, valid = open_eetiff(local).read(rasterio.windows.Window(0, 0, 17, 17))
    want = load_predictor(run).predict_proba(x)
    assert res["pixels_valid"] > 0
    np.testing.assert_allclose(got[valid], want, atol=1e-6)
    res2 = export(run, tmp_path / "map2.tif", inputs=[local], region="Togo", progress=False, as_float=True, workers=2)
    with rasterio.open(res2["map"]) as m2:
        assert np.array_equal(m2.read(1), got)
