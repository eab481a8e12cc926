"""Plain supervised pretraining (CropHarvest's "pretrained LSTM" baseline) as a registered learner:
:func:`cropmeta.train.pretrain.pretrain` on every non-target task pooled; adaptation fine-tunes."""

from __future__ import annotations

from cropmeta.learners.base import Learner, register
from cropmeta.train.trained import TrainedModel

__all__ = ["PretrainedLearner"]


@register
class PretrainedLearner(Learner):
    kind = "pretrained"
    model_class = TrainedModel
    zero_shot = True

    def fit(self, samples, target, seed: int = 0, *, workdir=None, resume: bool = False, progress=False,
            normalizer=None, init=None, dist=None):
        """``workdir`` / ``resume`` / ``dist`` are not used: pretraining is short and single-process."""
        from cropmeta.train.pretrain import pretrain

        return pretrain(samples, target, self.cfg, seed=seed, progress=progress, normalizer=normalizer, init=init)
