"""What every model built on the frozen or fine-tuned Presto encoder shares: the Presto weights it
was trained with (by SHA-256), and raw samples → Presto inputs → embeddings with each sample's own
place and time.

A model mixing in :class:`PrestoBacked` declares ``uses_locations`` (the learner contract's flag), so
training runs pass each sample's ``lat``, ``lon`` and ``start_dates`` and map export passes each
pixel centre's (:meth:`cropmeta.mapping.sources.Source.pixel_context`). Without them a sample sits at
the centre of the model's task region (from its task vector) and starts in February (CropHarvest).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cropmeta.errors import InputError, ModelError

__all__ = ["PrestoBacked", "check_labels", "schema_bands", "xyz_to_latlon"]


def schema_bands(schema) -> tuple | None:
    """A band schema's bands for a Presto model: None for CropHarvest's 18 (the default), else the tuple."""
    from cropmeta.schema import BANDS

    if schema is None or tuple(schema.bands) == tuple(BANDS):
        return None
    return tuple(schema.bands)


def check_labels(y, n: int, what: str) -> np.ndarray:
    """0/1 labels ``y`` of ``n`` samples as int64, both classes present (else a clear error)."""
    y = np.asarray(y).astype(np.int64).ravel()
    if len(y) != n:
        raise InputError(f"{what}: {n} samples for {len(y)} labels")
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0 or n_pos + n_neg != len(y):
        raise InputError(f"{what} needs 0/1 labels of both classes ({n_pos} positives, {n_neg} negatives)")
    return y


def xyz_to_latlon(xyz) -> tuple[float, float]:
    """Degrees (lat, lon) of the unit-sphere point of a task vector's first three numbers."""
    x, y, z = (float(v) for v in np.asarray(xyz, dtype=np.float64)[:3])
    return float(np.degrees(np.arctan2(z, np.hypot(x, y)))), float(np.degrees(np.arctan2(y, x)))


class PrestoBacked:
    """Mixin: needs attributes ``kind``, ``presto_sha256``, ``task_info`` (13 numbers or None),
    ``embedder`` (a :class:`~cropmeta.models.presto_embed.PrestoEmbedder` or None: loaded on first
    use) and ``device``."""

    uses_locations: ClassVar[bool] = True
    #: arithmetic of the encoder at prediction (``fp32`` or ``bf16``: :meth:`set_precision`)
    inference_precision: ClassVar[str] = "fp32"

    def set_precision(self, precision: str):
        """Predict with the encoder at ``precision`` (``fp32`` | ``bf16``); for maps, after
        :func:`cropmeta.mapping.precision.resolve_precision` chose it. Returns self."""
        if precision not in ("fp32", "bf16"):
            raise InputError(f"precision must be fp32 or bf16, got {precision!r}")
        self.inference_precision = precision
        return self

    def presto_inputs(self, x: np.ndarray, lat=None, lon=None, start_dates=None):
        """Presto's inputs of raw samples ``x [N, T, bands]`` in the model's band schema (``bands``:
        None = CropHarvest's 18; Presto masks the channel groups a schema lacks); ``lat``/``lon``
        default to the centre of the task's region (from its task vector), ``start_dates`` to February."""
        from cropmeta.models.presto_layout import presto_inputs

        if lat is None or lon is None:
            if self.task_info is None:
                raise InputError(f"{self.kind}: give the samples' lat/lon (the model has no target task vector)")
            lat, lon = xyz_to_latlon(self.task_info)
        bands = getattr(self, "bands", None)
        return presto_inputs(np.asarray(x, dtype=np.float32), lat, lon, start_dates,
                             bands=list(bands) if bands else None)

    def embed(self, x: np.ndarray, lat=None, lon=None, start_dates=None) -> np.ndarray:
        """Frozen Presto embeddings ``[N, 128]`` of raw samples (:meth:`presto_inputs`); not cached on
        disk: raw samples here are a run's few target labels or map pixels seen once."""
        return self.presto_embedder().embed(self.presto_inputs(x, lat, lon, start_dates), cache=False,
                                            precision=self.inference_precision)

    def presto_embedder(self):
        if self.embedder is None:
            self.use_weights(device=str(self.device))
        return self.embedder

    def use_weights(self, weights=None, device: str | None = None, embedder=None):
        """Attach the Presto encoder (an existing :class:`~cropmeta.models.presto_embed.PrestoEmbedder`,
        or one loaded from ``weights``: default the workspace copy); refuses weights whose SHA-256
        differs from the model's."""
        if embedder is None:
            from cropmeta.models.presto_embed import PrestoEmbedder

            embedder = PrestoEmbedder(weights, device=device)
        if embedder.weights_sha != self.presto_sha256:
            raise ModelError(f"{self.kind}: trained on Presto weights {self.presto_sha256[:16]}…, "
                             f"given {embedder.weights_sha[:16]}…")
        self.embedder = embedder
        return self
