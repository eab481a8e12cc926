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
in :mod:`cropmeta.evaluate.base`.
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from cropmeta.errors import InputError, NotFittedError
from cropmeta.evaluate.base import NO_ZERO_SHOT, Method, TargetTask  # noqa: F401 - the contract, re-exported
from cropmeta.evaluate.base import check_xy as _check_xy
from cropmeta.schema import Normalizer

#: method name → display label, in report order (TIML first: it is compared against the others)
METHOD_LABELS = {
    "timl": "TIML",
    "maml": "MAML",
    "pretrained": "Plain pretraining",
    "scratch": "From scratch",
    "random-forest": "Random forest",
    "in-context": "In-context learner",
    "presto": "Presto (frozen) + logistic regression",
    "presto-ft": "Presto fine-tuned",
    "presto-timl": "Task-informed Presto (TIML head)",
    "presto-maml": "Presto + MAML head (no task info)",
    "random-forest-source": "Random forest (other regions)",
    "random-forest-both": "Random forest (local + other regions)",
    "oracle-rf": "Oracle random forest",
    "oracle-lstm": "Oracle LSTM (from scratch)",
}
ALL_METHODS = tuple(METHOD_LABELS)
ALIASES = {
    "rf": "random-forest", "random_forest": "random-forest", "randomforest": "random-forest",
    "from-scratch": "scratch", "from_scratch": "scratch", "pretrain": "pretrained", "pretraining": "pretrained",
    "plain-pretraining": "pretrained", "incontext": "in-context", "in_context": "in-context", "icl": "in-context",
    "presto-r": "presto", "presto-lr": "presto", "presto_ft": "presto-ft", "presto-finetune": "presto-ft",
    "presto_timl": "presto-timl", "task-informed-presto": "presto-timl", "presto_maml": "presto-maml",
    "rf-both": "random-forest-both", "random-forest-local-and-source": "random-forest-both",
    "rf-source": "random-forest-source", "source-rf": "random-forest-source", "rf-other-regions": "random-forest-source",
    "oracle": "oracle-rf", "oracle-random-forest": "oracle-rf", "oracle-lstm-scratch": "oracle-lstm",
}
#: which shot counts a method runs at (methods not listed: "few", k ≥ 4 target labels it is fitted on):
#: "few+zero" also k = 0 — the prepared model predicts the target as it is, with no target label and no
#: fine-tuning (TIML reads the target's task information); "zero" k = 0 only; "fixed" independent of
#: k: one cell per seed (shot key :data:`FIXED_SHOTS`), shown at every shot count
SHOT_MODES = {"timl": "few+zero", "maml": "few+zero", "pretrained": "few+zero", "presto-timl": "few+zero",
              "presto-maml": "few+zero",
              "random-forest-source": "zero", "oracle-rf": "fixed", "oracle-lstm": "fixed"}
FIXED_SHOTS = "any"
#: target data a method needs beyond the shots, by key of ``TargetTask.extra`` (an object with a
#: ``hash``, which enters the cell's cache fingerprint): the oracle rows need the simulated oracle
METHOD_INPUTS = {"oracle-rf": ("oracle",), "oracle-lstm": ("oracle",)}
#: variants of a method, written as suffixes: ``timl+sim`` (pretrained on the simulated world, then
#: the real source: ``--pretrain-source sim``), ``timl+views`` (fitted on labels + generative views:
#: ``--views N``), ``timl+sim+views``
SIM_METHODS = ("timl", "maml", "pretrained", "in-context")
VARIANTS = ("sim", "views")
VARIANT_LABELS = {"sim": " (sim → real)", "views": " + views"}


def split_method(name: str) -> tuple[str, tuple[str, ...]]:
    """``"timl+sim+views"`` → ``("timl", ("sim", "views"))`` (no validation)."""
    parts = [p.strip() for p in str(name).split("+")]
    return parts[0], tuple(parts[1:])


def method_label(name: str) -> str:
    """Display label of a method or variant, e.g. "TIML (sim → real) + views"."""
    base, variants = split_method(name)
    return METHOD_LABELS.get(base, base) + "".join(VARIANT_LABELS.get(v, f" + {v}") for v in variants)


def _registered_learner(name: str) -> bool:
    """Whether ``name`` is a learner registered in :mod:`cropmeta.learners` (a method of the
    comparison through :class:`cropmeta.evaluate.deep.LearnerMethod`, labelled by its kind)."""
    from cropmeta.learners.base import kinds

    return name in kinds()


def _resolve_one(m) -> str:
    raw = str(m).strip().lower().replace(" ", "-")
    base, variants = split_method(raw)
    base = ALIASES.get(base, base)
    if base not in METHOD_LABELS and not _registered_learner(base):
        close = difflib.get_close_matches(base, list(METHOD_LABELS) + list(ALIASES), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InputError(f"unknown method {m!r}{hint}; known: {', '.join(METHOD_LABELS)} "
                         f"(variants: <method>+sim, <method>+views)")
    bad = [v for v in variants if v not in VARIANTS]
    if bad or len(set(variants)) != len(variants):
        raise InputError(f"method {m!r}: unknown or repeated variant {bad or list(variants)}; variants are +sim, +views")
    if "sim" in variants and base not in SIM_METHODS:
        raise InputError(f"method {m!r}: sim pretraining applies to {', '.join(SIM_METHODS)}")
    if "views" in variants and SHOT_MODES.get(base, "few") in ("zero", "fixed"):
        raise InputError(f"method {m!r}: generative views are made from the target's labels; "
                         f"{base} uses none")
    return "+".join([base] + [v for v in VARIANTS if v in variants])


def resolve_methods(methods) -> list[str]:
    """Normalise a list / comma-separated string of method names (aliases accepted, variants
    ``+sim`` / ``+views`` allowed), report order kept as given, duplicates removed. Unknown names →
    :class:`InputError` with close matches."""
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m.strip()]
    out: list[str] = []
    for m in methods:
        key = _resolve_one(m)
        if key not in out:
            out.append(key)
    if not out:
        raise InputError("no method selected")
    return out


def expand_methods(methods: list[str], views: int = 0, pretrain_source: str | None = None) -> list[str]:
    """The rows of a comparison: each method, its ``+sim`` variant (``pretrain_source == "sim"``,
    methods that pretrain only) and, with ``views`` > 0, the ``+views`` variant of each of those."""
    if pretrain_source not in (None, "none", "sim"):
        raise InputError(f"--pretrain-source {pretrain_source!r}: expected 'sim' (or none)")
    if int(views or 0) < 0:
        raise InputError(f"--views must be ≥ 0, got {views}")
    out: list[str] = []
    for m in resolve_methods(methods):
        base, variants = split_method(m)
        rows = [m]
        if pretrain_source == "sim" and base in SIM_METHODS and "sim" not in variants:
            rows.append(_resolve_one(m + "+sim"))
        if views and "views" not in variants and SHOT_MODES.get(base, "few") not in ("zero", "fixed"):
            rows += [_resolve_one(r + "+views") for r in list(rows)]
        out += [r for r in rows if r not in out]
    return out


def shot_mode(name: str) -> str:
    """:data:`SHOT_MODES` of a method or variant ("+views" rows are fitted on labels: never zero-shot)."""
    base, variants = split_method(name)
    mode = SHOT_MODES.get(base, "few")
    return "few" if mode == "few+zero" and "views" in variants else mode


def is_zero(k) -> bool:
    """Whether shot count ``k`` is the zero-shot column."""
    return str(k) == "0"


def method_shots(name: str, shots: list) -> list:
    """The cells' shot keys of ``name`` for the shot counts ``shots`` (see :data:`SHOT_MODES`)."""
    mode = shot_mode(name)
    if mode == "fixed":
        return [FIXED_SHOTS]
    if mode == "zero":
        return [k for k in shots if is_zero(k)]
    return list(shots) if mode == "few+zero" else [k for k in shots if not is_zero(k)]


def cell_shots(name: str, k):
    """The shot key of ``name``'s cell shown at shot count ``k`` (None: no cell there)."""
    keys = method_shots(name, [k])
    return keys[0] if keys else None


class RandomForest(Method):
    """CropHarvest's random-forest baseline: scikit-learn ``RandomForestClassifier`` with its defaults
    (``random_state`` = the seed) on the flattened ``T × n_bands`` features, normalised with a
    :class:`~cropmeta.schema.Normalizer` fitted on the samples given to :meth:`fit`."""

    name = "random-forest"

    def __init__(self, n_jobs: int | None = 1, **rf_kwargs):
        self.n_jobs = n_jobs
        self.rf_kwargs = rf_kwargs
        self.model = None
        self.norm: Normalizer | None = None
        self._constant: float | None = None

    def fit(self, x, y, seed: int = 0) -> "RandomForest":
        from sklearn.ensemble import RandomForestClassifier

        from cropmeta.train.trained import schema_for_width

        x, y = _check_xy(x, y, "random forest")
        self.norm = Normalizer.fit(x, bands=schema_for_width(x.shape[2], x.shape[1]).bands)  # any band schema
        self._constant = None
        if len(np.unique(y)) < 2:  # one class only: predict it
            self.model, self._constant = None, float(y[0]) if len(y) else 0.5
            return self
        self.model = RandomForestClassifier(random_state=seed, n_jobs=self.n_jobs, **self.rf_kwargs)
        self.model.fit(self.norm.transform(x).reshape(len(x), -1), y)
        return self

    def predict_proba(self, x) -> np.ndarray:
        if self.norm is None:
            raise NotFittedError("random forest: predict_proba called before fit")
        x = np.asarray(x, dtype=np.float32)
        if self._constant is not None:
            return np.full(len(x), self._constant)
        p = self.model.predict_proba(self.norm.transform(x).reshape(len(x), -1))
        return p[:, list(self.model.classes_).index(1)].astype(np.float64)


def other_region_labels(source, target: TargetTask, who: str, max_source: int | None = None,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(x, y, counts)``: every labelled training sample of ``source`` outside the target's region,
    labelled by the target's rule (:func:`cropmeta.tasks.rule_labels`: the target crop vs every other
    known label, or crop vs non-crop). ``max_source``: at most that many of them, a uniform random
    subset drawn with ``seed`` (to bound the forest's training time). :class:`InputError` naming
    ``who`` when a class has < 2."""
    from cropmeta.tasks import region_mask, rule_labels

    meta = source.meta
    other = ~region_mask(meta, target.region) & (meta["split"].astype(str).to_numpy() == "train")
    y = rule_labels(meta, target.crop, other)
    keep = y != -1
    if max_source is not None and int(keep.sum()) > int(max_source):
        idx = np.random.default_rng([int(seed), 7919]).choice(np.where(keep)[0], int(max_source), replace=False)
        keep = np.zeros(len(y), dtype=bool)
        keep[idx] = True
    n_pos, n_neg = int((y[keep] == 1).sum()), int((y[keep] == 0).sum())
    if n_pos < 2 or n_neg < 2:
        raise InputError(f"{who}: the other regions hold {n_pos} positive and {n_neg} negative samples "
                         "for this target's rule")
    counts = {"n": int(keep.sum()), "n_pos": n_pos, "regions": int(meta.loc[keep, "region"].nunique())}
    return source.x[keep], y[keep], counts


class SourceRandomForest(Method):
    """Zero-shot baseline: the CropHarvest random forest (:class:`RandomForest`) trained on other
    regions only — every labelled sample of the source (the non-target training samples the deep
    methods meta-train on) outside the target's region, labelled by the target's rule
    (:func:`other_region_labels`). It never sees a label of the target region."""

    name = "random-forest-source"
    needs_source = True

    def __init__(self, max_source: int | None = None, **rf_kwargs):
        self.rf = RandomForest(**rf_kwargs)
        self.max_source = max_source
        self.counts: dict = {}
        self._fitted = False

    def prepare(self, source, target: TargetTask, seed: int, workdir=None) -> "SourceRandomForest":
        x, y, self.counts = other_region_labels(source, target, self.name, self.max_source, seed)
        self.rf.fit(x, y, seed=seed)
        self._fitted = True
        return self

    def fit_zero_shot(self, seed: int = 0) -> "SourceRandomForest":
        if not self._fitted:
            raise InputError(f"{self.name}: fit_zero_shot called before prepare")
        return self

    def fit(self, x, y, seed: int = 0):
        raise InputError(f"{self.name}: uses no target labels (a zero-shot row)")

    def predict_proba(self, x) -> np.ndarray:
        return self.rf.predict_proba(x)


class BothRandomForest(Method):
    """The CropHarvest random forest (:class:`RandomForest`) trained on the other regions' labels
    (those of :class:`SourceRandomForest`, the same subset for the same ``max_source`` and seed) plus
    the target's labelled samples given to :meth:`fit`, pooled with equal weight. Every fit (each shot count and calibration fold) trains a new forest."""

    name = "random-forest-both"
    needs_source = True

    def __init__(self, max_source: int | None = None, **rf_kwargs):
        self.rf = RandomForest(**rf_kwargs)
        self.max_source = max_source
        self.x_src: np.ndarray | None = None
        self.y_src: np.ndarray | None = None
        self.counts: dict = {}

    def prepare(self, source, target: TargetTask, seed: int, workdir=None) -> "BothRandomForest":
        self.x_src, self.y_src, self.counts = other_region_labels(source, target, self.name, self.max_source, seed)
        return self

    def fit(self, x, y, seed: int = 0) -> "BothRandomForest":
        if self.x_src is None:
            raise NotFittedError(f"{self.name}: fit called before prepare")
        x, y = _check_xy(x, y, self.name)
        self.rf.fit(np.concatenate([self.x_src, x]), np.concatenate([self.y_src, y]), seed=seed)
        return self

    def predict_proba(self, x) -> np.ndarray:
        return self.rf.predict_proba(x)


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
