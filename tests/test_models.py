"""The TIML classifier and task encoder: LSTM maths, variational dropout, FiLM ranges, task batching."""

from __future__ import annotations

import learn2learn as l2l
import torch

from cropmeta.models.timl import TaskEncoder, TaskLSTM, TIMLClassifier, bernoulli_mask, expand_for_tasks
from cropmeta.train.trained import seeded_init

T, H = 5, 8


def test_lstm_matches_torch_lstm():
    """Our task-batched LSTM (no dropout) computes exactly what torch.nn.LSTM computes."""
    with seeded_init(0):
        ours = TaskLSTM(18, H).double()
        ref = torch.nn.LSTM(18, H, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(ours.weight_ih.t())
        ref.weight_hh_l0.copy_(ours.weight_hh.t())
        ref.bias_ih_l0.copy_(ours.bias)
        ref.bias_hh_l0.zero_()
    x = torch.randn(2, 3, T, 18, dtype=torch.float64)
    h = ours(x)
    _, (hn, _) = ref(x.reshape(6, T, 18))
    assert torch.allclose(h.reshape(6, H), hn[0], atol=1e-12)


def test_variational_dropout_one_mask_for_all_steps():
    with seeded_init(0):
        lstm = TaskLSTM(18, H).double()
    x = torch.randn(1, 4, T, 18, dtype=torch.float64)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    m1 = bernoulli_mask((1, 4, H), 0.5, g1, torch.float64)
    m2 = bernoulli_mask((1, 4, H), 0.5, g2, torch.float64)
    assert m1.shape == (1, 4, H) and torch.equal(m1, m2)  # one mask per sequence, seeded
    assert set(m1.unique().tolist()) <= {0.0, 2.0}
    out = lstm(x, m1)
    # units dropped by the mask are zero in the final state; kept units are not
    assert torch.all(out[m1 == 0] == 0)
    assert torch.all(out[m1 != 0] != 0)
    # the mask acts on the recurrence, so the kept units differ from the un-masked network
    assert not torch.allclose(out[m1 != 0], lstm(x)[m1 != 0] * 2.0)


def test_encoder_film_ranges_and_shapes():
    with seeded_init(1):
        enc = TaskEncoder(t=T, hidden=H, dims=(32, 64, 128))
    enc.eval()
    info = torch.randn(4, 13) * 3
    film = enc(info)
    g, b = film["in"]
    assert g.shape == (4, T, 18) and b.shape == (4, T, 18)
    assert torch.all((g > 1) & (g < 2)) and torch.all((b > 0) & (b < 1))
    for name in ("h1", "h2"):
        assert film[name][0].shape == (4, H) and film[name][1].shape == (4, H)
    # GroupNorm with 16 channels per group, as in the paper code
    assert [n.num_groups for n in enc.norms] == [2, 4, 8]


def test_film_changes_the_prediction():
    with seeded_init(2):
        clf = TIMLClassifier(t=T, hidden=H, dropout=0.0)
        enc = TaskEncoder(t=T, hidden=H, dims=(8, 8, 8), channels_per_group=4)
    clf.eval(), enc.eval()
    x = torch.randn(1, 6, T, 18)
    a = clf(x, film=enc(torch.zeros(1, 13)))
    b = clf(x, film=enc(torch.ones(1, 13)))
    assert a.shape == (1, 6)
    assert not torch.allclose(a, b)


def test_task_batched_clone_equals_separate_models():
    """After expand_for_tasks + learn2learn adapt, task j's forward equals a separate model adapted
    on task j alone."""
    with seeded_init(3):
        clf = TIMLClassifier(t=T, hidden=H, dropout=0.0).double()
    clf.train()
    clf.set_update_stats(False)
    x = torch.randn(3, 6, T, 18, dtype=torch.float64)
    y = torch.tensor([1.0, 1, 1, 0, 0, 0], dtype=torch.float64)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    maml = l2l.algorithms.MAML(clf, lr=0.1)
    batched = maml.clone()
    expand_for_tasks(batched.module, 3)
    loss = torch.stack([bce(batched(x)[j], y) for j in range(3)]).sum()
    batched.adapt(loss)
    out = batched(x)
    for j in range(3):
        single = maml.clone()
        single.adapt(bce(single(x[j : j + 1])[0], y))
        assert torch.allclose(out[j], single(x[j : j + 1])[0], atol=1e-10)
    # and the tasks really got different weights
    w = batched.module.lstm.weight_hh
    assert w.shape[0] == 3 and not torch.allclose(w[0], w[1])


def test_concat_ablation_uses_task_info():
    with seeded_init(4):
        clf = TIMLClassifier(t=T, hidden=H, dropout=0.0, extra_inputs=13)
    clf.eval()
    x = torch.randn(1, 5, T, 18)
    a = clf(x, info=torch.zeros(1, 13))
    b = clf(x, info=torch.ones(1, 13))
    assert not torch.allclose(a, b)


def test_batchnorm_per_task_statistics():
    """In training mode each task is normalised with its own statistics: shifting one task's inputs
    leaves the other task's outputs unchanged."""
    with seeded_init(5):
        clf = TIMLClassifier(t=T, hidden=H, dropout=0.0)
    clf.train()
    x = torch.randn(2, 6, T, 18)
    x2 = x.clone()
    x2[1] += 5.0
    a, b = clf(x), clf(x2)
    assert torch.allclose(a[0], b[0], atol=1e-5)
    assert not torch.allclose(a[1], b[1], atol=1e-3)
