"""``--pretrain-source sim`` end to end on the CropHarvest archive-layout fixture: phase 1 on a small
simulated world (its own workspace, target task excluded), phase 2 on the archive starting from
phase 1's weights, then fine-tuning / adaptation and prediction on the archive's Kenya test file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cropmeta.errors import InputError
from cropmeta.evaluate.compare import build_target
from cropmeta.testing import make_archive_fixture
from cropmeta.train.config import resolve_config
from cropmeta.app.samples import load_sim_samples
from cropmeta.train.sim_then_real import sim_then_real

TINY = {"learner": "timl", "hidden": 16, "encoder_dims": [16, 16, 16], "iterations": 3, "tasks_per_step": 4, "k_support": 2,
        "k_query": 1, "ft_steps": 15, "pt_steps": 10, "pt_val_every": 5, "threads": 1, "device": "cpu"}
IC = {"d_model": 16, "ff": 32, "heads": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from cropmeta.ingest import ingest
    from cropmeta.datasets import load_datasets

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("str")
    root = make_archive_fixture(base / "archive", n_per_dataset=24, seed=0)
    ingest(source=root, home=base / "home", progress=False)
    real = load_datasets(base / "home")
    sim = load_sim_samples(seed=1, regions=["Kenya", "Uganda"], home=base / "home")
    return base, real, sim


def _weights(model) -> dict:
    net = getattr(model, "net", None) or model.classifier
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_sim_samples_live_in_their_own_workspace(data):
    base, real, sim = data
    from cropmeta.datasets import list_datasets

    assert sorted(list_datasets(base / "home")) == sorted({"kenya", "togo", "brazil", "ethiopia", "mali"})
    assert set(sim.meta["region"]) == {"Kenya", "Uganda"} and (sim.meta["split"] == "train").all()
    assert not set(sim.meta["sample_id"]) & set(real.meta["sample_id"])
    again = load_sim_samples(seed=1, regions=["Uganda", "Kenya"], home=base / "home")  # cached
    assert again.content_hash() == sim.content_hash()


@pytest.mark.parametrize("learner", ["timl", "in-context"])
def test_sim_then_real_on_the_archive_fixture(data, learner, tmp_path):
    _, real, sim = data
    target = build_target(real, "kenya")
    task = target.task.extra["task"]
    assert task.id == "Kenya:maize"
    cfg = resolve_config("quick", overrides=TINY)
    model = sim_then_real(real, task, cfg, learner, seed=0, sim=sim, workdir=tmp_path / "wd", ic_options=IC)
    pre = model.info["pretrain"]
    assert pre["source"] == "sim" and pre["sim_samples"] == len(sim)
    # phase 1 trained on simulated tasks, never the target's; phase 2 on the archive's tasks
    assert pre["sim_tasks"] and "Kenya:maize" not in pre["sim_tasks"]
    assert any(t.startswith("Uganda") for t in pre["sim_tasks"])
    assert model.info["train_tasks"] and "Kenya:maize" not in model.info["train_tasks"]
    assert set(model.info["train_tasks"]) <= {f"{r}:{c}" for r in real.meta["region"].unique()
                                              for c in ["crop", *real.meta["label"].dropna().unique()]}
    for phase in ("sim", "real"):
        assert (tmp_path / "wd" / phase / "log.jsonl").read_text().count("\n") == 3
    # the normalisation is the real source's
    from cropmeta.train.common import fit_normalizer

    np.testing.assert_allclose(model.normalizer.mean, fit_normalizer(real).mean)
    # adapt to the target's labels and predict its (archive test file) test set
    if learner == "in-context":
        from cropmeta.train.incontext_model import adapt, predict_proba

        p = predict_proba(adapt(model, target.x_train, target.y_train, task.info), target.x_test)
    else:
        from cropmeta.train import finetune, predict_proba

        p = predict_proba(finetune(model, target.x_train, target.y_train, task.info, cfg, seed=0), target.x_test)
    assert p.shape == (len(target.y_test),) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("learner", ["maml", "in-context"])
def test_the_real_phase_starts_from_the_sim_phase(data, learner):
    """With zero real-phase steps the result is exactly phase 1's weights; with a few it moves on."""
    _, real, sim = data
    task = build_target(real, "kenya").task.extra["task"]
    cfg = resolve_config("quick", overrides={**TINY, "iterations": 0})
    model = sim_then_real(real, task, cfg, learner, seed=3, sim=sim, sim_overrides={"iterations": 3}, ic_options=IC)
    from cropmeta.train.common import fit_normalizer

    norm = fit_normalizer(real)
    cfg3 = cfg.replace(iterations=3)
    if learner == "in-context":
        from cropmeta.train.incontext import meta_train_incontext

        alone = meta_train_incontext(sim, task, cfg3, seed=3, options=IC, normalizer=norm)
        scratch = meta_train_incontext(real, task, cfg, seed=3, options=IC, normalizer=norm)
    else:
        from cropmeta.train.maml import meta_train

        alone = meta_train(sim, task, cfg3, learner=learner, seed=3, normalizer=norm)
        scratch = meta_train(real, task, cfg, learner=learner, seed=3, normalizer=norm)
    got, want, init = _weights(model), _weights(alone), _weights(scratch)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert not all(torch.equal(init[k], want[k]) for k in want)  # phase 1 did change the initialisation
    moved = sim_then_real(real, task, cfg.replace(iterations=2), learner, seed=3, sim=sim,
                          sim_overrides={"iterations": 3}, ic_options=IC)
    assert not all(torch.equal(_weights(moved)[k], want[k]) for k in want)


def test_bad_requests(data):
    _, real, sim = data
    cfg = resolve_config("quick", overrides=TINY)
    with pytest.raises(InputError, match="learner"):
        sim_then_real(real, None, cfg, "svm", sim=sim)
    short = sim.subset(np.zeros(len(sim), bool))
    with pytest.raises(InputError):
        sim_then_real(real, None, cfg, "maml", sim=short)


def test_train_and_compare_with_pretrain_source_sim(data, tmp_path, monkeypatch):
    """``cropmeta train --pretrain-source sim`` and ``compare --pretrain-source sim`` on the fixture
    (the simulated world is the small two-region one)."""
    import json

    import cropmeta.evaluate.report as rp
    import cropmeta.app.samples as str_mod
    from cropmeta.app.compare import compare
    from cropmeta.app.train import train

    _, real, sim = data
    calls = []

    def small_world(seed, regions=None, home=None, progress=False):
        calls.append(seed)
        return sim

    monkeypatch.setattr(str_mod, "load_sim_samples", small_world)
    out = tmp_path / "run"
    res = train("togo", samples=real, out=out, overrides=TINY, pretrain_source="sim", sim_seed=7)
    assert calls == [7]
    for f in ("sim/log.jsonl", "real/log.jsonl", "meta/model.json", "model.json", "metrics.json"):
        assert (out / f).exists(), f
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["pretrain"]["source"] == "sim" and metrics["pretrain"]["sim_seed"] == 7
    assert json.loads((out / "config.json").read_text())["pretrain_source"] == "sim"
    assert np.isfinite(res["metrics"]["auc_roc"])

    monkeypatch.setattr(rp, "PLOTS", {name: lambda report, path: path.write_bytes(b"") or path for name in rp.PLOTS})
    rep = compare("kenya", samples=real, seeds=1, shots="all", methods="maml,scratch", pretrain_source="sim",
                  out=tmp_path / "cmp", config=TINY, calib_folds=0, progress=False)
    assert rep["config"]["methods"] == ["maml", "maml+sim", "scratch"]  # scratch does not pretrain
    assert "MAML (sim → real)" in (tmp_path / "cmp" / "report.md").read_text()
    assert {c["method"] for c in rep["cells"]} == {"maml", "maml+sim", "scratch"}
