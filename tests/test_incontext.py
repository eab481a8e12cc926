"""The in-context learner: it reads the support labels (flip them → predictions move the other way),
takes no gradient step to adapt, predicts each query independently of the others and of the support
order, handles support sets larger than its training length by chunk averaging, and round-trips
through safetensors + JSON checkpoints and the resume state."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from cropmeta.errors import InputError
from cropmeta.models.incontext import InContextClassifier
from cropmeta.tasks import resolve_target, target_data
from cropmeta.train.config import resolve_config
from cropmeta.train.incontext import (
    InContextModel, load_incontext, load_incontext_predictor, meta_train_incontext, save_incontext,
)
from cropmeta.train.incontext_model import adapt, predict_proba, support_chunks
from cropmeta.testing import toy_samples

REGIONS = [("Kenya", 0.2, 37.9, ["maize", "bean"]), ("Togo", 8.5, 0.9, ["maize"]),
           ("Uganda", 1.3, 32.4, ["maize", "bean"]), ("Tanzania", -6.3, 34.8, ["maize", "cassava"])]
CFG = {"tasks_per_step": 8, "val_every": 20, "checkpoint_every": 10, "threads": 1, "device": "cpu",
       "remove_auc": None}
IC = {"d_model": 32, "ff": 64, "iterations": 160}


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    s = toy_samples(n_per_label=24, n_noncrop=30, t=6, seed=3, regions=REGIONS)
    task = resolve_target(s, "togo")  # crop vs non-crop
    cfg = resolve_config("quick", overrides=CFG)
    model = meta_train_incontext(s, task, cfg, seed=0, options=IC)
    return s, task, target_data(s, task), cfg, model


def _hash(net) -> list:
    return [v.detach().clone() for v in net.state_dict().values()]


def test_flipping_the_support_labels_flips_the_predictions(trained):
    s, task, td, cfg, model = trained
    assert "Togo:crop" not in model.info["train_tasks"] + model.info["val_tasks"]  # the target never trains
    before = _hash(model.net)
    p = predict_proba(adapt(model, td.x_train, td.y_train, task.info, seed=0), td.x_test)
    p_flip = predict_proba(adapt(model, td.x_train, 1 - td.y_train, task.info, seed=0), td.x_test)
    # adaptation is a forward pass: the weights are untouched
    assert all(torch.equal(a, b) for a, b in zip(before, _hash(model.net)))
    auc, auc_flip = roc_auc_score(td.y_test, p), roc_auc_score(td.y_test, p_flip)
    assert auc > 0.6, auc  # it learned something from the support labels …
    assert auc_flip < 0.4, auc_flip  # … and reading the opposite labels reverses the ranking
    assert spearmanr(p, p_flip).statistic < -0.5
    # the mean gap between test positives and negatives changes sign with the support labels
    def gap(q):
        return q[td.y_test == 1].mean() - q[td.y_test == 0].mean()

    assert gap(p) > 0.05 and gap(p_flip) < -0.05, (gap(p), gap(p_flip))


def test_queries_are_independent_and_support_order_does_not_matter(trained):
    _, task, td, _, model = trained
    pos, neg = np.where(td.y_train == 1)[0], np.where(td.y_train == 0)[0]
    first, second = np.r_[pos[:9], neg[:9]], np.r_[pos[9:18], neg[9:18]]
    xs, ys = td.x_train[first], td.y_train[first]  # 18 ≤ max_support (20): one chunk
    a = adapt(model, xs, ys, task.info)
    p_all = predict_proba(a, td.x_test, batch_size=4096)
    p_small = predict_proba(a, td.x_test, batch_size=3)
    np.testing.assert_allclose(p_small, p_all, atol=1e-6)
    p_one = predict_proba(a, td.x_test[5:6])
    assert p_one[0] == pytest.approx(p_all[5], abs=1e-6)
    perm = np.random.default_rng(0).permutation(len(ys))
    p_perm = predict_proba(adapt(model, xs[perm], ys[perm], task.info), td.x_test)
    np.testing.assert_allclose(p_perm, p_all, atol=1e-5)
    # the model reads the support: another support set gives other predictions
    p_other = predict_proba(adapt(model, td.x_train[second], td.y_train[second], task.info), td.x_test)
    assert np.abs(p_other - p_all).max() > 1e-3


def test_support_chunks_are_stratified_and_cover_everything():
    y = np.array([1] * 7 + [0] * 50)
    chunks = support_chunks(y, 20, seed=3)
    assert len(chunks) == 3 and all(len(c) <= 20 for c in chunks)
    assert all(set(y[c]) == {0, 1} for c in chunks)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(y)))  # each sample exactly once
    assert [c.tolist() for c in support_chunks(y, 20, seed=3)] == [c.tolist() for c in chunks]
    # a class with fewer samples than chunks is repeated so that every chunk holds it
    y2 = np.array([1, 1] + [0] * 60)
    ch2 = support_chunks(y2, 20, seed=0)
    assert len(ch2) == 4 and all((y2[c] == 1).any() and len(c) <= 20 for c in ch2)
    assert [c.tolist() for c in support_chunks(np.array([1, 0, 1]), 20)] == [[0, 1, 2]]


def test_larger_support_is_the_average_over_chunks(trained):
    _, task, td, _, model = trained
    assert len(td.y_train) > model.max_support == 20
    a = adapt(model, td.x_train, td.y_train, task.info, seed=4)
    p = predict_proba(a, td.x_test)
    chunks = support_chunks(td.y_train, 20, seed=4)
    assert len(chunks) > 1
    per_chunk = [predict_proba(adapt(model, td.x_train[c], td.y_train[c], task.info), td.x_test) for c in chunks]
    np.testing.assert_allclose(p, np.mean(per_chunk, axis=0), atol=1e-5)


def test_checkpoint_round_trip_and_bad_input(trained, tmp_path):
    _, task, td, _, model = trained
    a = adapt(model, td.x_train, td.y_train, task.info, seed=1)
    rec = save_incontext(tmp_path / "run", a, {"task": task.to_dict()})
    assert rec["kind"] == "in-context" and rec["support"]["n"] == len(td.y_train)
    pred = load_incontext_predictor(tmp_path / "run")
    np.testing.assert_allclose(pred.predict_proba(td.x_test), predict_proba(a, td.x_test), atol=1e-6)
    assert pred.t == 6 and pred.metadata["task"]["id"] == "Togo:crop"
    # map export loads it with its default loader (load_predictor dispatches on the kind)
    from cropmeta.mapping.model import get_predictor, model_tags

    mp = get_predictor(tmp_path / "run")
    np.testing.assert_allclose(mp.predict_proba(td.x_test), predict_proba(a, td.x_test), atol=1e-6)
    assert model_tags(tmp_path / "run", mp)["MODEL_SHA256"] == rec["weights_sha256"]
    pred.set_temperature(2.0)
    cal = pred.predict_proba(td.x_test)
    assert np.all(np.abs(cal - 0.5) <= np.abs(pred.predict_proba(td.x_test, calibrated=False) - 0.5) + 1e-9)
    # wrong T, wrong kind, corrupted weights, never-adapted model: clear errors
    with pytest.raises(InputError, match="T=6"):
        load_incontext(tmp_path / "run", t=12)
    save_incontext(tmp_path / "meta", model)
    with pytest.raises(InputError, match="never adapted"):
        load_incontext_predictor(tmp_path / "meta")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    with pytest.raises(InputError, match="not an in-context"):
        InContextModel.from_state({**meta, "kind": "timl"}, {})
    w = tmp_path / "run" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-7] + b"garbage")
    with pytest.raises(InputError, match="SHA-256"):
        load_incontext(tmp_path / "run")
    with pytest.raises(InputError, match="both classes"):
        adapt(model, td.x_train[:4], np.ones(4, int), task.info)
    with pytest.raises(InputError, match="task information"):
        adapt(model, td.x_train, td.y_train, task_info=None)


def test_resume_ends_with_the_same_weights(tmp_path):
    s = toy_samples(n_per_label=20, n_noncrop=20, t=4, seed=1, regions=REGIONS[:3])
    cfg = resolve_config("quick", overrides={**CFG, "checkpoint_every": 4, "val_every": 4})
    opts = {"d_model": 8, "ff": 16, "heads": 2, "layers": 1, "iterations": 12}
    full = meta_train_incontext(s, None, cfg, seed=5, options=opts, workdir=tmp_path / "a")

    class Stop(Exception):
        pass

    def kill(i, rec):
        if i == 9:  # after the checkpoint of step 8: steps 9 are redone on resume
            raise Stop

    with pytest.raises(Stop):
        meta_train_incontext(s, None, cfg, seed=5, options=opts, workdir=tmp_path / "b", callback=kill)
    resumed = meta_train_incontext(s, None, cfg, seed=5, options=opts, workdir=tmp_path / "b", resume=True)
    for (k, a), (_, b) in zip(full.net.state_dict().items(), resumed.net.state_dict().items()):
        assert torch.equal(a, b), k
    log = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == list(range(1, 13))
    with pytest.raises(InputError, match="seed"):
        meta_train_incontext(s, None, cfg, seed=6, options=opts, workdir=tmp_path / "b", resume=True)


def test_model_shapes_and_task_token():
    torch.manual_seed(0)
    net = InContextClassifier(t=5, d_model=8, layers=1, heads=2, ff=8, use_task_info=True).eval()
    xs, ys, xq = torch.randn(3, 4, 5, 18), torch.randint(0, 2, (3, 4)), torch.randn(3, 7, 5, 18)
    info = torch.randn(3, 13)
    out = net(xs, ys, xq, info)
    assert out.shape == (3, 7)
    # a masked-out support sample is the same as an absent one
    mask = torch.tensor([[True, True, True, False]] * 3)
    np.testing.assert_allclose(net(xs, ys, xq, info, mask).detach(), net(xs[:, :3], ys[:, :3], xq, info).detach(),
                               atol=1e-6)
    with pytest.raises(ValueError, match="task information"):
        net(xs, ys, xq)
    # the task information matters
    assert not torch.allclose(out, net(xs, ys, xq, info + 1.0))


def test_train_learner_in_context_writes_a_run_directory(tmp_path):
    from cropmeta.metrics import binary_metrics
    from cropmeta.app.train import train

    s = toy_samples(n_per_label=20, n_noncrop=20, t=4, seed=1, regions=REGIONS)
    over = {**CFG, "iterations": 12, "ic_d_model": 8, "ic_ff": 16, "ic_heads": 2, "ic_layers": 1}
    out = tmp_path / "run"
    res = train("togo", samples=s, out=out, learner="in-context", overrides=over, seed=2)
    for f in ("config.json", "metrics.json", "model.safetensors", "model.json", "log.jsonl", "meta/model.json",
              "checkpoint/state.json"):
        assert (out / f).exists(), f
    meta = json.loads((out / "model.json").read_text())
    td = target_data(s, resolve_target(s, "togo"))
    assert meta["kind"] == "in-context" and meta["support"]["n"] == len(td.y_train)
    assert meta["in_context"]["d_model"] == 8 and json.loads((out / "config.json").read_text())["learner"] == "in-context"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["learner"] == "in-context"
    assert len((out / "log.jsonl").read_text().splitlines()) == 12
    again = binary_metrics(td.y_test, load_incontext_predictor(out).predict_proba(td.x_test))
    assert again["auc_roc"] == pytest.approx(res["metrics"]["auc_roc"])
    res2 = train("togo", samples=s, out=out, learner="in-context", overrides=over, seed=2, resume=True)
    assert res2["metrics"]["auc_roc"] == pytest.approx(res["metrics"]["auc_roc"])
    with pytest.raises(InputError, match="in-context option"):
        train("togo", samples=s, out=tmp_path / "x", learner="in-context", overrides={**over, "ic_d_modle": 8})
    with pytest.raises(InputError, match="one process"):
        train("togo", samples=s, out=tmp_path / "y", learner="in-context", overrides=over, nprocs=2)
