"""Presto without task information as registered learners: ``presto`` (frozen embeddings + logistic
regression) and ``presto-ft`` (encoder fine-tuned with a linear head). Nothing is learned before the
target (``needs_source = False``): the starting model is the published encoder, by its weights'
SHA-256 (the workspace copy from ``cropmeta models download presto``, or option ``weights``); its
model types are in :mod:`cropmeta.train.presto_frozen`. Options: ``weights`` (a path), ``device``."""

from __future__ import annotations

from cropmeta.learners.base import Learner, register
from cropmeta.train.presto_frozen import KINDS, PrestoFTModel, PrestoLRModel

__all__ = ["PrestoLearner", "PrestoFTLearner"]


class _PrestoLearner(Learner):
    needs_source = False
    zero_shot = False

    def fit(self, samples, target=None, seed: int = 0, **_):
        """The published encoder for ``samples``' T (the samples are not read)."""
        return self.start(samples.t, seed, samples.schema)

    def start(self, t: int, seed: int = 0, schema=None):
        from cropmeta.models.presto_embed import PrestoEmbedder
        from cropmeta.train.common import resolve_device

        device = self.options.get("device") or str(resolve_device(self.cfg.device))
        embedder = PrestoEmbedder(self.options.get("weights"), device=device)
        from cropmeta.train.presto_base import schema_bands

        return self.model_class(presto_sha256=embedder.weights_sha, config=self.cfg, t=int(t),
                                info={"seed": int(seed)}, embedder=embedder, bands=schema_bands(schema))


@register
class PrestoLearner(_PrestoLearner):
    kind = KINDS[0]
    model_class = PrestoLRModel


@register
class PrestoFTLearner(_PrestoLearner):
    kind = KINDS[1]
    model_class = PrestoFTModel
