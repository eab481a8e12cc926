"""Meta-training (TIML / MAML with learn2learn), plain pretraining, fine-tuning, checkpoints.

The reusable API (also what ``cropmeta compare`` builds on)::

    meta_train(samples, target, cfg, learner="timl"|"maml"|"concat", seed) -> TrainedModel
    pretrain(samples, target, cfg, seed) -> TrainedModel
    from_scratch(cfg, t, seed) -> TrainedModel
    finetune(model, x, y, task_info, cfg, seed) -> TrainedModel      (a copy; the input is reused)
    predict_proba(model, x, task_info=None) -> np.ndarray [N]
    train(region, crop=None, source=None, preset="quick", seed=0, out=None, resume=False, ...) -> dict
    load_predictor(run_dir) -> Predictor;  save_temperature(run_dir, T)

Names are imported lazily (``from cropmeta.train import train`` loads only what it needs), so a
process that only loads a predictor does not import learn2learn or the ingestion stack.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Predictor": "checkpoint", "load_model": "checkpoint", "load_predictor": "checkpoint",
    "save_model": "checkpoint", "save_temperature": "checkpoint",
    "LEARNERS": "config", "PRESETS": "config", "TrainConfig": "config", "load_config_file": "config",
    "resolve_config": "config",
    "finetune": "finetune",
    "fit_normalizer": "maml", "meta_train": "maml",
    "pretrain": "pretrain",
    "load_samples": "run", "train": "run",
    "TrainedModel": "trained", "from_scratch": "trained", "predict_proba": "trained", "resolve_device": "trained",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"cropmeta.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'cropmeta.train' has no attribute {name!r}")


def __dir__():
    return __all__
