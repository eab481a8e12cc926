"""Inference-only form of a trained TIML classifier for map export: the same function, fewer and
bigger kernels.

A trained classifier in evaluation mode for ONE task is an affine map of the raw input, an LSTM and
a small head. Everything that is fixed for the task is folded into weights once:

- normalisation ``(x − mean) / std`` and the input FiLM ``x·γ + β`` → one affine per (step, band),
  ``x·A + B``, applied to the raw input (in float32 even when the LSTM runs in bfloat16: raw
  reflectances are in the thousands and bfloat16 keeps 8 significant bits);
- the concatenated task information of the ``concat`` ablation → a constant added to the LSTM bias;
- the LSTM runs as ``torch.nn.LSTM`` (oneDNN's fused RNN on CPU, cuDNN on CUDA) instead of a Python
  loop of separate matmul/sigmoid/tanh kernels (:class:`~cropmeta.models.timl.TaskLSTM` is built for
  training with per-task weights; its gate order (i, f, g, o) is ``nn.LSTM``'s);
- BatchNorm (running statistics) + hidden FiLM → folded into the two head linears.

The result equals :class:`~cropmeta.models.timl.TIMLClassifier` in eval mode to float32 rounding
(tests/test_precision.py). ``dtype=torch.bfloat16`` runs the LSTM in bfloat16 (everything else in
float32); use it only where the hardware has fast bfloat16 (:func:`bf16_fast`) and only after a check
such as :func:`cropmeta.mapping.precision.check_reduced_precision`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FoldedTIML", "fold_classifier", "bf16_fast", "model_flops_per_pixel", "precision_context", "training_precision",
           "PRECISIONS"]

#: arithmetic precisions of inference: ``fp32``, ``bf16`` (and ``auto`` = bf16 where native and checked)
PRECISIONS = ("fp32", "bf16", "auto")


class FoldedTIML(nn.Module):
    """``forward(x raw [N, T, F]) -> logits [N]`` (float32) for one task. Build with :func:`fold_classifier`."""

    def __init__(self, t: int, n_bands: int, hidden: int):
        super().__init__()
        self.t, self.n_bands, self.hidden = t, n_bands, hidden
        self.register_buffer("in_scale", torch.ones(t, n_bands))
        self.register_buffer("in_shift", torch.zeros(t, n_bands))
        self.register_buffer("w_ih_t", torch.zeros(n_bands, 4 * hidden))  # float32 input projection [F, 4H]
        self.lstm = nn.LSTM(n_bands, hidden, batch_first=True)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        self.lstm_dtype = torch.float32

    def set_lstm_dtype(self, dtype: torch.dtype) -> "FoldedTIML":
        """Run the LSTM's recurrent products in ``dtype`` (float32 or bfloat16); the input affine, the
        input projection, the cell state and the head stay float32 (see :meth:`_lstm_mixed`)."""
        self.lstm.to(dtype=dtype)
        self.lstm_dtype = dtype
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(self.in_shift, x.to(self.in_scale.dtype), self.in_scale)
        if self.lstm_dtype == torch.float32:
            _, (h, _) = self.lstm(x)
            h = h[-1]
        else:
            h = self._lstm_mixed(x)
        return self.fc2(F.gelu(self.fc1(h))).squeeze(-1)

    def _lstm_mixed(self, x: torch.Tensor) -> torch.Tensor:
        """Reduced-precision LSTM: the recurrent products ``h @ W_hh`` (88 % of the FLOPs at hidden 128,
        18 bands) in ``lstm_dtype`` with float32 accumulation inside the kernel; the input projection
        (one matmul for all steps), gates, cell and hidden state in float32. Measured on the real
        CropHarvest tiles (tests/test_precision.py): the input projection in bfloat16 moves
        probabilities ~5× more (1.5e-3 vs 2.8e-4) than the recurrent products — the normalised
        inputs, not the bounded hidden state, lose the most to 8 significant bits — and so does a
        whole-bfloat16 ``nn.LSTM`` (1.7e-3)."""
        dt = self.lstm_dtype
        n, t, _ = x.shape
        hs = self.hidden
        w_ih = self.w_ih_t  # [F, 4H] float32
        w_hh = self.lstm.weight_hh_l0.t()  # [H, 4H] in lstm_dtype
        bias = (self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0).float()
        gx = torch.addmm(bias, x.reshape(n * t, -1), w_ih).view(n, t, 4 * hs)
        h = x.new_zeros(n, hs)
        c = x.new_zeros(n, hs)
        for step in range(t):
            g = gx[:, step] + (h.to(dt) @ w_hh).float()
            i, f, gg, o = g.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h = torch.sigmoid(o) * torch.tanh(c)
        return h


@torch.no_grad()
def fold_classifier(clf, film: dict | None, mean, std, info=None) -> FoldedTIML:
    """The :class:`FoldedTIML` of ``clf`` (a :class:`~cropmeta.models.timl.TIMLClassifier`) for one task.

    ``film``: the task's FiLM dict from the task encoder (leading task axis of 1 allowed) or ``None``;
    ``mean``, ``std``: the normaliser's per-band statistics (``[F]``); ``info``: the 13 task numbers
    for a classifier built with ``extra_inputs`` (the concatenation ablation). Folding is done in
    float64, the result is float32 on the classifier's device."""
    t, nb, hs = int(clf.t), int(clf.n_bands), int(clf.hidden)
    device = next(clf.parameters()).device
    mean = torch.as_tensor(np.asarray(mean, dtype=np.float64)).view(1, nb)
    std = torch.as_tensor(np.asarray(std, dtype=np.float64)).view(1, nb)
    if film is not None:
        g_in, b_in = (v.detach().to("cpu", torch.float64).reshape(t, nb) for v in film["in"])
        g1, b1 = (v.detach().to("cpu", torch.float64).reshape(hs) for v in film["h1"])
        g2, b2 = (v.detach().to("cpu", torch.float64).reshape(hs) for v in film["h2"])
    else:
        g_in, b_in = torch.ones(t, nb, dtype=torch.float64), torch.zeros(t, nb, dtype=torch.float64)
        g1 = g2 = torch.ones(hs, dtype=torch.float64)
        b1 = b2 = torch.zeros(hs, dtype=torch.float64)
    out = FoldedTIML(t, nb, hs)
    out.in_scale.copy_(g_in / std)
    out.in_shift.copy_(b_in - mean * g_in / std)

    w_ih = clf.lstm.weight_ih.detach().to("cpu", torch.float64)  # [F (+extra), 4H]
    w_hh = clf.lstm.weight_hh.detach().to("cpu", torch.float64)  # [H, 4H]
    bias = clf.lstm.bias.detach().to("cpu", torch.float64)
    extra = int(getattr(clf, "extra_inputs", 0) or 0)
    if extra:
        if info is None:
            raise ValueError("this classifier concatenates task information: pass info (13 numbers)")
        inf = torch.as_tensor(np.asarray(info, dtype=np.float64)).reshape(extra)
        bias = bias + inf @ w_ih[nb:]
        w_ih = w_ih[:nb]
    out.lstm.weight_ih_l0.copy_(w_ih.T)
    out.w_ih_t.copy_(w_ih)
    out.lstm.weight_hh_l0.copy_(w_hh.T)
    out.lstm.bias_ih_l0.copy_(bias)
    out.lstm.bias_hh_l0.zero_()

    def bn_affine(bn):  # eval-mode TaskBatchNorm: (h − rm) / sqrt(rv + eps)
        rm = bn.running_mean.detach().to("cpu", torch.float64)
        sd = torch.sqrt(bn.running_var.detach().to("cpu", torch.float64) + bn.eps)
        return 1.0 / sd, -rm / sd

    a1, c1 = bn_affine(clf.bn1)
    a1, c1 = a1 * g1, c1 * g1 + b1  # h ↦ h·a1 + c1 (BN then FiLM)
    w1 = clf.fc1.weight.detach().to("cpu", torch.float64)  # [in, out]
    out.fc1.weight.copy_((a1[:, None] * w1).T)
    b_fc1 = c1 @ w1
    if clf.fc1.bias is not None:
        b_fc1 = b_fc1 + clf.fc1.bias.detach().to("cpu", torch.float64)
    out.fc1.bias.copy_(b_fc1)
    a2, c2 = bn_affine(clf.bn2)
    a2, c2 = a2 * g2, c2 * g2 + b2
    w2 = clf.fc2.weight.detach().to("cpu", torch.float64)  # [H, 1]
    out.fc2.weight.copy_((a2[:, None] * w2).T)
    out.fc2.bias.copy_(c2 @ w2 + clf.fc2.bias.detach().to("cpu", torch.float64))
    out.eval()
    return out.to(device=device, dtype=torch.float32)


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return ""


def bf16_fast(device: torch.device | str = "cpu") -> bool:
    """Whether bfloat16 matrix multiplication is native (faster than float32) on ``device``: a CUDA
    GPU with bfloat16 support, or a CPU with AMX-BF16 or AVX512-BF16. Elsewhere bfloat16 is emulated
    and slower (measured ≈ 50× slower than float32 on an AVX2-only EPYC; docs/benchmarks-perf.md)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    flags = _cpu_flags().split()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def precision_context(precision: str, device: torch.device | str = "cpu"):
    """A context in which a network runs at ``precision``: ``fp32`` → nothing changes; ``bf16`` →
    ``torch.autocast`` to bfloat16 on ``device``'s type (matrix products in bfloat16, reductions and
    normalisations in float32 as autocast's policy says)."""
    import contextlib

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be fp32 or bf16 here, got {precision!r}")


def training_precision(requested: str, device: torch.device | str = "cpu") -> str:
    """The precision of training steps for a request ``fp32`` | ``bf16`` | ``auto``: ``auto`` is
    ``bf16`` where :func:`bf16_fast` finds it native on ``device``, else ``fp32``."""
    if requested == "auto":
        return "bf16" if bf16_fast(device) else "fp32"
    if requested not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32, bf16 or auto, got {requested!r}")
    return requested


def model_flops_per_pixel(t: int, n_bands: int, hidden: int, extra_inputs: int = 0) -> int:
    """Multiply-add FLOPs (×2) of one pixel through the TIML classifier: the LSTM's input and
    recurrent products at every step, plus the two head linears (elementwise work not counted).
    Hidden 128, T = 12, 18 bands: 1 827 072 ≈ 1.83 MFLOP (issue 7 quotes ≈ 1.8)."""
    gates = 4 * hidden
    lstm = t * 2 * (n_bands + extra_inputs + hidden) * gates
    head = 2 * hidden * hidden + 2 * hidden
    return int(lstm + head)


class FusedLoopLSTM(nn.Module):
    """The folded model's LSTM as an explicit loop with the gate maths fused where torch lets us:
    the input projection of all steps in one product (time-major, so each step's slice is
    contiguous), gates reordered to (i, f, o | g) so one ``sigmoid`` covers three gates and one
    ``tanh`` the fourth, the recurrent product as ``addmm`` into the step's projection, and step 0's
    recurrent product (``h = 0``) skipped. Same function as ``nn.LSTM``; measured against it by
    ``benchmarks/bench_lstm.py`` (it is an option there, not the default)."""

    def __init__(self, folded: "FoldedTIML"):
        super().__init__()
        hs = folded.hidden
        order = torch.cat([torch.arange(0, 2 * hs), torch.arange(3 * hs, 4 * hs), torch.arange(2 * hs, 3 * hs)])
        lstm = folded.lstm
        w_ih = lstm.weight_ih_l0.detach().float()[order]  # [4H, F]
        w_hh = lstm.weight_hh_l0.detach().float()[order]  # [4H, H]
        bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().float()[order]
        self.hidden = hs
        self.register_buffer("w_ih_t", w_ih.t().contiguous())
        self.register_buffer("w_hh_t", w_hh.t().contiguous())
        self.register_buffer("bias", bias.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, T, F]`` (after the input affine) → last hidden state ``[N, H]``."""
        n, t, f = x.shape
        hs = self.hidden
        xt = x.transpose(0, 1).reshape(t * n, f)
        gx = torch.addmm(self.bias, xt, self.w_ih_t).view(t, n, 4 * hs)
        h = c = None
        for step in range(t):
            g = gx[step] if h is None else torch.addmm(gx[step], h, self.w_hh_t)
            s = torch.sigmoid(g[:, : 3 * hs])
            gg = torch.tanh(g[:, 3 * hs:])
            c = s[:, :hs] * gg if c is None else torch.addcmul(s[:, hs: 2 * hs] * c, s[:, :hs], gg)
            h = s[:, 2 * hs: 3 * hs] * torch.tanh(c)
        return h
