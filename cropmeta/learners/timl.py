"""TIML, MAML and the concatenation ablation as registered learners: learn2learn MAML meta-training
(:func:`cropmeta.train.maml.meta_train`) of the LSTM classifier, with the FiLM task encoder (``timl``),
without task information (``maml``) or with it appended to the input (``concat``). Their model is a
:class:`~cropmeta.train.trained.TrainedModel`; adaptation fine-tunes a copy."""

from __future__ import annotations

from cropmeta.learners.base import Learner, register
from cropmeta.train.trained import TrainedModel

__all__ = ["TIMLLearner", "MAMLLearner", "ConcatLearner"]


class _MetaLearner(Learner):
    model_class = TrainedModel
    distributed = True
    zero_shot = True

    def fit(self, samples, target, seed: int = 0, *, workdir=None, resume: bool = False, progress=False,
            normalizer=None, init=None, dist=None):
        from cropmeta.train.distributed import SINGLE
        from cropmeta.train.maml import meta_train

        return meta_train(samples, target, self.cfg, learner=self.kind, seed=seed, workdir=workdir, resume=resume,
                          progress=progress, dist=dist or SINGLE, normalizer=normalizer, init=init)

    @classmethod
    def fit_worker(cls):
        from cropmeta.train.maml import meta_train_worker

        return meta_train_worker


@register
class TIMLLearner(_MetaLearner):
    """Task-informed meta-learning: the task encoder maps the 13 task-information numbers to FiLM."""

    kind = "timl"


@register
class MAMLLearner(_MetaLearner):
    """Plain MAML: the same meta-training, no task information."""

    kind = "maml"


@register
class ConcatLearner(_MetaLearner):
    """Ablation: task information concatenated to every time step's input instead of FiLM."""

    kind = "concat"
