"""The in-context learner as a registered learner: meta-training
(:func:`cropmeta.train.incontext.meta_train_incontext`) of a transformer that reads a labelled support
set; adaptation stores the target's labelled samples as that support set (no gradient step). Its
options are the ``[in_context]`` section of the configuration (:class:`~cropmeta.train.config.InContextOptions`)."""

from __future__ import annotations

from cropmeta.learners.base import Learner, register
from cropmeta.train.incontext_model import KIND, InContextModel

__all__ = ["InContextLearner"]


@register
class InContextLearner(Learner):
    kind = KIND
    model_class = InContextModel
    options_section = "in_context"

    def fit(self, samples, target, seed: int = 0, *, workdir=None, resume: bool = False, progress=False,
            normalizer=None, init=None, dist=None):
        """``dist`` is not used: the in-context learner trains on one process."""
        from cropmeta.train.incontext import meta_train_incontext

        return meta_train_incontext(samples, target, self.cfg, seed, options=self.options or None, workdir=workdir,
                                    resume=resume, progress=progress, normalizer=normalizer, init=init)
