"""`presto` and `presto-ft` as registered learners (cropmeta.learners.presto, cropmeta.train.presto_frozen):
`cropmeta train --learner presto|presto-ft` fits on the target's labels at each sample's own place and
date, saves safetensors + JSON, and the run's predictor reloads it exactly; the comparison's methods
fit through the same functions. Tiny: a random-weight Presto encoder, toy samples, a few SGD steps."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from cropmeta.models.presto import PrestoEncoder


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    enc = PrestoEncoder()
    path = tmp_path_factory.mktemp("presto") / "random.safetensors"
    save_file({f"encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def toy():
    from cropmeta.testing import TOY_REGIONS, toy_samples

    return toy_samples(n_per_label=12, n_noncrop=16, t=12, seed=2, regions=TOY_REGIONS[:3])


@pytest.fixture()
def workspace_weights(weights):
    """The learners read the workspace copy of the weights: this test's random ones."""
    from cropmeta.models.weights import weights_dir
    from cropmeta.models.published import PRESTO

    dest = weights_dir(PRESTO) / PRESTO.safetensors_name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, dest)
    return dest


def _overrides(**kw):
    from cropmeta.train.config import resolve_config

    cfg = resolve_config("quick", overrides={"threads": 1, "device": "cpu", "ft_steps": 4, **kw})
    return {k: v for k, v in cfg.to_dict().items() if k not in ("preset", "in_context")}


def test_presto_learners_are_registered_without_source_or_zero_shot():
    from cropmeta.learners import get_learner, kinds

    assert {"presto", "presto-ft", "presto-timl", "presto-maml"} <= set(kinds())
    for kind in ("presto", "presto-ft"):
        learner = get_learner(kind)
        assert learner.needs_source is False and learner.zero_shot is False
        assert learner.model_class.uses_locations


def test_train_learner_presto_logistic_regression(toy, workspace_weights, tmp_path):
    """The run's classifier is the paper's logistic regression on embeddings of the training labels
    at their own lat/lon and dates; held-out metrics and the reloaded predictor agree with it."""
    from sklearn.linear_model import LogisticRegression

    from cropmeta.app.train import train
    from cropmeta.learners.base import sample_context
    from cropmeta.metrics import binary_metrics
    from cropmeta.models.presto_embed import PrestoEmbedder
    from cropmeta.models.presto_layout import presto_inputs
    from cropmeta.tasks import resolve_target, target_data
    from cropmeta.train import checkpoint as ck

    res = train("kenya", samples=toy, learner="presto", overrides=_overrides(), out=tmp_path / "run", seed=1)
    model, meta = ck.load_model(tmp_path / "run")
    assert meta["kind"] == "presto" and meta["adapted"] is True and model.coef.shape == (128,)
    td = target_data(toy, resolve_target(toy, "kenya", None))
    m = toy.meta.iloc[td.train_index]
    emb = PrestoEmbedder(workspace_weights, cache=False).embed(
        presto_inputs(td.x_train, m["lat"].to_numpy(), m["lon"].to_numpy(), m["start_date"].tolist()))
    lr = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=1).fit(emb, td.y_train)
    assert np.allclose(model.coef, lr.coef_[0], atol=1e-10)
    ctx = sample_context(model, toy.meta, td.test_index)
    prob = model.predict_proba(td.x_test, **ctx)
    assert np.allclose(prob, model.predict_embeddings(
        PrestoEmbedder(workspace_weights, cache=False).embed(presto_inputs(td.x_test, ctx["lat"], ctx["lon"],
                                                                           ctx["start_dates"]))), atol=1e-12)
    assert binary_metrics(td.y_test, prob)["auc_roc"] == pytest.approx(res["metrics"]["auc_roc"], abs=1e-12)
    pred = ck.load_predictor(tmp_path / "run")
    assert pred.uses_locations and np.array_equal(pred.predict_proba(td.x_test, calibrated=False, **ctx), prob)
    # the unadapted starting model (run/meta) refuses to serve predictions
    start, _ = ck.load_model(tmp_path / "run" / "meta")
    assert start.coef is None
    with pytest.raises(Exception, match="fitted on the target's labels"):
        start.check_ready("run/meta")


def test_train_learner_presto_ft_round_trip(toy, workspace_weights, tmp_path):
    """presto-ft fine-tunes the encoder itself; the saved run reloads to bit-identical predictions."""
    from cropmeta.app.train import train
    from cropmeta.models.presto import load_presto
    from cropmeta.train import checkpoint as ck

    res = train("kenya", samples=toy, learner="presto-ft", overrides=_overrides(ft_steps=3), out=tmp_path / "run",
                seed=0)
    assert 0 <= res["metrics"]["auc_roc"] <= 1
    model, meta = ck.load_model(tmp_path / "run")
    assert meta["kind"] == "presto-ft" and model.info["finetune"]["steps"] == 3
    from cropmeta.models.inference import training_precision

    # the precision of the steps (presto_ft.precision = auto: bf16 where native) and the trained blocks
    assert model.info["finetune"]["precision"] == training_precision("auto")
    assert model.info["finetune"]["train_blocks"] == 2
    pre = load_presto(workspace_weights).state_dict()
    tuned = model.net.encoder.state_dict()
    assert any(not torch.equal(pre[k], tuned[k]) for k in pre if k.startswith("blocks"))  # the blocks moved
    assert torch.equal(pre["pos_embed"], tuned["pos_embed"])  # the frozen sinusoid did not
    x, lat, lon = toy.x[:5], toy.meta["lat"].to_numpy()[:5], toy.meta["lon"].to_numpy()[:5]
    again, _ = ck.load_model(tmp_path / "run")
    assert np.array_equal(again.predict_proba(x, lat=lat, lon=lon), model.predict_proba(x, lat=lat, lon=lon))


def test_compare_methods_fit_like_the_learners(toy, weights):
    """The comparison's `presto` method and the `presto` learner give the same classifier."""
    from cropmeta.evaluate.presto import PrestoMethod
    from cropmeta.train.presto_frozen import fit_logistic

    emb = np.random.default_rng(0).normal(size=(40, 128)).astype(np.float32)
    y = (emb[:, 0] > 0).astype(int)
    coef, b = fit_logistic(emb, y, seed=0)
    method = PrestoMethod(weights=weights, cache=False)
    method.embeddings = lambda x: emb[: len(x)]  # the method's embeddings, without a target
    method.fit(np.zeros((40, 12, 18), np.float32), y, seed=0)
    assert np.array_equal(method.model[0], coef) and method.model[1] == b
    from sklearn.linear_model import LogisticRegression

    sk = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=0).fit(emb, y)
    assert np.allclose(method.predict_proba(np.zeros((40, 12, 18), np.float32)), sk.predict_proba(emb)[:, 1],
                       atol=1e-12)


def test_bad_records_are_refused(toy, workspace_weights, tmp_path):
    from cropmeta.errors import ModelError
    from cropmeta.train.presto_frozen import PrestoLRModel

    from cropmeta.learners import get_learner

    model = get_learner("presto").start(12)
    fitted = model.adapt(toy.x[:20], np.r_[np.ones(10), np.zeros(10)].astype(int),
                         lat=toy.meta["lat"].to_numpy()[:20], lon=toy.meta["lon"].to_numpy()[:20])
    meta, arrays = fitted.to_state()
    back = PrestoLRModel.from_state(meta, arrays)
    assert np.array_equal(back.coef, fitted.coef)
    with pytest.raises(ModelError, match="weights differ"):
        PrestoLRModel.from_state(meta, {"classifier.coef": arrays["classifier.coef"]})
    with pytest.raises(ModelError, match="not frozen Presto"):
        PrestoLRModel.from_state({**meta, "kind": "timl"}, arrays)
    with pytest.raises(ModelError, match="no zero-shot"):
        model.zero_shot()


def test_compare_presto_method_takes_any_band_schema(toy, weights):
    """The comparison's `presto` method on an S2-only table (WorldCrops' FIS series) embeds exactly as
    the CropHarvest-18 samples with S1, ERA5 and SRTM missing (masked), not as a refused array."""
    from cropmeta.bandschema import BandSchema
    from cropmeta.evaluate.base import TargetTask
    from cropmeta.evaluate.presto import PrestoMethod
    from cropmeta.io.store import SampleSet
    from cropmeta.schema import CROPHARVEST

    s2 = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12", "NDVI"]
    idx = [CROPHARVEST.index(b) for b in s2]
    schema = BandSchema("s2-only", dynamic=tuple(s2[:-1]), derived=(("NDVI", "B8", "B4"),), t=toy.t)
    sub = SampleSet(toy.x[:, :, idx], toy.meta, schema)
    full = toy.x.copy()
    full[:, :, [i for i in range(full.shape[-1]) if i not in idx]] = np.nan
    embs = []
    for samples in (sub, SampleSet(full, toy.meta, toy.schema)):
        m = PrestoMethod(weights=weights, cache=False, device="cpu")
        m.prepare_target(TargetTask(region="x", crop=None, task_info=np.zeros(13), name="x",
                                    extra={"samples": samples}))
        embs.append(m.target_emb)
    assert embs[0].shape == (len(toy), 128)
    np.testing.assert_allclose(embs[0], embs[1], atol=1e-5)


def _s2_only(toy):
    """The toy samples in an S2-only schema (WorldCrops' FIS series have no S1, ERA5 or SRTM)."""
    from cropmeta.bandschema import BandSchema
    from cropmeta.io.store import SampleSet
    from cropmeta.schema import CROPHARVEST

    s2 = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12", "NDVI"]
    schema = BandSchema("s2-only", dynamic=tuple(s2[:-1]), derived=(("NDVI", "B8", "B4"),), t=toy.t)
    return SampleSet(toy.x[:, :, [CROPHARVEST.index(b) for b in s2]], toy.meta, schema)


@pytest.mark.parametrize("learner", ["presto", "presto-timl"])
def test_presto_learners_train_and_reload_on_any_band_schema(toy, workspace_weights, tmp_path, learner):
    """`cropmeta train --learner presto|presto-timl` on an S2-only table: was refused "samples must be
    [N, T, 18]"; now the run records its bands, masks the missing groups, and reloads to the same answers."""
    from cropmeta.app.train import train
    from cropmeta.learners.base import sample_context
    from cropmeta.tasks import resolve_target, target_data
    from cropmeta.train import checkpoint as ck

    s2 = _s2_only(toy)
    over = _overrides(iterations=2, tasks_per_step=2, val_every=2, checkpoint_every=2, k_support=4, k_query=2)
    res = train("kenya", samples=s2, learner=learner, overrides=over, out=tmp_path / "run", seed=0)
    assert 0.0 <= res["metrics"]["auc_roc"] <= 1.0
    model, meta = ck.load_model(tmp_path / "run")
    assert meta["bands"] == list(s2.schema.bands) and model.bands == tuple(s2.schema.bands)
    td = target_data(s2, resolve_target(s2, "kenya", None))
    ctx = sample_context(model, s2.meta, td.test_index)
    pred = ck.load_predictor(tmp_path / "run")
    assert np.allclose(pred.predict_proba(td.x_test, calibrated=False, **ctx), model.predict_proba(td.x_test, **ctx))
