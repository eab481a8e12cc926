"""The TIML classifier and task encoder (Tseng, Kerner & Rolnick 2022, arXiv 2202.02124).

Architecture (defaults of the paper code, nasaharvest/timl ``dl/lstm.py`` and ``dl/encoder.py``):

- **Classifier**: one LSTM layer (hidden 128) with variational dropout 0.2 on the recurrent state (one
  mask for every time step, Gal & Ghahramani 2016); the last hidden state → BatchNorm (no affine) →
  FiLM → Linear 128→128 (no bias) + GELU + BatchNorm (no affine) → FiLM → Linear 128→1 (logit).
  The input ``[T, 18]`` is FiLM-modulated first.
- **Task encoder**: MLP 13→32→64→128, each layer Linear + GELU + GroupNorm (16 channels per group)
  + dropout 0.2, then heads giving FiLM ``γ, β`` for the input (``[T, 18]`` maps, γ = 1 + sigmoid
  ∈ (1, 2), β = sigmoid ∈ (0, 1)) and for the two hidden layers (GELU heads, as in the paper code).
  It is computed once per task and is *not* adapted in MAML's inner loop.

Task-batched parameters
-----------------------
Every layer accepts parameters either plain (``[out, in]``) or with a leading task axis
(``[K, out, in]``), and inputs always carry the task axis: ``x [K, N, T, F]``. That lets one
learn2learn ``MAML.clone()`` hold K per-task copies of the weights (see
:func:`expand_for_tasks`): ``adapt`` on the *sum* of the K per-task support losses then gives each
task exactly its own gradient step, and the query loss back-propagates through all K adaptations at
once. The result equals K separate clones (tested against a per-task loop and ``torch.func``), at a
fraction of the Python/kernel overhead.

Randomness is explicit: dropout masks are drawn by :meth:`TIMLClassifier.sample_masks` /
:meth:`TaskEncoder.sample_masks` from a caller-owned ``torch.Generator`` and passed to ``forward``;
``masks=None`` means no dropout (evaluation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cropmeta.schema import N_BANDS
from cropmeta.crops import TASK_INFO_DIM

__all__ = [
    "TIMLClassifier",
    "TaskEncoder",
    "FiLM",
    "expand_for_tasks",
    "bernoulli_mask",
]

#: FiLM parameters of one forward pass: {"in": (γ [K,T,F], β), "h1": (γ [K,H], β), "h2": (γ, β)}
FiLM = dict


def bernoulli_mask(shape, p: float, generator: torch.Generator | None, dtype=torch.float32) -> torch.Tensor | None:
    """Inverted-dropout mask (values 0 or 1/(1−p)) drawn on the CPU from ``generator`` (so the same
    seed gives the same masks on any device). ``None`` when ``p == 0``."""
    if p <= 0:
        return None
    keep = torch.rand(shape, generator=generator, dtype=torch.float64) >= p
    return keep.to(dtype) / (1.0 - p)


def _mm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x [K, M, in] @ w`` for ``w`` shaped ``[in, out]`` (shared) or ``[K, in, out]`` (per task).

    Weights are stored ``[in, out]`` so that neither the product nor its gradients involve a
    transpose: per-task weight gradients are then contiguous and accumulate at memory speed."""
    if w.dim() == 2:
        return x @ w
    return torch.bmm(x, w)


def _bias(b: torch.Tensor) -> torch.Tensor:
    """Broadcastable ``[K|1, 1, out]`` view of a bias ``[out]`` or ``[K, out]``."""
    return b.unsqueeze(-2) if b.dim() == 2 else b.view(1, 1, -1)


class TaskBatchNorm(nn.Module):
    """BatchNorm over the samples of *each task separately* (no affine), input ``[K, N, C]``.

    Training: each task is normalised with its own batch statistics (what K separate clones would
    do); the running statistics move by ``momentum`` towards the mean over tasks of the per-task
    statistics. Evaluation: running statistics. ``update_stats = False`` freezes them (meta-validation,
    functional parity tests)."""

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.update_stats = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        if self.update_stats:
            with torch.no_grad():
                n = x.shape[1]
                unbiased = var.detach() * (n / max(n - 1, 1))
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach().mean(dim=(0, 1)))
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased.mean(dim=(0, 1)))
        return (x - mean) / torch.sqrt(var + self.eps)


class TaskLinear(nn.Module):
    """Linear layer whose weight may carry a leading task axis (see module docstring)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))  # [in, out]: see _mm
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)  # = nn.Linear's default (kaiming_uniform a=√5)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [K, N, in]
        y = _mm(x, self.weight)
        if self.bias is not None:
            y = y + _bias(self.bias)
        return y


class TaskLSTM(nn.Module):
    """One LSTM layer, gates ordered (input, forget, cell, output) like ``nn.LSTM`` (weights stored
    transposed, ``[in, 4H]``); initialised U(−1/√H, 1/√H) like the paper's unrolled cell. The input
    projection of all T steps is one matmul; each step then costs one ``[K, N, H] @ [H, 4H]`` matmul. Variational dropout: one mask
    ``[K, N, H]`` multiplies the hidden state fed back at every step."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(input_size, 4 * hidden_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, 4 * hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        k = 1 / math.sqrt(hidden_size)
        for p in (self.weight_ih, self.weight_hh, self.bias):
            nn.init.uniform_(p, -k, k)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x ``[K, N, T, in]`` → last hidden state ``[K, N, H]``."""
        k, n, t, f = x.shape
        hs = self.hidden_size
        gx = (_mm(x.reshape(k, n * t, f), self.weight_ih) + _bias(self.bias)).view(k, n, t, 4 * hs)
        # unbind over time: its backward is one stack (a per-step select would scatter into a full-size
        # zero tensor at every step, O(T²) memory traffic)
        steps = gx.permute(2, 0, 1, 3).unbind(0)
        h = x.new_zeros(k, n, hs)
        c = x.new_zeros(k, n, hs)
        for step in range(t):
            g = steps[step] + _mm(h, self.weight_hh)
            i, fg, cc, o = g.chunk(4, dim=-1)
            c = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(cc)
            h = torch.sigmoid(o) * torch.tanh(c)
            if mask is not None:  # the same mask at every step, the last one included (paper code)
                h = h * mask
        return h


class TIMLClassifier(nn.Module):
    """The TIML LSTM classifier (returns logits; sigmoid gives the crop probability).

    ``extra_inputs`` > 0 builds the "task information concatenated to the input" ablation: the
    13 task-info numbers are appended to every time step (pass ``info`` to :meth:`forward`)."""

    def __init__(self, t: int, n_bands: int = N_BANDS, hidden: int = 128, dropout: float = 0.2,
                 extra_inputs: int = 0):
        super().__init__()
        self.t, self.n_bands, self.hidden, self.dropout, self.extra_inputs = t, n_bands, hidden, dropout, extra_inputs
        self.lstm = TaskLSTM(n_bands + extra_inputs, hidden)
        self.bn1 = TaskBatchNorm(hidden)
        self.fc1 = TaskLinear(hidden, hidden, bias=False)
        self.bn2 = TaskBatchNorm(hidden)
        self.fc2 = TaskLinear(hidden, 1, bias=True)

    def arch(self) -> dict:
        return {"t": self.t, "n_bands": self.n_bands, "hidden": self.hidden, "dropout": self.dropout,
                "extra_inputs": self.extra_inputs}

    def sample_masks(self, k: int, n: int, generator: torch.Generator | None) -> dict | None:
        m = bernoulli_mask((k, n, self.hidden), self.dropout, generator)
        return None if m is None else {"lstm": m}

    def set_update_stats(self, flag: bool) -> None:
        self.bn1.update_stats = flag
        self.bn2.update_stats = flag

    def forward(self, x: torch.Tensor, film: FiLM | None = None, info: torch.Tensor | None = None,
                masks: dict | None = None) -> torch.Tensor:
        """x ``[K, N, T, F]`` (normalised) → logits ``[K, N]``. ``film`` from :class:`TaskEncoder`
        (``[K, ...]`` or without the task axis); ``info`` ``[K, 13]`` for the concatenation ablation."""
        if x.dim() == 3:
            x = x.unsqueeze(0)
        k, n = x.shape[:2]
        if film is not None:
            g, b = film["in"]
            x = x * _task_view(g, 4) + _task_view(b, 4)
        if self.extra_inputs:
            if info is None:
                raise ValueError("this classifier concatenates task information: pass info=[K, 13]")
            inf = info.view(-1, 1, 1, self.extra_inputs).expand(k, n, x.shape[2], self.extra_inputs)
            x = torch.cat([x, inf.to(x.dtype)], dim=-1)
        mask = None if masks is None else masks.get("lstm")
        if mask is not None:
            mask = mask.to(device=x.device, dtype=x.dtype)
        h = self.bn1(self.lstm(x, mask))
        if film is not None:
            g, b = film["h1"]
            h = h * _task_view(g, 3) + _task_view(b, 3)
        h = self.bn2(F.gelu(self.fc1(h)))
        if film is not None:
            g, b = film["h2"]
            h = h * _task_view(g, 3) + _task_view(b, 3)
        return self.fc2(h).squeeze(-1)


def _task_view(v: torch.Tensor, ndim: int) -> torch.Tensor:
    """FiLM tensor ``[K, *feat]`` (or ``[*feat]``) → broadcastable to an ``ndim``-d activation
    ``[K, N, *feat]``."""
    feat = {4: 2, 3: 1}[ndim]
    if v.dim() == feat:
        v = v.unsqueeze(0)
    return v.unsqueeze(1)


class TaskEncoder(nn.Module):
    """Task information (13 numbers) → FiLM parameters for the classifier's input and hidden layers."""

    def __init__(self, t: int, n_bands: int = N_BANDS, hidden: int = 128, dims=(32, 64, 128),
                 dropout: float = 0.2, channels_per_group: int = 16, info_dim: int = TASK_INFO_DIM):
        super().__init__()
        self.t, self.n_bands, self.hidden = t, n_bands, hidden
        self.dims, self.dropout, self.channels_per_group, self.info_dim = (
            [int(d) for d in dims], dropout, channels_per_group, info_dim)
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        prev = info_dim
        for d in self.dims:
            self.linears.append(nn.Linear(prev, d))
            groups = max(1, d // channels_per_group)
            if d % groups:
                groups = 1
            self.norms.append(nn.GroupNorm(groups, d))
            prev = d
        self.in_gamma = nn.Linear(prev, t * n_bands)
        self.in_beta = nn.Linear(prev, t * n_bands)
        self.h_gamma = nn.ModuleList([nn.Linear(prev, hidden) for _ in range(2)])
        self.h_beta = nn.ModuleList([nn.Linear(prev, hidden) for _ in range(2)])

    def arch(self) -> dict:
        return {"t": self.t, "n_bands": self.n_bands, "hidden": self.hidden, "dims": self.dims,
                "dropout": self.dropout, "channels_per_group": self.channels_per_group, "info_dim": self.info_dim}

    def sample_masks(self, k: int, generator: torch.Generator | None) -> list | None:
        if self.dropout <= 0:
            return None
        return [bernoulli_mask((k, d), self.dropout, generator) for d in self.dims]

    def forward(self, info: torch.Tensor, masks: list | None = None) -> FiLM:
        """info ``[K, 13]`` → FiLM dict with a leading task axis."""
        z = info
        for i, (lin, norm) in enumerate(zip(self.linears, self.norms)):
            z = norm(F.gelu(lin(z)))
            if masks is not None:
                z = z * masks[i].to(device=z.device, dtype=z.dtype)
        k = z.shape[0]
        film = {
            "in": (1.0 + torch.sigmoid(self.in_gamma(z)).view(k, self.t, self.n_bands),
                   torch.sigmoid(self.in_beta(z)).view(k, self.t, self.n_bands)),
        }
        for j, name in enumerate(("h1", "h2")):
            film[name] = (F.gelu(self.h_gamma[j](z)), F.gelu(self.h_beta[j](z)))
        return film


def slice_film(film: FiLM | None, a: int, b: int) -> FiLM | None:
    """Tasks ``a:b`` of a task-batched FiLM dict."""
    if film is None:
        return None
    return {k: (g[a:b], be[a:b]) for k, (g, be) in film.items()}


def expand_for_tasks(module: nn.Module, k: int) -> nn.Module:
    """Give every parameter of a learn2learn clone a leading task axis of size ``k`` (a broadcast
    view, no copy), in place, the same way learn2learn's ``update_module`` swaps tensors into
    ``_parameters``. Gradients of a sum of per-task losses w.r.t. these views are the per-task
    gradients; back-propagation through the views sums them into the clone's parameters."""
    for mod in module.modules():
        for name, p in list(mod._parameters.items()):
            if p is not None:
                mod._parameters[name] = p.unsqueeze(0).expand(k, *p.shape)
    return module
