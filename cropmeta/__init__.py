"""cropmeta: task-informed meta-learning (TIML) for crop maps from satellite time series.

The Python API (every name is imported on first use, so ``import cropmeta`` does not import torch)::

    import cropmeta

    samples = cropmeta.load_samples()                          # SampleSet (simulated world by default)
    target = cropmeta.resolve_target(samples, "kenya", "sweet potato")   # a Task
    tasks = cropmeta.build_tasks(samples, exclude=[target])    # meta-training tasks
    run = cropmeta.train_model("kenya", samples=samples)       # TrainResult (run_dir, metrics, …)
    model = cropmeta.load_model(run.run_dir)                   # Predictor
    prob = cropmeta.predict(model, samples.x[:10])             # crop probabilities
    exported = cropmeta.export_map(run.run_dir, "kenya.tif")   # ExportResult (map, quicklook, …)
    report = cropmeta.compare(region="kenya", samples=samples) # CompareResult (cells, summary, files)

Learners: :func:`get_learner` (``cropmeta.learners.kinds()`` lists the registered kinds) and
:class:`Learner`, the contract a new one implements (docs/architecture.md). Configuration: :class:`TrainConfig` / :func:`resolve_config` (docs/configuration.md). Errors: the
classes of :mod:`cropmeta.errors` (``CropmetaError`` and one subclass per area).
"""

from __future__ import annotations

import importlib

from cropmeta._version import __version__
from cropmeta.errors import (
    ConfigError,
    CropmetaError,
    DataError,
    FetchError,
    InputError,
    ModelError,
    NotFittedError,
)


#: public name → module that defines it (imported on first access)
_LAZY = {
    # functions of the API
    "load_samples": "cropmeta.api", "train_model": "cropmeta.api", "load_model": "cropmeta.api",
    "predict": "cropmeta.api", "export_map": "cropmeta.api", "compare": "cropmeta.api",
    # typed results
    "TrainResult": "cropmeta.results", "ExportResult": "cropmeta.results", "CompareResult": "cropmeta.results",
    # samples and tasks
    "SampleSet": "cropmeta.io.store", "Task": "cropmeta.tasks", "TargetData": "cropmeta.tasks",
    "resolve_target": "cropmeta.tasks", "build_tasks": "cropmeta.tasks", "target_data": "cropmeta.tasks",
    "normalise_crop": "cropmeta.crops", "binary_metrics": "cropmeta.metrics",
    # configuration and models
    "TrainConfig": "cropmeta.train.config", "InContextOptions": "cropmeta.train.config",
    "resolve_config": "cropmeta.train.config", "Predictor": "cropmeta.train.checkpoint",
    # the learner contract (docs/architecture.md) and the band schema
    "Learner": "cropmeta.learners.base", "get_learner": "cropmeta.learners.base", "BandSchema": "cropmeta.bandschema",
}

__all__ = sorted([*_LAZY, "__version__", "CropmetaError", "InputError", "DataError", "ConfigError", "ModelError",
                  "NotFittedError", "FetchError"])


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cropmeta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
