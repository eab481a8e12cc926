"""Presto without task information, as models of the learner contract: ``presto`` (frozen
embeddings + logistic regression, "Presto R" of Tseng et al. 2023) and ``presto-ft`` (the encoder
and a linear head fine-tuned on the target's labels).

Neither learns anything before the target (``needs_source = False``): the unadapted model is the
published encoder, named by its weights' SHA-256. :meth:`adapt` fits on the target's labelled
samples, each with its own place and start date (:class:`~cropmeta.train.presto_base.PrestoBacked`):

- ``presto``: ``LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed)`` on
  the 128 embedding numbers; the saved model is its coefficients (probabilities are the sigmoid of
  the linear score, as scikit-learn's ``predict_proba`` computes them).
- ``presto-ft``: a copy of the pretrained encoder plus ``Linear(128, 1)``, every trainable weight
  (the sinusoidal month/position tables stay frozen, as pretrained) trained by SGD with the protocol
  every deep method shares (``ft_lr`` 1e-3, ``ft_steps`` 250 class-balanced batches of ``ft_batch``
  10 + 10: Presto's own CropHarvest fine-tuning numbers); the saved model is the whole fine-tuned
  encoder and head (about 0.4 M numbers).

The comparison's ``presto`` / ``presto-ft`` methods (:mod:`cropmeta.evaluate.presto`) fit through
:func:`fit_logistic` and :func:`finetune_presto`, the same code as ``cropmeta train --learner presto``.
Checkpoints: ``model.safetensors`` + ``model.json`` (never a pickle).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from cropmeta.errors import ModelError, NotFittedError
from cropmeta.learners.base import MODEL_FORMAT, MODEL_FORMAT_VERSION, Model, check_record
from cropmeta.models.inference import precision_context, training_precision
from cropmeta.models.presto_head import EMBED_DIM
from cropmeta.schema import BANDS
from cropmeta.train.config import TrainConfig, config_from_dict
from cropmeta.train.presto_base import PrestoBacked, check_labels

__all__ = ["KINDS", "PrestoLRModel", "PrestoFTModel", "fit_logistic", "finetune_presto"]

KINDS = ("presto", "presto-ft")


def fit_logistic(emb: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """(coefficients ``[128]`` float64, intercept) of the paper's logistic regression on embeddings."""
    from sklearn.linear_model import LogisticRegression

    emb = np.asarray(emb, dtype=np.float32)
    y = check_labels(y, len(emb), "presto: logistic regression")
    lr = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=int(seed)).fit(emb, y)
    sign = 1.0 if list(lr.classes_) == [0, 1] else -1.0
    return sign * lr.coef_[0].astype(np.float64), float(sign * lr.intercept_[0])


def finetune_presto(encoder: torch.nn.Module, tensors: list[torch.Tensor], y: np.ndarray, seed: int = 0,
                    steps: int = 250, lr: float = 1e-3, batch: int = 10, train_blocks: int | None = None,
                    precision: str = "fp32") -> torch.nn.Sequential:
    """``Sequential(encoder=a copy of encoder, head=Linear(128, 1))`` fine-tuned by SGD on
    class-balanced batches of ``batch`` + ``batch`` of the samples ``tensors`` (the encoder's inputs,
    :meth:`~cropmeta.models.presto_layout.PrestoInputs.tensors`) with 0/1 labels ``y``; eval mode.

    ``train_blocks``: how many of the last transformer blocks (with the final LayerNorm and the head)
    are trained; None or the encoder's depth: every weight, as Presto's paper fine-tunes. Fewer:
    the token embeddings and the first blocks stay as pretrained, their output for every sample is
    computed once, and each step runs only the trained blocks forward and backward.
    ``precision="bf16"``: the steps under bfloat16 autocast (weights and updates stay float32)."""
    import torch.nn.functional as F

    from cropmeta.models.presto import CPU_BATCH, DEPTH
    from cropmeta.train.finetune import balanced_batch

    y = check_labels(y, len(tensors[0]), "presto-ft: fine-tuning")
    depth = DEPTH if train_blocks is None else int(train_blocks)
    if not 1 <= depth <= DEPTH:
        raise ValueError(f"presto-ft: train_blocks must be 1 to {DEPTH}, got {train_blocks}")
    frozen = DEPTH - depth
    dev = next(encoder.parameters()).device
    torch.manual_seed(int(seed))  # the head's initialisation
    net = torch.nn.Sequential()
    net.add_module("encoder", copy.deepcopy(encoder))
    net.add_module("head", torch.nn.Linear(EMBED_DIM, 1))
    net.to(dev).train()
    enc = net.encoder
    cached = None
    trainable = {name: p.requires_grad for name, p in enc.named_parameters()}
    if frozen:
        for name, p in enc.named_parameters():
            if not (name.startswith("norm.") or any(name.startswith(f"blocks.{i}.") for i in range(frozen, DEPTH))):
                p.requires_grad_(False)
        with torch.no_grad():  # the frozen part's output for every sample, once (in float32)
            cached = enc.hidden(*tensors, blocks=frozen, batch_size=CPU_BATCH)
    pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
    n_p, n_n = min(batch, len(pos)), min(batch, len(neg))
    yb = torch.as_tensor(np.r_[np.ones(n_p), np.zeros(n_n)], dtype=torch.float32, device=dev)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(int(seed))
    for _ in range(int(steps)):
        idx = torch.as_tensor(balanced_batch(pos, neg, n_p, n_n, g), device=dev)
        with precision_context(precision, dev):
            if cached is None:
                emb = enc(*[t[idx] for t in tensors])
            else:
                emb = enc.finish(cached[0][idx], cached[1][idx], frozen)
            logits = net.head(emb)[:, 0].float()
        loss = F.binary_cross_entropy_with_logits(logits, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for name, p in enc.named_parameters():
        p.requires_grad_(trainable[name])
    return net.eval()


def net_probabilities(net: torch.nn.Sequential, inputs, batch_size: int | None = None,
                      temperature: float | None = None, precision: str = "fp32") -> np.ndarray:
    """Positive-class probabilities ``[N]`` float64 of a :func:`finetune_presto` network, in batches
    (default :func:`cropmeta.models.presto.default_batch` of its device); ``precision``: ``fp32`` or
    ``bf16`` (:func:`cropmeta.models.inference.precision_context`)."""
    from cropmeta.models.presto import default_batch

    dev = next(net.parameters()).device
    batch_size = int(batch_size or default_batch(dev))
    out = []
    with torch.no_grad(), precision_context(precision, dev):
        for i in range(0, len(inputs), batch_size):
            z = net.head(net.encoder(*inputs[i : i + batch_size].tensors(dev)))[:, 0].double()
            if temperature is not None:
                z = z / float(temperature)
            out.append(torch.sigmoid(z).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


@dataclass
class _PrestoModel(PrestoBacked, Model):
    presto_sha256: str
    config: TrainConfig
    t: int = 12
    task_info: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    bands: tuple | None = None  # the samples' band schema (None: CropHarvest's 18)
    embedder: object | None = field(default=None, repr=False, compare=False)  # not saved

    kind: ClassVar[str] = ""

    @property
    def adapted(self) -> bool:
        raise NotImplementedError

    def check_ready(self, source) -> None:
        if not self.adapted:
            raise ModelError(f"{source}: a {self.kind!r} model is fitted on the target's labels; this one never was "
                             "(train it with labels: `cropmeta train --learner " + self.kind + "`)")

    def zero_shot(self, task_info=None):
        raise ModelError(f"{self.kind}: its classifier is fitted on the target's labels (no zero-shot prediction)")

    def _copy_for(self, task_info):
        m = copy.copy(self)
        m.info = dict(self.info)
        if task_info is not None:
            m.task_info = np.asarray(task_info, dtype=np.float32).ravel()
        return m

    def _record(self, adapted: bool) -> dict:
        return {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "kind": self.kind,
                "bands": list(self.bands or BANDS), "t": int(self.t), "adapted": bool(adapted),
                "backbone": {"name": "presto", "weights_sha256": self.presto_sha256},
                "task_info": [float(v) for v in self.task_info] if self.task_info is not None else None,
                "config": self.config.to_dict(), "info": self.info}

    @classmethod
    def _common(cls, meta: dict, source: str) -> dict:
        check_record(meta, source, cls)
        if meta.get("kind") != cls.kind:
            raise ModelError(f"{source}: a {meta.get('kind')!r} model, not {cls.kind!r}")
        try:
            sha = str(meta["backbone"]["weights_sha256"])
        except (KeyError, TypeError) as e:
            raise ModelError(f"{source}: the record names no Presto weights ({e})") from e
        fields_ = set(TrainConfig.__dataclass_fields__)
        cfg = config_from_dict({k: v for k, v in (meta.get("config") or {}).items() if k in fields_},
                               f"{source} (config)")
        ti = np.asarray(meta["task_info"], dtype=np.float32) if meta.get("task_info") is not None else None
        bands = tuple(meta.get("bands") or BANDS)
        return {"presto_sha256": sha, "config": cfg, "t": int(meta.get("t", 12)), "task_info": ti,
                "info": dict(meta.get("info") or {}), "bands": None if bands == tuple(BANDS) else bands}


@dataclass
class PrestoLRModel(_PrestoModel):
    """``presto``: frozen Presto embeddings + logistic regression (module docstring)."""

    what: ClassVar[str] = "frozen Presto + logistic regression"
    kind: ClassVar[str] = KINDS[0]

    coef: np.ndarray | None = None  # [128] float64 once adapted
    intercept: float = 0.0

    @property
    def adapted(self) -> bool:
        return self.coef is not None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu") if self.embedder is None else next(self.embedder.model.parameters()).device

    def to(self, device=None, dtype=None) -> "PrestoLRModel":
        if self.embedder is not None and device is not None:
            self.embedder.model.to(device=device)
        return self

    def adapt_embeddings(self, emb: np.ndarray, y: np.ndarray, task_info=None, seed: int = 0) -> "PrestoLRModel":
        m = self._copy_for(task_info)
        m.coef, m.intercept = fit_logistic(emb, y, seed)
        m.info["finetune"] = {"n_train": int(len(y)), "n_pos": int(np.sum(np.asarray(y) == 1)), "seed": int(seed),
                              "classifier": "LogisticRegression(class_weight='balanced', max_iter=1000)"}
        return m

    def adapt(self, x, y, *, task_info=None, cfg=None, seed: int = 0, lat=None, lon=None,
              start_dates=None) -> "PrestoLRModel":
        m = self._copy_for(task_info)
        return m.adapt_embeddings(m.embed(x, lat, lon, start_dates), y, None, seed)

    def predict_embeddings(self, emb: np.ndarray, temperature: float | None = None) -> np.ndarray:
        if self.coef is None:
            raise NotFittedError("presto: predict_proba called before the logistic regression was fitted")
        z = np.asarray(emb, dtype=np.float64) @ self.coef + self.intercept
        if temperature is not None:
            z = z / float(temperature)
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, x, *, batch_size: int | None = None, temperature: float | None = None, lat=None,
                      lon=None, start_dates=None) -> np.ndarray:
        if self.coef is None:
            raise NotFittedError("presto: predict_proba called before the logistic regression was fitted")
        return self.predict_embeddings(self.embed(x, lat, lon, start_dates), temperature)

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {} if self.coef is None else {"classifier.coef": np.asarray(self.coef, dtype=np.float64),
                                               "classifier.intercept": np.array([self.intercept], dtype=np.float64)}
        return self._record(self.adapted), arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, source: str = "model", t: int | None = None) -> "PrestoLRModel":
        common = cls._common(meta, source)
        want = {"classifier.coef", "classifier.intercept"} if meta.get("adapted") else set()
        if set(arrays) != want:
            raise ModelError(f"{source}: weights differ from a {cls.kind} model's ({sorted(set(arrays) ^ want)[:4]})")
        coef = intercept = None
        if want:
            coef = np.asarray(arrays["classifier.coef"], dtype=np.float64).ravel()
            intercept = float(np.asarray(arrays["classifier.intercept"]).ravel()[0])
            if coef.shape != (EMBED_DIM,) or not np.isfinite(coef).all():
                raise ModelError(f"{source}: logistic-regression coefficients must be {EMBED_DIM} finite numbers")
        return cls(**common, coef=coef, intercept=intercept or 0.0)


@dataclass
class PrestoFTModel(_PrestoModel):
    """``presto-ft``: the fine-tuned encoder + linear head (module docstring)."""

    what: ClassVar[str] = "fine-tuned Presto"
    kind: ClassVar[str] = KINDS[1]

    net: torch.nn.Sequential | None = field(default=None, repr=False)

    @property
    def adapted(self) -> bool:
        return self.net is not None

    @property
    def device(self) -> torch.device:
        if self.net is not None:
            return next(self.net.parameters()).device
        return torch.device("cpu") if self.embedder is None else next(self.embedder.model.parameters()).device

    def to(self, device=None, dtype=None) -> "PrestoFTModel":
        if self.net is not None:
            self.net.to(device=device)
        if self.embedder is not None and device is not None:
            self.embedder.model.to(device=device)
        return self

    def adapt(self, x, y, *, task_info=None, cfg: TrainConfig | None = None, seed: int = 0, lat=None, lon=None,
              start_dates=None) -> "PrestoFTModel":
        m = self._copy_for(task_info)
        cfg = cfg or self.config
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        base = m.presto_embedder().model
        tensors = m.presto_inputs(x, lat, lon, start_dates).tensors(next(base.parameters()).device)
        precision = training_precision(cfg.pft_precision, next(base.parameters()).device)
        m.net = finetune_presto(base, tensors, y, seed, cfg.ft_steps, cfg.ft_lr, cfg.ft_batch,
                                train_blocks=cfg.pft_train_blocks, precision=precision)
        m.info["finetune"] = {"n_train": int(len(y)), "n_pos": int(np.sum(np.asarray(y) == 1)),
                              "steps": int(cfg.ft_steps), "lr": cfg.ft_lr, "batch": int(cfg.ft_batch), "seed": int(seed),
                              "train_blocks": int(cfg.pft_train_blocks), "precision": precision}
        return m

    def predict_proba(self, x, *, batch_size: int | None = None, temperature: float | None = None, lat=None,
                      lon=None, start_dates=None) -> np.ndarray:
        if self.net is None:
            raise NotFittedError("presto-ft: predict_proba called before fine-tuning")
        return net_probabilities(self.net, self.presto_inputs(x, lat, lon, start_dates), batch_size,
                                 temperature, self.inference_precision)

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {} if self.net is None else {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        return self._record(self.adapted), arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, source: str = "model", t: int | None = None) -> "PrestoFTModel":
        from cropmeta.models.presto import PrestoEncoder
        from cropmeta.train.trained import load_module_state

        common = cls._common(meta, source)
        net = None
        if meta.get("adapted"):
            net = torch.nn.Sequential()
            net.add_module("encoder", PrestoEncoder())
            net.add_module("head", torch.nn.Linear(EMBED_DIM, 1))
            known = set(net.state_dict())
            if set(arrays) != known:
                raise ModelError(f"{source}: weights differ from a fine-tuned Presto's "
                                 f"({sorted(set(arrays) ^ known)[:4]})")
            load_module_state(net, "", arrays, source)
            net.eval()
        elif arrays:
            raise ModelError(f"{source}: an unadapted {cls.kind} model carries no weights")
        return cls(**common, net=net)
