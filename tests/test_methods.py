"""The one method contract (fit / predict_proba on raw canonical samples) for the random forest and
the four deep methods (tiny training configuration: a few outer steps, hidden 16)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cropmeta.testing import make_samples
from cropmeta.errors import InputError
from cropmeta.evaluate.compare import build_target, source_samples
from cropmeta.evaluate.methods import RandomForest, make_method, resolve_methods

TINY = {"hidden": 16, "encoder_dims": [16, 16, 16], "iterations": 3, "tasks_per_step": 4, "k_support": 3,
        "k_query": 2, "ft_steps": 15, "pt_steps": 10, "pt_val_every": 5, "threads": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def data():
    s = make_samples(n_per_region=70, seed=1)
    d = build_target(s, "kenya")
    return d, source_samples(s, d)


def test_resolve_methods_aliases_and_errors():
    assert resolve_methods("TIML, rf,from-scratch,pretrain,timl") == ["timl", "random-forest", "scratch", "pretrained"]
    with pytest.raises(InputError, match="did you mean"):
        resolve_methods("timl,mamll")
    with pytest.raises(InputError):
        resolve_methods("")


def test_random_forest_contract(data):
    d, _ = data
    rf = RandomForest(n_estimators=30)
    p = rf.fit(d.x_train, d.y_train, seed=0).predict_proba(d.x_test)
    assert p.shape == (len(d.x_test),) and p.min() >= 0 and p.max() <= 1
    assert roc_auc_score(d.y_test, p) > 0.75  # it learns the synthetic crop signal
    # fit restarts like scikit-learn: fitting other data in between changes nothing
    rf.fit(d.x_train[:20], d.y_train[:20], seed=5)
    np.testing.assert_array_equal(rf.fit(d.x_train, d.y_train, seed=0).predict_proba(d.x_test), p)
    # one class only: predicts it
    one = RandomForest().fit(d.x_train[d.y_train == 0][:5], np.zeros(5, int))
    assert np.all(one.predict_proba(d.x_test) == 0.0)
    bad = d.x_train.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        RandomForest().fit(bad, d.y_train)
    with pytest.raises(InputError, match="before fit"):
        RandomForest().predict_proba(d.x_test)


@pytest.mark.parametrize("name", ["timl", "maml", "pretrained", "scratch"])
def test_deep_methods_restart_from_prepared_weights_and_cache(name, data):
    from cropmeta.evaluate.deep import resolve_train_config

    d, src = data
    cfg, _ = resolve_train_config("quick", TINY)
    m = make_method(name, cfg).prepare(src if name != "scratch" else None, d.task, seed=0)
    x_a, y_a = d.x_train, d.y_train
    p1 = m.fit(x_a, y_a, seed=1).predict_proba(d.x_test)
    assert p1.shape == (len(d.x_test),) and np.all((p1 > 0) & (p1 < 1))
    m.fit(x_a[::2], y_a[::2], seed=2)
    p2 = m.fit(x_a, y_a, seed=1).predict_proba(d.x_test)
    np.testing.assert_allclose(p2, p1, atol=1e-6)  # every fit starts from the same prepared weights
    if name == "scratch":
        assert m.prepared_state() is None
        other = make_method(name, cfg).prepare(None, d.task, seed=1)
        assert not np.allclose(other.fit(x_a, y_a, seed=1).predict_proba(d.x_test), p1)
        return
    # prepared weights survive a round trip through the cache format
    meta, arrays = m.prepared_state()
    fresh = make_method(name, cfg)
    fresh.set_target(d.task, 0)
    assert fresh.load_prepared_state(meta, arrays)
    np.testing.assert_allclose(fresh.fit(x_a, y_a, seed=1).predict_proba(d.x_test), p1, atol=1e-6)


def test_timl_uses_task_information(data):
    from cropmeta.evaluate.deep import resolve_train_config

    d, src = data
    cfg, _ = resolve_train_config("quick", TINY)
    m = make_method("timl", cfg).prepare(src, d.task, seed=0)
    p = m.fit(d.x_train, d.y_train, seed=1).predict_proba(d.x_test)
    m.task_info = m.task_info[::-1].copy()  # another task's information → other FiLM parameters
    q = m.fit(d.x_train, d.y_train, seed=1).predict_proba(d.x_test)
    assert np.abs(p - q).max() > 1e-4


def test_zero_shot_deep_methods_use_no_target_label(data, monkeypatch):
    """Zero-shot TIML: the meta-learned weights with the target's task information predict the test
    set as they are — no fine-tuning, and the target's labels change nothing."""
    from cropmeta.evaluate import compare as cmp
    from cropmeta.evaluate.deep import resolve_train_config
    from cropmeta.evaluate.names import method_shots
    from cropmeta.train.trained import predict_proba

    ft = importlib.import_module("cropmeta.train.finetune")

    d, src = data
    cfg, _ = resolve_train_config("quick", TINY)
    m = make_method("timl", cfg).prepare(src, d.task, seed=0)

    def no_finetune(*a, **k):
        raise AssertionError("zero-shot must not fine-tune")

    monkeypatch.setattr(ft, "finetune", no_finetune)
    cell = cmp.run_cell(m, d, seed=0, k=0)
    flipped = cmp.TargetData(d.task, d.x_train, 1 - d.y_train, d.x_test, d.y_test, d.ids_train, d.ids_test)
    again = cmp.run_cell(m, flipped, seed=0, k=0)
    assert cell["n_train"] == 0 and cell["train_ids"] == [] and cell["prob_test"] == again["prob_test"]
    np.testing.assert_allclose(cell["prob_test"], predict_proba(m.base, d.x_test, task_info=d.task.task_info), atol=1e-6)
    m.task_info = m.task_info[::-1].copy()  # another task's information: another prediction
    assert np.abs(np.asarray(m.fit_zero_shot().predict_proba(d.x_test)) - cell["prob_test"]).max() > 1e-4
    with pytest.raises(InputError, match="no zero-shot"):
        make_method("scratch", cfg).prepare(None, d.task, seed=0).fit_zero_shot()
    assert method_shots("in-context", [0, 20]) == [20] and method_shots("timl+views", [0, 20]) == [20]
    assert method_shots("timl+sim", [0, 20]) == [0, 20] and method_shots("oracle-rf", [0, 20]) == ["any"]


def test_random_forest_on_other_regions_never_sees_the_target_region(data, monkeypatch):
    from cropmeta.tasks import rule_labels

    d, src = data
    seen = {}
    real_fit = RandomForest.fit

    def spy_fit(self, x, y, seed=0):
        seen["x"], seen["y"] = np.array(x), np.array(y)
        return real_fit(self, x, y, seed)

    monkeypatch.setattr(RandomForest, "fit", spy_fit)
    m = make_method("random-forest-source", n_estimators=20).prepare(src, d.task, seed=0)
    meta = src.meta
    other = (meta["region"] != "Kenya").to_numpy()
    y = rule_labels(meta, "maize", other)  # maize vs the other known labels, like the source tasks
    assert m.counts["n"] == int((y != -1).sum()) == len(seen["y"]) and m.counts["regions"] == 3
    np.testing.assert_array_equal(seen["y"], y[y != -1])
    kenya_x = {r.tobytes() for r in src.x[~other]}
    assert not any(r.tobytes() in kenya_x for r in seen["x"])
    p = m.fit_zero_shot().predict_proba(d.x_test)
    assert p.shape == (len(d.x_test),) and roc_auc_score(d.y_test, p) > 0.6  # the crop signal transfers
    with pytest.raises(InputError, match="no target labels|uses no target labels"):
        m.fit(d.x_train, d.y_train)
