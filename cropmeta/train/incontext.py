"""Meta-training of the in-context learner
(:class:`cropmeta.models.incontext.InContextClassifier`).

Same tasks, splits and seeds as TIML: :func:`cropmeta.tasks.build_tasks` without the target task
(test points never used), the hash split of :func:`cropmeta.tasks.split_tasks`, the seeded
:class:`cropmeta.tasks.TaskSampler` (support ``k_support`` + ``k_support``, query ``k_query`` +
``k_query``, ``tasks_per_step`` tasks per step), the same normalisation statistics, σ =
``task_noise`` Gaussian noise on task information, the same task-removal rule and best-by-meta-
validation-loss selection. One outer step:

1. the sampler draws the tasks and their support/query indices from one CPU ``torch.Generator``;
   from the same generator, per task: whether its labels are *flipped* (probability
   ``ic_flip_prob``: positives become 0 in both support and query, so the answer can only be read
   from the support labels — without it the model may learn "green bump = crop" and ignore the
   labels, the memorisation problem of Yin et al. 2020), and, with probability ``ic_vary_support``,
   a random smaller and unbalanced support (1 … ``k_support`` per class), so that 2-shot and
   imbalanced targets look like training;
2. the model reads support + query and predicts the query; mean binary cross-entropy; Adam
   (``ic_lr``, default ``outer_lr``) cosine-annealed to ``min_lr``, gradient norm clipped to 1.

Adaptation and prediction (no gradient step: the target's labelled samples become the support
set) are :mod:`cropmeta.train.incontext_model`; checkpoints are written and read
like every other model (:func:`cropmeta.train.checkpoint.save_model` / ``load_model``, dispatching
on the kind through :mod:`cropmeta.learners`). The resume state of meta-training is ``checkpoint/`` (:func:`cropmeta.train.checkpoint.save_state`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cropmeta.errors import InputError, ModelError
from cropmeta.io.store import SampleSet
from cropmeta.learners.base import RESUME_FORMAT
from cropmeta.models.incontext import InContextClassifier
from cropmeta.provenance import sha256_arrays
from cropmeta.schema import Normalizer
from cropmeta.tasks import Task, TaskSampler
from cropmeta.train import checkpoint as ck
from cropmeta.train.common import VAL_SEED_OFFSET, TaskBank, batch_auc, fit_normalizer, log_step, meta_progress, meta_tasks
from cropmeta.train.config import InContextOptions, TrainConfig, resolve_config
from cropmeta.train.config_base import config_changes
from cropmeta.train.incontext_model import KIND, InContextModel
from cropmeta.train.loop import (LOG_NAME, check_resumable, new_state, record_validation, restore_state, start_log,
                                 state_dict_clone, update_removal)
from cropmeta.train.trained import seeded_init

__all__ = [
    "KIND", "InContextOptions", "InContextModel", "meta_train_incontext", "save_incontext", "load_incontext",
    "load_incontext_predictor",
]


def _build_net(t: int, opts: InContextOptions, seed: int, n_bands: int) -> InContextClassifier:
    with seeded_init(seed):
        return InContextClassifier(t=t, n_bands=n_bands, d_model=opts.d_model, layers=opts.layers, heads=opts.heads,
                                   ff=opts.ff, dropout=opts.dropout, use_task_info=opts.use_task_info)


# --------------------------------------------------------------------------------------------------
# Meta-training
# --------------------------------------------------------------------------------------------------
def _step_seed(g: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=g, dtype=torch.int64))


class _forked_rng:
    """Global torch RNG (dropout) seeded per step from the run's generator, restored afterwards: the
    same seed gives the same dropout masks, also after a resume."""

    def __init__(self, seed: int, device: torch.device):
        self.seed, self.device = seed, device

    def __enter__(self):
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        self._ctx = torch.random.fork_rng(devices=devices)
        self._ctx.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _support_mask(k: int, ks: int, vary: float, g: torch.Generator) -> torch.Tensor:
    """``[k, 2·ks]`` support mask (positives first): with probability ``vary`` a task keeps a random
    1 … ks positives and 1 … ks negatives, otherwise all."""
    do = torch.rand(k, generator=g) < vary
    n_pos = torch.randint(1, ks + 1, (k,), generator=g)
    n_neg = torch.randint(1, ks + 1, (k,), generator=g)
    n_pos = torch.where(do, n_pos, torch.full_like(n_pos, ks))
    n_neg = torch.where(do, n_neg, torch.full_like(n_neg, ks))
    col = torch.arange(ks)
    return torch.cat([col[None] < n_pos[:, None], col[None] < n_neg[:, None]], dim=1)


def meta_train_incontext(samples: SampleSet, target: Task | None = None, cfg: TrainConfig | None = None,
                         seed: int = 0, *, options: InContextOptions | dict | None = None,
                         workdir: str | Path | None = None, resume: bool = False, progress=False,
                         callback: Callable[[int, dict], None] | None = None, normalizer: Normalizer | None = None,
                         init: "InContextModel | None" = None) -> InContextModel:
    """Meta-train the in-context learner on every task of ``samples`` except ``target``.

    ``options``: :class:`InContextOptions` or a dict of overrides (``cfg.in_context``, the
    ``[in_context]`` section of the configuration, gives the defaults). ``workdir``: where
    ``log.jsonl`` and the resume checkpoint go (``resume=True`` continues from it). ``init``: start
    from these weights (pretraining on another source, e.g. :mod:`cropmeta.train.sim_then_real`). Returns the best weights by meta-validation loss."""
    cfg = cfg or resolve_config("quick")
    opts = options if isinstance(options, InContextOptions) else InContextOptions.resolve(cfg, options)
    if init is not None:
        normalizer = normalizer or init.normalizer
    normalizer = normalizer or fit_normalizer(samples)
    bank, sampler, val_sampler, n_tr, device, dtype = meta_tasks(samples, target, cfg, normalizer)
    ks, kq = cfg.k_support, cfg.k_query
    n_iter = opts.iterations if opts.iterations is not None else cfg.n_iterations(n_tr)

    net = _build_net(samples.t, opts, seed, samples.schema.n_bands)
    if init is not None:
        if init.t != samples.t:
            raise InputError(f"initial weights are for T={init.t}, the data has T={samples.t}")
        if init.net.arch() != net.arch():
            raise InputError(f"initial weights have another architecture ({init.net.arch()} vs {net.arch()})")
        net.load_state_dict(init.net.state_dict())
    net.to(device=device, dtype=dtype)
    lr = opts.lr if opts.lr is not None else cfg.outer_lr
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, n_iter), eta_min=min(cfg.min_lr, lr))
    base_info = torch.as_tensor(np.stack([p.task.info for p in bank.pools]), dtype=torch.float64)
    g = torch.Generator().manual_seed(int(seed))
    state = new_state()
    best: dict | None = None
    train_ids, val_ids = [p.id for p in bank.pools[:n_tr]], [p.id for p in bank.pools[n_tr:]]
    data_hash = samples.content_hash()
    init_sha = None if init is None else sha256_arrays(init.net.state_dict())
    workdir = Path(workdir) if workdir is not None else None
    log_path = workdir / LOG_NAME if workdir is not None else None
    resumed = False
    if workdir is not None and resume:
        loaded = ck.load_state(workdir)
        if loaded is not None:
            tensors, meta = loaded
            diff = config_changes(meta.get("config") or {}, cfg.to_dict())
            diff += sorted(f"ic_{k}" for k, v in opts.to_dict().items() if (meta.get("in_context") or {}).get(k) != v)
            check_resumable(meta, workdir / ck.STATE_DIR, learner=KIND, seed=seed, config_diff=diff,
                            train_ids=train_ids, val_ids=val_ids, data_hash=data_hash, init_sha=init_sha)
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            ck.optimizer_from_state(opt, tensors, meta["opt"])
            sched.load_state_dict(meta["sched"])
            g.set_state(tensors["rng.train"])
            b = {k[len("best."):]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
            best = b or None
            restore_state(state, meta)
            resumed = True
    start_log(log_path, state, resumed)

    def checkpoint() -> None:
        if workdir is None:
            return
        tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
        if best is not None:
            tensors.update({f"best.{k}": v for k, v in best.items()})
        ot, oj = ck.optimizer_to_state(opt, "opt")
        tensors.update(ot)
        tensors["rng.train"] = g.get_state()
        meta = {"format": RESUME_FORMAT, "learner": KIND, "config": cfg.to_dict(), "in_context": opts.to_dict(),
                "seed": int(seed), "train_tasks": train_ids, "val_tasks": val_ids, "data_hash": data_hash,
                "init_sha256": init_sha, "opt": oj, "sched": sched.state_dict(), **state}
        ck.save_state(workdir, tensors, meta)

    k_total = cfg.tasks_per_step
    ys_np, yq_np = sampler.labels()
    ys0 = torch.as_tensor(ys_np, device=device, dtype=dtype)
    yq0 = torch.as_tensor(yq_np, device=device, dtype=dtype)
    bar = meta_progress(progress, n_iter, int(state["iteration"]), "meta-training (in-context)")
    t0 = time.perf_counter()
    last_val = state["best_val"]
    try:
        while state["iteration"] < n_iter:
            it = int(state["iteration"])
            active = [i for i, tid in enumerate(train_ids) if tid not in state["removed"]]
            if not active:
                break
            chosen = sampler.choose(active, k_total, g)
            sup, qry = sampler.sample(chosen, g)
            noise = torch.randn((k_total, base_info.shape[1]), generator=g, dtype=torch.float64) * cfg.task_noise
            flip = (torch.rand(k_total, generator=g) < opts.flip_prob).to(device)
            mask = _support_mask(k_total, ks, opts.vary_support, g).to(device)
            step_seed = _step_seed(g)
            info = (base_info[chosen] + noise).to(device=device, dtype=dtype)
            ys = torch.where(flip[:, None], 1 - ys0, ys0)
            yq = torch.where(flip[:, None], 1 - yq0, yq0)
            net.train()
            with _forked_rng(step_seed, device):
                logits = net(bank.gather(sup), ys, bank.gather(qry), info if opts.use_task_info else None, mask)
                per_task = F.binary_cross_entropy_with_logits(logits, yq, reduction="none").mean(dim=1)
                loss = per_task.mean()
                opt.zero_grad(set_to_none=False)
                loss.backward()
            if opts.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), opts.grad_clip)
            opt.step()
            sched.step()
            # query AUC in the task's own orientation (a flipped task's positives are the first columns)
            oriented = torch.where(flip[:, None], -logits, logits).detach().double().cpu()
            aucs = batch_auc(oriented, kq)
            removed_now = update_removal(state, [train_ids[i] for i in chosen], aucs.tolist(), cfg)
            state["iteration"] = it + 1
            rec = {"iteration": it + 1, "meta_train_loss": float(loss.detach()), "meta_train_auc": float(aucs.mean()),
                   "lr": float(sched.get_last_lr()[0]), "active_tasks": len(active) - len(removed_now)}
            if removed_now:
                rec["removed"] = removed_now
            if val_sampler is not None and ((it + 1) % cfg.val_every == 0 or it + 1 == n_iter):
                vl, va = _validate(net, val_sampler, bank, n_tr, cfg, opts, seed, device, dtype)
                last_val = vl
                if record_validation(state, rec, it + 1, vl, va):
                    best = state_dict_clone(net)
            rec["elapsed_s"] = round(time.perf_counter() - t0, 3)
            log_step(it, rec, state, log_path, bar, last_val, callback)
            if (it + 1) % cfg.checkpoint_every == 0 or it + 1 == n_iter:
                checkpoint()
    finally:
        bar.close()
    if state["iteration"] < n_iter:
        checkpoint()
    if best is not None:
        net.load_state_dict(best)
    net.eval()
    info_rec = {"seed": int(seed), "learner": KIND, "data_hash": data_hash, "iterations": int(state["iteration"]),
                "planned_iterations": n_iter, "best_iteration": state["best_iteration"],
                "best_val_loss": state["best_val"], "train_tasks": train_ids, "val_tasks": val_ids,
                "removed_tasks": list(state["removed"]), "target": target.to_dict() if target is not None else None,
                "init_sha256": init_sha}
    if init is not None:
        info_rec["pretrained_on"] = init.info.get("data_hash")
    return InContextModel(net, normalizer, cfg, opts, None, None, None, info_rec, schema=samples.schema)


def _validate(net: InContextClassifier, sampler: TaskSampler, bank: TaskBank, offset: int, cfg: TrainConfig,
              opts: InContextOptions, seed: int, device, dtype) -> tuple[float, float]:
    """Mean query loss / AUC over the meta-validation tasks on fixed batches (the same each time), full
    support, no flips, no noise, no dropout."""
    g = torch.Generator().manual_seed(int(seed) + VAL_SEED_OFFSET)
    chosen = [i for i in range(len(sampler)) for _ in range(cfg.val_repeats)]
    sup, qry = sampler.sample(chosen, g)
    ys_np, yq_np = sampler.labels()
    k = len(chosen)
    ys = torch.as_tensor(ys_np, device=device, dtype=dtype).expand(k, -1)
    yq = torch.as_tensor(yq_np, device=device, dtype=dtype).expand(k, -1)
    info = torch.as_tensor(np.stack([bank.pools[offset + i].task.info for i in chosen])).to(device, dtype)
    net.eval()
    with torch.no_grad():
        logits = net(bank.gather(sup), ys, bank.gather(qry), info if opts.use_task_info else None)
        loss = F.binary_cross_entropy_with_logits(logits, yq, reduction="none").mean(dim=1)
    net.train()
    return float(loss.mean()), float(batch_auc(logits.double().cpu(), cfg.k_query).mean())


# --------------------------------------------------------------------------------------------------
# Checkpoints and the Predictor contract
# --------------------------------------------------------------------------------------------------
def save_incontext(run_dir: str | Path, model: InContextModel, extra: dict | None = None) -> dict:
    """:func:`cropmeta.train.checkpoint.save_model` (kept for callers of the in-context API)."""
    return ck.save_model(run_dir, model, extra)


def load_incontext(run_dir: str | Path, t: int | None = None) -> tuple[InContextModel, dict]:
    """(model, its JSON record) from a run directory holding an in-context learner."""
    model, meta = ck.load_model(run_dir, t=t)
    if not isinstance(model, InContextModel):
        raise ModelError(f"{run_dir}: a {meta.get('kind')!r} model, not an in-context learner")
    return model, meta


def load_incontext_predictor(run_dir: str | Path, device: str = "cpu") -> ck.Predictor:
    """:func:`cropmeta.train.checkpoint.load_predictor` (kept name); refuses a never-adapted model."""
    return ck.load_predictor(run_dir, device)
