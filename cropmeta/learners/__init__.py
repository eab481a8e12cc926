"""Learners: the one contract (:mod:`cropmeta.learners.base`) and its registered entries.

``get_learner(kind, cfg)`` → a :class:`~cropmeta.learners.base.Learner`; ``learner.fit(samples,
target, seed)`` → a model; ``model.adapt(x, y, task_info=…, cfg=…, seed=…)`` →
``model.predict_proba(x)``. Kinds: ``timl``, ``maml``, ``concat`` (:mod:`.timl`), ``pretrained``
(:mod:`.pretrain`), ``scratch`` (:mod:`.scratch`), ``in-context`` (:mod:`.incontext`), and any a
package registers with :func:`register`.
"""

from cropmeta.learners.base import (MODEL_FORMAT, Learner, Model, check_record, get_learner, kinds, learner_class,
                                    model_class, model_from_state, register, unregister)

__all__ = ["MODEL_FORMAT", "Learner", "Model", "check_record", "get_learner", "kinds", "learner_class", "model_class",
           "model_from_state", "register", "unregister"]
