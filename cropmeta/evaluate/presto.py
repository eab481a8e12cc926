"""The Presto methods of the comparison.

``presto``: frozen Presto embeddings + logistic regression ("Presto R" of Tseng et al. 2023).
``presto-ft``: the encoder and a linear head fine-tuned on the target's labels with the protocol
every deep method of cropmeta shares (SGD lr ``ft_lr`` 1e-3, ``ft_steps`` 250 steps, class-balanced
batches of ``ft_batch`` 10 + 10; the numbers Presto's own CropHarvest fine-tuning uses).

- Each sample's Presto inputs come from its canonical bands, its own latitude/longitude and the
  months of its steps from its start date (:func:`cropmeta.models.presto.presto_inputs`); Dynamic
  World is marked missing.
- ``prepare`` embeds every sample of the target task (its training pool and test set) once, with
  the encoder in eval mode and no gradient; the embeddings are cached under
  ``$CROPMETA_HOME/cache/presto/<weights sha>/<inputs hash>.safetensors``, so seeds and later runs
  reuse them.
- ``fit``: ``LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed)`` on the
  128-number embeddings; ``predict_proba``: its positive-class probability. The fits are those of the
  ``presto`` / ``presto-ft`` learners (:mod:`cropmeta.train.presto_frozen`), so ``cropmeta train
  --learner presto`` and a compare cell fit the same way.

The methods' contract passes samples as arrays only; the per-sample location and dates are found
by the sample's values (a digest of its ``[T, 18]`` row) among the target's samples, which
:func:`cropmeta.evaluate.compare.build_target` passes in ``TargetTask.extra["samples"]``. A sample
not found there (e.g. a generated view) is placed at the target region's centre with the target's
most common start date (or February, CropHarvest's start, when none is known).

Adaptation cost: a ``presto`` fit is the logistic regression only (the frozen embeddings are computed
once per target in ``prepare``, whose time the report records separately); a ``presto-ft`` fit is
the whole fine-tuning.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from cropmeta.errors import NotFittedError
from cropmeta.evaluate.base import check_xy as _check_xy
from cropmeta.evaluate.methods import Method, TargetTask
from cropmeta.models.inference import training_precision
from cropmeta.models.presto_embed import PrestoEmbedder

__all__ = ["PrestoEmbedder", "PrestoFineTuned", "PrestoMethod", "PrestoTIMLMethod"]


def _row_digests(x: np.ndarray) -> list[bytes]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in x]


class PrestoMethod(Method):
    """``presto``: frozen Presto embeddings + logistic regression (see the module docstring).
    Options: ``weights`` (a safetensors / published .pt path; default: the workspace copy from
    ``cropmeta models download presto``), ``batch_size``, ``device`` (default: the training
    configuration's), ``cache`` (embeddings on disk, default on)."""

    name = "presto"
    needs_source = False
    #: embed the target's samples in prepare (the frozen method)
    frozen = True

    def __init__(self, cfg: Any = None, weights: str | Path | None = None, batch_size: int | None = None,
                 device: str | None = None, cache: bool = True):
        if device is None and cfg is not None:
            from cropmeta.train.common import resolve_device

            device = str(resolve_device(cfg.device))
        self.cfg = cfg
        self.options = {"weights": weights, "batch_size": batch_size, "device": device, "cache": cache}
        self.embedder: PrestoEmbedder | None = None
        self.index: dict[bytes, int] = {}
        self.target_inputs = None
        self.target_emb: np.ndarray | None = None
        self.fallback = (0.0, 0.0, None)
        self.bands: list[str] | None = None  # the target's band schema (None: CropHarvest's 18)
        self.model = None
        self._constant: float | None = None

    def _embedder(self) -> PrestoEmbedder:
        if self.embedder is None:
            self.embedder = PrestoEmbedder(**self.options)
        return self.embedder

    def set_target(self, target: TargetTask, seed: int) -> None:
        task = target.extra.get("task")
        samples = target.extra.get("samples")
        start = None
        if samples is not None and len(samples):
            dates = samples.meta["start_date"].dropna().astype(str)
            start = str(dates.mode().iloc[0]) if len(dates) else None
        lat, lon = (task.lat, task.lon) if task is not None else (0.0, 0.0)
        if task is None and samples is not None and len(samples):
            lat, lon = float(samples.meta["lat"].mean()), float(samples.meta["lon"].mean())
        self.fallback = (float(lat), float(lon), start)

    def prepare(self, source, target: TargetTask, seed: int, workdir=None) -> "PrestoMethod":
        self.set_target(target, seed)
        return self.prepare_target(target)

    def prepare_target(self, target: TargetTask) -> "PrestoMethod":
        """Index the target's samples (location, dates) and, for the frozen methods, embed them."""
        from cropmeta.models.presto_layout import presto_inputs

        samples = target.extra.get("samples")
        self.index, self.target_inputs, self.target_emb = {}, None, None
        if samples is not None and len(samples):
            meta = samples.meta
            self.bands = list(samples.schema.bands)  # any band set: Presto masks the groups it lacks
            self.target_inputs = presto_inputs(samples.x, meta["lat"].to_numpy(), meta["lon"].to_numpy(),
                                               meta["start_date"].tolist(), bands=self.bands)
            self.index = {d: i for i, d in enumerate(_row_digests(samples.x))}
            if self.frozen:
                self.target_emb = self._embedder().embed(self.target_inputs)
        return self

    def _locate(self, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """(row of each sample among the target's, −1 when unknown; positions of the unknown)."""
        rows = np.array([self.index.get(d, -1) for d in _row_digests(x)], dtype=np.int64)
        return rows, [int(i) for i in np.where(rows < 0)[0]]

    def inputs_for(self, x: np.ndarray):
        """Presto inputs of ``x``: the target's own (location, dates) where the sample is one of the
        target's, else the target's fallback location and start date."""
        from cropmeta.models.presto_layout import PrestoInputs, presto_inputs

        x = np.asarray(x, dtype=np.float32)
        rows, _ = self._locate(x)
        lat, lon, start = self.fallback
        built = presto_inputs(x, lat, lon, [start] * len(x), bands=self.bands)
        if self.target_inputs is None or not (rows >= 0).any():
            return built
        known = np.where(rows >= 0)[0]
        arrays = built.arrays()
        for k, v in self.target_inputs.arrays().items():
            arrays[k][known] = v[rows[known]]
        return PrestoInputs(**arrays)

    def embeddings(self, x: np.ndarray) -> np.ndarray:
        """Frozen embeddings of ``x`` (the prepared ones where the sample is the target's)."""
        x = np.asarray(x, dtype=np.float32)
        rows, miss = self._locate(x)
        out = np.empty((len(x), 128), dtype=np.float32)
        known = np.where(rows >= 0)[0]
        if len(known) and self.target_emb is not None:
            out[known] = self.target_emb[rows[known]]
        else:
            miss = list(range(len(x)))
        if miss:
            out[miss] = self._embedder().embed(self.inputs_for(x[miss]))
        return out

    def fit(self, x, y, seed: int = 0) -> "PrestoMethod":
        from cropmeta.train.presto_frozen import fit_logistic

        x, y = _check_xy(x, y, self.name)
        if self._one_class(y):
            return self
        self.model = fit_logistic(self.embeddings(x), y, seed)  # the `presto` learner's own fit
        return self

    def _one_class(self, y: np.ndarray) -> bool:
        """With one class only, predict it (like the random forest)."""
        self._constant = None
        if len(np.unique(y)) < 2:
            self.model, self._constant = None, float(y[0]) if len(y) else 0.5
            return True
        return False

    def _check_fitted(self, x) -> np.ndarray:
        if self.model is None and self._constant is None:
            raise NotFittedError(f"{self.name}: predict_proba called before fit")
        return np.asarray(x, dtype=np.float32)

    def predict_proba(self, x) -> np.ndarray:
        x = self._check_fitted(x)
        if self._constant is not None:
            return np.full(len(x), self._constant)
        coef, intercept = self.model
        return 1.0 / (1.0 + np.exp(-(self.embeddings(x).astype(np.float64) @ coef + intercept)))


class PrestoFineTuned(PrestoMethod):
    """``presto-ft``: a copy of the pretrained encoder plus a linear head (128 → 1 logit), all
    weights trained by SGD on class-balanced batches (module docstring); every fit starts again from
    the pretrained weights. Options as ``presto`` plus ``steps``, ``lr``, ``batch`` (per class)."""

    name = "presto-ft"
    frozen = False

    def __init__(self, cfg: Any = None, steps: int | None = None, lr: float | None = None,
                 batch: int | None = None, **options):
        super().__init__(cfg=cfg, **options)
        self.steps = int(steps if steps is not None else getattr(cfg, "ft_steps", 250))
        self.lr = float(lr if lr is not None else getattr(cfg, "ft_lr", 1e-3))
        self.batch = int(batch if batch is not None else getattr(cfg, "ft_batch", 10))
        self.train_blocks = int(getattr(cfg, "pft_train_blocks", 2))
        self.precision = training_precision(getattr(cfg, "pft_precision", "auto"), self.options["device"] or "cpu")

    def fit(self, x, y, seed: int = 0) -> "PrestoFineTuned":
        from cropmeta.train.presto_frozen import finetune_presto

        x, y = _check_xy(x, y, self.name)
        if self._one_class(y):
            return self
        base = self._embedder().model
        tensors = self.inputs_for(x).tensors(next(base.parameters()).device)
        # the `presto-ft` learner's own fine-tuning
        self.model = finetune_presto(base, tensors, y, seed, self.steps, self.lr, self.batch,
                                     train_blocks=self.train_blocks, precision=self.precision)
        self.adaptation_info = {"finetune": {"steps": self.steps, "lr": self.lr, "precision": self.precision,
                                             "train_blocks": self.train_blocks}}
        return self

    def predict_proba(self, x) -> np.ndarray:
        from cropmeta.train.presto_frozen import net_probabilities

        x = self._check_fitted(x)
        if self._constant is not None:
            return np.full(len(x), self._constant)
        return net_probabilities(self.model, self.inputs_for(x), self.options["batch_size"])


class PrestoTIMLMethod(PrestoMethod):
    """``presto-timl`` (``task_info=True``) / ``presto-maml``: the head of
    :mod:`cropmeta.train.presto_timl` over frozen Presto embeddings, meta-trained on the source's
    tasks (the target excluded, TIML's tasks, splits and rules) in ``prepare``, fine-tuned on the
    target's shots with the shared protocol in ``fit``; ``fit_zero_shot``: the meta-trained head with
    the target's task information. Options as ``presto``."""

    name = "presto-timl"
    needs_source = True
    frozen = True

    def __init__(self, cfg: Any = None, task_info: bool = True, **options):
        if cfg is None:
            from cropmeta.evaluate.deep import resolve_train_config

            cfg, _ = resolve_train_config("quick")
        super().__init__(cfg=cfg, **options)
        self.task_info_on = bool(task_info)
        self.name = "presto-timl" if task_info else "presto-maml"
        self.base = None
        self.target_task: TargetTask | None = None
        self.task_info: np.ndarray | None = None

    def set_target(self, target: TargetTask, seed: int) -> None:
        super().set_target(target, seed)
        self.target_task = target
        self.task_info = np.asarray(target.task_info, dtype=np.float32)

    def prepare(self, source, target: TargetTask, seed: int, workdir=None) -> "PrestoTIMLMethod":
        from cropmeta.train.presto_timl import meta_train_presto

        super().prepare(source, target, seed, workdir)
        self.base = meta_train_presto(source, target.extra.get("task"), self.cfg, seed, embedder=self._embedder(),
                                      task_info=self.task_info_on, workdir=workdir, resume=workdir is not None)
        return self

    def _ready(self):
        if self.base is None:
            raise NotFittedError(f"{self.name}: fit called before prepare")
        return self.base

    def fit(self, x, y, seed: int = 0) -> "PrestoTIMLMethod":
        x, y = _check_xy(x, y, self.name)
        base = self._ready()
        if self._one_class(y):
            return self
        self.model = base.adapt_embeddings(self.embeddings(x), y, self.task_info, self.cfg, seed)
        return self

    def fit_zero_shot(self, seed: int = 0) -> "PrestoTIMLMethod":
        self._constant = None
        self.model = self._ready().with_task(self.task_info)
        return self

    def predict_proba(self, x) -> np.ndarray:
        x = self._check_fitted(x)
        if self._constant is not None:
            return np.full(len(x), self._constant)
        return self.model.predict_embeddings(self.embeddings(x))

    def prepared_state(self):
        return None if self.base is None else self.base.to_state()

    def load_prepared_state(self, meta: dict, arrays: dict) -> bool:
        from cropmeta.train.presto_timl import PrestoTIMLModel
        from cropmeta.train.common import resolve_device, torch_dtype

        model = PrestoTIMLModel.from_state(meta, arrays, source=f"cached {self.name} weights")
        model.to(device=resolve_device(self.cfg.device), dtype=torch_dtype(self.cfg.dtype))
        self.base = model.use_weights(embedder=self._embedder())
        if self.target_task is not None:
            self.prepare_target(self.target_task)
        return True
