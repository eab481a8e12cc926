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

The deep methods are thin adapters over :mod:`cropmeta.train` (the same classifier, fine-tuning
protocol and configuration as ``cropmeta train``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cropmeta.errors import InputError
from cropmeta.schema import Normalizer

#: method name → display label, in report order (TIML first: it is compared against the others)
METHOD_LABELS = {
    "timl": "TIML",
    "maml": "MAML",
    "pretrained": "Plain pretraining",
    "scratch": "From scratch",
    "random-forest": "Random forest",
}
ALL_METHODS = tuple(METHOD_LABELS)
ALIASES = {
    "rf": "random-forest", "random_forest": "random-forest", "randomforest": "random-forest",
    "from-scratch": "scratch", "from_scratch": "scratch", "pretrain": "pretrained", "pretraining": "pretrained",
    "plain-pretraining": "pretrained",
}


def resolve_methods(methods) -> list[str]:
    """Normalise a list / comma-separated string of method names (aliases accepted), report order kept
    as given, duplicates removed. Unknown names → :class:`InputError` with close matches."""
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m.strip()]
    out: list[str] = []
    for m in methods:
        key = str(m).strip().lower().replace(" ", "-")
        key = ALIASES.get(key, key)
        if key not in METHOD_LABELS:
            close = difflib.get_close_matches(key, list(METHOD_LABELS) + list(ALIASES), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InputError(f"unknown method {m!r}{hint}; known: {', '.join(METHOD_LABELS)}")
        if key not in out:
            out.append(key)
    if not out:
        raise InputError("no method selected")
    return out


@dataclass
class TargetTask:
    """The target of a comparison: where, what, and its task-information vector (13 numbers)."""

    region: str
    crop: str | None
    task_info: np.ndarray
    name: str = ""
    extra: dict = field(default_factory=dict)  # e.g. the train helper's Task object under "task"


class Method:
    """Base class: see the module docstring for the contract."""

    name = "method"
    #: whether :meth:`prepare` needs the non-target source data
    needs_source = False

    def prepare(self, source: Any, target: TargetTask, seed: int, workdir=None) -> "Method":
        """``workdir``: a scratch directory for resumable training state (may be ignored)."""
        return self

    def set_target(self, target: TargetTask, seed: int) -> None:
        """Called before :meth:`load_prepared_state`: what prepare would have recorded of the target."""

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> "Method":  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # a prepared state that can be cached between runs (dict of JSON-able values + named arrays)
    def prepared_state(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        return None

    def load_prepared_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> bool:
        return False


def _check_xy(x: np.ndarray, y: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(np.int64).ravel()
    if x.ndim != 3:
        raise InputError(f"{who}: samples must be [N, T, 18], got {list(x.shape)}")
    if len(x) != len(y):
        raise InputError(f"{who}: {len(x)} samples for {len(y)} labels")
    if not np.isin(y, [0, 1]).all():
        raise InputError(f"{who}: labels must be 0/1")
    if not np.isfinite(x).all():
        raise InputError(f"{who}: training samples contain NaN or inf")
    return x, y


class RandomForest(Method):
    """CropHarvest's random-forest baseline: scikit-learn ``RandomForestClassifier`` with its defaults
    (``random_state`` = the seed) on the flattened ``T × 18`` features, normalised with a
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

        x, y = _check_xy(x, y, "random forest")
        self.norm = Normalizer.fit(x)
        self._constant = None
        if len(np.unique(y)) < 2:  # one class only: predict it
            self.model, self._constant = None, float(y[0]) if len(y) else 0.5
            return self
        self.model = RandomForestClassifier(random_state=seed, n_jobs=self.n_jobs, **self.rf_kwargs)
        self.model.fit(self.norm.transform(x).reshape(len(x), -1), y)
        return self

    def predict_proba(self, x) -> np.ndarray:
        if self.norm is None:
            raise InputError("random forest: predict_proba called before fit")
        x = np.asarray(x, dtype=np.float32)
        if self._constant is not None:
            return np.full(len(x), self._constant)
        p = self.model.predict_proba(self.norm.transform(x).reshape(len(x), -1))
        return p[:, list(self.model.classes_).index(1)].astype(np.float64)


def make_method(name: str, cfg: Any = None, **kwargs) -> Method:
    """A fresh method object. Deep methods take the training configuration ``cfg``
    (:mod:`cropmeta.train` config; None → the quick preset)."""
    name = resolve_methods([name])[0]
    if name == "random-forest":
        return RandomForest(**kwargs)
    from cropmeta.evaluate.deep import DeepMethod

    return DeepMethod(name, cfg=cfg, **kwargs)
