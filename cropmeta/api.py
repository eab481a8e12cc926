"""The Python API for notebooks and scripts; ``import cropmeta`` exposes these names.

Each function is a thin call into the library (the same functions the ``cropmeta`` command calls)
that returns a typed result (:mod:`cropmeta.results`) instead of a dict. Heavy modules (torch,
rasterio, the trainers) are imported on first use, so ``import cropmeta`` stays light.

A whole session, offline on the simulated world::

    import cropmeta

    samples = cropmeta.load_samples()                        # ingests the simulated world once
    target = cropmeta.resolve_target(samples, "kenya")       # Kenya maize vs rest
    run = cropmeta.train_model("kenya", samples=samples, out="runs/kenya")
    model = cropmeta.load_model(run.run_dir)
    prob = cropmeta.predict(model, cropmeta.target_data(samples, target).x_test)
    exported = cropmeta.export_map(run.run_dir, "kenya.tif")
    report = cropmeta.compare(region="kenya", samples=samples, methods=["random-forest", "timl"])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cropmeta.results import CompareResult, ExportResult, TrainResult

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from cropmeta.io.store import SampleSet
    from cropmeta.train.checkpoint import Predictor

__all__ = ["load_samples", "train_model", "load_model", "predict", "export_map", "compare"]


def load_samples(source=None, *, seed: int = 0, progress: bool = False) -> "SampleSet":
    """Every dataset of the workspace (``$CROPMETA_HOME``, default ./cropmeta-data) as one
    :class:`~cropmeta.io.store.SampleSet`; ingests ``source`` first when given, or the simulated
    world of ``seed`` when nothing is stored yet.

    >>> samples = cropmeta.load_samples()                        # doctest: +SKIP
    >>> samples.x.shape, samples.meta["region"].nunique()         # doctest: +SKIP
    ((21600, 12, 18), 24)
    """
    from cropmeta.app.samples import load_samples as _load

    return _load(source, seed=seed, progress=progress)


def train_model(region: str, crop: str | None = None, *, samples: "SampleSet | None" = None,
                out: str | Path | None = None, preset: str = "quick", seed: int = 0, config: str | Path | None = None,
                overrides: dict | None = None, learner: str | None = None, shots: int | None = None,
                resume: bool = False, progress: bool = False, **options: Any) -> TrainResult | None:
    """Meta-train on every other task, fine-tune on the target, evaluate on its held-out test set
    (``cropmeta train``). ``overrides``: configuration options in any spelling of
    docs/configuration.md (``{"finetune": {"steps": 100}}``, ``{"ic_d_model": 32}``); ``options``:
    the other keywords of :func:`cropmeta.app.train.train` (``source``, ``device``, ``nprocs``, …).
    Returns None on the ranks other than 0 of a ``torchrun`` launch (rank 0 writes the run).

    >>> run = cropmeta.train_model("kenya", crop="sweet potato", samples=samples,   # doctest: +SKIP
    ...                            overrides={"meta": {"iterations": 50}})
    >>> run.target["id"], round(run.auc_roc, 3), run.run_dir                       # doctest: +SKIP
    """
    from cropmeta.app.train import train

    res = train(region, crop, preset=preset, seed=seed, out=out, resume=resume, config=config,
                overrides=overrides, learner=learner, shots=shots, progress=progress, samples=samples, **options)
    return TrainResult.from_dict(res) if res else None


def load_model(run_dir: str | Path, device: str = "cpu") -> "Predictor":
    """The trained model of a run directory (any learner) as a
    :class:`~cropmeta.train.checkpoint.Predictor`: ``predict_proba(x)``, ``bands``, ``t``, ``metadata``.

    >>> model = cropmeta.load_model("runs/kenya")                 # doctest: +SKIP
    >>> model.metadata["task"]["id"]                              # doctest: +SKIP
    'Kenya:maize'
    """
    from cropmeta.train.checkpoint import load_predictor

    return load_predictor(run_dir, device=device)


def predict(model, x: "np.ndarray", *, batch_size: int = 8192) -> "np.ndarray":
    """Crop probabilities ``[N]`` of samples ``x`` (``[N, T, bands]`` raw canonical bands) from a
    model loaded by :func:`load_model` or a run directory.

    Missing values (NaN, e.g. ``pixels_array(read_ee_tiff(tif))``) get the map export's rule, so a
    pixel has one answer whichever way it is asked: a slope missing at every step takes the mean slope
    of the given pixels (over a whole tile: the tile's, as export fills it), other gaps the pixel's
    mean of the band over time (:func:`cropmeta.io.eetiff.fill_pixels`); a pixel with a band missing
    at every step is unusable: NaN, and a warning counts them. Models of another band schema refuse
    missing values (:class:`~cropmeta.errors.InputError`).

    >>> prob = cropmeta.predict("runs/kenya", samples.x[:10])     # doctest: +SKIP
    """
    import numpy as np

    from cropmeta.errors import InputError
    from cropmeta.schema import BANDS

    if isinstance(model, (str, Path)):
        model = load_model(model)
    x = np.asarray(x)
    if not (x.ndim == 3 and np.isnan(x).any()):
        return model.predict_proba(x, batch_size=batch_size)
    if x.shape[-1] != len(BANDS) or tuple(getattr(model, "bands", BANDS)) != tuple(BANDS):
        raise InputError(f"predict: {int(np.isnan(x).any(axis=(1, 2)).sum())} sample(s) hold missing values (NaN); the "
                         "map export's fill rule is defined for CropHarvest's 18 bands only: fill them first")
    from cropmeta.io.eetiff import fill_pixels
    from cropmeta.logs import log

    slope = x[:, :, BANDS.index("slope")]
    mean_slope = float(np.nanmean(slope)) if np.isfinite(slope).any() else 0.0
    filled, usable = fill_pixels(x.astype(np.float64), mean_slope, source="predict", unusable="mask")
    out = np.full(len(x), np.nan, dtype=np.float64)
    if usable.any():
        out[usable] = model.predict_proba(filled, batch_size=batch_size)
    if not usable.all():
        log.warning("predict: %d of %d sample(s) miss a band at every step: their probability is NaN (the map "
                    "export leaves such pixels nodata)", int((~usable).sum()), len(x))
    return out


def export_map(run_dir: str | Path, out: str | Path, inputs=None, **options: Any) -> ExportResult:
    """Write the crop-probability map of ``run_dir``'s model over ``inputs`` as a Cloud-Optimised
    GeoTIFF (+ PNG quick-look; ``cropmeta export``). ``inputs`` None: the simulated scene of the
    run's target. ``options``: the keywords of :func:`cropmeta.mapping.export.export` (``region``,
    ``bbox``, ``truth``, ``workers``, ``threshold``, ``progress``, …).

    >>> m = cropmeta.export_map("runs/kenya", "kenya.tif", progress=False)   # doctest: +SKIP
    >>> m.map, m.cog_problems                                                # doctest: +SKIP
    (PosixPath('kenya.tif'), [])
    """
    from cropmeta.mapping.export import export

    return ExportResult.from_dict(export(run_dir, out, inputs, **options))


def compare(region: str | None = None, crop: str | None = None, **options: Any) -> CompareResult:
    """Compare methods (TIML, MAML, pretraining, from scratch, in-context, random forest, …) on one
    target over seeds and shot counts (``cropmeta compare``). ``options``: the keywords of
    :func:`cropmeta.app.compare.compare` (``seeds``, ``shots``, ``methods``, ``out``,
    ``samples``, ``config``, ``benchmark``, ``progress``, …).

    >>> rep = cropmeta.compare(region="kenya", seeds=1, shots="20",              # doctest: +SKIP
    ...                        methods=["random-forest", "timl"], samples=samples)
    >>> rep.methods, rep.files["report.json"]                                    # doctest: +SKIP
    """
    from cropmeta.app.compare import compare as _compare

    return CompareResult.from_dict(_compare(region=region, crop=crop, **options))
