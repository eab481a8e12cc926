"""The TIML paper code's checkpoint layout (nasaharvest/timl, ``crop_classification/dl/lstm.py`` and
``dl/encoder.py``) and its exact mapping onto cropmeta's :mod:`cropmeta.models.timl`.

The paper code saves two ``torch.save(state_dict)`` files: the classifier (``state_dict.pth``) and
the task encoder (``encoder_state_dict.pth``). Facts of that code the mapping rests on (read from it,
not copied):

**Classifier** (``Classifier`` with one ``UnrolledLSTM`` base layer and two classification layers)::

    base.0.rnn.{forget_gate,update_gate,update_candidates,output_gate}.0.weight  [H, F + H]
    base.0.rnn.{...}.0.bias                                                       [H]
    batchnorm.running_mean / running_var / num_batches_tracked                    [H] [H] []
    global_classifier.0.0.weight                                                  [H, H]  (no bias)
    global_classifier.0.2.running_mean / running_var / num_batches_tracked        (BatchNorm after GELU)
    global_classifier.1.0.weight / bias                                           [1, H] [1]

- each gate is its own ``Linear(F + H → H)`` on ``cat(x_t, h)`` with ONE bias (there is no separate
  input and recurrent bias to add up): forget = σ(forget_gate), input = σ(update_gate), candidate =
  tanh(update_candidates), output = σ(output_gate); ``c = f·c + i·g``, ``h = o·tanh(c)``. cropmeta's
  fused LSTM orders its ``4H`` gate columns (input, forget, cell, output), so the gate order is
  :data:`GATES` = (update_gate, forget_gate, update_candidates, output_gate); the first ``F``
  columns of each gate weight act on ``x``, the last ``H`` on ``h``;
- variational dropout: one mask ``[1, N, H]`` drawn after the first step multiplies the hidden state
  after every step, the last one included (the returned ``h_T`` is masked) — cropmeta's
  ``masks["lstm"]`` ``[K, N, H]`` is the same mask per task; evaluation uses none;
- the head: BatchNorm (no affine, eps 1e-5) → FiLM → Linear (no bias) → GELU → BatchNorm → FiLM →
  Linear → sigmoid; cropmeta stores its ``Linear`` weights transposed (``[in, out]``). The
  ``num_batches_tracked`` counters are not used (momentum is fixed at 0.1) and are dropped.

**Task encoder** (``TaskEncoder`` with ``num_hidden_layers = 2``)::

    initial_encoder.{4i}.weight / bias        Linear   (13 → d_0 → … → d_last)
    initial_encoder.{4i+2}.weight / bias      GroupNorm(d_i // channels_per_group, d_i)
    task_embedding_0_gamma.linear.weight/bias [T·F, d_last]  γ_in = 1 + σ(·), reshaped [T, F]
    task_embedding_0_beta.linear.weight/bias  [T·F, d_last]  β_in = σ(·)
    task_embedding_{1,2}_{gamma,beta}.0.weight/bias [H, d_last]  GELU(·)

(``initial_encoder.{4i+1}`` is the GELU, ``{4i+3}`` the dropout). Every one maps to cropmeta's
``TaskEncoder`` by name (``linears.i``, ``norms.i``, ``in_gamma``, ``in_beta``, ``h_gamma.{0,1}``,
``h_beta.{0,1}``), unchanged: both use ``nn.Linear`` layout ``[out, in]``, row-major ``[T, F]``
reshapes and the same number of groups (the paper requires ``d_i`` divisible by the channels per
group). GroupNorm's group count is not in the state dict: it comes from ``channels_per_group``
(the paper's default 16). Training-only difference: the paper also applies dropout to every FiLM
output; cropmeta's encoder masks only its hidden layers. In evaluation (every prediction) the two
are the same function.
"""

from __future__ import annotations

from typing import Mapping

import torch

from cropmeta.errors import InputError

__all__ = [
    "GATES",
    "N_HEAD_FILMS",
    "classifier_layout",
    "encoder_layout",
    "classifier_sizes",
    "encoder_sizes",
    "check_layout",
    "classifier_from_reference",
    "classifier_to_reference",
    "encoder_from_reference",
]

#: the paper's gate layers in cropmeta's gate order (input, forget, cell, output)
GATES = ("update_gate", "forget_gate", "update_candidates", "output_gate")
#: FiLM'd hidden layers of the head (the paper's ``num_hidden_layers``; cropmeta's ``h1``, ``h2``)
N_HEAD_FILMS = 2

_GATE = "base.0.rnn.{}.0"
_BN = ("batchnorm", "global_classifier.0.2")
_FC1 = "global_classifier.0.0.weight"
_FC2 = "global_classifier.1.0"
_IN_FILM = {"in_gamma": "task_embedding_0_gamma.linear", "in_beta": "task_embedding_0_beta.linear"}


def _head_film(j: int) -> dict[str, str]:
    """cropmeta name → paper name of the FiLM heads of hidden layer ``j`` (0-based)."""
    return {f"h_gamma.{j}": f"task_embedding_{j + 1}_gamma.0", f"h_beta.{j}": f"task_embedding_{j + 1}_beta.0"}


def classifier_layout(n_inputs: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Key → shape of the paper classifier's state dict (``n_inputs`` bands per step)."""
    out: dict[str, tuple[int, ...]] = {}
    for g in GATES:
        out[f"{_GATE.format(g)}.weight"] = (hidden, n_inputs + hidden)
        out[f"{_GATE.format(g)}.bias"] = (hidden,)
    for bn in _BN:
        out.update({f"{bn}.running_mean": (hidden,), f"{bn}.running_var": (hidden,), f"{bn}.num_batches_tracked": ()})
    out[_FC1] = (hidden, hidden)
    out[f"{_FC2}.weight"] = (1, hidden)
    out[f"{_FC2}.bias"] = (1,)
    return out


def encoder_layout(info_dim: int, dims, t: int, n_bands: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Key → shape of the paper task encoder's state dict."""
    out: dict[str, tuple[int, ...]] = {}
    prev = info_dim
    for i, d in enumerate(dims):
        out.update({f"initial_encoder.{4 * i}.weight": (d, prev), f"initial_encoder.{4 * i}.bias": (d,),
                    f"initial_encoder.{4 * i + 2}.weight": (d,), f"initial_encoder.{4 * i + 2}.bias": (d,)})
        prev = d
    for name in _IN_FILM.values():
        out.update({f"{name}.weight": (t * n_bands, prev), f"{name}.bias": (t * n_bands,)})
    for j in range(N_HEAD_FILMS):
        for name in _head_film(j).values():
            out.update({f"{name}.weight": (hidden, prev), f"{name}.bias": (hidden,)})
    return out


def _shape(state: Mapping, key: str, source: str) -> tuple[int, ...]:
    v = state.get(key)
    if not torch.is_tensor(v):
        raise InputError(f"{source}: key {key!r} is missing; not a TIML paper checkpoint of this layout")
    return tuple(v.shape)


def classifier_sizes(state: Mapping, source: str = "classifier") -> tuple[int, int]:
    """(bands per step, hidden size) read from a paper classifier state dict."""
    key = f"{_GATE.format(GATES[1])}.weight"
    shape = _shape(state, key, source)
    if len(shape) != 2 or shape[1] <= shape[0]:
        raise InputError(f"{source}: key {key!r} has shape {list(shape)}, expected [H, bands + H]")
    return shape[1] - shape[0], shape[0]


def encoder_sizes(state: Mapping, n_bands: int, source: str = "encoder") -> dict:
    """``{"info_dim", "dims", "t", "hidden"}`` read from a paper task-encoder state dict."""
    first = _shape(state, "initial_encoder.0.weight", source)
    if len(first) != 2:
        raise InputError(f"{source}: key 'initial_encoder.0.weight' has shape {list(first)}, expected [d, 13]")
    dims = []
    while torch.is_tensor(state.get(f"initial_encoder.{4 * len(dims)}.weight")):
        dims.append(int(state[f"initial_encoder.{4 * len(dims)}.weight"].shape[0]))
    key = f"{_IN_FILM['in_gamma']}.weight"
    rows = _shape(state, key, source)[0]
    if rows % n_bands:
        raise InputError(f"{source}: key {key!r} has {rows} rows, not T × {n_bands} bands")
    hidden = _shape(state, f"{_head_film(0)['h_gamma.0']}.weight", source)[0]
    return {"info_dim": int(first[1]), "dims": dims, "t": rows // n_bands, "hidden": int(hidden)}


def check_layout(state, layout: Mapping[str, tuple[int, ...]], source: str) -> None:
    """Refuse, in one line naming ``source`` and the key, a state dict that is not exactly ``layout``:
    a missing or unexpected key, another shape, a non-tensor, a non-float weight, NaN or inf."""
    if not isinstance(state, Mapping):
        raise InputError(f"{source}: holds a {type(state).__name__}, not a state dict (name → tensor)")
    for key, shape in layout.items():
        v = state.get(key)
        if v is None:
            raise InputError(f"{source}: key {key!r} is missing; not a TIML paper checkpoint of this layout")
        if not torch.is_tensor(v):
            raise InputError(f"{source}: key {key!r} holds a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != tuple(shape):
            raise InputError(f"{source}: key {key!r} has shape {list(v.shape)}, expected {list(shape)}")
        if key.endswith("num_batches_tracked"):
            continue
        if not v.is_floating_point():
            raise InputError(f"{source}: key {key!r} has dtype {v.dtype}, expected floating point")
        if not torch.isfinite(v).all():
            raise InputError(f"{source}: key {key!r} contains NaN or inf")
    extra = sorted(set(state) - set(layout), key=str)
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise InputError(f"{source}: unexpected key {extra[0]!r}{more}; not a TIML paper checkpoint of this layout "
                         "(one LSTM layer, two classification layers, two FiLM'd hidden layers)")


def classifier_from_reference(state: Mapping[str, torch.Tensor], n_inputs: int) -> dict[str, torch.Tensor]:
    """Paper classifier tensors → cropmeta ``TIMLClassifier`` state-dict entries. Maps the groups
    present (the LSTM needs all four gates), so it also maps gradients (no BatchNorm buffers)."""
    out: dict[str, torch.Tensor] = {}
    if f"{_GATE.format(GATES[0])}.weight" in state:
        w = torch.cat([state[f"{_GATE.format(g)}.weight"] for g in GATES], dim=0)  # [4H, F + H]
        out["lstm.weight_ih"] = w[:, :n_inputs].T.contiguous()
        out["lstm.weight_hh"] = w[:, n_inputs:].T.contiguous()
    if f"{_GATE.format(GATES[0])}.bias" in state:
        out["lstm.bias"] = torch.cat([state[f"{_GATE.format(g)}.bias"] for g in GATES], dim=0)
    for ours, theirs in zip(("bn1", "bn2"), _BN):
        for stat in ("running_mean", "running_var"):
            if f"{theirs}.{stat}" in state:
                out[f"{ours}.{stat}"] = state[f"{theirs}.{stat}"]
    if _FC1 in state:
        out["fc1.weight"] = state[_FC1].T.contiguous()
    if f"{_FC2}.weight" in state:
        out["fc2.weight"] = state[f"{_FC2}.weight"].T.contiguous()
    if f"{_FC2}.bias" in state:
        out["fc2.bias"] = state[f"{_FC2}.bias"]
    return out


def classifier_to_reference(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """cropmeta ``TIMLClassifier`` state dict → the paper classifier's (``num_batches_tracked`` 0)."""
    w = torch.cat([state["lstm.weight_ih"], state["lstm.weight_hh"]], dim=0).T  # [4H, F + H]
    out: dict[str, torch.Tensor] = {}
    for g, wg, bg in zip(GATES, w.chunk(4, dim=0), state["lstm.bias"].chunk(4, dim=0)):
        out[f"{_GATE.format(g)}.weight"] = wg.contiguous()
        out[f"{_GATE.format(g)}.bias"] = bg.contiguous()
    for ours, theirs in zip(("bn1", "bn2"), _BN):
        for stat in ("running_mean", "running_var"):
            out[f"{theirs}.{stat}"] = state[f"{ours}.{stat}"]
        out[f"{theirs}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    out[_FC1] = state["fc1.weight"].T.contiguous()
    out[f"{_FC2}.weight"] = state["fc2.weight"].T.contiguous()
    out[f"{_FC2}.bias"] = state["fc2.bias"]
    return out


def _encoder_names(n_layers: int) -> dict[str, str]:
    """cropmeta ``TaskEncoder`` module name → paper module name."""
    names = {}
    for i in range(n_layers):
        names[f"linears.{i}"] = f"initial_encoder.{4 * i}"
        names[f"norms.{i}"] = f"initial_encoder.{4 * i + 2}"
    names.update(_IN_FILM)
    for j in range(N_HEAD_FILMS):
        names.update(_head_film(j))
    return names


def encoder_from_reference(state: Mapping[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """Paper task-encoder tensors → cropmeta ``TaskEncoder`` state-dict entries (a renaming)."""
    return {f"{ours}.{p}": state[f"{theirs}.{p}"] for ours, theirs in _encoder_names(n_layers).items()
            for p in ("weight", "bias") if f"{theirs}.{p}" in state}
