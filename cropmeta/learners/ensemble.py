"""The ensemble learner: a prior learned from other regions (any registered learner: plain
pretraining by default, TIML, Presto, …) combined with a random forest on the target's own labels,
weighed by inner cross-validation on those labels.

Why: on real labels a forest on the local labels beats every pretrained prior once there are more
than a few dozen labels, while the prior wins with few; their errors differ (issue 26). Nothing
about the combination is fixed in advance or read from a target's test set:

1. the shots are split into ``finetune.folds`` stratified folds (:func:`~cropmeta.train.finetune.shot_folds`);
2. the prior is adapted on each fold's complement and predicts the fold (an LSTM prior with the
   auto budget: :func:`~cropmeta.train.finetune.auto_finetune`, whose inner cross-validation gives
   these out-of-fold predictions), and so is the forest;
3. each member's out-of-fold probabilities define its rank transform (empirical CDF); the weight
   ``w`` of the prior's rank against the forest's (0, 0.1, …, 1) maximises the out-of-fold AUC
   (ties: the weight nearest 0.5); a logistic fit of the weighted rank on the labels turns it into a
   probability;
4. both members are refitted on every shot; a pixel's probability is
   ``sigmoid(a · (w · rank_prior(p_prior) + (1 − w) · rank_forest(p_forest)) + b)``.

With fewer than 2 shots of a class there is nothing to validate on: the ensemble is the prior
alone (recorded). Zero-shot (no target label), it is the prior as it is. Saved as safetensors + JSON:
the prior's own record and arrays, the forest as a node table (:mod:`cropmeta.models.forest`).
"""

from __future__ import annotations

import dataclasses
import numpy as np

from cropmeta.errors import ModelError
from cropmeta.errors import ConfigError
from cropmeta.learners.base import Learner, Model, check_record, get_learner, model_from_state, register
from cropmeta.models.forest import ForestArrays, fit_forest

__all__ = ["EnsembleLearner", "EnsembleModel", "WEIGHTS", "rank_transform"]

#: the prior's candidate weights
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
_PRIOR = "prior."


def rank_transform(reference: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mid-rank empirical CDF of ``reference`` evaluated at ``p`` (linear between its values, 0 / 1
    beyond them): a member's probabilities on the scale of its out-of-fold predictions."""
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    u, first = np.unique(ref, return_index=True)
    counts = np.diff(np.r_[first, len(ref)])
    mid = (first + counts / 2.0) / len(ref)
    if len(u) == 1:
        return np.where(np.asarray(p) < u[0], 0.0, np.where(np.asarray(p) > u[0], 1.0, 0.5))
    return np.interp(np.asarray(p, dtype=np.float64), u, mid, left=0.0, right=1.0)


def _auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _features(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


@dataclasses.dataclass
class EnsembleModel(Model):
    """A prior model plus (once adapted) a forest on the local labels and the combination rule."""

    prior: Model
    forest: ForestArrays | None = None
    weight: float = 1.0  # of the prior's rank
    platt: tuple[float, float] = (1.0, 0.0)  # a, b of sigmoid(a·s + b)
    ref_prior: np.ndarray | None = None  # out-of-fold probabilities: each member's rank transform
    ref_forest: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)

    kind = "ensemble"
    what = "an ensemble model"

    # what the generic code reads is the prior's
    @property
    def t(self) -> int:
        return self.prior.t

    @property
    def schema(self):
        return getattr(self.prior, "schema", None)

    @property
    def uses_task_info(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.prior, "uses_task_info", False))

    @property
    def uses_locations(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.prior, "uses_locations", False))

    @property
    def task_info(self):
        return getattr(self.prior, "task_info", None)

    @task_info.setter
    def task_info(self, value) -> None:
        self.prior.task_info = value

    def to(self, device=None, dtype=None) -> "EnsembleModel":
        self.prior.to(device=device, dtype=dtype)
        return self

    def check_ready(self, source) -> None:
        self.prior.check_ready(source)

    def zero_shot(self, task_info=None) -> "EnsembleModel":
        return EnsembleModel(self.prior.zero_shot(task_info), info={**self.info, "members": "the prior alone (zero-shot)"})

    # ---- adaptation -------------------------------------------------------------------------------
    def adapt(self, x, y, *, task_info=None, cfg=None, seed: int = 0, **context) -> "EnsembleModel":
        from cropmeta.train.config import resolve_config
        from cropmeta.train.finetune import shot_folds

        cfg = cfg or getattr(self.prior, "config", None) or resolve_config("quick")
        cfg = dataclasses.replace(cfg, ft_budget="auto")  # the prior's budget is chosen from the shots
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y).astype(int)
        folds = shot_folds(y, cfg.ft_folds, seed)
        ti = task_info if self.uses_task_info else None
        ctx = context if self.uses_locations else {}
        prior, p_oof = self.prior.adapt_with_oof(x, y, folds, task_info=ti, cfg=cfg, seed=seed, **ctx)
        if folds is None or p_oof is None:
            return EnsembleModel(prior, info={**self.info, "members": "the prior alone",
                                              "why": "a class has fewer than 2 shots: no weight can be validated"})
        feats = _features(x)
        f_oof = np.empty(len(y))
        for f, val in enumerate(folds):
            tr = np.setdiff1d(np.arange(len(y)), val)
            f_oof[val] = fit_forest(feats[tr], y[tr], cfg.ens_trees, seed * 1000 + f + 1).predict(feats[val])
        forest = fit_forest(feats, y, cfg.ens_trees, seed)
        r_p, r_f = rank_transform(p_oof, p_oof), rank_transform(f_oof, f_oof)
        scores = {w: _auc(y, w * r_p + (1 - w) * r_f) for w in WEIGHTS}
        best = max(scores.values())
        weight = min((w for w, s in scores.items() if s >= best - 1e-12), key=lambda w: (abs(w - 0.5), w))
        s = weight * r_p + (1 - weight) * r_f
        a, b = _platt(s, y)
        info = {**self.info, "members": {"prior": prior.kind, "forest_trees": int(cfg.ens_trees)},
                "weight_prior": weight, "oof_auc": {str(w): round(v, 4) for w, v in scores.items()},
                "oof_auc_prior": round(scores[1.0], 4), "oof_auc_forest": round(scores[0.0], 4),
                "folds": len(folds), "n_train": int(len(y)), "n_pos": int(y.sum()), "platt": [a, b],
                "prior_finetune": getattr(prior, "info", {}).get("finetune")}
        return EnsembleModel(prior, forest, weight, (a, b), np.asarray(p_oof, np.float64), f_oof, info)

    def adapt_with_oof(self, x, y, folds, *, task_info=None, cfg=None, seed: int = 0, **context):
        raise ModelError("an ensemble cannot be the prior of another ensemble")

    # ---- prediction -------------------------------------------------------------------------------
    def predict_proba(self, x, *, batch_size: int | None = None, temperature: float | None = None,
                      **context) -> np.ndarray:
        kw = context if self.uses_locations else {}
        if self.schema is not None:  # a sample set is checked against the band schema and read as its array
            x = self.schema.input_array(x)
        if self.forest is None:
            return np.asarray(self.prior.predict_proba(x, batch_size=batch_size, temperature=temperature, **kw),
                              dtype=np.float64)
        p = np.asarray(self.prior.predict_proba(x, batch_size=batch_size, **kw), dtype=np.float64)
        q = self.forest.predict(_features(x))
        s = self.weight * rank_transform(self.ref_prior, p) + (1 - self.weight) * rank_transform(self.ref_forest, q)
        z = self.platt[0] * s + self.platt[1]
        if temperature is not None:
            z = z / float(temperature)
        return 1.0 / (1.0 + np.exp(-z))

    # ---- state ------------------------------------------------------------------------------------
    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        pmeta, parrays = self.prior.to_state()
        meta = {**self.record(), "prior": pmeta, "weight_prior": self.weight, "platt": list(self.platt),
                "info": self.info, "t": self.t}
        for k in ("bands", "schema"):
            if k in pmeta:
                meta[k] = pmeta[k]
        arrays = {f"{_PRIOR}{k}": v for k, v in parrays.items()}
        if self.forest is not None:
            arrays.update(self.forest.to_arrays())
            arrays["ref.prior"] = np.asarray(self.ref_prior, np.float64)
            arrays["ref.forest"] = np.asarray(self.ref_forest, np.float64)
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, source: str = "model", t: int | None = None) -> "EnsembleModel":
        check_record(meta, source, cls)
        if not isinstance(meta.get("prior"), dict):
            raise ModelError(f"{source}: the ensemble's record has no prior")
        prior = model_from_state(meta["prior"], {k[len(_PRIOR):]: v for k, v in arrays.items() if k.startswith(_PRIOR)},
                                 source=f"{source} (prior)", t=t)
        if "forest.left" not in arrays:
            return cls(prior, info=dict(meta.get("info") or {}))
        try:
            weight = float(meta["weight_prior"])
            a, b = (float(v) for v in meta["platt"])
            refs = np.asarray(arrays["ref.prior"], np.float64), np.asarray(arrays["ref.forest"], np.float64)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{source}: the ensemble's record is incomplete ({e})") from None
        if not 0 <= weight <= 1 or len(refs[0]) == 0 or len(refs[1]) == 0:
            raise ModelError(f"{source}: the ensemble's weight or rank references are out of range")
        forest = ForestArrays.from_arrays(arrays, source=source)
        return cls(prior, forest, weight, (a, b), refs[0], refs[1], dict(meta.get("info") or {}))


def _platt(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) of Platt's sigmoid ``1 / (1 + exp(-(a·s + b)))`` fitted to the out-of-fold scores as
    Platt (1999) fits it: no penalty on ``a``, targets (N₊ + 1)/(N₊ + 2) and 1/(N₋ + 2) instead of
    1 and 0 (so a perfectly separating score still gets a finite slope). An L2 penalty (scikit-learn's
    default C = 1) would shrink the slope of a 0–1 score towards 0 and put every probability near
    the shots' share of crop: with fewer crop than other shots, a map without one crop pixel."""
    from sklearn.linear_model import LogisticRegression

    s = np.asarray(s, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(y).astype(int)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    # soft targets as weights: each score once as crop (weight t) and once as not crop (weight 1 - t)
    lr = LogisticRegression(C=np.inf).fit(np.r_[s, s], np.r_[np.ones(len(s)), np.zeros(len(s))],
                                          sample_weight=np.r_[t, 1 - t])
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


@register
class EnsembleLearner(Learner):
    """``cropmeta train --learner ensemble`` (``--set ensemble.prior=timl`` for another prior):
    fits the prior learner on the source data; adaptation is :meth:`EnsembleModel.adapt`."""

    kind = "ensemble"
    model_class = EnsembleModel

    def __init__(self, cfg=None, options: dict | None = None):
        super().__init__(cfg, options)
        prior_kind = str(self.options.get("prior", self.cfg.ens_prior))
        if prior_kind == self.kind:
            raise ConfigError("ensemble.prior: an ensemble cannot be its own prior")
        self.prior = get_learner(prior_kind, self.cfg)
        self.needs_source = self.prior.needs_source
        self.zero_shot = self.prior.zero_shot

    def fit(self, samples, target, seed: int = 0, **kw) -> EnsembleModel:
        if isinstance(kw.get("init"), EnsembleModel):  # a warm start (--pretrain-source sim) starts the prior
            kw["init"] = kw["init"].prior
        return EnsembleModel(self.prior.fit(samples, target, seed, **kw), info={"prior": self.prior.kind})

    def start(self, t: int, seed: int = 0, schema=None) -> EnsembleModel:
        return EnsembleModel(self.prior.start(t, seed, schema), info={"prior": self.prior.kind})

