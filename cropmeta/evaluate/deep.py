"""The deep methods of the comparison, as adapters over :mod:`cropmeta.train`.

All four share the classifier (LSTM, TIML defaults), the fine-tuning protocol
(:func:`cropmeta.train.finetune.finetune`: SGD, ``ft_steps`` steps on class-balanced batches) and
the training configuration; they differ only in where the weights that fine-tuning starts from
come from:

- ``timl``: :func:`cropmeta.train.maml.meta_train` with the task encoder (FiLM from task info);
- ``maml``: the same meta-training without task information;
- ``pretrained``: :func:`cropmeta.train.pretrain.pretrain` (supervised on all non-target tasks
  pooled, early stopping on the validation tasks);
- ``scratch``: a random initialisation (seeded), normalised with the fine-tuning data's statistics.

The prepared weights are obtained once per seed and reused for every fit (every shot count and
calibration fold): :func:`~cropmeta.train.finetune.finetune` returns a fine-tuned *copy*.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cropmeta.errors import InputError, NotFittedError
from cropmeta.evaluate.methods import Method, TargetTask


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


class DeepMethod(Method):
    """One of ``timl``, ``maml``, ``pretrained``, ``scratch`` (see the module docstring)."""

    KINDS = ("timl", "maml", "pretrained", "scratch")

    def __init__(self, name: str, cfg: Any = None):
        if name not in self.KINDS:
            raise InputError(f"not a deep method: {name!r}")
        if cfg is None:
            cfg, _ = resolve_train_config("quick")
        self.name = name
        self.cfg = cfg
        self.needs_source = name != "scratch"
        self.base = None  # TrainedModel the fits start from (None for scratch until the first fit)
        self.schema = None  # band schema of the source samples (scratch: of the first fit's arrays)
        self.model = None  # the fitted copy
        self.task_info: np.ndarray | None = None
        self.seed = 0

    def prepare(self, source, target: TargetTask, seed: int, workdir: str | Path | None = None) -> "DeepMethod":
        self.task_info = np.asarray(target.task_info, dtype=np.float32)
        self.seed = int(seed)
        task = target.extra.get("task")
        self.schema = getattr(source, "schema", None)
        if self.name in ("timl", "maml"):
            from cropmeta.train.maml import meta_train

            self.base = meta_train(source, task, self.cfg, learner=self.name, seed=seed,
                                   workdir=workdir, resume=workdir is not None, progress=False)
        elif self.name == "pretrained":
            from cropmeta.train.pretrain import pretrain

            self.base = pretrain(source, task, self.cfg, seed=seed, progress=False)
        else:
            self.base = None  # built at fit time (T comes from the data)
        return self

    def _start(self, x: np.ndarray):
        if self.base is None:
            from cropmeta.train.trained import from_scratch, schema_for_width

            if self.name != "scratch":
                raise NotFittedError(f"{self.name}: fit called before prepare")
            schema = self.schema or schema_for_width(x.shape[2], x.shape[1])
            # the same random initialisation for every fit of a seed (shots and calibration folds)
            self.base = from_scratch(self.cfg, t=x.shape[1], seed=self.seed, learner="maml", schema=schema)
        return self.base

    def fit(self, x, y, seed: int = 0) -> "DeepMethod":
        from cropmeta.train.finetune import finetune

        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3:
            raise InputError(f"{self.name}: samples must be [N, T, bands], got {list(x.shape)}")
        base = self._start(x)
        ti = self.task_info if base.uses_task_info else None
        self.model = finetune(base, x, y, task_info=ti, cfg=self.cfg, seed=seed)
        return self

    def fit_zero_shot(self, seed: int = 0) -> "DeepMethod":
        """No fine-tuning: the meta-learned (TIML: with the target's task information) or pretrained
        weights predict the target as they are."""
        import dataclasses

        if self.name == "scratch" or self.base is None:
            return super().fit_zero_shot(seed)
        ti = self.task_info if self.base.uses_task_info else None
        self.model = dataclasses.replace(self.base, task_info=None if ti is None else np.asarray(ti, np.float32))
        return self

    def predict_proba(self, x) -> np.ndarray:
        from cropmeta.train.trained import predict_proba

        if self.model is None:
            raise NotFittedError(f"{self.name}: predict_proba called before fit")
        return np.asarray(predict_proba(self.model, x), dtype=np.float64)

    def prepared_state(self):
        if self.base is None or self.name == "scratch":
            return None
        return self.base.to_state()

    def load_prepared_state(self, meta: dict, arrays: dict) -> bool:
        from cropmeta.train.trained import TrainedModel, resolve_device, torch_dtype

        model = TrainedModel.from_state(meta, arrays, source=f"cached {self.name} weights")
        model.to(device=resolve_device(self.cfg.device), dtype=torch_dtype(self.cfg.dtype))
        self.base = model
        return True

    def set_target(self, target: TargetTask, seed: int) -> None:
        """Task information and seed without preparing (used when the prepared weights come from cache)."""
        self.task_info = np.asarray(target.task_info, dtype=np.float32)
        self.seed = int(seed)
