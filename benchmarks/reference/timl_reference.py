"""A TIML-paper-style meta-training loop, the baseline cropmeta's trainer is measured against.

Structure of the paper's code (nasaharvest/timl; re-written here, not copied):

- the classifier is a hand-unrolled LSTM: four gate ``Linear(18 + 128 → 128)`` layers on
  ``cat(x_t, h)`` at every time step (here computed as one ``Linear(18 + 128 → 4·128)`` of the
  concatenated gate weights unless ``fused=False``), variational dropout (one mask for all steps),
  then BatchNorm → FiLM → Linear + GELU + BatchNorm → FiLM → Linear; the input is FiLM-modulated
  first. :class:`RefClassifier` and :class:`RefTaskEncoder` have the paper's module trees, so their
  state dicts are in the paper checkpoint's layout; the mapping to cropmeta's models is the
  library's (:mod:`cropmeta.models.timl_layout`, also used by ``cropmeta models import-timl``);
- every outer step loops over its tasks in Python: the task's batch is gathered and normalised with
  numpy, the task encoder runs for that task, ``learn2learn.algorithms.MAML.clone()`` +
  ``adapt()`` on the support loss, the query loss is back-propagated for that task alone;
- after the batch, gradients are divided by the number of tasks and Adam takes one step (one for the
  classifier, one for the encoder), cosine-annealed.

The loop's task encoder is cropmeta's :class:`~cropmeta.models.timl.TaskEncoder` (the paper's has the
same layers, plus dropout on its FiLM outputs while training) called once per task, so the dropout
masks match cropmeta's. Tasks, support/query draws, task-information noise and dropout
masks come from the same seeded generator in the same order as :func:`cropmeta.train.maml.meta_train`,
so both loops see identical numbers; weights start from the same initialisation
(:func:`from_cropmeta`). tests/test_perf_reference.py checks that one outer step of this loop gives
the same meta-gradient as cropmeta's.
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import learn2learn as l2l
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cropmeta.models.timl import TIMLClassifier
from cropmeta.models.timl_layout import GATES, classifier_from_reference, classifier_to_reference
from cropmeta.tasks import TaskSampler, build_tasks, split_tasks
from cropmeta.train.config import TrainConfig
from cropmeta.train.maml import fit_normalizer
from cropmeta.train.trained import TrainedModel, build_model

__all__ = ["UnrolledLSTMCell", "RefClassifier", "RefTaskEncoder", "from_cropmeta", "to_cropmeta", "reference_task_gradient",
           "reference_meta_train"]


class UnrolledLSTMCell(nn.Module):
    """One LSTM step as the paper's four gate layers, each a ``Linear(F + H → H)`` on ``cat(x_t, h)``
    (keys ``forget_gate.0``, ``update_gate.0``, ``update_candidates.0``, ``output_gate.0``).
    ``fused``: compute the four as one ``Linear(F + H → 4H)`` with the gate weights concatenated
    (the same function; the throughput benchmarks in docs/benchmarks-perf.md were measured this way)."""

    def __init__(self, input_size: int, hidden_size: int, fused: bool = True):
        super().__init__()
        self.hidden_size, self.fused = hidden_size, fused
        acts = {"forget_gate": nn.Sigmoid(), "update_gate": nn.Sigmoid(), "update_candidates": nn.Tanh(),
                "output_gate": nn.Sigmoid()}
        for name, act in acts.items():
            setattr(self, name, nn.Sequential(nn.Linear(input_size + hidden_size, hidden_size), act))

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        h, c = state
        xh = torch.cat([x, h], dim=-1)
        if self.fused:
            gates = [getattr(self, n)[0] for n in GATES]
            z = F.linear(xh, torch.cat([g.weight for g in gates]), torch.cat([g.bias for g in gates]))
            i, f, g, o = z.chunk(4, dim=-1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        else:
            f, i, g = self.forget_gate(xh), self.update_gate(xh), self.update_candidates(xh)
            o = self.output_gate(xh)
        c = f * c + i * g
        h = o * torch.tanh(c)
        return h, c


class _RefLSTM(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, fused: bool):
        super().__init__()
        self.rnn = UnrolledLSTMCell(input_size, hidden_size, fused)


class RefClassifier(nn.Module):
    """The TIML classifier with the paper's module tree, one task at a time: ``x [N, T, F]`` → logits
    ``[N]`` (the paper returns their sigmoid). Its ``state_dict()`` has the paper checkpoint's keys
    (:mod:`cropmeta.models.timl_layout`). ``film``: the FiLM dict for ONE task (``{"in": (γ [1,T,F], β),
    "h1": (γ [1,H], β), "h2": …}``); ``mask`` ``[N, H]``: the variational-dropout mask."""

    def __init__(self, t: int, n_bands: int = 18, hidden: int = 128, fused: bool = True):
        super().__init__()
        self.t, self.n_bands, self.hidden = t, n_bands, hidden
        self.base = nn.ModuleList([_RefLSTM(n_bands, hidden, fused)])
        self.batchnorm = nn.BatchNorm1d(hidden, affine=False)
        self.global_classifier = nn.ModuleList([
            nn.Sequential(nn.Linear(hidden, hidden, bias=False), nn.GELU(), nn.BatchNorm1d(hidden, affine=False)),
            nn.Sequential(nn.Linear(hidden, 1)),
        ])

    def forward(self, x: torch.Tensor, film: dict | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        if film is not None:
            g, b = film["in"]
            x = x * g.reshape(1, self.t, self.n_bands) + b.reshape(1, self.t, self.n_bands)
        n = x.shape[0]
        h = x.new_zeros(n, self.hidden)
        c = x.new_zeros(n, self.hidden)
        for step in range(x.shape[1]):
            h, c = self.base[0].rnn(x[:, step], (h, c))
            if mask is not None:
                h = h * mask
        h = self.batchnorm(h)
        for name, layer in zip(("h1", "h2"), self.global_classifier):
            if film is not None:
                g, b = film[name]
                h = h * g.reshape(1, -1) + b.reshape(1, -1)
            h = layer(h)
        return h.squeeze(-1)


class RefTaskEncoder(nn.Module):
    """The paper's task encoder with its module tree (``initial_encoder`` = [Linear, GELU, GroupNorm,
    Dropout] per width, ``task_embedding_{i}_{gamma,beta}``), so its ``state_dict()`` has the paper
    checkpoint's keys. ``forward(info [13])`` → cropmeta's FiLM dict for one task. In training mode it
    applies dropout to every FiLM output as the paper does (cropmeta's encoder does not)."""

    def __init__(self, t: int, n_bands: int = 18, hidden: int = 128, dims=(32, 64, 128), dropout: float = 0.2,
                 channels_per_group: int = 16, info_dim: int = 13):
        super().__init__()
        self.t, self.n_bands = t, n_bands
        layers: list[nn.Module] = []
        prev = info_dim
        for d in dims:
            assert d % channels_per_group == 0, "the paper requires widths divisible by the channels per group"
            layers += [nn.Linear(prev, d), nn.GELU(), nn.GroupNorm(d // channels_per_group, d), nn.Dropout(dropout)]
            prev = d
        self.initial_encoder = nn.Sequential(*layers)
        for i in range(3):
            if i == 0:
                gamma, beta = _Linear3d(prev, (t, n_bands), 1.0), _Linear3d(prev, (t, n_bands), 0.0)
            else:
                gamma = nn.Sequential(nn.Linear(prev, hidden), nn.GELU())
                beta = nn.Sequential(nn.Linear(prev, hidden), nn.GELU())
            setattr(self, f"task_embedding_{i}_gamma", gamma)
            setattr(self, f"task_embedding_{i}_beta", beta)
        self.dropout = nn.Dropout(dropout)

    def forward(self, info: torch.Tensor) -> dict:
        z = self.initial_encoder(info.reshape(1, -1)).squeeze(0)
        out = []
        for i in range(3):
            g = self.dropout(getattr(self, f"task_embedding_{i}_gamma")(z))
            b = self.dropout(getattr(self, f"task_embedding_{i}_beta")(z))
            out.append((g, b))
        return dict(zip(("in", "h1", "h2"), out))


class _Linear3d(nn.Module):
    """The paper's ``Linear3d``: ``sum_from + σ(linear(x))`` reshaped to ``out_shape`` (key ``linear``)."""

    def __init__(self, in_features: int, out_shape: tuple[int, int], sum_from: float):
        super().__init__()
        self.out_shape, self.sum_from = out_shape, sum_from
        self.linear = nn.Linear(in_features, out_shape[0] * out_shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.sum_from + torch.sigmoid(self.linear(x))).reshape(self.out_shape)


@torch.no_grad()
def from_cropmeta(clf: TIMLClassifier, fused: bool = True) -> RefClassifier:
    """A :class:`RefClassifier` holding ``clf``'s weights and BatchNorm statistics (mapped by
    :func:`cropmeta.models.timl_layout.classifier_to_reference`)."""
    ref = RefClassifier(clf.t, clf.n_bands, clf.hidden, fused=fused).to(dtype=clf.lstm.weight_ih.dtype,
                                                                        device=clf.lstm.weight_ih.device)
    ref.load_state_dict(classifier_to_reference(clf.state_dict()))
    return ref


@torch.no_grad()
def to_cropmeta(ref: RefClassifier, clf: TIMLClassifier) -> TIMLClassifier:
    """Copy ``ref``'s weights into cropmeta's classifier ``clf`` (same architecture), in place
    (:func:`cropmeta.models.timl_layout.classifier_from_reference`)."""
    clf.load_state_dict(classifier_from_reference(ref.state_dict(), ref.n_bands))
    return clf


def _bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, y)


def reference_task_gradient(maml: l2l.algorithms.MAML, enc, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor,
                            yq: torch.Tensor, info: torch.Tensor, enc_masks: list | None, masks_s: list,
                            mask_q: torch.Tensor | None, inner_steps: int, first_order: bool) -> tuple[float, torch.Tensor]:
    """One task of the paper loop: encoder → clone → adapt → query loss → backward (gradients add
    up in ``maml``'s and ``enc``'s ``.grad``). ``info [1, 13]``; masks for this task. Returns
    (query loss, query logits)."""
    film = enc(info, enc_masks) if enc is not None else None
    learner = maml.clone()
    for s in range(inner_steps):
        learner.adapt(_bce(learner(xs, film, masks_s[s]), ys), first_order=first_order)
    q = learner(xq, film, mask_q)
    loss = _bce(q, yq)
    loss.backward()
    return float(loss.detach()), q.detach()


def reference_meta_train(samples, target, cfg: TrainConfig, seed: int = 0, *, iterations: int | None = None,
                         wall_time: float | None = None, callback: Callable[[int, float], None] | None = None,
                         normalizer=None) -> tuple[TrainedModel, dict]:
    """Meta-train with the paper-style loop on the same tasks as :func:`cropmeta.train.maml.meta_train`
    (``learner="timl"``; no task removal and no meta-validation — run cropmeta with
    ``remove_auc=None, val_fraction=0`` to compare like with like). Stops after ``iterations`` outer
    steps (default: the config's) or once ``wall_time`` seconds have passed. ``callback(i, t)`` after
    every step with ``time.perf_counter()``. Returns (a cropmeta :class:`TrainedModel` with the
    trained weights, a record with steps, times, losses)."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    dtype = {"float32": torch.float32, "float64": torch.float64}[cfg.dtype]
    normalizer = normalizer or fit_normalizer(samples)
    pools = build_tasks(samples, exclude=target, min_per_class=cfg.min_examples)
    train_pools, _ = split_tasks(pools, cfg.val_fraction)
    sampler = TaskSampler(train_pools, cfg.k_support, cfg.k_query)
    n_iter = int(iterations if iterations is not None else cfg.n_iterations(len(train_pools)))

    clf0, enc = build_model(cfg, samples.t, "timl", seed)
    clf0.to(dtype=dtype)
    enc.to(dtype=dtype)
    ref = from_cropmeta(clf0)
    maml = l2l.algorithms.MAML(ref, lr=cfg.inner_lr, first_order=cfg.first_order)
    opt = torch.optim.Adam(maml.parameters(), lr=cfg.outer_lr)
    enc_opt = torch.optim.Adam(enc.parameters(), lr=cfg.encoder_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, n_iter), eta_min=cfg.min_lr)
    enc_sched = torch.optim.lr_scheduler.CosineAnnealingLR(enc_opt, T_max=max(1, n_iter), eta_min=cfg.min_lr)
    base_info = torch.as_tensor(np.stack([p.task.info for p in train_pools]), dtype=torch.float64)
    x_all = samples.x  # raw, numpy: each task's batch is gathered and normalised per task (no TaskBank)
    ys_np, yq_np = sampler.labels()
    g = torch.Generator().manual_seed(int(seed))
    k_total = cfg.tasks_per_step
    losses, times = [], []
    t0 = time.perf_counter()
    step = 0
    while step < n_iter:
        if wall_time is not None and time.perf_counter() - t0 >= wall_time:
            break
        maml.train()
        enc.train()
        # the same draws, in the same order, as cropmeta's meta_train
        chosen = sampler.choose(list(range(len(train_pools))), k_total, g)
        sup, qry = sampler.sample(chosen, g)
        noise = torch.randn((k_total, base_info.shape[1]), generator=g, dtype=torch.float64) * cfg.task_noise
        enc_masks = enc.sample_masks(k_total, g)
        masks_s = [clf0.sample_masks(k_total, sup.shape[1], g) for _ in range(cfg.inner_steps)]
        mask_q = clf0.sample_masks(k_total, qry.shape[1], g)
        opt.zero_grad()
        enc_opt.zero_grad()
        batch_loss = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j, ti in enumerate(chosen):
                xs = torch.from_numpy(normalizer.transform(x_all[sup[j]])).to(dtype)
                xq = torch.from_numpy(normalizer.transform(x_all[qry[j]])).to(dtype)
                ys = torch.from_numpy(ys_np).to(dtype)
                yq = torch.from_numpy(yq_np).to(dtype)
                info = (base_info[ti] + noise[j]).view(1, -1).to(dtype)
                em = None if enc_masks is None else [m[j : j + 1].to(dtype) for m in enc_masks]
                ms = [None if m is None else m["lstm"][j].to(dtype) for m in masks_s]
                mq = None if mask_q is None else mask_q["lstm"][j].to(dtype)
                loss, _ = reference_task_gradient(maml, enc, xs, ys, xq, yq, info, em, ms, mq, cfg.inner_steps,
                                                  cfg.first_order)
                batch_loss += loss
        for p in list(maml.parameters()) + list(enc.parameters()):
            if p.grad is not None:
                p.grad.mul_(1.0 / k_total)
        opt.step()
        enc_opt.step()
        sched.step()
        enc_sched.step()
        step += 1
        now = time.perf_counter()
        losses.append(batch_loss / k_total)
        times.append(now)
        if callback is not None:
            callback(step, now)
    to_cropmeta(ref, clf0)
    clf0.eval()
    enc.eval()
    model = TrainedModel("timl", clf0, enc, normalizer, cfg, None, {"seed": int(seed), "iterations": step,
                                                                    "implementation": "reference"})
    return model, {"steps": step, "planned": n_iter, "seconds": (times[-1] - t0) if times else 0.0,
                   "step_times": times, "losses": losses}
