"""The in-context learner's model object (:class:`InContextModel`: weights, normalisation, and the
support set once adapted), its adaptation and its prediction. Meta-training is
:mod:`cropmeta.train.incontext`; the registered learner is :mod:`cropmeta.learners.incontext`.

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
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from cropmeta.bandschema import BandSchema
from cropmeta.errors import InputError, ModelError, NotFittedError
from cropmeta.learners.base import MODEL_FORMAT, MODEL_FORMAT_VERSION, Model, check_record
from cropmeta.models.incontext import InContextClassifier
from cropmeta.schema import CROPHARVEST, Normalizer
from cropmeta.crops import TASK_INFO_DIM
from cropmeta.train.common import check_labelled
from cropmeta.train.config import InContextOptions, TrainConfig, config_from_dict
from cropmeta.train.trained import model_schema, schema_of_record

__all__ = ["KIND", "PREDICT_BATCH", "InContextModel", "adapt", "support_chunks", "predict_proba"]

KIND = "in-context"
#: query samples per forward pass of :func:`predict_proba`
PREDICT_BATCH = 4096


@dataclass
class InContextModel(Model):
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
    #: how :func:`cropmeta.learners.base.check_record` names this model type in errors
    what: ClassVar[str] = "an in-context learner"
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

    # ---- the Model contract (cropmeta.learners.base.Model) -----------------------------------------
    def adapt(self, x: np.ndarray, y: np.ndarray, *, task_info=None, cfg=None, seed: int = 0) -> "InContextModel":
        """:func:`adapt` (``cfg`` is not used: reading a support set has no options)."""
        return adapt(self, x, y, task_info=task_info, seed=seed)

    def predict_proba(self, x, *, batch_size: int | None = None, temperature: float | None = None,
                      support=None, task_info=None) -> np.ndarray:
        """:func:`predict_proba` of this model."""
        return predict_proba(self, x, batch_size=batch_size or PREDICT_BATCH, temperature=temperature,
                             support=support, task_info=task_info)

    def check_ready(self, source) -> None:
        """Refuse to serve predictions without a support set (a meta-trained, never adapted model)."""
        if self.support_x is None:
            raise NotFittedError(f"{source}: this in-context learner was never adapted (no support set stored); "
                                 "use the run directory of `cropmeta train --learner in-context`")

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
        check_record(meta, source, cls)
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


def predict_proba(model: InContextModel, x: np.ndarray, batch_size: int = PREDICT_BATCH, temperature: float | None = None,
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
