"""Every registered learner (:mod:`cropmeta.learners`) as a method of the comparison: one adapter,
:class:`LearnerMethod`, over the learner contract.

TIML, MAML, plain pretraining and from scratch share the classifier (LSTM, TIML defaults), the
fine-tuning protocol (:func:`cropmeta.train.finetune.finetune`: SGD, ``ft_steps`` steps on
class-balanced batches) and the training configuration; they differ only in where the weights that
fine-tuning starts from come from (meta-training with / without task information, supervised
pretraining on all non-target tasks pooled, a seeded random initialisation normalised with the
fine-tuning data's statistics). The in-context learner adapts by reading the labelled samples as a
support set. The same code serves them all:

- ``prepare`` = ``learner.fit(source, target, seed)`` (nothing for a learner that needs no source);
- ``fit`` = ``model.adapt(x, y, task_info, cfg, seed)``, always from the prepared model, which is
  obtained once per seed and reused for every fit (every shot count and calibration fold);
- ``fit_zero_shot`` = the prepared model as it is (learners declaring ``zero_shot``);
- ``prepared_state`` / ``load_prepared_state`` = the model's ``to_state`` / the registry's loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cropmeta.errors import InputError, NotFittedError
from cropmeta.evaluate.base import Method, TargetTask
from cropmeta.learners.base import get_learner, model_from_state

__all__ = ["LearnerMethod", "resolve_train_config"]


def resolve_train_config(preset: str = "quick", config: Any = None) -> tuple[Any, dict]:
    """(TrainConfig, its JSON dict) from a preset and a config file path, a dict of overrides or a
    ready :class:`~cropmeta.train.config.TrainConfig`."""
    from cropmeta.train.config import TrainConfig, resolve_config

    if isinstance(config, TrainConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = resolve_config(preset, overrides=config)
    else:
        cfg = resolve_config(preset, config_file=config)
    return cfg, cfg.to_dict()


class LearnerMethod(Method):
    """The registered learner ``name`` under the comparison's contract (module docstring).
    ``options``: overrides of the learner's own options section (e.g. the in-context learner's
    ``d_model``, ``iterations``)."""

    def __init__(self, name: str, cfg: Any = None, **options):
        if cfg is None:
            cfg, _ = resolve_train_config("quick")
        try:
            self.learner = get_learner(name, cfg, options)
        except InputError as e:
            raise InputError(f"not a deep method: {name!r} ({e})") from None
        self.name = name
        self.cfg = cfg
        self.options = dict(options)
        self.needs_source = self.learner.needs_source
        self.base = None  # the prepared model the fits start from (None for scratch until the first fit)
        self.model = None  # the fitted copy
        self.task_info: np.ndarray | None = None
        self.seed = 0
        self.schema = None  # band schema of the source samples (scratch: of the first fit's arrays)

    def set_target(self, target: TargetTask, seed: int) -> None:
        """Task information and seed without preparing (used when the prepared weights come from cache)."""
        self.task_info = np.asarray(target.task_info, dtype=np.float32)
        self.seed = int(seed)

    def prepare(self, source, target: TargetTask, seed: int, workdir: str | Path | None = None) -> "LearnerMethod":
        self.set_target(target, seed)
        self.schema = getattr(source, "schema", None)
        if self.needs_source:
            self.base = self.learner.fit(source, target.extra.get("task"), seed, workdir=workdir,
                                         resume=workdir is not None, progress=False)
        else:
            self.base = None  # built at fit time (T comes from the data)
        return self

    def _start(self, x: np.ndarray):
        if self.base is None:
            from cropmeta.train.trained import schema_for_width

            if self.needs_source:
                raise NotFittedError(f"{self.name}: fit called before prepare")
            schema = self.schema or schema_for_width(x.shape[2], x.shape[1])
            # the same initial model for every fit of a seed (shots and calibration folds)
            self.base = self.learner.start(x.shape[1], self.seed, schema)
        return self.base

    def fit(self, x, y, seed: int = 0) -> "LearnerMethod":
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3:
            raise InputError(f"{self.name}: samples must be [N, T, bands], got {list(x.shape)}")
        base = self._start(x)
        ti = self.task_info if base.uses_task_info else None
        self.model = base.adapt(x, y, task_info=ti, cfg=self.cfg, seed=seed)
        return self

    def fit_zero_shot(self, seed: int = 0) -> "LearnerMethod":
        """No adaptation: the meta-learned (TIML: with the target's task information) or pretrained
        model predicts the target as it is (learners whose ``zero_shot`` is set)."""
        if not self.learner.zero_shot or self.base is None:
            return super().fit_zero_shot(seed)
        self.model = self.base.zero_shot(self.task_info)
        return self

    def predict_proba(self, x) -> np.ndarray:
        if self.model is None:
            raise NotFittedError(f"{self.name}: predict_proba called before fit")
        return np.asarray(self.model.predict_proba(x), dtype=np.float64)

    def prepared_state(self):
        if self.base is None or not self.needs_source:
            return None
        return self.base.to_state()

    def load_prepared_state(self, meta: dict, arrays: dict) -> bool:
        from cropmeta.train.common import resolve_device, torch_dtype

        model = model_from_state(meta, arrays, source=f"cached {self.name} weights")
        model.to(device=resolve_device(self.cfg.device), dtype=torch_dtype(self.cfg.dtype))
        self.base = model
        return True
