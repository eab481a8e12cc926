"""The random-forest methods: on the target's shots (:class:`RandomForest`), on other regions' labels
only (:class:`SourceRandomForest`, zero-shot) and on both (:class:`BothRandomForest`)."""

from __future__ import annotations

import numpy as np

from cropmeta.errors import InputError, NotFittedError
from cropmeta.evaluate.base import Method, TargetTask
from cropmeta.evaluate.base import check_xy as _check_xy
from cropmeta.schema import Normalizer


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
