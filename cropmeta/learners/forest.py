"""The random forest on the local labels as a registered learner (``cropmeta train --learner
random-forest``), so the method the real benchmarks favour from a few dozen labels on makes maps:
CropHarvest's random-forest baseline (scikit-learn's ``RandomForestClassifier``, its defaults but
``forest.trees`` trees, ``random_state`` = the seed) on the flattened ``T × bands`` samples. Nothing
is learned before the target; adaptation fits the forest. Saved as a node table in safetensors
(:mod:`cropmeta.models.forest`), never a pickle.

(``cropmeta compare``'s ``random-forest`` row is :class:`cropmeta.evaluate.forests.RandomForest`: the
same estimator on normalised features, which a forest's splits do not see.)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cropmeta.bandschema import BandSchema
from cropmeta.errors import InputError, ModelError, NotFittedError
from cropmeta.learners.base import Learner, Model, check_record, register
from cropmeta.models.forest import ForestArrays, fit_forest

__all__ = ["ForestModel", "RandomForestLearner"]


@dataclasses.dataclass
class ForestModel(Model):
    """A random forest for samples of ``schema`` (T steps); ``forest`` is None until adapted."""

    schema: BandSchema
    forest: ForestArrays | None = None
    info: dict = dataclasses.field(default_factory=dict)

    kind = "random-forest"
    what = "a random-forest model"

    @property
    def t(self) -> int:
        return int(self.schema.t)

    def _features(self, x) -> np.ndarray:
        x = self.schema.input_array(x)
        if x.shape[1] != self.t:
            raise InputError(f"the forest was fitted on T={self.t} time steps, the samples have T={x.shape[1]}")
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1)

    def adapt(self, x, y, *, task_info=None, cfg=None, seed: int = 0, **context) -> "ForestModel":
        from cropmeta.train.common import check_labelled
        from cropmeta.train.config import resolve_config

        cfg = cfg or resolve_config("quick")
        x, y = check_labelled(x, y, self.t, "random forest", self.schema)
        if len(np.unique(y)) < 2:
            raise InputError(f"random forest: the labels hold one class only ({int(y[0])}); it needs both")
        forest = fit_forest(self._features(x), y, cfg.rf_trees, seed)
        return ForestModel(self.schema, forest, {**self.info, "fit": {"n_train": int(len(y)), "n_pos": int(y.sum()),
                                                                      "trees": int(cfg.rf_trees), "seed": int(seed),
                                                                      "nodes": int(len(forest.left))}})

    def predict_proba(self, x, *, batch_size: int | None = None, temperature: float | None = None,
                      **context) -> np.ndarray:
        if self.forest is None:
            raise NotFittedError("this random forest was never fitted: adapt it to labelled samples first")
        p = self.forest.predict(self._features(x))
        if temperature is None:
            return p
        z = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1)) / float(temperature)
        return 1.0 / (1.0 + np.exp(-z))

    def check_ready(self, source) -> None:
        if self.forest is None:
            raise ModelError(f"{source}: the random forest was never fitted (no trees stored)")

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {**self.record(), "bands": list(self.schema.bands), "schema": self.schema.to_dict(), "t": self.t,
                "info": self.info}
        return meta, ({} if self.forest is None else self.forest.to_arrays())

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, source: str = "model", t: int | None = None) -> "ForestModel":
        from cropmeta.train.trained import schema_of_record

        check_record(meta, source, cls)
        schema, mt = schema_of_record(meta, source, t)
        schema = schema if schema.t == mt else schema.with_t(mt)
        forest = ForestArrays.from_arrays(arrays, source=source) if "forest.left" in arrays else None
        if forest is not None and forest.n_features != schema.n_bands * mt:
            raise ModelError(f"{source}: the forest reads {forest.n_features} features, its schema gives "
                             f"{schema.n_bands} bands × {mt} steps")
        return cls(schema, forest, dict(meta.get("info") or {}))


@register
class RandomForestLearner(Learner):
    kind = "random-forest"
    model_class = ForestModel
    needs_source = False

    def fit(self, samples, target=None, seed: int = 0, **_) -> ForestModel:
        """Nothing to learn before the target: an unfitted forest for ``samples``' band schema and T."""
        return self.start(samples.t, seed, samples.schema)

    def start(self, t: int, seed: int = 0, schema=None) -> ForestModel:
        from cropmeta.schema import CROPHARVEST

        schema = schema or CROPHARVEST
        return ForestModel(schema if schema.t == int(t) else schema.with_t(int(t)), info={"learner": self.kind})
