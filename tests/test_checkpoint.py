"""Checkpoints are safetensors + JSON; loading refuses pickles, damage, other band layouts or T."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from cropmeta.errors import InputError
from cropmeta.tasks import resolve_target, target_data
from cropmeta.train import checkpoint as ck
from cropmeta.train.config import resolve_config
from cropmeta.train.finetune import finetune
from cropmeta.train.trained import TrainedModel, build_model, from_scratch, predict_proba
from cropmeta.testing import toy_samples

T = 4


@pytest.fixture(scope="module")
def trained():
    s = toy_samples(n_per_label=16, n_noncrop=20, t=T, seed=2, regions=[("Kenya", 0.2, 37.9, ["maize", "bean"])])
    task = resolve_target(s, "kenya")
    td = target_data(s, task)
    cfg = resolve_config("quick", overrides={"hidden": 8, "encoder_dims": [8, 8, 8], "encoder_channels_per_group": 4,
                                             "ft_steps": 5})
    clf, enc = build_model(cfg, T, "timl", seed=0)
    base = TrainedModel("timl", clf, enc, None, cfg)
    model = finetune(base, td.x_train, td.y_train, task.info, cfg, seed=0)
    return model, td


def test_roundtrip_predictions_and_metadata(trained, tmp_path):
    model, td = trained
    rec = ck.save_model(tmp_path, model, {"seed": 0})
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "model.json").exists()
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["t"] == T and meta["bands"][-1] == "NDVI" and len(meta["task_info"]) == 13
    assert meta["normalizer"]["count"] > 0 and "torch" in meta["versions"] and "learn2learn" in meta["versions"]
    assert meta["weights_sha256"] == ck.sha256_file(tmp_path / "model.safetensors") == rec["weights_sha256"]
    pred = ck.load_predictor(tmp_path)
    assert pred.t == T and pred.temperature is None and pred.metadata["model_sha256"] == rec["weights_sha256"]
    want = predict_proba(model, td.x_test)
    got = pred.predict_proba(td.x_test)
    assert got.shape == (len(td.x_test),)
    assert np.array_equal(got, want)
    assert len(np.unique(np.round(got, 6))) > 1  # not a constant model
    # the in-memory form used by the comparison cache round-trips too
    m2 = TrainedModel.from_state(*model.to_state())
    assert np.array_equal(predict_proba(m2, td.x_test), want)


def test_temperature_scales_logits(trained, tmp_path):
    model, td = trained
    ck.save_model(tmp_path, model)
    p1 = ck.load_predictor(tmp_path).predict_proba(td.x_test)
    ck.save_temperature(tmp_path, 2.0)
    pred = ck.load_predictor(tmp_path)
    assert pred.temperature == 2.0
    p2 = pred.predict_proba(td.x_test)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert np.allclose(logit(p2) * 2.0, logit(p1), atol=1e-4)
    assert np.array_equal(pred.predict_proba(td.x_test, calibrated=False), p1)
    with pytest.raises(InputError, match="temperature"):
        ck.save_temperature(tmp_path, -1.0)


def test_refuses_pickles(trained, tmp_path):
    model, _ = trained
    ck.save_model(tmp_path, model)
    w = tmp_path / "model.safetensors"
    torch.save(model.classifier.state_dict(), w)  # a torch.save zip archive
    with pytest.raises(InputError, match="pickle"):
        ck.load_model(tmp_path)
    w.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(InputError, match="pickle"):
        ck.load_model(tmp_path)


def test_refuses_corrupted_files(trained, tmp_path):
    model, _ = trained
    ck.save_model(tmp_path, model)
    w = tmp_path / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupted"):
        ck.load_model(tmp_path)
    w.write_bytes(bytes(data[:50]))
    with pytest.raises(InputError, match="model.safetensors"):
        ck.load_model(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(InputError, match="model.json"):
        ck.load_model(tmp_path)


def test_refuses_other_t_or_band_layout(trained, tmp_path):
    model, td = trained
    ck.save_model(tmp_path, model)
    with pytest.raises(InputError, match="T=4"):
        ck.load_model(tmp_path, t=12)
    pred = ck.load_predictor(tmp_path)
    with pytest.raises(InputError, match="T="):
        pred.predict_proba(np.zeros((3, 12, 18), dtype=np.float32))
    meta = json.loads((tmp_path / "model.json").read_text())
    meta["bands"] = meta["bands"][::-1]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="band"):
        ck.load_model(tmp_path)
    # weights from another T (shapes differ) are refused even when the JSON claims the right T
    meta["bands"] = meta["bands"][::-1]
    other = from_scratch(model.config, t=6, learner="timl")
    other.normalizer = model.normalizer
    _, arrays = other.to_state()
    meta["weights_sha256"] = ck.save_tensors(tmp_path / "model.safetensors", arrays)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="shape"):
        ck.load_model(tmp_path)


def test_optimizer_state_roundtrip(trained):
    model, _ = trained
    params = list(model.classifier.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    tensors, js = ck.optimizer_to_state(opt, "opt")
    json.dumps(js)  # JSON-able
    opt2 = torch.optim.Adam(params, lr=5.0)
    ck.optimizer_from_state(opt2, tensors, js)
    assert opt2.param_groups[0]["lr"] == 1e-3
    for p in params:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt.state[p][k], opt2.state[p][k])


def test_stale_temp_sweep_skips_the_old_copy_and_removes_a_dead_writers_temp(tmp_path):
    """A process killed between atomic_dir's two renames leaves ``.<name>.old`` beside the target;
    the next save must not choke on it (it crashed parsing it as ``<pid>-<host>-…``) and must still
    clear a dead writer's temporary directory."""
    from cropmeta._fs import _host_tag, atomic_dir

    target = tmp_path / "checkpoint"
    target.mkdir()
    (target / "a").write_text("1")
    (tmp_path / ".checkpoint.old").mkdir()
    dead = tmp_path / f".checkpoint.999999999-{_host_tag()}-x.tmp"  # a pid no process has
    dead.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("2")
    assert (target / "a").read_text() == "2"
    assert not dead.exists()
