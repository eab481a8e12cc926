"""Meta-training, adaptation, prediction and checkpoints of the in-context learner
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

Adaptation (:func:`adapt`) takes **no gradient step**: it stores the target's labelled samples as
the support set of the returned model. Prediction (:func:`predict_proba`) reads them: a support set
larger than ``max_support`` (default ``2 · k_support``, the length the model was trained on) is split
into class-stratified chunks of at most that size (every chunk holds both classes when there are
enough samples; a class with fewer samples than chunks repeats its samples), each chunk predicts
every query, and the probabilities are averaged over chunks.

Checkpoints: ``model.safetensors`` (weights, and the support set of an adapted model) +
``model.json`` (format ``cropmeta-model``, kind ``in-context``, band order, T, architecture,
normalisation stats, task info, configuration, versions, SHA-256 of the weights) — never a pickle.
The resume state of meta-training is ``checkpoint/`` (:func:`cropmeta.train.checkpoint.save_state`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cropmeta.errors import InputError, ModelError, NotFittedError
from cropmeta.io.atomic import atomic_write_text
from cropmeta.io.store import SampleSet
from cropmeta.models.incontext import InContextClassifier
from cropmeta.bandschema import BandSchema
from cropmeta.schema import CROPHARVEST, TASK_INFO_DIM, Normalizer
from cropmeta.tasks import Task, TaskSampler
from cropmeta.train import checkpoint as ck
from cropmeta.train.common import (VAL_SEED_OFFSET, Progress, TaskBank, batch_auc, check_labelled, fit_normalizer,
                                   log_step, meta_tasks)
from cropmeta.train.config import InContextOptions, TrainConfig, config_changes, config_from_dict, resolve_config
from cropmeta.train.trained import model_schema, resolve_device, schema_of_record, seeded_init

__all__ = [
    "KIND",
    "InContextOptions",
    "InContextModel",
    "meta_train_incontext",
    "adapt",
    "predict_proba",
    "support_chunks",
    "save_incontext",
    "load_incontext",
    "InContextPredictor",
    "load_incontext_predictor",
    "train_incontext",
]

KIND = "in-context"
MODEL_FORMAT = "cropmeta-model"
MODEL_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------------
# The model object (weights + normalisation + optional support set)
# --------------------------------------------------------------------------------------------------
@dataclass
class InContextModel:
    """A meta-trained in-context learner; after :func:`adapt` it also holds the target's support set
    (raw canonical samples and 0/1 labels) and task information — weights + support *are* the
    adapted model."""

    net: InContextClassifier
    normalizer: Normalizer
    config: TrainConfig
    options: InContextOptions
    task_info: np.ndarray | None = None
    support_x: np.ndarray | None = None  # [S, T, 18] raw canonical
    support_y: np.ndarray | None = None  # [S] 0/1
    info: dict = field(default_factory=dict)
    kind: str = KIND
    schema: BandSchema = CROPHARVEST  #: band schema of the input (the training samples')

    def __post_init__(self) -> None:
        self.schema = model_schema(self.schema, self.net.n_bands, self.net.t)

    @property
    def t(self) -> int:
        return self.net.t

    @property
    def uses_task_info(self) -> bool:
        return self.net.use_task_info

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    @property
    def max_support(self) -> int:
        return int(self.options.max_support or 2 * self.config.k_support)

    def to(self, device=None, dtype=None) -> "InContextModel":
        self.net.to(device=device, dtype=dtype)
        return self

    def copy(self) -> "InContextModel":
        return copy.deepcopy(self)

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        support = None
        if self.support_x is not None:
            arrays["support.x"] = np.ascontiguousarray(self.support_x, dtype=np.float32)
            arrays["support.y"] = np.ascontiguousarray(self.support_y, dtype=np.int64)
            support = {"n": int(len(self.support_y)), "n_pos": int(np.sum(self.support_y == 1)),
                       "max_support": self.max_support}
        meta = {
            "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "kind": KIND,
            "bands": list(self.schema.bands), "schema": self.schema.to_dict(), "t": self.t,
            "arch": {"in_context": self.net.arch()},
            "normalizer": self.normalizer.to_dict(),
            "task_info": [float(v) for v in self.task_info] if self.task_info is not None else None,
            "config": self.config.to_dict(), "in_context": self.options.to_dict(), "support": support,
            "info": self.info,
        }
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, source: str = "model", t: int | None = None) -> "InContextModel":
        """Rebuild from :meth:`to_state`; refuses another format, kind, band layout, T or shapes."""
        if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
            raise ModelError(f"{source}: not a cropmeta model")
        if meta.get("kind") != KIND:
            raise ModelError(f"{source}: a {meta.get('kind')!r} model, not an in-context learner")
        if int(meta.get("format_version", 0)) > MODEL_FORMAT_VERSION:
            raise ModelError(f"{source}: model format version {meta.get('format_version')} is newer than this "
                             "cropmeta reads; upgrade cropmeta")
        schema, mt = schema_of_record(meta, source, t)
        try:
            arch = dict(meta["arch"]["in_context"])
            net = InContextClassifier.from_arch(arch)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{source}: model architecture record is incomplete ({e})") from e
        if net.t != mt or net.n_bands != schema.n_bands:
            raise ModelError(f"{source}: architecture (T={net.t}, {net.n_bands} bands) does not match the record "
                             f"(T={mt}, band schema {schema.name!r} has {schema.n_bands} bands)")
        sd = net.state_dict()
        new = {}
        for k, ref in sd.items():
            key = f"net.{k}"
            if key not in arrays:
                raise ModelError(f"{source}: weight {key!r} missing (another architecture or a damaged file)")
            v = torch.as_tensor(np.asarray(arrays[key]))
            if tuple(v.shape) != tuple(ref.shape):
                raise ModelError(f"{source}: weight {key!r} has shape {tuple(v.shape)}, expected {tuple(ref.shape)}")
            if v.is_floating_point() and not torch.isfinite(v).all():
                raise ModelError(f"{source}: weight {key!r} contains NaN or inf")
            new[k] = v.to(ref.dtype)
        extra = set(arrays) - {f"net.{k}" for k in sd} - {"support.x", "support.y"}
        if extra:
            raise ModelError(f"{source}: unexpected weights {sorted(extra)[:5]}")
        net.load_state_dict(new)
        net.eval()
        known = set(TrainConfig.__dataclass_fields__)
        cfg = config_from_dict({k: v for k, v in (meta.get("config") or {}).items() if k in known}, f"{source} (config)")
        opts = InContextOptions.resolve(None, {k: v for k, v in (meta.get("in_context") or {}).items()
                                               if k in InContextOptions.__dataclass_fields__})
        if not meta.get("normalizer"):
            raise ModelError(f"{source}: normalisation statistics missing")
        norm = Normalizer.from_dict(meta["normalizer"], f"{source} (normalisation stats)", schema.bands)
        ti = np.asarray(meta["task_info"], dtype=np.float32) if meta.get("task_info") is not None else None
        sx = sy = None
        if "support.x" in arrays:
            sx = np.asarray(arrays["support.x"], dtype=np.float32)
            sy = np.asarray(arrays["support.y"]).astype(np.int64)
            if sx.ndim != 3 or sx.shape[1:] != (mt, schema.n_bands) or len(sx) != len(sy):
                raise ModelError(f"{source}: stored support set has shape {list(sx.shape)} / {list(sy.shape)}")
        return cls(net, norm, cfg, opts, ti, sx, sy, dict(meta.get("info") or {}), schema=schema)


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


def _update_removal(state: dict, ids: list[str], aucs: list[float], cfg: TrainConfig) -> list[str]:
    """TIML's task removal: a task whose mean query AUC over its last ``remove_lookback`` draws is
    ≥ ``remove_auc`` leaves the meta-training pool."""
    hist = state["history"]
    for tid, auc in zip(ids, aucs):
        h = hist.setdefault(tid, [])
        h.append(round(float(auc), 6))
        del h[: max(0, len(h) - cfg.remove_lookback)]
    if cfg.remove_auc is None:
        return []
    out = [tid for tid in dict.fromkeys(ids) if tid not in state["removed"]
           and len(hist.get(tid, [])) >= cfg.remove_lookback and float(np.mean(hist[tid])) >= cfg.remove_auc]
    state["removed"] = list(state["removed"]) + out
    return out


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
    state = {"iteration": 0, "removed": [], "history": {}, "best_val": None, "best_iteration": None, "log_lines": 0}
    best: dict | None = None
    train_ids, val_ids = [p.id for p in bank.pools[:n_tr]], [p.id for p in bank.pools[n_tr:]]
    data_hash = samples.content_hash()
    init_sha = None if init is None else _state_sha(init.net)
    workdir = Path(workdir) if workdir is not None else None
    log_path = workdir / "log.jsonl" if workdir is not None else None
    resumed = False
    if workdir is not None and resume:
        loaded = ck.load_state(workdir)
        if loaded is not None:
            tensors, meta = loaded
            _check_resumable(meta, cfg, opts, seed, train_ids, val_ids, data_hash, init_sha, workdir)
            net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            ck.optimizer_from_state(opt, tensors, meta["opt"])
            sched.load_state_dict(meta["sched"])
            g.set_state(tensors["rng.train"])
            b = {k[len("best."):]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
            best = b or None
            for key in state:
                state[key] = meta[key]
            resumed = True
            if log_path is not None:
                _truncate_log(log_path, int(state["log_lines"]))
    if log_path is not None and not resumed:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")

    def checkpoint() -> None:
        if workdir is None:
            return
        tensors = {f"net.{k}": v for k, v in net.state_dict().items()}
        if best is not None:
            tensors.update({f"best.{k}": v for k, v in best.items()})
        ot, oj = ck.optimizer_to_state(opt, "opt")
        tensors.update(ot)
        tensors["rng.train"] = g.get_state()
        meta = {"format": "cropmeta-resume", "learner": KIND, "config": cfg.to_dict(), "in_context": opts.to_dict(),
                "seed": int(seed), "train_tasks": train_ids, "val_tasks": val_ids, "data_hash": data_hash,
                "init_sha256": init_sha, "opt": oj, "sched": sched.state_dict(), **state}
        ck.save_state(workdir, tensors, meta)

    k_total = cfg.tasks_per_step
    ys_np, yq_np = sampler.labels()
    ys0 = torch.as_tensor(ys_np, device=device, dtype=dtype)
    yq0 = torch.as_tensor(yq_np, device=device, dtype=dtype)
    bar = Progress(progress, n_iter, int(state["iteration"]), "meta-training (in-context)")
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
            removed_now = _update_removal(state, [train_ids[i] for i in chosen], aucs.tolist(), cfg)
            state["iteration"] = it + 1
            rec = {"iteration": it + 1, "meta_train_loss": float(loss.detach()), "meta_train_auc": float(aucs.mean()),
                   "lr": float(sched.get_last_lr()[0]), "active_tasks": len(active) - len(removed_now)}
            if removed_now:
                rec["removed"] = removed_now
            if val_sampler is not None and ((it + 1) % cfg.val_every == 0 or it + 1 == n_iter):
                vl, va = _validate(net, val_sampler, bank, n_tr, cfg, opts, seed, device, dtype)
                rec.update({"meta_val_loss": vl, "meta_val_auc": va})
                last_val = vl
                if state["best_val"] is None or vl < state["best_val"]:
                    state["best_val"], state["best_iteration"] = vl, it + 1
                    best = {k: v.detach().clone() for k, v in net.state_dict().items()}
                    rec["best"] = True
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


def _state_sha(net: torch.nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


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


def _check_resumable(meta: dict, cfg: TrainConfig, opts: InContextOptions, seed: int, train_ids, val_ids, data_hash,
                     init_sha, workdir: Path) -> None:
    where = f"{workdir / ck.STATE_DIR}"
    if meta.get("format") != "cropmeta-resume" or meta.get("learner") != KIND:
        raise InputError(f"{where}: not an in-context learner's resume checkpoint")
    diff = config_changes(meta.get("config") or {}, cfg.to_dict())
    diff += sorted(f"ic_{k}" for k, v in opts.to_dict().items() if (meta.get("in_context") or {}).get(k) != v)
    if diff:
        raise InputError(f"{where}: cannot resume with a different configuration (changed: {', '.join(diff)})")
    if int(meta.get("seed", -1)) != int(seed):
        raise InputError(f"{where}: cannot resume: it was started with seed {meta.get('seed')}")
    if meta.get("data_hash") != data_hash or meta.get("train_tasks") != train_ids or meta.get("val_tasks") != val_ids:
        raise InputError(f"{where}: cannot resume: the training data or tasks differ from the interrupted run")
    if meta.get("init_sha256") != init_sha:
        raise InputError(f"{where}: cannot resume: the initial weights differ from the interrupted run")


def _truncate_log(path: Path, n_lines: int) -> None:
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) != n_lines:
        atomic_write_text(path, "".join(lines[:n_lines]))


# --------------------------------------------------------------------------------------------------
# Adaptation and prediction
# --------------------------------------------------------------------------------------------------
def adapt(model: InContextModel, x: np.ndarray, y: np.ndarray, task_info=None, seed: int = 0) -> InContextModel:
    """The adapted model: ``model``'s weights (shared, not copied: nothing trains them) + the target's
    labelled samples as its support set. No gradient step. ``seed`` fixes how a support set larger
    than ``max_support`` is split into chunks."""
    x, y = check_labelled(x, y, model.t, "support", model.schema)
    ti = model.task_info if task_info is None else np.asarray(task_info, dtype=np.float32).ravel()
    if model.uses_task_info:
        if ti is None:
            raise InputError("this in-context learner reads task information: pass the target's 13 numbers")
        if len(ti) != TASK_INFO_DIM:
            raise InputError(f"task information has {len(ti)} numbers, expected {TASK_INFO_DIM}")
    info = {**model.info, "adapt": {"n_support": int(len(y)), "n_pos": int((y == 1).sum()), "seed": int(seed),
                                    "gradient_steps": 0}}
    return dataclasses.replace(model, task_info=None if ti is None else np.asarray(ti, dtype=np.float32),
                               support_x=x.copy(), support_y=y.copy(), info=info)


def support_chunks(y: np.ndarray, max_support: int, seed: int = 0) -> list[np.ndarray]:
    """Split support indices into class-stratified chunks of at most ``max_support`` samples.

    One chunk (everything) when the support fits. Otherwise ``n = ⌈N / max_support⌉`` chunks; each
    class is shuffled (seeded) and dealt into the n chunks as evenly as possible; a class with
    fewer than n samples is cycled so that every chunk holds at least one of it."""
    y = np.asarray(y).astype(np.int64)
    n_all = len(y)
    if n_all <= max_support:
        return [np.arange(n_all)]
    n = -(-n_all // max_support)
    rng = np.random.default_rng([int(seed), 7919])
    parts: list[list[np.ndarray]] = [[] for _ in range(n)]
    for cls in (1, 0):
        idx = rng.permutation(np.where(y == cls)[0])
        if len(idx) == 0:
            continue
        if len(idx) < n:
            idx = np.resize(idx, n)
        for i, p in enumerate(np.array_split(idx, n)):
            parts[i].append(p)
    chunks = [np.concatenate(p) for p in parts]
    # dealing can exceed max_support by one per class when a scarce class was cycled: trim the other class
    return [c[:max_support] if len(c) > max_support else c for c in chunks]


def predict_proba(model: InContextModel, x: np.ndarray, batch_size: int = 4096, temperature: float | None = None,
                  support: tuple[np.ndarray, np.ndarray] | None = None, task_info=None) -> np.ndarray:
    """Probabilities ``[N]`` of raw samples ``x [N, T, n_bands]`` of the model's band schema (an
    array or a sample set) given the model's support set (or ``support=(x_s, y_s)``).
    Larger-than-trained support sets: chunk average (module docstring). ``temperature`` divides each
    chunk's logits (calibration)."""
    x = model.schema.input_array(x)
    if x.shape[1] != model.t:
        raise InputError(f"the model was trained on T={model.t} time steps, the samples have T={x.shape[1]}")
    if support is not None:
        model = adapt(model, support[0], support[1], task_info=task_info,
                      seed=int(model.info.get("adapt", {}).get("seed", 0)))
    if model.support_x is None:
        raise NotFittedError("the in-context learner has no support set: adapt it to the target's labelled samples first")
    ti = model.task_info if task_info is None else np.asarray(task_info, dtype=np.float32)
    device, dtype = model.device, model.dtype
    norm = model.normalizer
    chunks = support_chunks(model.support_y, model.max_support, int(model.info.get("adapt", {}).get("seed", 0)))
    c = len(chunks)
    width = max(len(ch) for ch in chunks)
    xs_all = torch.as_tensor(norm.transform(model.support_x), device=device).to(dtype)
    xs = torch.zeros((c, width) + tuple(xs_all.shape[1:]), device=device, dtype=dtype)
    ys = torch.zeros((c, width), device=device, dtype=dtype)
    mask = torch.zeros((c, width), device=device, dtype=torch.bool)
    for i, ch in enumerate(chunks):
        idx = torch.as_tensor(ch, device=device)
        xs[i, : len(ch)] = xs_all[idx]
        ys[i, : len(ch)] = torch.as_tensor(model.support_y[ch], device=device, dtype=dtype)
        mask[i, : len(ch)] = True
    info = None
    if model.uses_task_info:
        if ti is None:
            raise InputError("this in-context learner reads task information but the model records none")
        info = torch.as_tensor(np.asarray(ti, dtype=np.float32), device=device).to(dtype).view(1, -1).expand(c, -1)
    net = model.net
    net.eval()
    out = np.empty(len(x), dtype=np.float64)
    mean = torch.as_tensor(norm.mean, dtype=dtype, device=device)
    std = torch.as_tensor(norm.std, dtype=dtype, device=device)
    with torch.no_grad():
        ctx0, cmask = net.context(xs, ys, info, mask)
        for i in range(0, len(x), batch_size):
            xb = (torch.as_tensor(x[i : i + batch_size], device=device).to(dtype) - mean) / std
            q = (net.encode(xb) + net.label_emb.weight[2]).unsqueeze(0).expand(c, -1, -1)
            ctx = ctx0
            for blk in net.blocks:
                ctx, q = blk(ctx, cmask, q)
            logits = net.head(net.out_norm(q)).squeeze(-1)  # [c, b]
            if temperature is not None:
                logits = logits / float(temperature)
            out[i : i + len(xb)] = torch.sigmoid(logits).mean(dim=0).double().cpu().numpy()
    return out


# --------------------------------------------------------------------------------------------------
# Checkpoints and the Predictor contract
# --------------------------------------------------------------------------------------------------
def save_incontext(run_dir: str | Path, model: InContextModel, extra: dict | None = None) -> dict:
    """``model.safetensors`` + ``model.json`` in ``run_dir``, written exactly like every other
    cropmeta model (:func:`cropmeta.train.checkpoint.save_model`). Returns the JSON record."""
    return ck.save_model(run_dir, model, extra)


def load_incontext(run_dir: str | Path, t: int | None = None) -> tuple[InContextModel, dict]:
    """(model, its JSON record) from a run directory (or its ``model.json``)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent
    jpath = run_dir / ck.MODEL_JSON
    if not jpath.exists():
        raise ModelError(f"{jpath}: missing")
    try:
        meta = json.loads(jpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{jpath}: not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise ModelError(f"{jpath}: expected a JSON object")
    arrays = ck.load_tensors(run_dir / str(meta.get("weights", ck.MODEL_WEIGHTS)), meta.get("weights_sha256"))
    model = InContextModel.from_state(meta, {k: v.numpy() for k, v in arrays.items()}, source=str(jpath), t=t)
    return model, meta


class InContextPredictor(ck.Predictor):
    """:class:`cropmeta.train.checkpoint.Predictor` for an adapted in-context learner: predictions
    read the stored support set (chunk-averaged), then the calibration temperature if saved."""

    def predict_proba(self, x: np.ndarray, batch_size: int = 4096, calibrated: bool = True) -> np.ndarray:
        return predict_proba(self.model, x, batch_size=batch_size,
                             temperature=self.temperature if calibrated else None)


def load_incontext_predictor(run_dir: str | Path, device: str = "cpu") -> InContextPredictor:
    model, meta = load_incontext(run_dir)
    model.to(device=resolve_device(device))
    if model.support_x is None:
        raise NotFittedError(f"{run_dir}: this in-context learner was never adapted (no support set stored); "
                             "use the run directory of `cropmeta train --learner in-context`")
    md = dict(meta)
    md.setdefault("model_sha256", meta.get("weights_sha256"))
    return InContextPredictor(model, md, Path(run_dir))


# --------------------------------------------------------------------------------------------------
# ``cropmeta train --learner in-context``
# --------------------------------------------------------------------------------------------------
def train_incontext(samples: SampleSet, task: Task, cfg: TrainConfig, seed: int, run_dir: str | Path,
                    x_train: np.ndarray, y_train: np.ndarray, *, resume: bool = False, progress=False,
                    options: dict | None = None, init: InContextModel | None = None,
                    extra: dict | None = None) -> tuple[InContextModel, InContextModel, dict]:
    """Meta-train (``run_dir`` holds log.jsonl, checkpoint/ and meta/), adapt to the target's
    training labels and save the adapted model in ``run_dir``. Returns (meta-trained model, adapted
    model, model.json record). Used by :func:`cropmeta.train.run.train` for ``--learner in-context``."""
    run_dir = Path(run_dir)
    base = meta_train_incontext(samples, task, cfg, seed, options=options, workdir=run_dir, resume=resume,
                                progress=progress, init=init)
    save_incontext(run_dir / "meta", base)
    adapted = adapt(base, x_train, y_train, task_info=task.info, seed=seed)
    adapted.info.update({"task": task.to_dict()})
    record = save_incontext(run_dir, adapted, extra)
    return base, adapted, record
