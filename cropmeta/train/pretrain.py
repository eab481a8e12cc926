"""Plain supervised pretraining (CropHarvest's "pretrained LSTM" baseline).

The same classifier (no task information) trained by ordinary supervised learning on every
non-target task's training data pooled (crop vs non-crop and crop-label tasks alike): each step
draws ``tasks_per_step`` tasks with the seeded task sampler and uses their support + query examples
as one labelled batch (balanced per task). Adam ``pt_lr``; every ``pt_val_every`` steps the loss on
fixed batches of the validation tasks (the same hash split as meta-training) decides early stopping
(``pt_patience`` validations without improvement) and the weights kept.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cropmeta.errors import InputError
from cropmeta.io.store import SampleSet
from cropmeta.schema import Normalizer
from cropmeta.tasks import Task, TaskSampler, build_tasks, split_tasks
from cropmeta.train.config import TrainConfig, resolve_config
from cropmeta.train.common import VAL_SEED_OFFSET, TaskBank, fit_normalizer, load_init, meta_progress
from cropmeta.train.trained import TrainedModel, build_model
from cropmeta.train.common import resolve_device, torch_dtype

__all__ = ["pretrain"]


def pretrain(samples: SampleSet, target: Task | None = None, cfg: TrainConfig | None = None, seed: int = 0,
             progress=False, normalizer: Normalizer | None = None, init=None) -> TrainedModel:
    cfg = cfg or resolve_config("quick")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device, dtype = resolve_device(cfg.device), torch_dtype(cfg.dtype)
    normalizer = normalizer or fit_normalizer(samples)
    pools = build_tasks(samples, exclude=target, min_per_class=cfg.min_examples)
    train_pools, val_pools = split_tasks(pools, cfg.val_fraction)
    if not train_pools:
        raise InputError(f"no pretraining tasks with ≥ {cfg.min_examples} training examples per class")
    bank = TaskBank(samples, train_pools + val_pools, normalizer, device, dtype)
    n_tr = len(train_pools)
    sampler = TaskSampler(bank.pools[:n_tr], cfg.k_support, cfg.k_query)
    clf, _ = build_model(cfg, samples.t, "maml", seed, samples.schema.n_bands)
    if init is not None:
        load_init(clf, None, init)
    clf.to(device=device, dtype=dtype)
    opt = torch.optim.Adam(clf.parameters(), lr=cfg.pt_lr)
    g = torch.Generator().manual_seed(int(seed))
    ys, yq = sampler.labels()
    y = torch.as_tensor(np.r_[ys, yq], device=device, dtype=dtype)

    val = None
    if val_pools:
        vs = TaskSampler(bank.pools[n_tr:], cfg.k_support, cfg.k_query)
        vg = torch.Generator().manual_seed(int(seed) + VAL_SEED_OFFSET)
        chosen = [i for i in range(len(vs)) for _ in range(cfg.val_repeats)]
        s, q = vs.sample(chosen, vg)
        val = bank.gather(np.concatenate([s, q], axis=1))

    def val_loss() -> float:
        clf.eval()
        with torch.no_grad():
            out = float(F.binary_cross_entropy_with_logits(clf(val), y.expand(val.shape[0], -1)))
        clf.train()
        return out

    best, best_step, bad = float("inf"), 0, 0
    best_sd = None
    bar = meta_progress(progress, cfg.pt_steps, 0, "pretraining")
    history = []
    try:
        for step in range(1, cfg.pt_steps + 1):
            clf.train()
            chosen = sampler.choose(list(range(n_tr)), cfg.tasks_per_step, g)
            s, q = sampler.sample(chosen, g)
            xb = bank.gather(np.concatenate([s, q], axis=1))
            masks = clf.sample_masks(xb.shape[0], xb.shape[1], g)
            if masks is not None:
                masks = {k: v.to(device=device, dtype=dtype) for k, v in masks.items()}
            loss = F.binary_cross_entropy_with_logits(clf(xb, masks=masks), y.expand(xb.shape[0], -1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec = {"step": step, "train_loss": float(loss.detach())}
            if val is not None and (step % cfg.pt_val_every == 0 or step == cfg.pt_steps):
                vl = val_loss()
                rec["val_loss"] = vl
                if vl < best:
                    best, best_step, bad = vl, step, 0
                    best_sd = {k: v.detach().clone() for k, v in clf.state_dict().items()}
                else:
                    bad += 1
            history.append(rec)
            bar.update(step, loss=rec["train_loss"], val=None if best == float("inf") else best)
            if bad >= cfg.pt_patience:
                break
    finally:
        bar.close()
    if best_sd is not None:
        clf.load_state_dict(best_sd)
    clf.eval()
    info = {"seed": int(seed), "learner": "pretrained", "steps": history[-1]["step"] if history else 0,
            "best_step": best_step, "best_val_loss": None if best == float("inf") else best,
            "train_tasks": [p.id for p in train_pools], "val_tasks": [p.id for p in val_pools],
            "data_hash": samples.content_hash(), "target": target.to_dict() if target is not None else None,
            "history": history[-50:]}
    return TrainedModel("pretrained", clf, None, normalizer, cfg, None, info, schema=samples.schema)
