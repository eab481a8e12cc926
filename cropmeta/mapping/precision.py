"""Fast inference for map export (folded model, fused LSTM) and the reduced-precision gate.

:class:`FastPredictor` has the :class:`~cropmeta.train.checkpoint.Predictor` interface
(``predict_proba(x [N, T, 18] raw) -> [N]``, ``t``, ``metadata``, ``temperature``, ``to``) and runs
the run's classifier through :func:`cropmeta.models.inference.fold_classifier`: same probabilities as
``Predictor`` to float32 rounding, fewer kernels. It plugs into the export as a loader::

    export(run_dir, out, loader="cropmeta.mapping.precision:load_fast_predictor")        # float32
    export(run_dir, out, loader="cropmeta.mapping.precision:load_fast_predictor_bf16")   # bfloat16 LSTM

bfloat16 is an option, never a silent default: :func:`resolve_precision` turns a request
(``fp32`` | ``bf16`` | ``auto``) into the precision to use on given pixels — bfloat16 only where the
hardware runs it natively (:func:`~cropmeta.models.inference.bf16_fast`, for ``auto``) AND
:func:`check_reduced_precision` finds every probability within ``prob_tol`` (0.01) of float32 and
≥ ``min_agreement`` (99.9 %) of the class map identical on those pixels; otherwise float32. The
decision is made once (in the driver, on the first block) and handed to every worker, so a serial
and a Dask run stay identical.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from cropmeta.errors import InputError
from cropmeta.models.inference import PRECISIONS, bf16_fast, fold_classifier
from cropmeta.schema import CROPHARVEST

__all__ = ["FastPredictor", "load_fast_predictor", "load_fast_predictor_bf16", "check_reduced_precision",
           "resolve_precision", "with_precision", "timed_proba", "BF16_LOADER"]

#: the export loader of a bfloat16 map (``resolve_precision`` chose it)
BF16_LOADER = "cropmeta.mapping.precision:load_fast_predictor_bf16"
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class FastPredictor:
    """A run's model folded for inference (see module docstring). ``precision``: ``fp32`` or ``bf16``
    (the LSTM's arithmetic; input affine and head stay float32)."""

    def __init__(self, predictor, precision: str = "fp32", batch_size: int = 1024):
        if precision not in _DTYPES:
            raise InputError(f"precision must be one of {', '.join(_DTYPES)}, got {precision!r}")
        model = predictor.model
        if model.normalizer is None:
            raise InputError("the model has no normalisation statistics (fine-tune or train it first)")
        self.base = predictor
        self.precision = precision
        self.batch_size = int(batch_size)
        self.metadata = dict(getattr(predictor, "metadata", {}) or {})
        self.metadata["precision"] = precision
        self.temperature = getattr(predictor, "temperature", None)
        film, info = model.task_inputs()
        self.net = fold_classifier(model.classifier, film, model.normalizer.mean, model.normalizer.std,
                                   info=None if info is None else info.detach().cpu().numpy().reshape(-1))
        self.net.set_lstm_dtype(_DTYPES[precision])

    @property
    def t(self) -> int:
        return int(self.net.t)

    @property
    def schema(self):
        """The band schema of the model's input (CropHarvest-18 unless it was trained on another)."""
        return getattr(self.base.model, "schema", None) or CROPHARVEST

    @property
    def device(self) -> torch.device:
        return self.net.in_scale.device

    def to(self, device) -> "FastPredictor":
        self.net.to(device=torch.device(device) if isinstance(device, str) else device)
        self.net.set_lstm_dtype(self.net.lstm_dtype)
        return self

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        nb = self.schema.n_bands
        if x.ndim != 3 or x.shape[2] != nb or x.shape[1] != self.t:
            raise InputError(f"samples must be [N, {self.t}, {nb}] (band schema {self.schema.name!r}), "
                             f"got {list(x.shape)}")
        x = self.base.model.inputs(x)
        out = np.empty(len(x), dtype=np.float64)
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[i : i + self.batch_size])).to(self.device)
                out[i : i + len(xb)] = self.net(xb).double().cpu().numpy()
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x)
        if self.temperature is not None:
            z = z / float(self.temperature)
        return 1.0 / (1.0 + np.exp(-z))


def with_precision(predictor, precision: str):
    """``predictor`` (a :class:`~cropmeta.train.checkpoint.Predictor` or a :class:`FastPredictor`)
    computing at ``precision`` (``fp32`` | ``bf16``): a TIML/MAML LSTM folded (:class:`FastPredictor`);
    a model with ``set_precision`` (the Presto learners: the encoder under bfloat16 autocast) as a
    copy set to it; any other model only in ``fp32``."""
    import copy

    if precision not in _DTYPES:
        raise InputError(f"precision must be one of {', '.join(_DTYPES)}, got {precision!r}")
    base = predictor.base if isinstance(predictor, FastPredictor) else predictor
    model = getattr(base, "model", None)
    if hasattr(model, "classifier"):
        return FastPredictor(base, precision)
    if hasattr(model, "set_precision"):
        out = copy.copy(base)
        out.model = copy.copy(model).set_precision(precision)
        out.metadata = dict(getattr(base, "metadata", {}) or {}, precision=precision)
        return out
    if precision != "fp32":
        raise InputError(f"a {getattr(model, 'kind', type(model).__name__)!r} model has no bfloat16 path "
                         "(--precision fp32)")
    return base


def _load(run_dir, precision: str, device: str = "cpu"):
    from cropmeta.train.checkpoint import load_predictor

    pred = load_predictor(Path(run_dir), device=device)
    model = getattr(pred, "model", None)
    if not (hasattr(model, "classifier") or hasattr(model, "set_precision")):
        return pred  # e.g. the in-context learner, the forests: nothing to fold, float32 only
    return with_precision(pred, precision)


def load_fast_predictor(run_dir) -> FastPredictor:
    """Export loader (``"cropmeta.mapping.precision:load_fast_predictor"``): float32."""
    return _load(run_dir, "fp32")


def load_fast_predictor_bf16(run_dir) -> FastPredictor:
    """Export loader: bfloat16 (the LSTM, or the Presto encoder's products). Use only after
    :func:`resolve_precision` said ``bf16``."""
    return _load(run_dir, "bf16")


def check_reduced_precision(predictor, x: np.ndarray, threshold: float = 0.5, prob_tol: float = 0.01,
                            min_agreement: float = 0.999, context: dict | None = None) -> dict:
    """Compare bfloat16 with float32 on pixels ``x [N, T, bands]`` (raw): the largest probability
    difference, the share of identical classes at ``threshold`` and whether both are within bounds.
    ``predictor``: a :class:`~cropmeta.train.checkpoint.Predictor` or a :class:`FastPredictor`;
    ``context``: the pixels' ``lat``/``lon``/``start_dates`` for a model that reads them (Presto)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise InputError("no pixels to check reduced precision on")
    extra = context if context and getattr(predictor, "uses_locations", False) else {}
    p32, t32 = timed_proba(with_precision(predictor, "fp32"), x, extra)
    p16, t16 = timed_proba(with_precision(predictor, "bf16"), x, extra)
    diff = float(np.max(np.abs(p16 - p32)))
    agree = float(np.mean((p16 >= threshold) == (p32 >= threshold)))
    return {"pixels": int(len(x)), "max_abs_prob_diff": diff, "mean_abs_prob_diff": float(np.mean(np.abs(p16 - p32))),
            "class_agreement": agree, "prob_tol": prob_tol, "min_agreement": min_agreement,
            "ok": bool(diff <= prob_tol and agree >= min_agreement),
            "seconds_fp32": round(t32, 4), "seconds_bf16": round(t16, 4)}


def timed_proba(predictor, x: np.ndarray, extra: dict) -> tuple[np.ndarray, float]:
    """(probabilities ``[N]`` float64, seconds) of ``predictor`` on ``x``, timed after a warm-up call
    on the first 64 pixels (kernel selection and first-call costs left out)."""
    import time

    predictor.predict_proba(x[:64], **{k: v[:64] for k, v in extra.items()})
    t0 = time.perf_counter()
    p = np.asarray(predictor.predict_proba(x, **extra), dtype=np.float64)
    return p, time.perf_counter() - t0


def resolve_precision(requested: str, predictor, x_sample: np.ndarray, device: str | torch.device = "cpu",
                      threshold: float = 0.5, context: dict | None = None) -> tuple[str, dict]:
    """The precision to export with: ``fp32`` asked → ``fp32``; ``bf16`` → ``bf16`` if the check on
    ``x_sample`` passes (else ``fp32`` with a warning); ``auto`` → ``bf16`` only where the hardware
    runs it natively, the check passes **and** bfloat16 was faster on those pixels (the folded LSTM's
    bfloat16 kernels are slower than its float32 ones even on a CPU with AVX512-BF16: 49k vs 87k px/s
    measured, docs/presto.md). Returns (precision, report)."""
    if requested not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    report: dict = {"requested": requested, "bf16_native": bf16_fast(device)}
    if requested == "fp32" or (requested == "auto" and not report["bf16_native"]):
        return "fp32", report
    check = check_reduced_precision(predictor, x_sample, threshold, context=context)
    report["check"] = check
    if check["ok"] and requested == "auto" and check["seconds_bf16"] >= check["seconds_fp32"]:
        report["why"] = (f"bfloat16 passed the check but was not faster here ({check['seconds_bf16']:.3f} s vs "
                         f"{check['seconds_fp32']:.3f} s in float32 on {check['pixels']} pixels)")
        return "fp32", report
    if check["ok"]:
        return "bf16", report
    warnings.warn(f"bfloat16 changes probabilities by up to {check['max_abs_prob_diff']:.4f} / classes on "
                  f"{100 * (1 - check['class_agreement']):.2f} % of the checked pixels (limits "
                  f"{check['prob_tol']}, {100 * (1 - check['min_agreement']):.1f} %): exporting in float32",
                  stacklevel=2)
    return "fp32", report
