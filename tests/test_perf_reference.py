"""The reference implementations in benchmarks/reference/ compute the same functions as cropmeta,
so the benchmarks compare implementations, not algorithms (issue 7 §1)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.reference.timl_reference import (  # noqa: E402
    from_cropmeta,
    reference_meta_train,
    reference_task_gradient,
    to_cropmeta,
)
from cropmeta.models.timl import TaskEncoder, TIMLClassifier  # noqa: E402
from cropmeta.models.timl_layout import classifier_from_reference  # noqa: E402


def _small(seed=0, dtype=torch.float64, t=5, hidden=16):
    torch.manual_seed(seed)
    clf = TIMLClassifier(t=t, hidden=hidden, dropout=0.2).to(dtype)
    enc = TaskEncoder(t=t, hidden=hidden, dims=(16, 16, 16)).to(dtype)
    return clf, enc


@pytest.mark.parametrize("fused", [True, False])
def test_unrolled_cell_equals_cropmeta_classifier(fused):
    """The paper-layout classifier (four gate layers; ``fused`` computes them as one matmul) holding
    cropmeta's weights, mapped by the library, is cropmeta's classifier."""
    clf, enc = _small()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        clf.bn1.running_mean.uniform_(-0.3, 0.3)
        clf.bn2.running_var.uniform_(0.5, 1.5)
    clf.eval()
    enc.eval()
    ref = from_cropmeta(clf, fused=fused).eval()
    assert "base.0.rnn.update_gate.0.weight" in ref.state_dict()  # the paper checkpoint's keys
    x = torch.randn(7, 5, 18, dtype=torch.float64)
    info = torch.randn(1, 13, dtype=torch.float64)
    with torch.no_grad():
        film = enc(info)
        torch.testing.assert_close(ref(x, film), clf(x.unsqueeze(0), film=film)[0], rtol=0, atol=1e-12)
        # round trip back into cropmeta's layout
        clf2, _ = _small(seed=5)
        to_cropmeta(ref, clf2.eval())
        torch.testing.assert_close(clf2(x.unsqueeze(0), film=film), clf(x.unsqueeze(0), film=film), rtol=0, atol=1e-12)


@pytest.mark.parametrize("first_order", [False, True])
def test_reference_loop_gives_cropmeta_meta_gradient(first_order):
    """One outer step, 3 tasks, same masks: the per-task paper loop and cropmeta's task-batched
    learn2learn step produce the same meta-gradients (classifier and encoder)."""
    import learn2learn as l2l

    from cropmeta.models.timl import bernoulli_mask
    from cropmeta.train.maml import MetaStep, meta_gradient_step

    k, ns, nq, t, h = 3, 6, 4, 5, 16
    clf, enc = _small(t=t, hidden=h)
    ref = from_cropmeta(clf)
    enc_r = copy.deepcopy(enc)
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(k, ns, t, 18, generator=g, dtype=torch.float64)
    xq = torch.randn(k, nq, t, 18, generator=g, dtype=torch.float64)
    ys = torch.tensor([1.0] * (ns // 2) + [0.0] * (ns // 2), dtype=torch.float64)
    yq = torch.tensor([1.0] * (nq // 2) + [0.0] * (nq // 2), dtype=torch.float64)
    info = torch.randn(k, 13, generator=g, dtype=torch.float64)
    enc_masks = [m.double() for m in enc.sample_masks(k, g)]
    ms = bernoulli_mask((k, ns, h), 0.2, g).double()
    mq = bernoulli_mask((k, nq, h), 0.2, g).double()

    maml = l2l.algorithms.MAML(clf, lr=0.1, first_order=first_order)
    film = enc(info, enc_masks)
    meta_gradient_step(maml, MetaStep(xs, ys, xq, yq, film, None, [{"lstm": ms}], {"lstm": mq}), 1, first_order, k)

    maml_r = l2l.algorithms.MAML(ref, lr=0.1, first_order=first_order)
    for j in range(k):
        reference_task_gradient(maml_r, enc_r, xs[j], ys, xq[j], yq, info[j : j + 1], [m[j : j + 1] for m in enc_masks],
                                [ms[j]], mq[j], 1, first_order)
    for p in list(ref.parameters()) + list(enc_r.parameters()):
        p.grad.mul_(1.0 / k)

    # the reference's gradients in cropmeta's layout, by the library mapping
    ref_grads = classifier_from_reference({k: p.grad for k, p in ref.named_parameters()}, ref.n_bands)
    assert set(ref_grads) == {k for k, p in clf.named_parameters()}
    for name, p in clf.named_parameters():
        torch.testing.assert_close(ref_grads[name], p.grad, rtol=1e-9, atol=1e-12, msg=name)
    for (n, a), b in zip(enc.named_parameters(), enc_r.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-9, atol=1e-12, msg=n)
    assert clf.lstm.weight_hh.grad.abs().sum() > 0


def test_reference_training_matches_cropmeta_same_tasks_same_seed():
    """Two outer steps of both loops, same tasks and seed (float64): the same weights."""
    from cropmeta.tasks import make_task
    from cropmeta.train.config import resolve_config
    from cropmeta.train.maml import meta_train
    from cropmeta.testing import toy_samples

    samples = toy_samples(n_per_label=16, n_noncrop=20, t=4, seed=1)
    target = make_task("Kenya", "maize")
    cfg = resolve_config("quick", overrides={
        "hidden": 8, "encoder_dims": [16, 16, 16], "tasks_per_step": 4, "iterations": 2, "first_order": False,
        "remove_auc": None, "val_fraction": 0.0, "dtype": "float64", "threads": 1, "device": "cpu"})
    ours = meta_train(samples, target, cfg, seed=3)
    theirs, rec = reference_meta_train(samples, target, cfg, seed=3)
    assert rec["steps"] == 2
    for a, b in zip(ours.classifier.parameters(), theirs.classifier.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
    for a, b in zip(ours.encoder.parameters(), theirs.encoder.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
    # and it did train: the weights moved from the initialisation
    from cropmeta.train.trained import build_model

    init, _ = build_model(cfg, 4, "timl", 3)
    assert not torch.allclose(init.lstm.weight_hh.double(), ours.classifier.lstm.weight_hh)


def test_reference_inference_equals_predictor(tmp_path):
    import xarray as xr

    from benchmarks.reference.inference_reference import ReferenceInference
    from cropmeta.io.eetiff import pixels_array, read_ee_tiff
    from cropmeta.testing import make_ee_tile, make_timl_run
    from cropmeta.train.checkpoint import load_predictor

    run = make_timl_run(tmp_path / "run", hidden=16)
    tif = make_ee_tile(tmp_path / "0-tile_2021-01-01_2021-12-31.tif", height=6, width=9)
    rep = ReferenceInference(run).run(tif, tmp_path / "ref.nc")
    assert rep["pixels"] == 54
    x = pixels_array(read_ee_tiff(tif, fill=True))
    want = load_predictor(run).predict_proba(x)
    with xr.open_dataset(tmp_path / "ref.nc", engine="h5netcdf") as ds:
        got = ds["prediction_0"].values  # (lat ascending, lon ascending)
        assert got.shape == (6, 9)
        np.testing.assert_allclose(np.sort(got.ravel()), np.sort(want), atol=1e-5)
