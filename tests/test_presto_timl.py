"""Task-informed Presto (cropmeta.train.presto_timl): a FiLM head over frozen Presto embeddings,
meta-trained with TIML's tasks. Tiny: a random-weight Presto encoder saved as safetensors, toy
samples, a few outer steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cropmeta.models.presto_embed import PrestoEmbedder
from cropmeta.models.presto import PrestoEncoder
from cropmeta.train.config import resolve_config
from cropmeta.train.presto_timl import PrestoTIMLModel, build_head, meta_train_presto
from cropmeta.train.presto_base import xyz_to_latlon


def _random_presto(path, seed: int):
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    enc = PrestoEncoder()
    save_file({f"encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return _random_presto(tmp_path_factory.mktemp("presto") / "random.safetensors", 0)


@pytest.fixture(scope="module")
def toy():
    from cropmeta.testing import TOY_REGIONS, toy_samples

    return toy_samples(n_per_label=16, n_noncrop=24, t=12, seed=1, regions=TOY_REGIONS[:4])


@pytest.fixture(scope="module")
def cfg():
    return resolve_config("quick", overrides={"iterations": 4, "tasks_per_step": 4, "val_every": 2, "threads": 1,
                                              "device": "cpu", "ft_steps": 5, "k_support": 4, "k_query": 2,
                                              "min_per_class": 6})


@pytest.fixture(scope="module")
def trained(toy, weights, cfg):
    PrestoEmbedder._MEMORY.clear()
    emb = PrestoEmbedder(weights)
    head0, enc0 = build_head(cfg, True, seed=0)
    before = {k: v.clone() for k, v in head0.state_dict().items()}
    model = meta_train_presto(toy, None, cfg, seed=0, embedder=emb)
    return model, before, emb


def test_meta_training_changes_the_head_and_keeps_tims_protocol(trained):
    model, before, _ = trained
    after = model.head.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    assert model.kind == "presto-timl" and model.encoder is not None
    assert model.info["iterations"] == 4 and model.info["train_tasks"]  # meta_train's own record


def test_task_vector_changes_predictions_and_zero_shot_needs_no_label(trained, toy):
    model, _, emb = trained
    rng = np.random.default_rng(0)
    e = rng.normal(size=(16, 128)).astype(np.float32)
    from cropmeta.crops import task_info

    ti = toy.meta.iloc[0]

    a = model.with_task(task_info(0.2, 37.9, "cereals")).predict_embeddings(e)
    b = model.with_task(task_info(-10.8, -53.1, "beverage_spice")).predict_embeddings(e)
    assert np.abs(a - b).max() > 1e-4  # FiLM from the task encoder is used
    assert a.shape == (16,) and np.all((a > 0) & (a < 1))
    # zero-shot on raw samples: embedded at the task's centre, no label, no fine-tuning
    zs = model.with_task(task_info(float(ti["lat"]), float(ti["lon"]), "cereals")).predict_proba(toy.x[:8])
    assert zs.shape == (8,) and np.isfinite(zs).all()


def test_adapt_and_save_load_round_trip_bit_exact(trained, toy, cfg, tmp_path):
    from cropmeta.crops import task_info
    from cropmeta.train import checkpoint as ck

    model, _, emb = trained
    crop = toy.meta["is_crop"].to_numpy()
    idx = np.r_[np.where(crop == 1)[0][:20], np.where(crop == 0)[0][:20]]
    y, x = (crop[idx] == 1).astype(int), toy.x[idx]
    ti = task_info(0.2, 37.9, "cereals")
    fitted = model.adapt(x, y, task_info=ti, cfg=cfg, seed=3)
    assert fitted.info["finetune"]["steps"] == 5
    assert not torch.equal(fitted.head.fc2.weight, model.head.fc2.weight)  # a copy was trained
    p = fitted.predict_proba(x)
    rec = ck.save_model(tmp_path / "run", fitted)
    arrays = ck.load_tensors(tmp_path / "run" / ck.MODEL_WEIGHTS, rec["weights_sha256"])
    back = PrestoTIMLModel.from_state(rec, {k: v.numpy() for k, v in arrays.items()}).use_weights(embedder=emb)
    assert np.array_equal(back.predict_proba(x), p)
    m0, a0 = fitted.to_state()
    m1, a1 = back.to_state()
    assert m0["backbone"] == m1["backbone"] and sorted(a0) == sorted(a1)
    assert all(np.array_equal(a0[k], a1[k]) for k in a0)


def test_embedding_cache_key_follows_the_weights_sha(trained, toy, tmp_path):
    from cropmeta.models.presto_embed import weights_sha256
    from cropmeta.train.presto_timl import source_embeddings

    _, _, emb = trained
    other = PrestoEmbedder(_random_presto(tmp_path / "other.safetensors", 1))
    rows = np.arange(10)
    e0 = source_embeddings(toy, emb, rows)
    e1 = source_embeddings(toy, other, rows)
    assert emb.weights_sha != other.weights_sha and weights_sha256(other.weights) == other.weights_sha
    assert emb.cache_path("k").parent != other.cache_path("k").parent  # one directory per weights SHA-256
    assert np.abs(e0 - e1).max() > 1e-3
    assert len(list(other.cache_path("k").parent.glob("source-*.safetensors"))) == 1
    # the model refuses to embed with weights it was not trained on
    model = trained[0].copy()
    with pytest.raises(Exception, match="weights"):
        model.use_weights(embedder=other)


def test_plain_variant_and_latlon_of_task_vector(toy, weights, cfg):
    from cropmeta.crops import latlon_to_xyz

    lat, lon = xyz_to_latlon(latlon_to_xyz(-10.8, -53.1))
    assert abs(lat + 10.8) < 1e-5 and abs(lon + 53.1) < 1e-5
    model = meta_train_presto(toy, None, cfg, seed=1, embedder=PrestoEmbedder(weights), task_info=False)
    assert model.kind == "presto-maml" and model.encoder is None
    e = np.random.default_rng(1).normal(size=(4, 128)).astype(np.float32)
    assert np.array_equal(model.predict_embeddings(e), model.with_task(None).predict_embeddings(e))


def test_compare_rows_with_zero_shot(toy, weights, cfg, tmp_path):
    from cropmeta.evaluate.compare import compare

    PrestoEmbedder._MEMORY.clear()
    opts = {"presto-timl": {"weights": str(weights)}}
    rep = compare("kenya", samples=toy, methods="presto-timl", seeds=1, shots="0,all", out=tmp_path / "cmp",
                  progress=False, calib_folds=0, config=cfg.to_dict(), method_options=opts)
    cells = [c for c in rep["cells"] if c["method"] == "presto-timl"]
    assert sorted(str(c["shots"]) for c in cells) == ["0", "all"]
    assert all(np.isfinite(c["metrics"]["auc_roc"]) for c in cells)


def test_compare_fingerprint_follows_weights_content_not_path(tmp_path):
    from cropmeta.evaluate.compare import backbone_fingerprint

    path = _random_presto(tmp_path / "w.safetensors", 0)
    cfg = {"method_options": {"presto-timl": {"weights": str(path)}}}
    a = backbone_fingerprint("presto-timl", cfg)
    _random_presto(path, 1)  # other weights, same path
    b = backbone_fingerprint("presto-timl", cfg)
    assert a != b and None not in a.values()
    assert backbone_fingerprint("timl", cfg) == {}  # other methods' fingerprints unchanged


def test_train_learner_presto_timl_and_predictor(toy, weights, cfg, tmp_path):
    """`cropmeta train --learner presto-timl` through the registry: meta-fit, adapt, save; the run's
    Predictor (what map export uses) reloads it and predicts the same numbers."""
    import shutil

    from cropmeta.learners import get_learner, kinds
    from cropmeta.models.weights import weights_dir
    from cropmeta.models.published import PRESTO
    from cropmeta.train import checkpoint as ck
    from cropmeta.app.train import train

    assert {"presto-timl", "presto-maml"} <= set(kinds())
    assert get_learner("presto-timl", cfg).zero_shot
    dest = weights_dir(PRESTO) / PRESTO.safetensors_name  # the workspace copy the learner reads
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, dest)
    over = {k: v for k, v in cfg.to_dict().items() if k not in ("preset", "in_context")}
    res = train("kenya", samples=toy, learner="presto-timl", overrides=over, out=tmp_path / "run", seed=0)
    assert 0 <= res["metrics"]["auc_roc"] <= 1 and res["meta"]["iterations"] == 4
    pred = ck.load_predictor(tmp_path / "run")
    model, _ = ck.load_model(tmp_path / "run")
    assert model.kind == "presto-timl" and model.task_info is not None
    x = toy.x[:6]
    assert np.array_equal(pred.predict_proba(x, calibrated=False), model.predict_proba(x))
    # the run fine-tuned and tested on each sample's own lat/lon and start date, not the region centre
    from cropmeta.learners.base import sample_context
    from cropmeta.metrics import binary_metrics
    from cropmeta.tasks import resolve_target, target_data

    td = target_data(toy, resolve_target(toy, "kenya", None))
    ctx = sample_context(model, toy.meta, td.test_index)
    assert len(ctx["lat"]) == len(td.x_test) and np.ptp(ctx["lat"]) > 0
    own = model.predict_proba(td.x_test, **ctx)
    assert not np.allclose(own, model.predict_proba(td.x_test))  # the places matter to Presto
    assert binary_metrics(td.y_test, own)["auc_roc"] == pytest.approx(res["metrics"]["auc_roc"], abs=1e-12)
    assert np.array_equal(pred.predict_proba(td.x_test, calibrated=False, **ctx), own)
    assert sample_context(object(), toy.meta, td.test_index) == {}  # other models get nothing extra


@pytest.mark.slow
def test_export_with_a_presto_timl_run(trained, tmp_path):
    """`cropmeta export` through the generic predictor: a COG on the simulated scene's grid, tagged
    with the run's model hash."""
    import json
    import shutil

    import rasterio

    from cropmeta.io.store import SampleSet, make_meta
    from cropmeta.mapping.export import export
    from cropmeta.mapping.validate import check_cog
    from cropmeta.models.weights import weights_dir
    from cropmeta.models.published import PRESTO
    from cropmeta.crops import task_info
    from cropmeta.sim import generate_world
    from cropmeta.sim.calibrate import world_samples
    from cropmeta.tasks import resolve_target
    from cropmeta.train import checkpoint as ck

    world = generate_world(tmp_path / "world", seed=0, scene_size=32, regions=["Kenya"])
    x, meta = world_samples(world, "Kenya")
    task = resolve_target(SampleSet(x, make_meta(meta)), "kenya", "maize")
    model = trained[0].with_task(task_info(task.lat, task.lon, "cereals"))
    run = tmp_path / "run"
    cfg = model.config.to_dict()
    ck.save_model(run, model, {"task": task.to_dict(), "seed": 0, "date_range": ["2019-02-06", "2019-02-06"],
                               "config": cfg})
    (run / "config.json").write_text(json.dumps({**cfg, "target": task.to_dict(), "seed": 0, "source": str(world)}))
    # the predictor reads the workspace copy of the Presto weights: the random ones of this test
    dest = weights_dir(PRESTO) / PRESTO.safetensors_name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(trained[2].weights, dest)
    out = tmp_path / "map.tif"
    res = export(run, out, progress=False, quicklook=False, as_float=True)
    assert check_cog(out) == [] and res["cog_problems"] == []
    scene = json.loads((world / "world.json").read_text())["scenes"]["kenya"]
    with rasterio.open(world / scene["tif"]) as src, rasterio.open(out) as m:
        assert (m.width, m.height, m.transform) == (src.width, src.height, src.transform)
        assert m.tags()["MODEL_SHA256"] == json.loads((run / "model.json").read_text())["weights_sha256"]
        got = m.read(1, window=rasterio.windows.Window(0, 0, src.width, 2))
        crs, tf = src.crs, src.transform
    # each map pixel was embedded at its own centre's lat/lon and the tile's start date
    from rasterio.transform import xy
    from rasterio.warp import transform as warp

    from cropmeta.mapping.sources import open_eetiff

    source = open_eetiff(world / scene["tif"])
    win = rasterio.windows.Window(0, 0, source.grid.width, 2)
    xs, valid = source.read(win)
    rows, cols = np.nonzero(valid)
    px, py = xy(tf, rows, cols)  # pixel centres
    lon, lat = warp(crs, "EPSG:4326", list(px), list(py))
    start = source.first_date()
    assert start is not None and start[:4] == "2019"
    want = model.predict_proba(xs, lat=np.array(lat), lon=np.array(lon), start_dates=[start] * len(xs))
    assert got.dtype == np.float32 and np.allclose(got[valid], want, atol=1e-6)
    centre = model.predict_proba(xs)  # the region centre instead: another map
    assert not np.allclose(centre, want, atol=1e-4)


def test_the_head_takes_the_auto_budget_from_its_shots(trained, cfg):
    """Issue 26: under ``finetune.budget = "auto"`` the head's number of steps is chosen by inner
    cross-validation on the shots' embeddings, recorded, and gives the out-of-fold predictions an
    ensemble weighs it with."""
    import dataclasses

    from cropmeta.crops import task_info
    from cropmeta.train.finetune import shot_folds

    model, _, _ = trained
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(12), np.zeros(12)].astype(int)
    e = rng.normal(size=(24, 128)).astype(np.float32) + y[:, None] * 0.8
    auto = dataclasses.replace(cfg, ft_budget="auto", ft_max_steps=100)
    ti = task_info(0.2, 37.9, "cereals")
    m, oof = model.with_task(ti)._adapt_embeddings(e, y, ti, auto, 0)
    rec = m.info["finetune"]["budget"]
    assert rec["rule"] == "auto" and rec["chosen_steps"] in (0, 25, 50, 100)
    assert m.info["finetune"]["steps"] == rec["chosen_steps"]
    assert m.info["finetune"]["lr"] == auto.ft_auto_lr and oof.shape == (24,) and len(shot_folds(y, 3, 0)) == 3
    from sklearn.metrics import roc_auc_score

    chosen = next(c for c in rec["candidates"] if c["steps"] == rec["chosen_steps"])
    assert roc_auc_score(y, oof) == pytest.approx(chosen["oof_auc"], abs=1e-4)
    assert model.with_task(ti).adapt_embeddings(e, y, ti, cfg, 0).info["finetune"]["budget"] == {"rule": "fixed"}
