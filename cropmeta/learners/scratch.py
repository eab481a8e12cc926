"""From scratch as a registered learner: nothing is learned before the target; the model is a seeded
random initialisation of the classifier, normalised with the fine-tuning data's statistics."""

from __future__ import annotations

from cropmeta.learners.base import Learner, register
from cropmeta.train.trained import TrainedModel

__all__ = ["ScratchLearner"]


@register
class ScratchLearner(Learner):
    kind = "scratch"
    model_class = TrainedModel
    needs_source = False

    def fit(self, samples, target=None, seed: int = 0, **_):
        """The random initialisation for ``samples``' T and band schema (the samples are not read)."""
        return self.start(samples.t, seed, samples.schema)

    def start(self, t: int, seed: int = 0, schema=None):
        from cropmeta.schema import CROPHARVEST
        from cropmeta.train.trained import from_scratch

        return from_scratch(self.cfg, t=int(t), seed=seed, learner="maml", schema=schema or CROPHARVEST.with_t(t))
