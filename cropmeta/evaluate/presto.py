"""The ``presto`` method of the comparison: frozen Presto embeddings + logistic regression
("Presto R" of Tseng et al. 2023; the protocol of PRESTO.md §10).

- Each sample's Presto inputs come from its canonical bands, its own latitude/longitude and the
  months of its steps from its start date (:func:`cropmeta.models.presto.presto_inputs`); Dynamic
  World is marked missing.
- ``prepare`` embeds every sample of the target task (its training pool and test set) once, with
  the encoder in eval mode and no gradient; the embeddings are cached under
  ``$CROPMETA_HOME/cache/presto/<weights sha>/<inputs hash>.safetensors``, so seeds and later runs
  reuse them.
- ``fit``: ``LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed)`` on the
  128-number embeddings; ``predict_proba``: its positive-class probability.

The methods' contract passes samples as arrays only; the per-sample location and dates are found
by the sample's values (a digest of its ``[T, 18]`` row) among the target's samples, which
:func:`cropmeta.evaluate.compare.build_target` passes in ``TargetTask.extra["samples"]``. A sample
not found there (e.g. a generated view) is placed at the target region's centre with the target's
most common start date (or February, CropHarvest's start, when none is known).

Adaptation cost: a fit is the logistic regression only (the frozen embeddings are computed once per
target in ``prepare``, whose time the report records separately).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from cropmeta.errors import InputError
from cropmeta.evaluate.methods import Method, TargetTask, _check_xy

__all__ = ["PrestoEmbedder", "PrestoMethod"]


def _row_digests(x: np.ndarray) -> list[bytes]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in x]


def _inputs_hash(inputs) -> str:
    h = hashlib.sha256()
    for k, v in sorted(inputs.arrays().items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()[:24]


class PrestoEmbedder:
    """Presto embeddings of canonical samples, cached on disk per (weights, inputs) and in memory."""

    _MEMORY: dict = {}

    def __init__(self, weights: str | Path | None = None, device: str | None = None, batch_size: int = 4096,
                 cache: bool = True):
        from cropmeta.io.atomic import sha256_file
        from cropmeta.models.presto import load_presto

        self.model = load_presto(weights, device=device or "cpu")
        self.weights = Path(weights) if weights is not None else None
        if self.weights is None:
            from cropmeta.models.weights import PRESTO, cached_weights

            self.weights = cached_weights(PRESTO)
        self.weights_sha = sha256_file(self.weights)
        self.batch_size = int(batch_size)
        self.cache = bool(cache)

    def cache_path(self, key: str) -> Path:
        from cropmeta.io.store import workspace_home

        return workspace_home() / "cache" / "presto" / self.weights_sha[:16] / f"{key}.safetensors"

    def embed(self, x, lat, lon, start_dates=None) -> np.ndarray:
        """``[N, 128]`` float32 embeddings of raw canonical samples ``x [N, T, 18]``."""
        from cropmeta.models.presto import presto_inputs

        inputs = presto_inputs(x, lat, lon, start_dates)
        if not self.cache:
            return self.model.embed(inputs, batch_size=self.batch_size)
        key = _inputs_hash(inputs)
        mem_key = (self.weights_sha, key)
        if mem_key in self._MEMORY:
            return self._MEMORY[mem_key].copy()
        path = self.cache_path(key)
        emb = None
        if path.is_file():
            from safetensors.numpy import load_file

            try:
                emb = load_file(str(path))["embeddings"]
            except Exception:  # noqa: BLE001 - a damaged cache is recomputed, never trusted
                emb = None
            if emb is not None and emb.shape != (len(inputs), 128):
                emb = None
        if emb is None:
            from safetensors.numpy import save_file

            from cropmeta.io.atomic import atomic_path

            emb = self.model.embed(inputs, batch_size=self.batch_size)
            with atomic_path(path) as tmp:
                save_file({"embeddings": np.ascontiguousarray(emb)}, str(tmp),
                          metadata={"weights_sha256": self.weights_sha, "inputs": key})
        self._MEMORY.clear()  # one target at a time is enough
        self._MEMORY[mem_key] = emb
        return emb.copy()


class PrestoMethod(Method):
    """``presto``: frozen Presto embeddings + logistic regression (see the module docstring).
    Options: ``weights`` (a safetensors / published .pt path; default: the workspace copy from
    ``cropmeta models download presto``), ``batch_size``, ``device`` (default: the training
    configuration's), ``cache`` (embeddings on disk, default on)."""

    name = "presto"
    needs_source = False

    def __init__(self, cfg: Any = None, weights: str | Path | None = None, batch_size: int = 4096,
                 device: str | None = None, cache: bool = True):
        if device is None and cfg is not None:
            from cropmeta.train.trained import resolve_device

            device = str(resolve_device(cfg.device))
        self.options = {"weights": weights, "batch_size": batch_size, "device": device, "cache": cache}
        self.embedder: PrestoEmbedder | None = None
        self.known: dict[bytes, np.ndarray] = {}
        self.fallback = (0.0, 0.0, None)
        self.model = None
        self._constant: float | None = None

    def _embedder(self) -> PrestoEmbedder:
        if self.embedder is None:
            self.embedder = PrestoEmbedder(**self.options)
        return self.embedder

    def set_target(self, target: TargetTask, seed: int) -> None:
        task = target.extra.get("task")
        samples = target.extra.get("samples")
        start = None
        if samples is not None and len(samples):
            dates = samples.meta["start_date"].dropna().astype(str)
            start = str(dates.mode().iloc[0]) if len(dates) else None
        lat, lon = (task.lat, task.lon) if task is not None else (0.0, 0.0)
        if task is None and samples is not None and len(samples):
            lat, lon = float(samples.meta["lat"].mean()), float(samples.meta["lon"].mean())
        self.fallback = (float(lat), float(lon), start)

    def prepare(self, source, target: TargetTask, seed: int, workdir=None) -> "PrestoMethod":
        self.set_target(target, seed)
        samples = target.extra.get("samples")
        self.known = {}
        if samples is not None and len(samples):
            meta = samples.meta
            emb = self._embedder().embed(samples.x, meta["lat"].to_numpy(), meta["lon"].to_numpy(),
                                         meta["start_date"].tolist())
            self.known = dict(zip(_row_digests(samples.x), emb))
        return self

    def embeddings(self, x: np.ndarray) -> np.ndarray:
        """Embeddings of ``x``: the prepared ones where the sample is known, else computed with the
        target's fallback location and start date."""
        x = np.asarray(x, dtype=np.float32)
        digests = _row_digests(x)
        out = np.empty((len(x), 128), dtype=np.float32)
        miss = [i for i, d in enumerate(digests) if d not in self.known]
        for i, d in enumerate(digests):
            if d in self.known:
                out[i] = self.known[d]
        if miss:
            lat, lon, start = self.fallback
            out[miss] = self._embedder().embed(x[miss], lat, lon, [start] * len(miss))
        return out

    def fit(self, x, y, seed: int = 0) -> "PrestoMethod":
        from sklearn.linear_model import LogisticRegression

        x, y = _check_xy(x, y, "presto")
        emb = self.embeddings(x)
        self._constant = None
        if len(np.unique(y)) < 2:  # one class only: predict it
            self.model, self._constant = None, float(y[0]) if len(y) else 0.5
            return self
        self.model = LogisticRegression(class_weight="balanced", max_iter=1000, random_state=seed).fit(emb, y)
        return self

    def predict_proba(self, x) -> np.ndarray:
        if self.model is None and self._constant is None:
            raise InputError("presto: predict_proba called before fit")
        x = np.asarray(x, dtype=np.float32)
        if self._constant is not None:
            return np.full(len(x), self._constant)
        p = self.model.predict_proba(self.embeddings(x))
        return p[:, list(self.model.classes_).index(1)].astype(np.float64)
