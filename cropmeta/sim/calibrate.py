"""Difficulty calibration of the simulated world against the published CropHarvest table.

Protocol (CropHarvest / Presto paper, Tseng et al. 2023, table 12 "Random Forest" row): a
scikit-learn ``RandomForestClassifier()`` with default settings, trained on the flattened ``T x 18``
features of a target's training pool (normalised with :class:`cropmeta.schema.Normalizer` fitted on
that pool), evaluated by AUC-ROC on the target's test set. The samples are read back from the
world's GeoTIFFs exactly as a user's exports would be (:func:`cropmeta.io.eetiff.read_ee_tiff`).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio.transform

from cropmeta.errors import InputError
from cropmeta.io.eetiff import pixels_array, read_ee_tiff
from cropmeta.schema import Normalizer
from cropmeta.sim.world import load_world

#: published random-forest AUC-ROC on the real CropHarvest test sets (Presto paper, table 12)
PUBLISHED_RF_AUC = {"kenya": 0.578, "brazil": 0.941, "togo": 0.892}
TOLERANCE = 0.05


def world_samples(world: str | Path, region: str | None = None, split: str | None = None
                  ) -> tuple[np.ndarray, gpd.GeoDataFrame]:
    """Canonical samples ``[N, T, 18]`` (gaps filled) of a world's labelled points, read from the
    tiles named in ``labels.parquet`` (the pixel containing each point), and their label rows."""
    doc = load_world(world)
    root = Path(doc["path"])
    meta = gpd.read_parquet(root / "labels.parquet")
    if region is not None:
        meta = meta[meta["region"] == region]
    if split is not None:
        meta = meta[meta["split"] == split]
    if meta.empty:
        raise InputError(f"{root}: no labelled points for region={region!r} split={split!r}")
    meta = meta.reset_index(drop=True)
    x = np.empty((len(meta), int(doc["t"]), 18), dtype=np.float32)
    for tile, idx in meta.groupby("tile").indices.items():
        da = read_ee_tiff(root / tile, fill=True)
        tr = da.rio.transform()
        rows, cols = rasterio.transform.rowcol(tr, meta["lon"].to_numpy()[idx], meta["lat"].to_numpy()[idx])
        pix = pixels_array(da)  # [h*w, T, 18]
        x[idx] = pix[np.asarray(rows) * da.shape[-1] + np.asarray(cols)]
    return x, meta


def target_labels(meta, crop: str | None) -> np.ndarray:
    """1/0 labels of a target task: the crop vs everything else, or crop vs non-crop."""
    if crop is None:
        return meta["is_crop"].to_numpy().astype(int)
    return ((meta["is_crop"].to_numpy() == 1) & (meta["label"].to_numpy() == crop)).astype(int)


def rf_auc(world: str | Path, target: str, random_state: int = 0) -> dict:
    """The CropHarvest random-forest protocol on one target of a world → AUC-ROC and counts."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    doc = load_world(world)
    if target not in doc["targets"]:
        raise InputError(f"{doc['path']}: no target {target!r}; targets: {', '.join(doc['targets'])}")
    t = doc["targets"][target]
    x, meta = world_samples(world, t["region"])
    y = target_labels(meta, t["crop"])
    train = (meta["split"] == "train").to_numpy()
    test = ~train
    norm = Normalizer.fit(x[train])
    f = norm.transform(x).reshape(len(x), -1)
    rf = RandomForestClassifier(random_state=random_state, n_jobs=1).fit(f[train], y[train])
    proba = rf.predict_proba(f[test])[:, 1]
    return {
        "target": target,
        "auc_roc": float(roc_auc_score(y[test], proba)),
        "published": PUBLISHED_RF_AUC.get(target),
        "n_train": int(train.sum()), "n_test": int(test.sum()),
        "pos_train": int(y[train].sum()), "pos_test": int(y[test].sum()),
    }
