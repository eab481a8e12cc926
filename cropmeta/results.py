"""Typed results of the Python API (:mod:`cropmeta.api`): small dataclasses with documented fields
and a ``to_dict()`` that gives back exactly the dict the library function returns (what the CLI
prints and the run directory records). Importing this module imports neither torch nor rasterio."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainResult", "ExportResult", "CompareResult"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`cropmeta.train_model` produced (the run directory holds the same).

    Fields:
        run_dir: the run directory (config.json, metrics.json, model.safetensors + model.json, …).
        target: the target task (``Task.to_dict()``: id, name, region, crop, crop_group, lat, lon, info).
        metrics: held-out test metrics (auc_roc, f1, precision, recall, accuracy, iou, kappa, brier, ece).
        counts: labelled samples of the target (train / test, positives / negatives).
        meta: meta-training summary (iterations, best_iteration, best_val_loss, removed_tasks, world_size).
        timings: seconds spent (meta_train_s, finetune_eval_s, total_s).
        table: ``[(metric, value), …]`` in display order.
        data: which datasets (simulated or real) the run used (``config.json`` → ``data``).

    >>> r = TrainResult.from_dict({"run_dir": "runs/x", "target": {"id": "Kenya:maize"},
    ...                            "metrics": {"auc_roc": 0.9}, "table": [("auc_roc", 0.9)]})
    >>> r.auc_roc, r.to_dict()["run_dir"]
    (0.9, 'runs/x')
    """

    run_dir: Path
    target: dict
    metrics: dict
    counts: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    table: list = field(default_factory=list)
    data: dict | None = None

    @property
    def auc_roc(self) -> float | None:
        """The held-out AUC-ROC (``metrics["auc_roc"]``)."""
        return self.metrics.get("auc_roc")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainResult":
        return cls(run_dir=Path(d["run_dir"]), target=dict(d.get("target") or {}), metrics=dict(d.get("metrics") or {}),
                   counts=dict(d.get("counts") or {}), meta=dict(d.get("meta") or {}),
                   timings=dict(d.get("timings") or {}), table=[tuple(r) for r in d.get("table") or []],
                   data=d.get("data"))

    def to_dict(self) -> dict:
        """The dict :func:`cropmeta.train.train` returns."""
        return {"run_dir": str(self.run_dir), "target": self.target, "metrics": self.metrics, "counts": self.counts,
                "meta": self.meta, "timings": self.timings, "table": list(self.table), "data": self.data}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`cropmeta.export_map` wrote.

    Fields:
        map: the map (a COG, or a VRT over per-tile COGs).
        quicklook: the PNG quick-look, or None.
        tiles: the per-tile COGs of a mosaic (empty for one input).
        accuracy: the accuracy report against ``truth`` (None without truth).
        cog_problems: problems the COG validator found (empty when the file is a valid COG).
        pixels: pixels in the inputs; pixels_valid: pixels with a prediction.
        seconds: wall time of the export.
        details: every entry of the export summary (blocks, executor, timings, tags, …).
    """

    map: Path
    quicklook: Path | None
    tiles: list
    accuracy: dict | None
    cog_problems: list
    pixels: int
    pixels_valid: int
    seconds: float
    details: dict

    @classmethod
    def from_dict(cls, d: dict) -> "ExportResult":
        return cls(map=Path(d["map"]), quicklook=Path(d["quicklook"]) if d.get("quicklook") else None,
                   tiles=[Path(p) for p in d.get("tiles") or []], accuracy=d.get("accuracy"),
                   cog_problems=list(d.get("cog_problems") or []), pixels=int(d.get("pixels") or 0),
                   pixels_valid=int(d.get("pixels_valid") or 0), seconds=float(d.get("seconds") or 0.0),
                   details=dict(d))

    def to_dict(self) -> dict:
        """The summary dict :func:`cropmeta.mapping.export.export` returns."""
        return dict(self.details)


@dataclass(frozen=True)
class CompareResult:
    """What :func:`cropmeta.compare` measured (report.json holds the same).

    Fields:
        target: the target's summary (region, crop, task id, label counts).
        methods, shots, seeds: the rows, shot counts and seeds that ran.
        cells: one dict per (method, seed, shots) with its metrics.
        summary: per method and shot count, the mean and 95 % interval of each metric.
        files: the report files written (report.json, report.md, report.html, …).
        report: the whole report dict.
    """

    target: dict
    methods: list
    shots: list
    seeds: list
    cells: list
    summary: Any
    files: dict
    report: dict

    @classmethod
    def from_dict(cls, d: dict) -> "CompareResult":
        cfg = d.get("config") or {}
        return cls(target=dict(d.get("target") or {}), methods=list(cfg.get("methods") or []),
                   shots=list(cfg.get("shots_run") or cfg.get("shots") or []), seeds=list(cfg.get("seeds") or []),
                   cells=list(d.get("cells") or []), summary=d.get("summary"),
                   files={k: Path(v) for k, v in (d.get("files") or {}).items()}, report=d)

    def to_dict(self) -> dict:
        """The report dict :func:`cropmeta.evaluate.compare.compare` returns."""
        return self.report
