"""One contract for every method the comparison runs.

scikit-learn style, on *raw canonical* samples ``x [N, T, 18]`` (each method normalises internally):

- ``prepare(source, target, seed)`` — once per seed: meta-training (TIML, MAML) or supervised
  pretraining (plain pretraining) on the non-target data. ``source`` never holds a test sample or
  the target task (see :func:`cropmeta.evaluate.compare.source_samples`). Nothing for the others.
- ``fit(x, y, seed)`` — adapt to the target's labelled samples. Like scikit-learn, every call
  starts afresh (from the prepared weights, or a random initialisation), so the same prepared
  method can be fitted on folds and then on all shots.
- ``predict_proba(x) -> np.ndarray [N]`` — probability of the positive class (a vector, not the
  ``[N, 2]`` array scikit-learn returns).
- ``fit_zero_shot(seed)`` — instead of ``fit``, for the cells that use no target label (the
  zero-shot column and the oracle rows: :data:`SHOT_MODES`); methods without one raise.

The deep methods (TIML, MAML, plain pretraining, from scratch, the in-context learner, and any
learner registered in :mod:`cropmeta.learners`) are one adapter,
:class:`cropmeta.evaluate.deep.LearnerMethod`, over the learner contract (the same learners,
adaptation and configuration as ``cropmeta train``). :class:`Method` and :class:`TargetTask` live
in :mod:`cropmeta.evaluate.base`, the method names, labels, aliases and shot modes in
:mod:`cropmeta.evaluate.names`, the random forests in :mod:`cropmeta.evaluate.forests`; this
module holds the oracle and ``+sim`` methods and the factory (:func:`make_method`); import the
others' names from their own modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cropmeta.errors import InputError
from cropmeta.evaluate.base import Method, TargetTask
from cropmeta.evaluate.names import SIM_METHODS, resolve_methods, split_method
from cropmeta.evaluate.forests import BothRandomForest, RandomForest, SourceRandomForest


class OracleMethod(Method):
    """The oracle rows of the simulated benchmark: a learner of the simulator's calibration
    (:func:`cropmeta.sim.calibrate.rf_proba`, the CropHarvest random forest, or
    :func:`~cropmeta.evaluate.oracle.lstm_proba`, the TIML-architecture LSTM from scratch) trained on
    correctly labelled samples of the target's test districts and test year, never its test points
    (``target.extra["oracle"]``: :class:`cropmeta.evaluate.oracle.OracleData`). The ceiling a
    method could reach; uses no target shots. Those learners train and predict in one call, so the
    training time is counted as prediction time."""

    LEARNERS = ("rf", "lstm")

    def __init__(self, learner: str = "rf", lstm_steps: int = 1500, cfg: Any = None):
        if learner not in self.LEARNERS:
            raise InputError(f"oracle learner {learner!r}: expected one of {', '.join(self.LEARNERS)}")
        self.learner = learner
        self.name = f"oracle-{learner}"
        self.lstm_steps = int(lstm_steps)
        self.oracle = None
        self.seed = 0

    def prepare(self, source, target: TargetTask, seed: int, workdir=None) -> "OracleMethod":
        self.oracle = target.extra.get("oracle")
        if self.oracle is None:
            raise InputError(f"{self.name}: no oracle samples for this target (simulated benchmark only)")
        return self

    def fit_zero_shot(self, seed: int = 0) -> "OracleMethod":
        if self.oracle is None:
            raise InputError(f"{self.name}: fit_zero_shot called before prepare")
        self.seed = int(seed)
        return self

    def fit(self, x, y, seed: int = 0):
        raise InputError(f"{self.name}: trained on the oracle samples, not on target shots")

    def predict_proba(self, x) -> np.ndarray:
        from cropmeta.evaluate.oracle import lstm_proba
        from cropmeta.sim.calibrate import rf_proba

        if self.oracle is None:
            raise InputError(f"{self.name}: predict_proba called before prepare")
        x = np.asarray(x, dtype=np.float32)
        if self.learner == "rf":
            p = rf_proba(self.oracle.x, self.oracle.y, x, random_state=self.seed)
        else:
            p = lstm_proba(self.oracle.x, self.oracle.y, x, seed=self.seed, steps=self.lstm_steps)
        return np.asarray(p, dtype=np.float64)


VIEW_OPTIONS = ("n_views", "view_controls")
SIM_OPTIONS = ("sim_seed", "sim_regions")


def make_method(name: str, cfg: Any = None, load_sim=None, **kwargs) -> Method:
    """A fresh method object. Deep methods take the training configuration ``cfg``
    (:mod:`cropmeta.train` config; None → the quick preset). Variants: ``+sim`` wraps the method in
    :class:`SimThenReal` (options ``sim_seed``, ``sim_regions``), ``+views`` in
    :class:`cropmeta.sim.views.WithViews` (options ``n_views``, default 4, ``view_controls``); the
    other keyword arguments go to the method itself (e.g. ``n_estimators`` for the random forest,
    ``d_model`` / ``iterations`` for the in-context learner). ``load_sim``: the simulated world's
    loader of ``+sim`` (:func:`cropmeta.app.samples.load_sim_samples`)."""
    name = resolve_methods([name])[0]
    base, variants = split_method(name)
    view_kw = {k: kwargs.pop(k) for k in VIEW_OPTIONS if k in kwargs}
    sim_kw = {k: kwargs.pop(k) for k in SIM_OPTIONS if k in kwargs}
    factory = METHOD_FACTORIES.get(base, _learner_method)
    method: Method = factory(base, cfg, **kwargs)
    if "sim" in variants:
        method = SimThenReal(method, load_sim=load_sim, **sim_kw)
    if "views" in variants:
        from cropmeta.sim.views import WithViews

        method = WithViews(method, n_views=int(view_kw.get("n_views", 4)), controls=view_kw.get("view_controls"),
                           name=name)
    return method


def _learner_method(name: str, cfg: Any = None, **kwargs) -> Method:
    """A registered learner (:mod:`cropmeta.learners`) as a method: :class:`cropmeta.evaluate.deep.LearnerMethod`."""
    import importlib

    return importlib.import_module("cropmeta.evaluate.deep").LearnerMethod(name, cfg=cfg, **kwargs)


def _lazy(module: str, cls: str):
    """A factory that imports ``module.cls`` on first use (heavy methods stay out of start-up)."""

    def factory(name: str, cfg: Any = None, **kwargs) -> Method:
        import importlib

        return getattr(importlib.import_module(module), cls)(cfg=cfg, **kwargs)

    return factory


#: method name → ``factory(name, cfg, **options)``; the names not listed are registered learners
#: (:func:`cropmeta.learners.kinds`), each adapted by :class:`cropmeta.evaluate.deep.LearnerMethod`
METHOD_FACTORIES: dict[str, Any] = {
    "random-forest": lambda name, cfg=None, **kw: RandomForest(**kw),
    "presto": _lazy("cropmeta.evaluate.presto", "PrestoMethod"),
    "presto-ft": _lazy("cropmeta.evaluate.presto", "PrestoFineTuned"),
    "presto-timl": _lazy("cropmeta.evaluate.presto", "PrestoTIMLMethod"),
    "presto-maml": lambda name, cfg=None, **kw: _lazy("cropmeta.evaluate.presto", "PrestoTIMLMethod")(
        name, cfg, task_info=False, **kw),
    "random-forest-source": lambda name, cfg=None, **kw: SourceRandomForest(**kw),
    "random-forest-both": lambda name, cfg=None, **kw: BothRandomForest(**kw),
    "oracle-rf": lambda name, cfg=None, **kw: OracleMethod("rf", cfg=cfg, **kw),
    "oracle-lstm": lambda name, cfg=None, **kw: OracleMethod("lstm", cfg=cfg, **kw),
}


class SimThenReal(Method):
    """``<method>+sim``: the wrapped deep method's ``prepare`` runs on the simulated world first and
    then continues on the real source (:func:`cropmeta.train.sim_then_real.sim_then_real`); fitting
    and prediction are the wrapped method's."""

    needs_source = True
    _SIM_CACHE: dict = {}

    def __init__(self, method: Method, sim_seed: int = 1, sim_regions=None, load_sim=None):
        if method.name not in SIM_METHODS:
            raise InputError(f"--pretrain-source sim applies to {', '.join(SIM_METHODS)}, not {method.name!r}")
        self.method = method
        self.name = f"{method.name}+sim"
        self.sim_seed = int(sim_seed)
        self.sim_regions = list(sim_regions) if sim_regions else None
        self.load_sim = load_sim  # (seed, regions=…) → SampleSet: cropmeta.app.samples.load_sim_samples

    def _sim(self):
        from cropmeta.io.store import workspace_home

        if self.load_sim is None:
            raise InputError(f"{self.name}: no simulated-world loader given (cropmeta.app.compare.compare passes one)")
        key = (self.sim_seed, tuple(self.sim_regions or ()), str(workspace_home()))
        if key not in self._SIM_CACHE:
            self._SIM_CACHE.clear()
            self._SIM_CACHE[key] = self.load_sim(self.sim_seed, regions=self.sim_regions)
        return self._SIM_CACHE[key]

    def set_target(self, target: TargetTask, seed: int) -> None:
        self.method.set_target(target, seed)

    def prepare(self, source, target: TargetTask, seed: int, workdir=None) -> "SimThenReal":
        from cropmeta.train.sim_then_real import sim_then_real

        self.method.set_target(target, seed)
        self.method.base = sim_then_real(source, target.extra.get("task"), self.method.cfg, self.method.name, seed,
                                         sim=self._sim(), sim_seed=self.sim_seed, sim_regions=self.sim_regions,
                                         workdir=workdir, resume=workdir is not None,
                                         ic_options=getattr(self.method, "options", None))
        return self

    def fit(self, x, y, seed: int = 0) -> "SimThenReal":
        self.method.fit(x, y, seed=seed)
        return self

    def fit_zero_shot(self, seed: int = 0) -> "SimThenReal":
        self.method.fit_zero_shot(seed=seed)
        return self

    def predict_proba(self, x) -> np.ndarray:
        return self.method.predict_proba(x)

    def prepared_state(self):
        return self.method.prepared_state()

    def load_prepared_state(self, meta: dict, arrays: dict) -> bool:
        return self.method.load_prepared_state(meta, arrays)
