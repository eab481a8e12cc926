"""The in-context learner: meta-learning as sequence modelling.

Learning is a map from a sequence ``(x₁, y₁), …, (x_S, y_S), x_q`` to a prediction for ``x_q``. A
sequence model meta-trained over many tasks performs it with *no gradient step at adaptation time*:
its weights plus the support set it reads are the learned function (Santoro et al. 2016; Garg et al.
2022; Kirsch et al. 2022, "General-purpose in-context learning by meta-learning transformers").

Architecture (:class:`InContextClassifier`):

- **sample encoder**: one LSTM layer over the ``[T, 18]`` series (the TIML classifier's LSTM,
  :class:`cropmeta.models.timl.TaskLSTM`: explicit matmuls, so ``torch.utils.flop_counter`` counts
  its FLOPs), last hidden state → LayerNorm → a ``d``-vector per sample;
- **tokens**: a *task token* (a linear map of the 13 task-information numbers, or a learned constant
  when task information is off), one token per support sample (its encoding + a learned embedding of
  its label, 0 or 1), one token per query sample (its encoding + the "unknown label" embedding);
- **transformer** (pre-LayerNorm blocks, GELU feed-forward): the task token and the support tokens
  (the *context*) attend to each other; every query token attends to the context and to itself only.
  There are no positional encodings, so the prediction does not depend on the order of the support
  samples, and a query's prediction never depends on the other queries (predicting a test set in
  any batching gives identical numbers);
- **head**: LayerNorm → Linear ``d → 1`` on each query token (a logit).

The query stream is computed without materialising the full ``(1+S+Q)²`` attention: context keys
and values are computed once per layer and each query scores ``1 + S`` context keys plus itself,
so predicting a million pixels costs a million LSTM passes plus ``O(S)`` attention per pixel.

Support sets of any size up to ``max_support`` are read in one pass (``support_mask`` marks the
present samples of a padded batch); larger support sets are split into class-stratified chunks by
:func:`cropmeta.train.incontext.predict_proba` and the chunk predictions averaged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cropmeta.models.timl import TaskLSTM
from cropmeta.schema import N_BANDS
from cropmeta.crops import TASK_INFO_DIM

__all__ = ["InContextClassifier", "QUERY_LABEL"]

#: label-embedding index of a query token ("label unknown")
QUERY_LABEL = 2


class _Block(nn.Module):
    """A pre-LayerNorm transformer block with the context/query attention pattern of the module
    docstring: context tokens attend to the (present) context tokens; each query token attends to
    the context tokens and to itself."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by heads {heads}")
        self.d, self.heads = d, heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def _split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, _ = z.shape
        q, k, v = self.qkv(z).view(b, n, 3, self.heads, self.d // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v  # each [B, H, n, dh]

    def _merge(self, o: torch.Tensor) -> torch.Tensor:
        b, h, n, dh = o.shape
        return o.transpose(1, 2).reshape(b, n, h * dh)

    def forward(self, ctx: torch.Tensor, ctx_mask: torch.Tensor, qry: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ctx ``[B, C, d]``, ctx_mask ``[B, C]`` (True = present), qry ``[B, Q, d]`` or None."""
        scale = 1.0 / math.sqrt(self.d // self.heads)
        qc, kc, vc = self._split(self.ln1(ctx))
        bias = torch.zeros(ctx_mask.shape, dtype=qc.dtype, device=qc.device)
        bias = bias.masked_fill(~ctx_mask, float("-inf"))[:, None, None, :]  # [B, 1, 1, C]
        att = torch.softmax(qc @ kc.transpose(-1, -2) * scale + bias, dim=-1)
        ctx = ctx + self.drop(self.proj(self._merge(att @ vc)))
        ctx = ctx + self.drop(self.ff(self.ln2(ctx)))
        if qry is None:
            return ctx, None
        qq, kq, vq = self._split(self.ln1(qry))
        s_ctx = qq @ kc.transpose(-1, -2) * scale + bias  # [B, H, Q, C]
        s_self = (qq * kq).sum(-1, keepdim=True) * scale  # [B, H, Q, 1]
        att = torch.softmax(torch.cat([s_ctx, s_self], dim=-1), dim=-1)
        out = att[..., :-1] @ vc + att[..., -1:] * vq
        qry = qry + self.drop(self.proj(self._merge(out)))
        qry = qry + self.drop(self.ff(self.ln2(qry)))
        return ctx, qry


class InContextClassifier(nn.Module):
    """Support pairs + query samples (+ task information) → query logits, with no gradient step.

    ``forward(xs [B, S, T, F], ys [B, S], xq [B, Q, T, F], info [B, 13] | None, support_mask [B, S])``
    → logits ``[B, Q]``. Inputs are normalised samples (like the TIML classifier's)."""

    def __init__(self, t: int, n_bands: int = N_BANDS, d_model: int = 64, layers: int = 2, heads: int = 4,
                 ff: int = 128, dropout: float = 0.1, use_task_info: bool = True, info_dim: int = TASK_INFO_DIM):
        super().__init__()
        self.t, self.n_bands, self.d_model, self.layers, self.heads = int(t), int(n_bands), int(d_model), int(layers), int(heads)
        self.ff_dim, self.dropout, self.use_task_info, self.info_dim = int(ff), float(dropout), bool(use_task_info), int(info_dim)
        self.encoder = TaskLSTM(self.n_bands, self.d_model)
        self.enc_norm = nn.LayerNorm(self.d_model)
        self.label_emb = nn.Embedding(3, self.d_model)
        self.task_token = nn.Parameter(torch.zeros(self.d_model))
        self.info_proj = nn.Linear(self.info_dim, self.d_model) if self.use_task_info else None
        self.blocks = nn.ModuleList([_Block(self.d_model, self.heads, self.ff_dim, self.dropout)
                                     for _ in range(self.layers)])
        self.out_norm = nn.LayerNorm(self.d_model)
        self.head = nn.Linear(self.d_model, 1)
        nn.init.normal_(self.label_emb.weight, std=0.5)

    def arch(self) -> dict:
        return {"t": self.t, "n_bands": self.n_bands, "d_model": self.d_model, "layers": self.layers,
                "heads": self.heads, "ff": self.ff_dim, "dropout": self.dropout,
                "use_task_info": self.use_task_info, "info_dim": self.info_dim}

    @classmethod
    def from_arch(cls, arch: dict) -> "InContextClassifier":
        return cls(t=int(arch["t"]), n_bands=int(arch["n_bands"]), d_model=int(arch["d_model"]),
                   layers=int(arch["layers"]), heads=int(arch["heads"]), ff=int(arch["ff"]),
                   dropout=float(arch["dropout"]), use_task_info=bool(arch["use_task_info"]),
                   info_dim=int(arch["info_dim"]))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Samples ``[..., T, F]`` → encodings ``[..., d]``."""
        lead = x.shape[:-2]
        h = self.encoder(x.reshape(1, -1, x.shape[-2], x.shape[-1]))[0]
        return self.enc_norm(h).view(*lead, self.d_model)

    def context(self, xs: torch.Tensor, ys: torch.Tensor, info: torch.Tensor | None = None,
                support_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The context tokens ``[B, 1 + S, d]`` (task token first) and their mask."""
        b, s = xs.shape[:2]
        tok = self.task_token.view(1, 1, -1).expand(b, 1, -1)
        if self.info_proj is not None:
            if info is None:
                raise ValueError("this in-context learner reads task information: pass info=[B, 13]")
            tok = tok + self.info_proj(info.to(tok.dtype)).unsqueeze(1)
        sup = self.encode(xs) + self.label_emb(ys.long().clamp(0, 1)) if s else xs.new_zeros(b, 0, self.d_model)
        ctx = torch.cat([tok, sup], dim=1)
        present = torch.ones(b, s, dtype=torch.bool, device=xs.device) if support_mask is None else support_mask.bool()
        mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=xs.device), present], dim=1)
        return ctx, mask

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, info: torch.Tensor | None = None,
                support_mask: torch.Tensor | None = None) -> torch.Tensor:
        if xs.dim() == 3:  # one task without the batch axis
            xs, ys, xq = xs.unsqueeze(0), ys.unsqueeze(0), xq.unsqueeze(0)
            if info is not None and info.dim() == 1:
                info = info.unsqueeze(0)
            if support_mask is not None and support_mask.dim() == 1:
                support_mask = support_mask.unsqueeze(0)
        ctx, mask = self.context(xs, ys, info, support_mask)
        q = self.encode(xq) + self.label_emb.weight[QUERY_LABEL]
        for blk in self.blocks:
            ctx, q = blk(ctx, mask, q)
        return self.head(self.out_norm(q)).squeeze(-1)

