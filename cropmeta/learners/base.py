"""The learner contract and the registry keyed by ``kind`` (scikit-learn's estimators and
learn2learn's algorithm wrappers in spirit: small objects, one contract, a registry instead of
``if kind == …`` chains).

A **learner** meta-fits or pretrains on a :class:`~cropmeta.io.store.SampleSet` with the target task
excluded and returns a **model**; a model adapts to the target's labelled samples and predicts
probabilities; both save and load as safetensors + JSON. Everything generic — ``cropmeta train``
(:mod:`cropmeta.train.run`), checkpoint loading (:func:`cropmeta.train.checkpoint.load_model`,
:func:`~cropmeta.train.checkpoint.load_predictor`) and the comparison's adapter
(:class:`cropmeta.evaluate.deep.LearnerMethod`) — goes through :func:`get_learner` /
:func:`model_class`; nothing outside ``cropmeta/learners/`` branches on a kind.

Adding a learner (docs/architecture.md has the complete example)::

    @register
    class MyLearner(Learner):
        kind = "mine"
        model_class = MyModel           # to_state / from_state / adapt / predict_proba
        def fit(self, samples, target, seed, **kw):
            return MyModel(...)

Built-in kinds are registered on first use (their modules are imported by name, so importing this
module is light and creates no import cycle).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, ClassVar

import numpy as np

from cropmeta.errors import ConfigError, ModelError, NotFittedError

__all__ = ["BUILTIN_KINDS", "MODEL_FORMAT", "MODEL_FORMAT_VERSION", "RESUME_FORMAT", "Model", "Learner", "register", "unregister",
           "sample_context",
           "get_learner", "learner_class", "model_class", "kinds", "check_record", "model_from_state"]

#: the format tag of every ``model.json`` (one definition) and its version
MODEL_FORMAT = "cropmeta-model"
MODEL_FORMAT_VERSION = 1
#: the format tag of every meta-training resume state (``checkpoint/state.json``)
RESUME_FORMAT = "cropmeta-resume"

#: built-in kinds → the module that registers them (imported on first use)
_BUILTIN = {"timl": "cropmeta.learners.timl", "maml": "cropmeta.learners.timl", "concat": "cropmeta.learners.timl",
            "pretrained": "cropmeta.learners.pretrain", "scratch": "cropmeta.learners.scratch",
            "in-context": "cropmeta.learners.incontext", "presto-timl": "cropmeta.learners.presto_timl",
            "presto-maml": "cropmeta.learners.presto_timl", "presto": "cropmeta.learners.presto",
            "presto-ft": "cropmeta.learners.presto", "ensemble": "cropmeta.learners.ensemble",
            "random-forest": "cropmeta.learners.forest"}
#: the built-in kinds, in their documented order, known without importing them (the CLI's help lists them)
BUILTIN_KINDS = tuple(_BUILTIN)
_REGISTRY: dict[str, type["Learner"]] = {}


class Model:
    """Base class of what a learner returns (the models of the built-in learners derive from it).

    Attributes: ``kind`` (its learner's), ``info`` (seed, tasks, history …: JSON-able), and for most
    models ``schema`` (band schema of the input), ``t`` and ``task_info`` (the target's 13 numbers
    once adapted). A subclass implements :meth:`adapt`, :meth:`predict_proba`, :meth:`to_state` and
    the classmethod :meth:`from_state`; the rest has defaults."""

    kind: ClassVar[str]  # set by every subclass (a dataclass field in the built-in models)
    #: whether :meth:`adapt` / prediction read the target's task information
    uses_task_info: ClassVar[bool] = False
    #: whether :meth:`adapt` and :meth:`predict_proba` also take each sample's place and time as
    #: keywords ``lat``, ``lon`` (degrees, ``[N]``) and ``start_dates`` (ISO date of each sample's
    #: first step); training runs and map export pass them (:func:`sample_context`)
    uses_locations: ClassVar[bool] = False

    def adapt(self, x: np.ndarray, y: np.ndarray, *, task_info=None, cfg=None, seed: int = 0) -> "Model":
        """A model adapted to the target's labelled samples ``x [N, T, bands]``, ``y`` 0/1 (a new
        object: ``self`` is reused for other shot counts)."""
        raise NotImplementedError

    def adapt_with_oof(self, x: np.ndarray, y: np.ndarray, folds, *, task_info=None, cfg=None, seed: int = 0,
                       **context) -> tuple["Model", np.ndarray | None]:
        """(:meth:`adapt` on every sample, the out-of-fold probabilities of each sample): for each
        validation index array of ``folds`` (None: no out-of-fold predictions), a copy adapted to the
        other samples predicts it. ``context``: the samples' ``lat``, ``lon``, ``start_dates`` for a
        model that ``uses_locations``. A model whose adaptation already cross-validates on the same
        folds (the auto fine-tuning budget) overrides this and reuses its predictions."""
        full = self.adapt(x, y, task_info=task_info, cfg=cfg, seed=seed, **context)
        if folds is None:
            return full, None
        x = np.asarray(x)
        oof = np.empty(len(y))
        for val in folds:
            tr = np.setdiff1d(np.arange(len(y)), val)
            part = self.adapt(x[tr], np.asarray(y)[tr], task_info=task_info, cfg=cfg, seed=seed,
                              **{k: _rows(v, tr) for k, v in context.items()})
            oof[val] = part.predict_proba(x[val], **{k: _rows(v, val) for k, v in context.items()})
        return full, oof

    def predict_proba(self, x, *, batch_size: int | None = None, temperature: float | None = None) -> np.ndarray:
        """Probability of the positive class, ``[N]``, of raw samples; ``temperature`` divides the
        logits (calibration)."""
        raise NotImplementedError

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON record starting with :meth:`record`, named arrays): ``model.json`` + ``model.safetensors``."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, source: str = "model", t: int | None = None) -> "Model":
        """Inverse of :meth:`to_state` (start with ``check_record(meta, source, cls)``)."""
        raise NotImplementedError

    def record(self) -> dict:
        """The head of every model record: format, format version and kind."""
        return {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "kind": self.kind}

    def zero_shot(self, task_info=None) -> "Model":
        """The model predicting a target it was not adapted to (learners declaring ``zero_shot``)."""
        raise ModelError(f"a {self.kind!r} model predicts nothing before it is adapted")

    def check_ready(self, source) -> None:
        """Raise when the model cannot serve predictions as loaded (e.g. never adapted)."""

    def to(self, device=None, dtype=None) -> "Model":
        """Move tensors (a model without any: nothing to do)."""
        return self


def _rows(v, idx):
    """Rows ``idx`` of a per-sample context value (array, list or None)."""
    if v is None:
        return None
    return [v[i] for i in idx] if isinstance(v, list) else np.asarray(v)[idx]


class Learner:
    """Base class of a registered learner. Class attributes declare what the generic code needs:

    - ``kind``: the registry key (``cropmeta train --learner KIND``, ``model.json``'s ``kind``);
    - ``model_class``: its model type; ``model_class.from_state(meta, arrays, source=, t=)`` loads it;
    - ``options_section``: the name of its own configuration section (``TrainConfig`` attribute
      with ``resolve(cfg, overrides)`` and ``to_dict()``, e.g. ``"in_context"``), or None;
    - ``distributed``: whether ``fit`` runs under torchrun / ``--nprocs`` (its worker:
      :meth:`fit_worker`);
    - ``needs_source``: False when it learns nothing before the target (from scratch);
    - ``zero_shot``: whether its fitted model predicts a target with no target label.

    ``Learner(cfg, options)``: ``cfg`` the :class:`~cropmeta.train.config.TrainConfig`, ``options``
    overrides of its own section."""

    kind: ClassVar[str] = ""
    model_class: ClassVar[Any] = None
    options_section: ClassVar[str | None] = None
    distributed: ClassVar[bool] = False
    needs_source: ClassVar[bool] = True
    zero_shot: ClassVar[bool] = False

    def __init__(self, cfg=None, options: dict | None = None):
        if cfg is None:
            from cropmeta.train.config import resolve_config

            cfg = resolve_config("quick")
        self.cfg = cfg
        self.options = dict(options or {})

    def fit(self, samples, target, seed: int = 0, *, workdir=None, resume: bool = False, progress=False,
            normalizer=None, init=None, dist=None) -> Model:  # pragma: no cover - abstract
        """Meta-train / pretrain on ``samples`` without ``target`` (a :class:`~cropmeta.tasks.Task`);
        ``workdir``: log and resume state (``resume=True`` continues); ``init``: start from this model's
        weights; ``normalizer``: use these statistics; ``dist``: torch.distributed context."""
        raise NotImplementedError

    def start(self, t: int, seed: int = 0, schema=None) -> Model:
        """The model fitting starts from when nothing was fitted before (``needs_source=False``)."""
        raise NotFittedError(f"{self.kind}: fit called before prepare")

    @classmethod
    def fit_worker(cls):  # pragma: no cover - only distributed learners
        """``worker(ctx, samples, target, cfg, seed, workdir, resume, progress)`` for
        :func:`cropmeta.train.distributed.spawn`: rank 0 saves the model in ``workdir/meta``."""
        raise ConfigError(f"learner {cls.kind!r} does not train on several processes")

    @classmethod
    def section_options(cls, cfg) -> Any:
        """This learner's resolved options section of ``cfg`` (None without one)."""
        return None if cls.options_section is None else getattr(cfg, cls.options_section)


def sample_context(model, meta, rows=None) -> dict:
    """The keywords a model declaring ``uses_locations`` takes beside its samples: ``lat``, ``lon``
    (degrees) and ``start_dates`` (ISO dates, None where unknown) of ``rows`` of a sample table
    ``meta`` (a frame with those columns, e.g. ``SampleSet.meta``); ``{}`` for any other model."""
    if not getattr(model, "uses_locations", False):
        return {}
    m = meta if rows is None else meta.iloc[np.asarray(rows, dtype=np.int64)]
    return {"lat": m["lat"].to_numpy(np.float64), "lon": m["lon"].to_numpy(np.float64),
            "start_dates": m["start_date"].tolist() if "start_date" in m else [None] * len(m)}


def register(cls: type[Learner]) -> type[Learner]:
    """Class decorator: add ``cls`` under ``cls.kind`` (a kind registered twice by different classes
    is refused; re-registering the same class is a no-op)."""
    kind = getattr(cls, "kind", "")
    if not kind or not isinstance(kind, str):
        raise ConfigError(f"{cls.__name__}: a learner needs a non-empty string `kind`")
    if getattr(cls, "model_class", None) is None or not hasattr(cls.model_class, "from_state"):
        raise ConfigError(f"learner {kind!r}: model_class must have from_state(meta, arrays, source=, t=)")
    old = _REGISTRY.get(kind)
    if old is not None and old is not cls and old.__qualname__ != cls.__qualname__:
        raise ConfigError(f"learner kind {kind!r} is already registered by {old.__module__}.{old.__qualname__}")
    _REGISTRY[kind] = cls
    return cls


def unregister(kind: str) -> None:
    """Remove a registered kind (tests)."""
    _REGISTRY.pop(kind, None)


def _load_builtins(kind: str | None = None) -> None:
    mods = {_BUILTIN[kind]} if kind in _BUILTIN else set(_BUILTIN.values()) if kind is None else set()
    for mod in sorted(mods):
        importlib.import_module(mod)


def kinds() -> tuple[str, ...]:
    """Every registered kind (the built-ins first, in their documented order)."""
    _load_builtins()
    return tuple(dict.fromkeys([*_BUILTIN, *_REGISTRY]))


def learner_class(kind: str) -> type[Learner]:
    """The learner class of ``kind``; unknown → :class:`~cropmeta.errors.ConfigError` with suggestions."""
    if kind not in _REGISTRY:
        _load_builtins(kind)
    if kind not in _REGISTRY:
        known = kinds()
        close = difflib.get_close_matches(str(kind), list(known), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown learner {kind!r}{hint}; one of {', '.join(known)}")
    return _REGISTRY[kind]


def get_learner(kind: str, cfg=None, options: dict | None = None) -> Learner:
    """A learner object of ``kind`` for configuration ``cfg`` (see :class:`Learner`)."""
    return learner_class(kind)(cfg, options)


def model_class(kind: str, source: str = "model"):
    """The model type that loads a record of ``kind`` (:class:`ModelError` naming ``source`` when unknown)."""
    try:
        return learner_class(kind).model_class
    except ConfigError:
        raise ModelError(f"{source}: unknown model kind {kind!r}; known: {', '.join(kinds())}") from None


def check_record(meta: Any, source: str, model_cls: type | None = None) -> str:
    """Check a model record's format and version (and, given ``model_cls``, that its kind is loaded
    by that class: ``model_cls.what`` names it in the error); returns its kind."""
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise ModelError(f"{source}: not a cropmeta model (format {fmt!r})")
    if int(meta.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise ModelError(f"{source}: model format version {meta.get('format_version')} is newer than this "
                         f"cropmeta reads ({MODEL_FORMAT_VERSION}); upgrade cropmeta")
    kind = str(meta.get("kind"))
    if model_cls is not None:
        expected = model_class(kind, source)
        if not (issubclass(model_cls, expected) or issubclass(expected, model_cls)):
            what = getattr(model_cls, "what", f"a {model_cls.__name__}")
            raise ModelError(f"{source}: a {kind!r} model, not {what}")
    return kind


def model_from_state(meta: dict, arrays: dict, source: str = "model", t: int | None = None) -> Model:
    """Rebuild any registered model from its record, dispatching on the stored ``kind``."""
    kind = check_record(meta, source)
    return model_class(kind, source).from_state(meta, arrays, source=source, t=t)
