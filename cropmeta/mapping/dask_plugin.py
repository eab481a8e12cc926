"""Dask worker plugin of the map export: the model is loaded once per worker when the plugin is
registered (and on every worker that joins the cluster later), with the export's torch thread
count, before the first block arrives. Imported only when Dask runs (it imports ``distributed``)."""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from cropmeta.mapping.infer import ModelSpec


class ModelWarmup(WorkerPlugin):
    """Load ``model`` on each worker at setup (a failure is left to the first block to report with
    its window: the worker stays usable for other exports)."""

    def __init__(self, model: ModelSpec):
        self.model = model

    def setup(self, worker) -> None:
        from cropmeta.mapping.model import get_predictor, set_threads

        set_threads(self.model.threads)
        try:
            get_predictor(self.model.run_dir, self.model.loader, self.model.device)
        except Exception:  # noqa: BLE001 - reported per block by compute_block
            pass


def plugin_name(model: ModelSpec) -> str:
    """One plugin per model (its SHA-256 when known), loader and device: re-registering the same
    model on a long-lived cluster replaces the plugin, and the per-process cache keeps one load."""
    import hashlib

    ident = "|".join(str(v) for v in (model.sha or model.run_dir, model.loader, model.device, model.threads))
    return "cropmeta-model-" + hashlib.sha256(ident.encode()).hexdigest()[:16]
