"""Presto embeddings of canonical samples, cached per weights SHA-256 and inputs (used by the Presto
methods of the comparison and by the task-informed Presto learner), and the weights' fingerprint."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cropmeta.provenance import sha256_arrays

__all__ = ["PrestoEmbedder", "weights_sha256"]


def _inputs_hash(inputs) -> str:
    return sha256_arrays(inputs.arrays())[:24]


class PrestoEmbedder:
    """Presto embeddings of canonical samples, cached on disk per (weights, inputs) and in memory."""

    _MEMORY: dict = {}

    def __init__(self, weights: str | Path | None = None, device: str | None = None, batch_size: int | None = None,
                 cache: bool = True):
        from cropmeta.provenance import sha256_file
        from cropmeta.models.presto import load_presto

        self.model = load_presto(weights, device=device or "cpu")
        self.weights = Path(weights) if weights is not None else None
        if self.weights is None:
            from cropmeta.models.published import PRESTO, cached_weights

            self.weights = cached_weights(PRESTO)
        self.weights_sha = sha256_file(self.weights)
        self.batch_size = None if batch_size is None else int(batch_size)  # None: the device's default
        self.cache = bool(cache)

    def cache_path(self, key: str) -> Path:
        from cropmeta.io.store import workspace_home

        return workspace_home() / "cache" / "presto" / self.weights_sha[:16] / f"{key}.safetensors"

    def embed(self, inputs, key: str | None = None, cache: bool | None = None, precision: str = "fp32") -> np.ndarray:
        """``[N, 128]`` float32 embeddings of :class:`~cropmeta.models.presto.PrestoInputs`, cached
        under ``key`` (default: a hash of the inputs themselves) in this weights SHA-256's directory.
        ``cache=False`` (e.g. map pixels, seen once) computes without touching the cache;
        ``precision="bf16"`` too (the cache holds float32 embeddings only)."""
        if precision != "fp32" or not (self.cache if cache is None else cache):
            return self.model.embed(inputs, batch_size=self.batch_size, precision=precision)
        key = key or _inputs_hash(inputs)
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

            from cropmeta._fs import atomic_path

            emb = self.model.embed(inputs, batch_size=self.batch_size)
            with atomic_path(path) as tmp:
                save_file({"embeddings": np.ascontiguousarray(emb)}, str(tmp),
                          metadata={"weights_sha256": self.weights_sha, "inputs": key})
        self._MEMORY.clear()  # one target at a time is enough
        self._MEMORY[mem_key] = emb
        return emb.copy()


def weights_sha256(weights: str | Path | None = None) -> str | None:
    """SHA-256 of the Presto weights a method with option ``weights`` would load (None → the
    workspace copy); None when there is no such file (the method then fails with its own message).
    The comparison's cache fingerprints use it instead of the path."""
    from cropmeta.provenance import sha256_file

    if weights is None:
        from cropmeta.models.published import PRESTO, cached_weights

        try:
            weights = cached_weights(PRESTO)
        except Exception:  # noqa: BLE001 - no workspace copy: nothing to fingerprint
            return None
    path = Path(weights)
    return sha256_file(path) if path.is_file() else None
