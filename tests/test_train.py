"""``train()`` end to end on a small synthetic sample set, configuration handling, bad input, and the
reusable API the comparison builds on (meta_train / pretrain / from_scratch / finetune / predict_proba)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cropmeta.errors import InputError
from cropmeta.metrics import binary_metrics
from cropmeta.tasks import resolve_target, target_data
from cropmeta.train import (
    finetune,
    from_scratch,
    load_predictor,
    meta_train,
    predict_proba,
    pretrain,
    resolve_config,
    resolve_device,
    train,
)
from cropmeta.testing import toy_samples

REGIONS = [("Kenya", 0.2, 37.9, ["maize", "bean"]), ("Togo", 8.5, 0.9, ["maize"]),
           ("Uganda", 1.3, 32.4, ["maize", "bean"]), ("Tanzania", -6.3, 34.8, ["maize", "cassava"])]
TINY = {"learner": "timl", "hidden": 16, "encoder_dims": [8, 8, 16], "encoder_channels_per_group": 4, "iterations": 30,
        "tasks_per_step": 4, "val_every": 10, "checkpoint_every": 10, "ft_steps": 150, "threads": 1,
        "outer_lr": 3e-3, "encoder_lr": 3e-3, "ft_lr": 3e-2, "pt_steps": 60, "pt_val_every": 10}


@pytest.fixture(scope="module")
def samples():
    return toy_samples(n_per_label=24, n_noncrop=30, t=6, seed=3, regions=REGIONS)


def test_train_writes_the_run_directory_and_learns(samples, tmp_path):
    out = tmp_path / "run"
    res = train("kenya", samples=samples, out=out, overrides=TINY, seed=1)
    for f in ("config.json", "metrics.json", "model.safetensors", "model.json", "log.jsonl",
              "meta/model.safetensors", "checkpoint/state.json"):
        assert (out / f).exists(), f
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["target"]["id"] == "Kenya:maize" and cfg["hidden"] == 16 and cfg["preset"] == "quick"
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"auc_roc", "f1", "precision", "recall", "accuracy", "iou"} <= set(metrics)
    assert metrics["auc_roc"] > 0.75  # the synthetic crop signal is learnable: well above chance (0.5)
    assert res["table"][0][0] == "auc_roc" and res["metrics"]["auc_roc"] == metrics["auc_roc"]
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == list(range(1, 31))
    assert all({"meta_train_loss", "meta_train_auc"} <= set(r) for r in log)
    assert sum("meta_val_loss" in r and "meta_val_auc" in r for r in log) == 3
    assert "Kenya:maize" not in metrics["meta"]["removed_tasks"]
    # the saved model reproduces the reported metrics
    td = target_data(samples, resolve_target(samples, "kenya"))
    pred = load_predictor(out)
    assert pred.metadata["task"]["id"] == "Kenya:maize" and pred.metadata["seed"] == 1
    again = binary_metrics(td.y_test, pred.predict_proba(td.x_test))
    assert again["auc_roc"] == pytest.approx(metrics["auc_roc"])

    # an existing run directory is never silently overwritten; --resume of a finished run reproduces it
    with pytest.raises(InputError, match="resume"):
        train("kenya", samples=samples, out=out, overrides=TINY, seed=1)
    res2 = train("kenya", samples=samples, out=out, overrides=TINY, seed=1, resume=True)
    assert res2["metrics"]["auc_roc"] == pytest.approx(metrics["auc_roc"])
    with pytest.raises(InputError, match="seed"):
        train("kenya", samples=samples, out=out, overrides=TINY, seed=2, resume=True)


@pytest.mark.parametrize("learner", ["maml", "concat"])
def test_ablations_train(samples, tmp_path, learner):
    res = train("togo", samples=samples, out=tmp_path / learner, learner=learner,
                overrides={**TINY, "iterations": 6, "ft_steps": 20})
    assert res["target"]["crop"] is None
    meta = json.loads((tmp_path / learner / "model.json").read_text())
    assert meta["kind"] == learner and (meta["arch"]["encoder"] is None)
    assert np.isfinite(res["metrics"]["auc_roc"])


def test_bad_input(samples, tmp_path):
    with pytest.raises(InputError, match="did you mean Kenya"):
        train("kenyaa", samples=samples, out=tmp_path / "a", overrides=TINY)
    with pytest.raises(InputError, match="maize"):
        train("kenya", crop="maise", samples=samples, out=tmp_path / "b", overrides=TINY)
    with pytest.raises(InputError, match="shots"):
        train("kenya", samples=samples, shots=5000, out=tmp_path / "c", overrides=TINY)
    def loader(_progress):  # a bad --shots fails before any data is loaded
        raise AssertionError("the data were loaded before --shots was checked")

    for bad_k in (-5, 0, 1, 2.5):
        with pytest.raises(InputError, match=r"--shots must"):
            train("kenya", shots=bad_k, out=tmp_path / "k", overrides=TINY, loader=loader)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            train("kenya", samples=samples, device="cuda", out=tmp_path / "d", overrides=TINY)
    bad = tmp_path / "bad.toml"
    bad.write_text("[meta]\ninner_lrr = 0.1\n")
    with pytest.raises(InputError, match=r"bad.toml.*inner_lrr.*inner_lr"):
        train("kenya", samples=samples, config=bad, out=tmp_path / "e")
    with pytest.raises(InputError, match="preset"):
        resolve_config("fast")
    with pytest.raises(InputError, match="k_support"):
        resolve_config("quick", overrides={"k_support": 0})
    # nothing was written for the failed runs
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_config_presets_files_and_overrides(tmp_path):
    paper = resolve_config("paper")
    assert (paper.inner_lr, paper.inner_steps, paper.k_support, paper.k_query, paper.tasks_per_step) == \
        (1e-3, 1, 10, 4, 32)
    assert (paper.outer_lr, paper.min_lr, paper.task_noise, paper.remove_auc, paper.first_order) == \
        (1e-3, 1e-5, 0.1, 0.95, False)
    assert (paper.hidden, paper.lstm_dropout, paper.encoder_dims, paper.ft_steps, paper.ft_lr) == \
        (128, 0.2, [32, 64, 128], 250, 1e-3)
    quick = resolve_config()
    assert quick.preset == "quick" and quick.n_iterations(50) < paper.n_iterations(50)
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "paper"\n[meta]\ninner_lr = 0.01\n[finetune]\nft_steps = 7\n')
    c = resolve_config(None, toml, {"ft_steps": 9})
    assert (c.preset, c.inner_lr, c.ft_steps) == ("paper", 0.01, 9)  # flags win over the file
    yml = tmp_path / "c.yaml"
    yml.write_text("first_order: true\nencoder_dims: [8, 16]\n")
    c = resolve_config("quick", yml)
    assert c.first_order is True and c.encoder_dims == [8, 16]
    with pytest.raises(InputError, match="not a valid"):
        resolve_config("quick", overrides={"hidden": "big"})


def test_reusable_api(samples):
    task = resolve_target(samples, "kenya")
    td = target_data(samples, task, shots=12, seed=0)
    cfg = resolve_config("quick", overrides={**TINY, "iterations": 4, "ft_steps": 10})
    meta = meta_train(samples, task, cfg, learner="timl", seed=0)
    assert "Kenya:maize" not in meta.info["train_tasks"] + meta.info["val_tasks"]
    before = {k: v.clone() for k, v in meta.classifier.state_dict().items()}
    tuned = finetune(meta, td.x_train, td.y_train, task.info, cfg, seed=0)
    # the meta-trained weights are not modified (reusable across shot counts), the copy moved
    assert all(torch.equal(before[k], v) for k, v in meta.classifier.state_dict().items())
    assert not torch.equal(before["fc2.weight"], tuned.classifier.state_dict()["fc2.weight"])
    p = predict_proba(tuned, td.x_test)
    assert p.shape == (len(td.x_test),) and ((p >= 0) & (p <= 1)).all()
    assert np.array_equal(p, predict_proba(tuned, td.x_test, task_info=task.info))
    with pytest.raises(InputError, match="task information"):
        predict_proba(meta, td.x_test)  # TIML without a target's task information
    pre = pretrain(samples, task, cfg, seed=0)
    assert pre.kind == "pretrained" and pre.encoder is None and pre.info["best_step"] > 0
    scratch = from_scratch(cfg, t=samples.t, seed=0)
    s1 = finetune(scratch, td.x_train, td.y_train, cfg=cfg, seed=0)
    s2 = finetune(from_scratch(cfg, t=samples.t, seed=0), td.x_train, td.y_train, cfg=cfg, seed=0)
    assert np.array_equal(predict_proba(s1, td.x_test), predict_proba(s2, td.x_test))  # seeded
    with pytest.raises(InputError, match="both classes"):
        finetune(scratch, td.x_train[td.y_train == 1], td.y_train[td.y_train == 1], cfg=cfg)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(InputError):
        resolve_device("tpu")
