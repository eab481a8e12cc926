"""Difficulty calibration of the simulated world: two method-free anchors.

1. The published CropHarvest random-forest AUC (below).
2. An oracle: the same random forest, and the TIML-architecture LSTM trained from scratch, on
   >= 4,000 correctly labelled samples of the target's test districts and test year
   (:func:`cropmeta.sim.world.generate_oracle`), must reach the best AUC any published method
   reaches on the real test sets (:data:`ORACLE_MIN_AUC`): the headroom that lets methods be ranked.
   The oracle's learners and :func:`~cropmeta.evaluate.oracle.oracle_auc` live in
   :mod:`cropmeta.evaluate.oracle`, above the learners; this module keeps the method-free part.

Protocol (CropHarvest / Presto paper, Tseng et al. 2023, table 12 "Random Forest" row): a
scikit-learn ``RandomForestClassifier()`` with default settings, trained on the flattened ``T x 18``
features of a target's training pool (normalised with :class:`cropmeta.schema.Normalizer` fitted on
that pool), evaluated by AUC-ROC on the target's test set. The samples are read back from the
world's GeoTIFFs exactly as a user's exports would be (:class:`cropmeta.io.eetiff.EETiffReader`).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio.transform

from cropmeta.errors import InputError
from cropmeta.io.cropharvest_rules import published_rf_auc
from cropmeta.io.eetiff import EETiffReader, ee_tiff_info, fill_pixels
from cropmeta.schema import Normalizer
from cropmeta.sim.world import load_world

#: published random-forest AUC-ROC on the real CropHarvest test sets (Presto paper, table 12)
PUBLISHED_RF_AUC = published_rf_auc()
TOLERANCE = 0.05
#: the best AUC any published method reaches on the real test sets (Presto paper, table 12: Presto
#: 0.834 on Kenya maize, 0.997 on Brazil coffee, 0.921 on Togo crop; TIML 0.794 / 0.988 / 0.890),
#: rounded up: the oracle must reach at least this
ORACLE_MIN_AUC = {"kenya": 0.85, "brazil": 0.99, "togo": 0.93}
ORACLE_N = 4000


def world_samples(world: str | Path, region: str | None = None, split: str | None = None,
                  labels: str | Path | None = None) -> tuple[np.ndarray, gpd.GeoDataFrame]:
    """Canonical samples ``[N, T, 18]`` (gaps filled) of a world's labelled points, read from the
    tiles named in ``labels.parquet`` (the pixel containing each point), and their label rows.
    ``labels``: another label file of the world (an oracle's), tiles relative to the world."""
    doc = load_world(world)
    root = Path(doc["path"])
    meta = gpd.read_parquet(Path(labels) if labels else root / "labels.parquet")
    if region is not None:
        meta = meta[meta["region"] == region]
    if split is not None:
        meta = meta[meta["split"] == split]
    if meta.empty:
        raise InputError(f"{root}: no labelled points for region={region!r} split={split!r}")
    meta = meta.reset_index(drop=True)
    x = np.empty((len(meta), int(doc["t"]), 18), dtype=np.float32)
    for tile, idx in meta.groupby("tile").indices.items():
        info = ee_tiff_info(root / tile)
        rows, cols = rasterio.transform.rowcol(info.transform, meta["lon"].to_numpy()[idx], meta["lat"].to_numpy()[idx])
        reader = EETiffReader.from_info(info)  # ingestion's reader and missing-value rule
        x[idx], _ = fill_pixels(reader.read_pixels(np.asarray(rows), np.asarray(cols)), reader.slope_fill,
                                source=str(root / tile))
    return x, meta


def target_labels(meta, crop: str | None) -> np.ndarray:
    """1/0 labels of a target task: the crop vs everything else, or crop vs non-crop."""
    if crop is None:
        return meta["is_crop"].to_numpy().astype(int)
    return ((meta["is_crop"].to_numpy() == 1) & (meta["label"].to_numpy() == crop)).astype(int)


def calibration_target(world, target: str) -> dict:
    doc = load_world(world)
    if target not in doc["targets"]:
        raise InputError(f"{doc['path']}: no target {target!r}; targets: {', '.join(doc['targets'])}")
    return doc["targets"][target]


def rf_proba(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, random_state: int = 0) -> np.ndarray:
    """The CropHarvest random forest: scikit-learn defaults on flattened features normalised with
    statistics of the training samples."""
    from sklearn.ensemble import RandomForestClassifier

    norm = Normalizer.fit(x_train)
    rf = RandomForestClassifier(random_state=random_state, n_jobs=1)
    rf.fit(norm.transform(x_train).reshape(len(x_train), -1), y_train)
    return rf.predict_proba(norm.transform(x_test).reshape(len(x_test), -1))[:, 1]


def rf_auc(world: str | Path, target: str, random_state: int = 0) -> dict:
    """The CropHarvest random-forest protocol on one target of a world → AUC-ROC and counts."""
    from sklearn.metrics import roc_auc_score

    t = calibration_target(world, target)
    x, meta = world_samples(world, t["region"])
    y = target_labels(meta, t["crop"])
    train = (meta["split"] == "train").to_numpy()
    test = ~train
    proba = rf_proba(x[train], y[train], x[test], random_state)
    return {
        "target": target,
        "auc_roc": float(roc_auc_score(y[test], proba)),
        "published": PUBLISHED_RF_AUC.get(target),
        "n_train": int(train.sum()), "n_test": int(test.sum()),
        "pos_train": int(y[train].sum()), "pos_test": int(y[test].sum()),
        "n_test_fields": int(meta.loc[test, "field_id"].nunique()) if "field_id" in meta else None,
    }
