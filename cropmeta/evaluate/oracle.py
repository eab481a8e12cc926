"""The oracle rows' data: correctly labelled samples of a simulated target's test districts and test
year (:func:`cropmeta.sim.world.generate_oracle`), read like the calibration reads them
(:func:`cropmeta.sim.calibrate.world_samples`, :func:`~cropmeta.sim.calibrate.target_labels`); and
the oracle's deep learner (:func:`lstm_proba`) with the calibration's oracle anchor
(:func:`oracle_auc`), which train a model and so sit above the learners, not in :mod:`cropmeta.sim`.

Only the simulated world has an oracle. :func:`sim_oracle` returns ``(None, why)`` for anything
else — a path that is not a world, a world without this target, or a comparison whose test set is
not that world's test set (ids, labels and samples are checked), so an oracle row is never scored
against data it was not drawn for. Oracle points that coincide with a test point or lie in a test
field are dropped (counted in ``excluded``; the generator never draws from test tiles, so this
should stay 0).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cropmeta.errors import CropmetaError
from cropmeta.schema import Normalizer
from cropmeta.sim.calibrate import ORACLE_MIN_AUC, ORACLE_N, calibration_target, rf_proba, target_labels, world_samples


@dataclass
class OracleData:
    x: np.ndarray  # [N, T, 18] raw canonical
    y: np.ndarray  # [N] 0/1 by the target's rule
    world: str
    target_key: str
    world_version: str
    n_requested: int
    excluded: int = 0

    @property
    def hash(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.x).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        return {"world": self.world, "target": self.target_key, "world_version": self.world_version,
                "n_requested": self.n_requested, "n": int(len(self.y)), "n_pos": int(self.y.sum()),
                "excluded_test_overlap": self.excluded, "hash": self.hash}


def _same_crop(a, b) -> bool:
    return (a or None) == (b or None) or (a is not None and b is not None and str(a).lower() == str(b).lower())


def sim_oracle(world, region: str, crop: str | None, ids_test, y_test, x_test,
               n: int = ORACLE_N) -> tuple[OracleData | None, str]:
    """The oracle samples of the target (``region``, ``crop``) of simulated world ``world``, or
    ``(None, why not)``. ``ids_test``/``y_test``/``x_test``: the comparison's test set, which must be
    the world's test set of that target."""
    from cropmeta.sim.world import generate_oracle, load_world

    if world is None:
        return None, "the data source is not a simulated world: no oracle"
    try:
        doc = load_world(world)
    except CropmetaError as e:
        return None, f"{world} is not a simulated world ({e}): no oracle"
    keys = [k for k, t in doc["targets"].items()
            if str(t.get("region")).lower() == str(region).lower() and _same_crop(t.get("crop"), crop)]
    if not keys:
        return None, f"the simulated world {doc['path']} has no target {region} {crop or 'crop vs non-crop'}: no oracle"
    key = keys[0]
    xw, mw = world_samples(doc["path"], doc["targets"][key]["region"], split="test")
    yw = target_labels(mw, doc["targets"][key]["crop"])
    pos = {s: i for i, s in enumerate(mw["sample_id"].astype(str))}
    ids_test = np.asarray(ids_test).astype(str)
    idx = np.array([pos.get(s, -1) for s in ids_test])
    if len(ids_test) == 0 or (idx < 0).any():
        return None, (f"the comparison's test set is not the test set of {doc['path']} ({int((idx < 0).sum())} of "
                      f"{len(ids_test)} test ids unknown there): no oracle")
    if not (np.array_equal(yw[idx], np.asarray(y_test).astype(int))
            and np.allclose(xw[idx], np.asarray(x_test), rtol=1e-5, atol=1e-3)):
        return None, f"the comparison's test samples differ from those of {doc['path']}: no oracle"
    odir = generate_oracle(doc["path"], key, n)
    xo, mo = world_samples(doc["path"], labels=Path(odir) / "labels.parquet")
    yo = target_labels(mo, doc["targets"][key]["crop"])
    # never a test point: same location or same field as one → dropped
    loc_test = set(zip(np.round(mw["lat"].to_numpy(float), 7), np.round(mw["lon"].to_numpy(float), 7)))
    loc = list(zip(np.round(mo["lat"].to_numpy(float), 7), np.round(mo["lon"].to_numpy(float), 7)))
    bad = np.array([p in loc_test for p in loc])
    if "field_id" in mo.columns and "field_id" in mw.columns:
        bad |= mo["field_id"].astype(str).isin(set(mw["field_id"].astype(str))).to_numpy()
    keep = ~bad
    return OracleData(xo[keep], yo[keep].astype(np.int64), str(doc["path"]), key, str(doc["version"]), int(n),
                      excluded=int(bad.sum())), ""


def lstm_proba(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int = 0, steps: int = 1500,
               batch: int = 64, lr: float = 1e-3) -> np.ndarray:
    """The TIML-architecture LSTM (quick preset, no task information) trained from scratch with Adam
    on class-balanced batches: the oracle's deep learner."""
    import torch
    import torch.nn.functional as F

    from cropmeta.train.trained import from_scratch, predict_proba

    m = from_scratch(t=x_train.shape[1], seed=seed, normalizer=Normalizer.fit(x_train))
    clf = m.classifier
    xt = torch.as_tensor(m.normalizer.transform(x_train), dtype=torch.float32)
    pos, neg = np.where(y_train == 1)[0], np.where(y_train == 0)[0]
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    g = np.random.default_rng(seed)
    film, info = m.task_inputs(None)
    yb = torch.as_tensor(np.r_[np.ones(batch // 2), np.zeros(batch // 2)], dtype=torch.float32).unsqueeze(0)
    clf.train()
    for _ in range(steps):
        idx = np.r_[g.choice(pos, batch // 2), g.choice(neg, batch // 2)]
        loss = F.binary_cross_entropy_with_logits(clf(xt[idx].unsqueeze(0), film=film, info=info), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return predict_proba(m, x_test)


def oracle_auc(world: str | Path, target: str, n: int = ORACLE_N, random_state: int = 0,
               learners: tuple[str, ...] = ("rf", "lstm"), lstm_steps: int = 1500) -> dict:
    """The oracle anchor: each learner trained on ``n`` correctly labelled samples of the target's
    test districts and test year (never its test points), AUC-ROC on its test set."""
    from sklearn.metrics import roc_auc_score

    from cropmeta.sim.world import generate_oracle

    t = calibration_target(world, target)
    odir = generate_oracle(world, target, n)
    xo, mo = world_samples(world, labels=odir / "labels.parquet")
    yo = target_labels(mo, t["crop"])
    xt, mt = world_samples(world, t["region"], split="test")
    yt = target_labels(mt, t["crop"])
    out = {"target": target, "n_oracle": int(len(xo)), "pos_oracle": int(yo.sum()), "n_test": int(len(xt)),
           "n_test_fields": int(mt["field_id"].nunique()) if "field_id" in mt else None,
           "required": ORACLE_MIN_AUC.get(target)}
    if "rf" in learners:
        out["rf_auc"] = float(roc_auc_score(yt, rf_proba(xo, yo, xt, random_state)))
    if "lstm" in learners:
        out["lstm_auc"] = float(roc_auc_score(yt, lstm_proba(xo, yo, xt, seed=random_state, steps=lstm_steps)))
    return out
