"""The classification head of the task-informed Presto learner (:mod:`cropmeta.train.presto_timl`):
FiLM-modulated dense layers over frozen 128-number Presto embeddings, with the call signature of the
TIML classifier so that TIML's meta-training loop trains it unchanged."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cropmeta.models.timl import TaskBatchNorm, TaskLinear, bernoulli_mask

__all__ = ["EMBED_DIM", "PrestoFiLMHead"]

#: width of a Presto embedding
EMBED_DIM = 128


def _film_view(v: torch.Tensor) -> torch.Tensor:
    """FiLM tensor ``[K, C]``, ``[K, 1, C]`` or ``[C]`` → broadcastable to ``[K, N, C]``."""
    if v.dim() == 3:
        return v
    return v.view(-1, 1, v.shape[-1])


class PrestoFiLMHead(nn.Module):
    """The classification head over Presto embeddings (module docstring). ``forward(x [K, N, D],
    film, info, masks)`` → logits ``[K, N]``: the call signature of the TIML classifier."""

    #: task information is never concatenated to the input (the meta-training loop reads this)
    extra_inputs = 0

    def __init__(self, dim: int = EMBED_DIM, hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        self.dim, self.hidden, self.dropout = int(dim), int(hidden), float(dropout)
        self.fc0 = TaskLinear(self.dim, self.hidden, bias=True)
        self.bn1 = TaskBatchNorm(self.hidden)
        self.fc1 = TaskLinear(self.hidden, self.hidden, bias=False)
        self.bn2 = TaskBatchNorm(self.hidden)
        self.fc2 = TaskLinear(self.hidden, 1, bias=True)

    def arch(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "dropout": self.dropout}

    def sample_masks(self, k: int, n: int, generator: torch.Generator | None) -> dict | None:
        m = bernoulli_mask((k, n, self.hidden), self.dropout, generator)
        return None if m is None else {"h": m}

    def set_update_stats(self, flag: bool) -> None:
        self.bn1.update_stats = flag
        self.bn2.update_stats = flag

    def forward(self, x: torch.Tensor, film: dict | None = None, info: torch.Tensor | None = None,
                masks: dict | None = None) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if film is not None:
            g, b = film["in"]
            x = x * _film_view(g) + _film_view(b)
        h = F.gelu(self.fc0(x))
        mask = None if masks is None else masks.get("h")
        if mask is not None:
            h = h * mask.to(device=h.device, dtype=h.dtype)
        h = self.bn1(h)
        for name, layer, norm in (("h1", self.fc1, self.bn2), ("h2", None, None)):
            if film is not None:
                g, b = film[name]
                h = h * _film_view(g) + _film_view(b)
            if layer is not None:
                h = norm(F.gelu(layer(h)))
        return self.fc2(h).squeeze(-1)
