"""The meta-gradient learn2learn produces (through cropmeta's task-batched clone and through a
plain clone-per-task loop) equals one computed independently with torch.func, to 1e-6 (float64)."""

from __future__ import annotations

import learn2learn as l2l
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad

from cropmeta.models.timl import TaskEncoder, TIMLClassifier, slice_film
from cropmeta.train.maml import MetaStep, meta_gradient_step
from cropmeta.train.trained import seeded_init

K, NS, NQ, T, FEAT, H = 3, 6, 4, 4, 18, 8
LR = 0.05  # larger than the paper's 1e-3 so the second-order term is far above the tolerance


def _problem(seed: int = 0, learner: str = "timl", inner_steps: int = 2):
    with seeded_init(seed):
        clf = TIMLClassifier(t=T, hidden=H, dropout=0.25, extra_inputs=13 if learner == "concat" else 0).double()
        enc = TaskEncoder(t=T, hidden=H, dims=(8, 8, 8), dropout=0.2, channels_per_group=4).double() \
            if learner == "timl" else None
    g = torch.Generator().manual_seed(seed + 1)
    xs = torch.randn(K, NS, T, FEAT, generator=g, dtype=torch.float64)
    xq = torch.randn(K, NQ, T, FEAT, generator=g, dtype=torch.float64)
    ys = torch.tensor([1.0] * (NS // 2) + [0.0] * (NS // 2), dtype=torch.float64)
    yq = torch.tensor([1.0] * (NQ // 2) + [0.0] * (NQ // 2), dtype=torch.float64)
    info = torch.rand(K, 13, generator=g, dtype=torch.float64)
    enc_masks = enc.sample_masks(K, g) if enc is not None else None
    masks_s = [{k: v.double() for k, v in clf.sample_masks(K, NS, g).items()} for _ in range(inner_steps)]
    mask_q = {k: v.double() for k, v in clf.sample_masks(K, NQ, g).items()}
    return clf, enc, dict(xs=xs, xq=xq, ys=ys, yq=yq, info=info, enc_masks=enc_masks, masks_s=masks_s, mask_q=mask_q)


def _l2l_grads(learner: str, first_order: bool, vectorize: bool, inner_steps: int = 2):
    clf, enc, d = _problem(learner=learner, inner_steps=inner_steps)
    clf.train()
    maml = l2l.algorithms.MAML(clf, lr=LR, first_order=first_order)
    film = None
    if enc is not None:
        enc.train()
        film = enc(d["info"], d["enc_masks"])
    step = MetaStep(d["xs"], d["ys"], d["xq"], d["yq"], film, d["info"] if learner == "concat" else None,
                    d["masks_s"], d["mask_q"])
    q_loss, _ = meta_gradient_step(maml, step, inner_steps, first_order, K, vectorize)
    grads = {f"clf.{n}": p.grad.clone() for n, p in clf.named_parameters()}
    if enc is not None:
        grads.update({f"enc.{n}": p.grad.clone() for n, p in enc.named_parameters()})
    return grads, q_loss


def _func_grads(learner: str, first_order: bool, inner_steps: int = 2):
    """Independent computation: torch.func, one task at a time, no learn2learn, no task batching."""
    clf, enc, d = _problem(learner=learner, inner_steps=inner_steps)
    clf.train()
    clf.set_update_stats(False)
    p_clf = {n: p.detach() for n, p in clf.named_parameters()}
    p_enc = {n: p.detach() for n, p in enc.named_parameters()} if enc is not None else {}

    def bce(logits, y):
        return F.binary_cross_entropy_with_logits(logits, y.expand_as(logits))

    def task_objective(pc, pe, j):
        film, info = None, None
        if enc is not None:
            masks = [m[j : j + 1] for m in d["enc_masks"]]
            film = functional_call(enc, pe, (d["info"][j : j + 1], masks))
        if learner == "concat":
            info = d["info"][j : j + 1]
        params = pc
        for s in range(inner_steps):
            def support(p, s=s):
                m = {k: v[j : j + 1] for k, v in d["masks_s"][s].items()}
                return bce(functional_call(clf, p, (d["xs"][j : j + 1],), {"film": film, "info": info, "masks": m}),
                           d["ys"])
            gr = grad(support)(params)
            if first_order:
                gr = {k: v.detach() for k, v in gr.items()}
            params = {k: params[k] - LR * gr[k] for k in params}
        m = {k: v[j : j + 1] for k, v in d["mask_q"].items()}
        return bce(functional_call(clf, params, (d["xq"][j : j + 1],), {"film": film, "info": info, "masks": m}),
                   d["yq"])

    def meta_objective(pc, pe):
        return sum(task_objective(pc, pe, j) for j in range(K)) / K

    gc, ge = grad(meta_objective, argnums=(0, 1))(p_clf, p_enc)
    out = {f"clf.{n}": v for n, v in gc.items()}
    out.update({f"enc.{n}": v for n, v in ge.items()})
    return out


@pytest.mark.parametrize("learner,first_order", [("timl", False), ("timl", True), ("maml", False), ("concat", False)])
def test_learn2learn_meta_gradient_equals_torch_func(learner, first_order):
    want = _func_grads(learner, first_order)
    for vectorize in (True, False):
        got, _ = _l2l_grads(learner, first_order, vectorize)
        assert set(got) == set(want)
        for name in want:
            err = (got[name] - want[name]).abs().max().item()
            assert err < 1e-6, f"{learner} first_order={first_order} vectorize={vectorize}: {name} differs by {err}"
        # the gradient is not trivially zero / identical for every parameter
        assert max(v.abs().max().item() for v in want.values()) > 1e-3


def test_second_order_term_is_present():
    """Second- and first-order meta-gradients differ by far more than the tolerance (so the parity
    test above does check the second-order path)."""
    so = _func_grads("timl", False)
    fo = _func_grads("timl", True)
    diff = max((so[k] - fo[k]).abs().max().item() for k in so)
    assert diff > 1e-4


def test_film_slice_matches_per_task_encoder():
    clf, enc, d = _problem()
    enc.eval()
    full = enc(d["info"])
    one = enc(d["info"][1:2])
    sl = slice_film(full, 1, 2)
    for key in full:
        for a, b in zip(sl[key], one[key]):
            assert torch.allclose(a, b, atol=1e-12)
