"""Meta-training with learn2learn MAML (TIML, plain MAML, or task info concatenated to the input).

One outer step:

1. the seeded sampler picks ``tasks_per_step`` tasks and their support (10 + 10) / query (4 + 4)
   indices; all random draws of the step (task-info noise, dropout masks) are made for the whole
   meta-batch from one CPU ``torch.Generator``, so every rank and every execution mode sees the same
   numbers;
2. the task encoder maps each task's (noisy) task information to FiLM parameters — outside the
   inner loop, never adapted;
3. ``learn2learn.algorithms.MAML.clone()`` → (task-batched, see
   :func:`cropmeta.models.timl.expand_for_tasks`) → ``adapt`` on the support loss (second order
   unless ``first_order``) → query loss;
4. the mean query loss over the meta-batch is back-propagated into the classifier's initial weights
   and the encoder; with torch.distributed each rank does its slice of tasks and the gradients are
   all-reduced; Adam steps for both, cosine-annealed;
5. the per-task query AUC feeds task removal (mean over the last ``remove_lookback`` draws ≥
   ``remove_auc`` → the task is dropped); every ``val_every`` steps the meta-validation tasks are
   adapted on fixed batches and the best weights by meta-validation loss are kept.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import learn2learn as l2l
import numpy as np
import torch

from cropmeta.errors import InputError
from cropmeta.io.store import SampleSet
from cropmeta.models.timl import TaskEncoder, TIMLClassifier, expand_for_tasks, slice_film
from cropmeta.schema import Normalizer
from cropmeta.tasks import Task, TaskSampler
from cropmeta.train import checkpoint as ck
from cropmeta.train.common import (
    META_DIR,
    load_init,
    VAL_SEED_OFFSET,
    meta_progress,
    TaskBank,
    batch_auc,
    bce_per_task,
    fit_normalizer,
    log_step,
    meta_tasks,
)
from cropmeta.learners.base import RESUME_FORMAT
from cropmeta.train.config import TrainConfig, resolve_config
from cropmeta.train.config_base import config_changes
from cropmeta.train.loop import (LOG_NAME, check_resumable, new_state, record_validation, restore_state, start_log,
                                 state_dict_clone, update_removal)
from cropmeta.train.distributed import SINGLE, DistContext
from cropmeta.train.trained import TrainedModel, build_model

#: the learners :func:`meta_train` implements
META_LEARNERS = ("timl", "maml", "concat")

__all__ = ["META_LEARNERS", "meta_train", "meta_train_worker", "META_DIR", "fit_normalizer", "TaskBank", "MetaStep", "batch_auc",
           "meta_gradient_step"]


@dataclass
class MetaStep:
    """Everything one outer step needs for its tasks (already sliced to this rank)."""

    xs: torch.Tensor  # [k, 2ks, T, F]
    ys: torch.Tensor  # [2ks]
    xq: torch.Tensor  # [k, 2kq, T, F]
    yq: torch.Tensor  # [2kq]
    film: dict | None  # FiLM with task axis k
    info: torch.Tensor | None  # [k, 13] (concat ablation)
    masks_s: list  # per inner step: dict of [k, 2ks, H] masks or None
    mask_q: dict | None


@dataclass
class MetaTrained:
    """What :func:`meta_train` returns for a caller's ``model``: the best weights and the run record."""

    classifier: torch.nn.Module
    encoder: torch.nn.Module | None
    normalizer: Normalizer
    info: dict


def _sl(masks: dict | None, a: int, b: int) -> dict | None:
    return None if masks is None else {k: v[a:b] for k, v in masks.items()}


def meta_gradient_step(maml: l2l.algorithms.MAML, step: MetaStep, inner_steps: int, first_order: bool,
                       denom: int, vectorize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Adapt a learn2learn clone per task on the support set, evaluate the query set, and
    back-propagate ``sum(query losses) / denom`` (gradients accumulate in the MAML module's and the
    encoder's ``.grad``). Returns (per-task query loss ``[k]``, query logits ``[k, 2kq]``), detached.

    ``vectorize=True``: one clone whose parameters carry a task axis (all k tasks adapt at once);
    ``False``: one clone per task, back-propagated task by task (the reference implementation's
    structure). Both give the same gradients."""
    k = step.xs.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # l2l: "non-leaf tensor .grad" warnings on clones
        if vectorize:
            learner = maml.clone(first_order=first_order)
            expand_for_tasks(learner.module, k)
            for s in range(inner_steps):
                support = bce_per_task(learner(step.xs, film=step.film, info=step.info, masks=step.masks_s[s]), step.ys)
                learner.adapt(support.sum(), first_order=first_order)
            q = learner(step.xq, film=step.film, info=step.info, masks=step.mask_q)
            q_loss = bce_per_task(q, step.yq)
            (q_loss.sum() / denom).backward()
            return q_loss.detach(), q.detach()
        losses, logits = [], []
        for j in range(k):
            learner = maml.clone(first_order=first_order)
            film = slice_film(step.film, j, j + 1)
            info = None if step.info is None else step.info[j : j + 1]
            for s in range(inner_steps):
                support = bce_per_task(learner(step.xs[j : j + 1], film=film, info=info,
                                       masks=_sl(step.masks_s[s], j, j + 1)), step.ys)
                learner.adapt(support.sum(), first_order=first_order)
            q = learner(step.xq[j : j + 1], film=film, info=info, masks=_sl(step.mask_q, j, j + 1))
            q_loss = bce_per_task(q, step.yq)
            (q_loss.sum() / denom).backward(retain_graph=j < k - 1)
            losses.append(q_loss.detach())
            logits.append(q.detach())
        return torch.cat(losses), torch.cat(logits)


def meta_train(samples: SampleSet, target: Task | None = None, cfg: TrainConfig | None = None,
               learner: str | None = None, seed: int = 0, *, workdir: str | Path | None = None,
               resume: bool = False, progress=False, callback: Callable[[int, dict], None] | None = None,
               dist: DistContext = SINGLE, normalizer: Normalizer | None = None, init=None,
               model: tuple | None = None, features: Callable | None = None) -> TrainedModel:
    """Meta-train on every task of ``samples`` except ``target`` (test points never used).

    ``learner``: ``timl`` (task encoder + FiLM), ``maml`` (no task information) or ``concat`` (task
    information appended to the input); default: ``cfg.learner`` if it is one of these, else timl. ``workdir``: where
    ``log.jsonl`` and the resume checkpoint go (``resume=True`` continues from it). ``callback(i, rec)``
    runs after every outer step with the log record. Returns the best weights by meta-validation loss
    (the last ones when there is no validation task).

    ``model``: a ``(classifier, task encoder or None)`` pair to meta-train instead of the TIML LSTM
    (any module with the classifier's ``forward(x, film, info, masks)``, ``sample_masks`` and
    ``set_update_stats``); ``features(rows)``: what the task bank holds for the samples ``rows`` of
    ``samples`` instead of their normalised bands (a tensor, row for row); with ``model`` the result is
    a :class:`MetaTrained` (weights + record) instead of a TrainedModel. Both serve the
    task-informed Presto head (:mod:`cropmeta.train.presto_timl`): same tasks, splits, task removal
    and validation."""
    cfg = cfg or resolve_config("quick")
    # the configuration's learner when it is one of these (the quick preset's default is the ensemble)
    learner = learner or (cfg.learner if cfg.learner in META_LEARNERS else "timl")
    if learner not in META_LEARNERS:
        raise InputError(f"meta_train: unknown learner {learner!r}; one of {', '.join(META_LEARNERS)}")
    normalizer = normalizer or fit_normalizer(samples)
    bank, sampler, val_sampler, n_tr, device, dtype = meta_tasks(samples, target, cfg, normalizer)
    if features is not None:
        bank.x = torch.as_tensor(features(bank.rows)).to(device=device, dtype=dtype)
    n_iter = cfg.n_iterations(n_tr)
    t = samples.t

    clf, enc = model if model is not None else build_model(cfg, t, learner, seed, samples.schema.n_bands)
    if init is not None:  # e.g. the simulated-world phase of --pretrain-source sim
        load_init(clf, enc, init)
    clf.to(device=device, dtype=dtype)
    if enc is not None:
        enc.to(device=device, dtype=dtype)
    maml = l2l.algorithms.MAML(clf, lr=cfg.inner_lr, first_order=cfg.first_order)
    opt = torch.optim.Adam(maml.parameters(), lr=cfg.outer_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, n_iter), eta_min=cfg.min_lr)
    enc_opt = enc_sched = None
    if enc is not None:
        enc_opt = torch.optim.Adam(enc.parameters(), lr=cfg.encoder_lr)
        enc_sched = torch.optim.lr_scheduler.CosineAnnealingLR(enc_opt, T_max=max(1, n_iter), eta_min=cfg.min_lr)
    base_info = torch.as_tensor(np.stack([p.task.info for p in bank.pools]), dtype=torch.float64)

    g = torch.Generator().manual_seed(int(seed))
    state = new_state()
    best = {"classifier": None, "encoder": None}
    train_ids = [p.id for p in bank.pools[:n_tr]]
    val_ids = [p.id for p in bank.pools[n_tr:]]
    data_hash = samples.content_hash()
    workdir = Path(workdir) if workdir is not None else None
    log_path = workdir / LOG_NAME if workdir is not None else None

    resumed = False
    if workdir is not None and resume:
        loaded = ck.load_state(workdir)
        if loaded is not None:
            tensors, meta = loaded
            check_resumable(meta, workdir / ck.STATE_DIR, learner=learner, seed=seed,
                            config_diff=config_changes(meta.get("config") or {}, cfg.to_dict()),
                            train_ids=train_ids, val_ids=val_ids, data_hash=data_hash)
            clf.load_state_dict({k[len("classifier."):]: v for k, v in tensors.items() if k.startswith("classifier.")})
            if enc is not None:
                enc.load_state_dict({k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")})
            ck.optimizer_from_state(opt, tensors, meta["opt"])
            sched.load_state_dict(meta["sched"])
            if enc_opt is not None:
                ck.optimizer_from_state(enc_opt, tensors, meta["enc_opt"])
                enc_sched.load_state_dict(meta["enc_sched"])
            g.set_state(tensors["rng.train"])
            for part in ("classifier", "encoder"):
                pre = f"best.{part}."
                sd = {k[len(pre):]: v.to(device=device) for k, v in tensors.items() if k.startswith(pre)}
                best[part] = sd or None
            restore_state(state, meta)
            resumed = True
    if dist.is_main:
        start_log(log_path, state, resumed)

    def checkpoint() -> None:
        if workdir is None:
            return
        if dist.is_main:
            tensors = {f"classifier.{k}": v for k, v in clf.state_dict().items()}
            if enc is not None:
                tensors.update({f"encoder.{k}": v for k, v in enc.state_dict().items()})
            for part in ("classifier", "encoder"):
                if best[part] is not None:
                    tensors.update({f"best.{part}.{k}": v for k, v in best[part].items()})
            ot, oj = ck.optimizer_to_state(opt, "opt")
            tensors.update(ot)
            meta = {"format": RESUME_FORMAT, "config": cfg.to_dict(), "learner": learner, "seed": int(seed),
                    "train_tasks": train_ids, "val_tasks": val_ids, "data_hash": data_hash,
                    "opt": oj, "sched": sched.state_dict(), **state}
            if enc_opt is not None:
                et, ej = ck.optimizer_to_state(enc_opt, "enc_opt")
                tensors.update(et)
                meta.update({"enc_opt": ej, "enc_sched": enc_sched.state_dict()})
            tensors["rng.train"] = g.get_state()
            ck.save_state(workdir, tensors, meta)
        dist.barrier()

    k_total = cfg.tasks_per_step
    a, b = dist.slice(k_total)
    ys_full, yq_full = sampler.labels()
    ys = torch.as_tensor(ys_full, device=device, dtype=dtype)
    yq = torch.as_tensor(yq_full, device=device, dtype=dtype)
    bar = meta_progress(progress if dist.is_main else False, n_iter, int(state["iteration"]),
                    f"meta-training ({learner})")
    t0 = time.perf_counter()
    last_val = state["best_val"]
    try:
        while state["iteration"] < n_iter:
            it = int(state["iteration"])
            active = [i for i, tid in enumerate(train_ids) if tid not in state["removed"]]
            if not active:
                break
            clf.train()
            chosen = sampler.choose(active, k_total, g)
            sup, qry = sampler.sample(chosen, g)
            noise = torch.randn((k_total, base_info.shape[1]), generator=g, dtype=torch.float64) * cfg.task_noise
            enc_masks = enc.sample_masks(k_total, g) if enc is not None else None
            masks_s = [clf.sample_masks(k_total, sup.shape[1], g) for _ in range(cfg.inner_steps)]
            mask_q = clf.sample_masks(k_total, qry.shape[1], g)
            info_full = (base_info[chosen] + noise).to(device=device, dtype=dtype)

            opt.zero_grad(set_to_none=False)
            if enc_opt is not None:
                enc_opt.zero_grad(set_to_none=False)
                enc.train()
                film = slice_film(enc(info_full, enc_masks), a, b)
            else:
                film = None
            step = MetaStep(
                xs=bank.gather(sup[a:b]), ys=ys, xq=bank.gather(qry[a:b]), yq=yq, film=film,
                info=info_full[a:b] if clf.extra_inputs else None,
                masks_s=[_to(_sl(m, a, b), device, dtype) for m in masks_s],
                mask_q=_to(_sl(mask_q, a, b), device, dtype),
            )
            if b > a:
                q_loss, q_logits = meta_gradient_step(maml, step, cfg.inner_steps, cfg.first_order, k_total,
                                                      cfg.vectorize)
            else:  # more ranks than tasks: this rank only joins the all-reduce
                q_loss, q_logits = torch.zeros(0), torch.zeros(0, 2 * cfg.k_query)
            dist.all_reduce_grads_(maml.parameters())
            opt.step()
            sched.step()
            if enc_opt is not None:
                dist.all_reduce_grads_(enc.parameters())
                enc_opt.step()
                enc_sched.step()
            dist.average_buffers_(clf, (b - a) / k_total)

            # per-task query loss / AUC of the whole meta-batch, on every rank
            stats = torch.zeros(2, k_total, dtype=torch.float64)
            stats[0, a:b] = q_loss.double().cpu()
            stats[1, a:b] = batch_auc(q_logits.double().cpu(), cfg.k_query)
            dist.all_reduce_(stats)
            removed_now = update_removal(state, [train_ids[i] for i in chosen], stats[1].tolist(), cfg)
            state["iteration"] = it + 1
            rec = {"iteration": it + 1, "meta_train_loss": float(stats[0].mean()),
                   "meta_train_auc": float(stats[1].mean()), "lr": float(sched.get_last_lr()[0]),
                   "active_tasks": len(active) - len(removed_now)}
            if removed_now:
                rec["removed"] = removed_now
            if val_sampler is not None and ((it + 1) % cfg.val_every == 0 or it + 1 == n_iter):
                vl, va = _validate(maml, enc, val_sampler, bank, learner, cfg, seed, dist, device, dtype, n_tr)
                last_val = vl
                if record_validation(state, rec, it + 1, vl, va):
                    best["classifier"], best["encoder"] = state_dict_clone(clf), state_dict_clone(enc)
            rec["elapsed_s"] = round(time.perf_counter() - t0, 3)
            log_step(it, rec, state, log_path, bar, last_val, callback, write=dist.is_main)
            if (it + 1) % cfg.checkpoint_every == 0 or it + 1 == n_iter:
                checkpoint()
    finally:
        bar.close()
    if state["iteration"] < n_iter:  # stopped early (every task removed)
        checkpoint()

    final_iteration = int(state["iteration"])
    if best["classifier"] is not None:
        clf.load_state_dict(best["classifier"])
        if enc is not None and best["encoder"] is not None:
            enc.load_state_dict(best["encoder"])
    clf.eval()
    if enc is not None:
        enc.eval()
    info = {"seed": int(seed), "learner": learner, "data_hash": data_hash, "iterations": final_iteration,
            "planned_iterations": n_iter, "best_iteration": state["best_iteration"], "best_val_loss": state["best_val"],
            "train_tasks": train_ids, "val_tasks": val_ids, "removed_tasks": list(state["removed"]),
            "target": target.to_dict() if target is not None else None, "world_size": dist.world_size}
    if model is not None:  # a caller's network (not the TIML classifier): the caller wraps the weights
        return MetaTrained(clf, enc, normalizer, info)
    return TrainedModel(learner, clf, enc, normalizer, cfg, None, info, schema=samples.schema)


def meta_train_worker(ctx: DistContext, samples: SampleSet, target: Task | None, cfg: TrainConfig, seed: int,
                      workdir: str, resume: bool = False, progress: bool = False) -> None:
    """One rank of a multi-process run (:func:`cropmeta.train.distributed.spawn`): meta-train its
    share of every meta-batch; rank 0 saves the meta-trained model in ``workdir/meta``."""
    model = meta_train(samples, target, cfg, seed=seed, workdir=workdir, resume=resume,
                       progress=progress and ctx.is_main, dist=ctx)
    if ctx.is_main:
        ck.save_model(Path(workdir) / META_DIR, model)


def _to(masks: dict | None, device, dtype) -> dict | None:
    return None if masks is None else {k: v.to(device=device, dtype=dtype) for k, v in masks.items()}


def _validate(maml, enc: TaskEncoder | None, sampler: TaskSampler, bank: TaskBank, learner: str, cfg: TrainConfig,
              seed: int, dist: DistContext, device, dtype, offset: int) -> tuple[float, float]:
    """Mean query loss / AUC over the validation tasks after adaptation, on fixed batches (the same
    every time: the generator is re-seeded), without dropout, noise or running-stat updates."""
    g = torch.Generator().manual_seed(int(seed) + VAL_SEED_OFFSET)
    chosen = [i for i in range(len(sampler)) for _ in range(cfg.val_repeats)]
    sup, qry = sampler.sample(chosen, g)
    k = len(chosen)
    vctx = DistContext(dist.rank, dist.world_size, dist.backend)
    a, b = vctx.slice(k)
    ys_np, yq_np = sampler.labels()
    clf: TIMLClassifier = maml.module
    clf.train()
    clf.set_update_stats(False)
    stats = torch.zeros(2, k, dtype=torch.float64)
    try:
        if b > a:
            info = torch.as_tensor(np.stack([bank.pools[offset + i].task.info for i in chosen[a:b]])).to(device, dtype)
            film = None
            if enc is not None:
                enc.eval()
                with torch.no_grad():
                    film = enc(info)
            ys = torch.as_tensor(ys_np, device=device, dtype=dtype)
            yq = torch.as_tensor(yq_np, device=device, dtype=dtype)
            xs, xq = bank.gather(sup[a:b]), bank.gather(qry[a:b])
            cinfo = info if maml.module.extra_inputs else None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                lrn = maml.clone(first_order=True)
                expand_for_tasks(lrn.module, b - a)
                for _ in range(cfg.inner_steps):
                    lrn.adapt(bce_per_task(lrn(xs, film=film, info=cinfo), ys).sum(), first_order=True)
                with torch.no_grad():
                    q = lrn(xq, film=film, info=cinfo)
                    stats[0, a:b] = bce_per_task(q, yq).double().cpu()
                    stats[1, a:b] = batch_auc(q.double().cpu(), cfg.k_query)
    finally:
        clf.set_update_stats(True)
    dist.all_reduce_(stats)
    return float(stats[0].mean()), float(stats[1].mean())
