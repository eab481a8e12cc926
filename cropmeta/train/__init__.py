"""Meta-training (TIML / MAML with learn2learn), plain pretraining, fine-tuning, checkpoints.

The reusable API (also what ``cropmeta compare`` builds on)::

    meta_train(samples, target, cfg, learner="timl"|"maml"|"concat", seed) -> TrainedModel
    pretrain(samples, target, cfg, seed) -> TrainedModel
    from_scratch(cfg, t, seed) -> TrainedModel
    finetune(model, x, y, task_info, cfg, seed) -> TrainedModel      (a copy; the input is reused)
    predict_proba(model, x, task_info=None) -> np.ndarray [N]
    train(region, crop=None, ..., samples=... | loader=...) -> dict     (cropmeta.app.train.train loads them)
    load_predictor(run_dir) -> Predictor;  save_temperature(run_dir, T)

``meta_train`` and ``train`` are imported lazily: a process that only loads a predictor or
fine-tunes does not import learn2learn or the training loop. Where samples come from (ingesting,
the workspace's datasets) is the app layer's: :mod:`cropmeta.app.samples`.
"""

from __future__ import annotations

import importlib

from cropmeta.train.checkpoint import Predictor, load_model, load_predictor, save_model, save_temperature
from cropmeta.train.common import fit_normalizer
from cropmeta.train.config import PRESETS, TrainConfig, load_config_file, resolve_config
from cropmeta.train.finetune import finetune
from cropmeta.train.pretrain import pretrain
from cropmeta.train.trained import TrainedModel, from_scratch, predict_proba
from cropmeta.train.common import resolve_device

_LAZY = {"meta_train": "maml", "train": "run"}

__all__ = sorted([
    "LEARNERS", "PRESETS", "Predictor", "TrainConfig", "TrainedModel", "finetune", "fit_normalizer",
    "from_scratch", "load_config_file", "load_model", "load_predictor", "predict_proba", "pretrain",
    "resolve_config", "resolve_device", "save_model", "save_temperature", *_LAZY,
])


def __getattr__(name: str):
    if name == "LEARNERS":  # every registered learner kind (cropmeta.learners), resolved when asked
        from cropmeta.learners.base import kinds

        return kinds()
    if name in _LAZY:
        return getattr(importlib.import_module(f"cropmeta.train.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'cropmeta.train' has no attribute {name!r}")
