"""Fine-tuning on the target task (the protocol every deep method shares).

All classifier weights are trained (the task encoder stays frozen; its FiLM parameters come from
the target's task information once) by SGD on class-balanced batches of ``ft_batch`` positives +
``ft_batch`` negatives drawn from the given training labels, with a seeded generator. The budget:
``ft_budget = "fixed"``: lr ``ft_lr`` (1e-3) for ``ft_steps`` (250) steps, whatever the number of
labels; ``"auto"``: lr ``ft_auto_lr`` for a number of steps chosen from the shots by inner
cross-validation (:func:`auto_finetune`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cropmeta.learners.base import Model
from cropmeta.schema import Normalizer
from cropmeta.train.common import check_labelled, resolve_device, torch_dtype
from cropmeta.train.config import TrainConfig

__all__ = ["SGDRun", "auto_finetune", "choose_steps", "auto_steps", "balanced_batch", "finetune", "sgd_finetune", "shot_folds"]


def balanced_batch(pos: np.ndarray, neg: np.ndarray, n_pos: int, n_neg: int, g: torch.Generator) -> np.ndarray:
    """One fine-tuning batch: ``n_pos`` of the positive indices then ``n_neg`` of the negative ones,
    each drawn without replacement by a permutation from ``g``."""
    ip = pos[torch.randperm(len(pos), generator=g).numpy()[:n_pos]]
    ineg = neg[torch.randperm(len(neg), generator=g).numpy()[:n_neg]]
    return np.r_[ip, ineg]


def _prepared(model: Model, x: np.ndarray, task_info, cfg: TrainConfig):
    """(a copy of ``model`` on the configured device with its task information set and a normaliser
    fitted on ``x`` when it has none, its normalised inputs ``[N, T, bands]``, FiLM, info)."""
    m = model.copy()
    device, dtype = resolve_device(cfg.device), torch_dtype(cfg.dtype)
    m.to(device=device, dtype=dtype)
    x = m.inputs(x)
    if m.normalizer is None:
        m.normalizer = Normalizer.fit(x, bands=m.schema.bands)
    if task_info is not None:
        m.task_info = np.asarray(task_info, dtype=np.float32).ravel()
    film, info = m.task_inputs(None)
    xt = torch.as_tensor(m.normalizer.transform(x)).to(device=device, dtype=dtype)
    return m, xt, film, info


def finetune(model: Model, x: np.ndarray, y: np.ndarray, task_info=None, cfg: TrainConfig | None = None,
             seed: int = 0, steps: int | None = None) -> Model:
    """A fine-tuned *copy* of ``model``, a :class:`~cropmeta.train.trained.TrainedModel` (its ``adapt``
    calls this; the original is untouched, so meta-trained weights are
    reused across shot counts). ``x`` raw ``[N, T, n_bands]`` of the model's schema, ``y`` 0/1; ``task_info`` the
    target's 13 numbers (needed by TIML and the concatenation ablation). With ``cfg.ft_budget == "auto"``
    (and no explicit ``steps``) the number of steps is chosen from the shots: :func:`auto_finetune`."""
    cfg = cfg or model.config
    if steps is None and cfg.ft_budget == "auto":
        return auto_finetune(model, x, y, task_info, cfg, seed)[0]
    return _fixed_finetune(model, x, y, task_info, cfg, seed, cfg.ft_steps if steps is None else int(steps),
                           cfg.ft_lr)


def _fixed_finetune(model, x, y, task_info, cfg, seed, n_steps: int, lr: float, budget: dict | None = None):
    x, y = check_labelled(x, y, model.t, "fine-tuning", model.schema)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    m, xt, film, info = _prepared(model, x, task_info, cfg)
    last = SGDRun(m.classifier, xt, y, film, info, cfg, seed, lr=lr).run(n_steps).finish()
    m.info = {**m.info, "finetune": {"n_train": int(len(y)), "n_pos": int(y.sum()), "steps": int(n_steps),
                                     "lr": float(lr), "seed": int(seed), "final_loss": last,
                                     "budget": budget or {"rule": "fixed"}}}
    return m


def auto_steps(n_max: int) -> list[int]:
    """The auto budget's candidate step counts: 25, 50, 100, … doubling up to ``n_max``."""
    out, s = [], 25
    while s <= n_max:
        out.append(s)
        s *= 2
    return out


def shot_folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray] | None:
    """Stratified ``k`` folds of the shots (validation indices of each), seeded; fewer folds when a
    class has fewer than ``k`` shots; None when a class has fewer than 2 (nothing to validate on)."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y).astype(int)
    n_min = min(int((y == 1).sum()), int((y == 0).sum()))
    if n_min < 2:
        return None
    skf = StratifiedKFold(n_splits=min(int(k), n_min), shuffle=True, random_state=int(seed) % (2**32))
    return [val for _, val in skf.split(np.zeros(len(y)), y)]


def _auc_and_loss(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    pc = np.clip(p, 1e-6, 1 - 1e-6)
    return float(roc_auc_score(y, p)), float(log_loss(y, pc, labels=[0, 1]))


def auto_finetune(model: Model, x: np.ndarray, y: np.ndarray, task_info=None, cfg: TrainConfig | None = None,
                  seed: int = 0, patience: int = 2) -> tuple[Model, np.ndarray | None]:
    """Fine-tuning whose length is chosen from the labelled shots alone (never the target's test set):

    1. the shots are split into ``cfg.ft_folds`` stratified folds; one copy of ``model`` per fold is
       fine-tuned on the other folds (SGD at ``cfg.ft_auto_lr``, the shared class-balanced batches),
       all folds in step, and predicts its held-out fold at each candidate length
       (:func:`auto_steps`: 25, 50, 100, … ``cfg.ft_max_steps``);
    2. the candidate with the highest AUC of the pooled out-of-fold predictions wins (ties: the lower
       log-loss, then the fewer steps); the folds stop once ``patience`` trained candidates in a row
       have not improved on the best trained one. A model fitted before the target (not from
       scratch) also has the candidate 0 steps — left as it is, when no length of fine-tuning on
       these shots beats it (it never stops the search: fine-tuning often gets worse before better);
    3. the model is fine-tuned on every shot for the chosen number of steps.

    25 steps at lr 1e-2 is about the fixed budget's 250 at 1e-3, so what works with few labels stays
    a candidate. Returns (the fine-tuned copy, the out-of-fold probabilities of every shot at the
    chosen length — an ensemble weighs its members with them; None when a class has < 2 shots and the
    fixed budget was used). The choice and every candidate's score go to ``info["finetune"]["budget"]``."""
    cfg = cfg or model.config
    x, y = check_labelled(x, y, model.t, "fine-tuning", model.schema)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))

    def fold_run(f: int, tr: np.ndarray):
        m, xt, film, info = _prepared(model, x[tr], task_info, cfg)
        run = SGDRun(m.classifier, xt, y[tr], film, info, cfg, seed * 1000 + f + 1, lr=cfg.ft_auto_lr)

        def predict(val):
            m.classifier.eval()
            return m.predict_proba(x[val])

        return run, predict

    # a model fitted before the target (TIML, MAML, pretraining: it carries the source data's normaliser;
    # from scratch has none until fine-tuned) may be best left as it is: 0 steps is a candidate
    rec, oof = choose_steps(y, cfg, seed, fold_run, patience, with_zero=model.normalizer is not None)
    if rec["rule"] == "fixed":
        return _fixed_finetune(model, x, y, task_info, cfg, seed, cfg.ft_steps, cfg.ft_lr, rec), None
    return _fixed_finetune(model, x, y, task_info, cfg, seed, rec["chosen_steps"], cfg.ft_auto_lr, rec), oof


def choose_steps(y: np.ndarray, cfg: TrainConfig, seed: int, fold_run, patience: int = 2,
                 with_zero: bool = True) -> tuple[dict, np.ndarray | None]:
    """The auto budget's choice (:func:`auto_finetune`), for any network trained by :class:`SGDRun`:
    ``fold_run(f, train_indices) -> (run, predict)`` builds fold ``f``'s copy trained on those shots
    and ``predict(val_indices)`` its probabilities of the held-out shots. ``with_zero``: 0 steps (the
    model as it is) is a candidate too — for a model fitted before the target. Returns (the record:
    ``rule`` "auto" with ``chosen_steps`` and every candidate's out-of-fold AUC / log-loss, or "fixed"
    with ``why`` when a class has < 2 shots; the out-of-fold probabilities at the chosen length)."""
    folds = shot_folds(y, cfg.ft_folds, seed)
    if folds is None:
        return {"rule": "fixed", "why": "a class has fewer than 2 shots: nothing to validate the budget on"}, None
    grid = ([0] if with_zero else []) + auto_steps(cfg.ft_max_steps)
    runs = [(*fold_run(f, np.setdiff1d(np.arange(len(y)), val)), val) for f, val in enumerate(folds)]
    scores, oofs, done = [], [], 0
    best_trained = -1  # the search over lengths stops `patience` candidates after its best; "0 steps" does not stop it

    def better(i, j):
        return j < 0 or (scores[i]["oof_auc"], -scores[i]["oof_log_loss"]) > (scores[j]["oof_auc"], -scores[j]["oof_log_loss"])

    for i, s in enumerate(grid):
        oof = np.empty(len(y))
        for run, predict, val in runs:
            run.run(s - done)
            oof[val] = predict(val)
        done = s
        auc, loss = _auc_and_loss(y, oof)
        scores.append({"steps": s, "oof_auc": round(auc, 4), "oof_log_loss": round(loss, 4)})
        oofs.append(oof)
        if s > 0:
            if better(i, best_trained):
                best_trained = i
            elif i - best_trained >= patience:
                break
    best = 0
    for i in range(1, len(scores)):
        if better(i, best):
            best = i
    return ({"rule": "auto", "lr": cfg.ft_auto_lr, "folds": len(folds), "chosen_steps": grid[best],
             "candidates": scores}, oofs[best])


class SGDRun:
    """The shared protocol's loop, resumable: every weight of ``clf`` trained by SGD (``lr``, default
    ``cfg.ft_lr``) on class-balanced batches of ``xt`` (the classifier's inputs, ``[N, ...]`` on its
    device; labels ``y``), dropout masks and batches from one generator seeded with ``seed``.
    ``run(n)`` takes ``n`` more steps (in train mode); ``finish()`` leaves ``clf`` in eval mode and
    returns the last batch loss."""

    def __init__(self, clf: torch.nn.Module, xt: torch.Tensor, y: np.ndarray, film, info, cfg: TrainConfig,
                 seed: int, lr: float | None = None):
        self.clf, self.xt, self.film, self.info = clf, xt, film, info
        self.pos, self.neg = np.where(y == 1)[0], np.where(y == 0)[0]
        for p in clf.parameters():
            p.requires_grad_(True)
        self.opt = torch.optim.SGD(clf.parameters(), lr=cfg.ft_lr if lr is None else float(lr))
        self.g = torch.Generator().manual_seed(int(seed))
        self.n_p, self.n_n = min(cfg.ft_batch, len(self.pos)), min(cfg.ft_batch, len(self.neg))
        self.yb = torch.as_tensor(np.r_[np.ones(self.n_p), np.zeros(self.n_n)], device=xt.device,
                                  dtype=xt.dtype).unsqueeze(0)
        self.last = float("nan")

    def run(self, n_steps: int) -> "SGDRun":
        clf, xt = self.clf, self.xt
        device, dtype = xt.device, xt.dtype
        clf.train()
        for _ in range(int(n_steps)):
            idx = torch.as_tensor(balanced_batch(self.pos, self.neg, self.n_p, self.n_n, self.g), device=device)
            masks = clf.sample_masks(1, len(idx), self.g)
            if masks is not None:
                masks = {k: v.to(device=device, dtype=dtype) for k, v in masks.items()}
            logits = clf(xt[idx].unsqueeze(0), film=self.film, info=self.info, masks=masks)
            loss = F.binary_cross_entropy_with_logits(logits, self.yb)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.last = float(loss.detach())
        return self

    def finish(self) -> float:
        self.clf.eval()
        return self.last


def sgd_finetune(clf: torch.nn.Module, xt: torch.Tensor, y: np.ndarray, film, info, cfg: TrainConfig, seed: int,
                 n_steps: int, lr: float | None = None) -> float:
    """:class:`SGDRun` for ``n_steps`` steps, in place; ``clf`` is left in eval mode. Returns the last
    batch loss. Used by :func:`finetune` and by the Presto head (:mod:`cropmeta.train.presto_timl`)."""
    return SGDRun(clf, xt, y, film, info, cfg, seed, lr=lr).run(n_steps).finish()
