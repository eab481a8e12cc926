"""The task-informed Presto head as registered learners: ``presto-timl`` (TIML's task encoder and
FiLM over frozen Presto embeddings) and ``presto-maml`` (the same head without task information),
meta-trained by :func:`cropmeta.train.presto_timl.meta_train_presto` over TIML's tasks; their model is
:class:`~cropmeta.train.presto_timl.PrestoTIMLModel`. The Presto weights are the workspace copy
(``cropmeta models download presto``); options: ``weights`` (a path), ``device``."""

from __future__ import annotations

from cropmeta.learners.base import Learner, register
from cropmeta.train.presto_timl import KINDS, PrestoTIMLModel

__all__ = ["PrestoTIMLLearner", "PrestoMAMLLearner"]


class _PrestoHeadLearner(Learner):
    model_class = PrestoTIMLModel
    zero_shot = True
    task_info = True

    def fit(self, samples, target, seed: int = 0, *, workdir=None, resume: bool = False, progress=False,
            normalizer=None, init=None, dist=None):
        """``normalizer``, ``init`` and ``dist`` are not used (features are Presto embeddings; one process)."""
        from cropmeta.models.presto_embed import PrestoEmbedder
        from cropmeta.train.presto_timl import meta_train_presto
        from cropmeta.train.common import resolve_device

        device = self.options.get("device") or str(resolve_device(self.cfg.device))
        embedder = PrestoEmbedder(self.options.get("weights"), device=device)
        return meta_train_presto(samples, target, self.cfg, seed, embedder=embedder, task_info=self.task_info,
                                 workdir=workdir, resume=resume, progress=progress)


@register
class PrestoTIMLLearner(_PrestoHeadLearner):
    kind = KINDS[0]


@register
class PrestoMAMLLearner(_PrestoHeadLearner):
    kind = KINDS[1]
    task_info = False
