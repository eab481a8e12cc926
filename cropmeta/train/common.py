"""Pieces meta-training and plain pretraining share (no learn2learn here, so importing them is light):
normalisation statistics, the on-device task bank, per-task losses and AUCs, the progress bar."""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from cropmeta.errors import InputError
from cropmeta.io.store import SampleSet
from cropmeta.schema import Normalizer
from cropmeta.tasks import TaskPools, TaskSampler, build_tasks, split_tasks

__all__ = ["VAL_SEED_OFFSET", "META_DIR", "fit_normalizer", "load_init", "meta_tasks", "check_labelled",
           "log_step", "TaskBank", "batch_auc", "bce_per_task", "Progress"]

VAL_SEED_OFFSET = 1_000_003
#: sub-directory of a work/run directory holding the meta-trained (not fine-tuned) model
META_DIR = "meta"


def load_init(classifier: torch.nn.Module, encoder: torch.nn.Module | None, init) -> None:
    """Start ``classifier`` (and ``encoder``) from the weights of ``init`` (a TrainedModel), e.g. the
    model of a simulated-world phase; refuses architectures that differ."""
    pairs = [("classifier", classifier, init.classifier)]
    if encoder is not None:
        if getattr(init, "encoder", None) is None:
            raise InputError("the initial model has no task encoder, but this learner needs one")
        pairs.append(("task encoder", encoder, init.encoder))
    for what, dst, src in pairs:
        sd = {k: v.detach().clone() for k, v in src.state_dict().items()}
        ref = dst.state_dict()
        bad = [k for k in ref if k not in sd or tuple(sd[k].shape) != tuple(ref[k].shape)]
        if bad:
            raise InputError(f"cannot start from the given model: the {what} architectures differ ({bad[:3]})")
        dst.load_state_dict(sd)


def meta_tasks(samples: SampleSet, target, cfg, normalizer: Normalizer):
    """The set-up every meta-learner shares (TIML/MAML and the in-context learner): torch threads,
    device and dtype, the non-target tasks split into training and validation tasks (deterministic),
    their on-device bank and the support/query samplers. Returns ``(bank, sampler, val_sampler,
    n_train_tasks, device, dtype)``; ``val_sampler`` is None without validation tasks."""
    from cropmeta.train.trained import resolve_device, torch_dtype

    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device, dtype = resolve_device(cfg.device), torch_dtype(cfg.dtype)
    pools = build_tasks(samples, exclude=target, min_per_class=cfg.min_examples)
    train_pools, val_pools = split_tasks(pools, cfg.val_fraction)
    if not train_pools:
        raise InputError(f"no meta-training tasks with ≥ {cfg.min_examples} training examples per class "
                         f"(found {len(pools)} task(s) in {samples.meta['region'].nunique()} region(s)); "
                         "add labelled regions or lower min_per_class / k_support / k_query")
    bank = TaskBank(samples, train_pools + val_pools, normalizer, device, dtype)
    n_tr = len(train_pools)
    sampler = TaskSampler(bank.pools[:n_tr], cfg.k_support, cfg.k_query)
    val_sampler = TaskSampler(bank.pools[n_tr:], cfg.k_support, cfg.k_query) if val_pools else None
    return bank, sampler, val_sampler, n_tr, device, dtype


def check_labelled(x, y, t: int, what: str, schema=None) -> tuple[np.ndarray, np.ndarray]:
    """A target's labelled samples as ``(x float32 [N, T, n_bands], y int64 [N])``, checked: the
    model's band ``schema`` (default CropHarvest-18; a sample set's own schema must match it), T equal
    to the model's ``t``, 0/1 labels of both classes, finite values. ``what`` names them in the
    errors ("fine-tuning", "support")."""
    from cropmeta.schema import CROPHARVEST

    x = (schema or CROPHARVEST).input_array(x, f"{what} samples")
    y = np.asarray(y).astype(np.int64).ravel()
    if len(x) != len(y):
        raise InputError(f"{what}: {len(x)} samples for {len(y)} labels")
    if x.shape[1] != t:
        raise InputError(f"the model was trained on T={t} time steps, the samples have T={x.shape[1]}")
    if not np.isin(y, [0, 1]).all():
        raise InputError(f"{what} labels must be 0 or 1")
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputError(f"{what} needs both classes ({n_pos} positives, {n_neg} negatives)")
    if not np.isfinite(x).all():
        raise InputError(f"{what} samples contain NaN or inf (fill gaps first)")
    return x, y


def log_step(it: int, rec: dict, state: dict, log_path, bar, last_val, callback=None, write: bool = True) -> None:
    """End of one outer step of meta-training: append ``rec`` to the JSON-lines log (counting its lines
    in ``state`` so a resumed run can truncate the log to match), move the progress bar, call the
    callback. ``write=False`` (a non-main distributed rank) skips the log."""
    if log_path is not None and write:
        with open(log_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        state["log_lines"] = int(state["log_lines"]) + 1
    bar.update(it + 1, rec["meta_train_loss"], last_val)
    if callback is not None:
        callback(it + 1, rec)


def fit_normalizer(samples: SampleSet) -> Normalizer:
    """Per-band statistics of every labelled training sample (test points excluded)."""
    m = samples.meta
    keep = ((m["split"].astype(str) == "train") & (m["is_crop"].to_numpy() >= 0)).to_numpy()
    if not keep.any():
        raise InputError("no labelled training samples to compute normalisation statistics from")
    return Normalizer.fit(samples.x[keep], bands=samples.schema.bands)


class TaskBank:
    """The samples the tasks use, normalised once and held as one tensor on the device; batches
    are gathered by index."""

    def __init__(self, samples: SampleSet, pools: list[TaskPools], normalizer: Normalizer,
                 device: torch.device, dtype: torch.dtype):
        used = np.unique(np.concatenate([np.r_[p.pos, p.neg_crop, p.neg_noncrop] for p in pools]))
        remap = np.full(len(samples), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        self.pools = [TaskPools(p.task, remap[p.pos], remap[p.neg_crop], remap[p.neg_noncrop]) for p in pools]
        self.x = torch.as_tensor(normalizer.transform(samples.x[used])).to(device=device, dtype=dtype)
        self.device, self.dtype = device, dtype

    def gather(self, idx: np.ndarray) -> torch.Tensor:
        return self.x[torch.as_tensor(idx, device=self.device)]


def batch_auc(scores: torch.Tensor, n_pos: int) -> torch.Tensor:
    """ROC AUC per row of ``scores [K, n_pos + n_neg]`` whose first ``n_pos`` columns are positives
    (ties count ½, exactly like scikit-learn's ``roc_auc_score``)."""
    pos = scores[:, :n_pos].unsqueeze(2)
    neg = scores[:, n_pos:].unsqueeze(1)
    return ((pos > neg).to(torch.float64) + 0.5 * (pos == neg).to(torch.float64)).mean(dim=(1, 2))


def bce_per_task(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-task mean binary cross-entropy: logits ``[K, N]``, y ``[N]`` → ``[K]``."""
    return F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none").mean(dim=1)


class Progress:
    """Optional Rich progress bar with the meta-loss and ETA."""

    def __init__(self, enabled, total: int, start: int, description: str):
        self.p = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = enabled if not isinstance(enabled, bool) else None
        self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("loss {task.fields[loss]}"), TextColumn("val {task.fields[val]}"),
                          TimeRemainingColumn(), console=console, transient=False)
        self.p.start()
        self.t = self.p.add_task(description, total=total, completed=start, loss="–", val="–")

    def update(self, completed: int, loss: float, val: float | None) -> None:
        if self.p is not None:
            fields = {"loss": f"{loss:.3f}"}
            if val is not None:
                fields["val"] = f"{val:.3f}"
            self.p.update(self.t, completed=completed, **fields)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()
