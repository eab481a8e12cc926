"""Fine-tuning on the target task (the protocol every deep method shares).

All classifier weights are trained (the task encoder stays frozen; its FiLM parameters come from
the target's task information once), SGD lr ``ft_lr`` (1e-3) for ``ft_steps`` (250) steps on
class-balanced batches of ``ft_batch`` positives + ``ft_batch`` negatives drawn from the given
training labels, with a seeded generator.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cropmeta.schema import Normalizer
from cropmeta.train.common import check_labelled
from cropmeta.train.config import TrainConfig
from cropmeta.train.trained import TrainedModel, resolve_device, torch_dtype

__all__ = ["balanced_batch", "finetune"]


def balanced_batch(pos: np.ndarray, neg: np.ndarray, n_pos: int, n_neg: int, g: torch.Generator) -> np.ndarray:
    """One fine-tuning batch: ``n_pos`` of the positive indices then ``n_neg`` of the negative ones,
    each drawn without replacement by a permutation from ``g``."""
    ip = pos[torch.randperm(len(pos), generator=g).numpy()[:n_pos]]
    ineg = neg[torch.randperm(len(neg), generator=g).numpy()[:n_neg]]
    return np.r_[ip, ineg]


def finetune(model: TrainedModel, x: np.ndarray, y: np.ndarray, task_info=None, cfg: TrainConfig | None = None,
             seed: int = 0, steps: int | None = None) -> TrainedModel:
    """A fine-tuned *copy* of ``model`` (the original is untouched, so meta-trained weights are
    reused across shot counts). ``x`` raw canonical ``[N, T, 18]``, ``y`` 0/1; ``task_info`` the
    target's 13 numbers (needed by TIML and the concatenation ablation)."""
    cfg = cfg or model.config
    x, y = check_labelled(x, y, model.t, "fine-tuning", model.schema)
    pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))

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
    clf = m.classifier
    for p in clf.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(clf.parameters(), lr=cfg.ft_lr)
    g = torch.Generator().manual_seed(int(seed))
    n_p, n_n = min(cfg.ft_batch, len(pos)), min(cfg.ft_batch, len(neg))
    yb = torch.as_tensor(np.r_[np.ones(n_p), np.zeros(n_n)], device=device, dtype=dtype).unsqueeze(0)
    clf.train()
    n_steps = cfg.ft_steps if steps is None else int(steps)
    last = float("nan")
    for _ in range(n_steps):
        idx = torch.as_tensor(balanced_batch(pos, neg, n_p, n_n, g), device=device)
        masks = clf.sample_masks(1, len(idx), g)
        if masks is not None:
            masks = {k: v.to(device=device, dtype=dtype) for k, v in masks.items()}
        logits = clf(xt[idx].unsqueeze(0), film=film, info=info, masks=masks)
        loss = F.binary_cross_entropy_with_logits(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = float(loss.detach())
    clf.eval()
    m.info = {**m.info, "finetune": {"n_train": int(len(y)), "n_pos": int(len(pos)), "steps": n_steps,
                                     "lr": cfg.ft_lr, "seed": int(seed), "final_loss": last}}
    return m
