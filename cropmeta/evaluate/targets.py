"""A comparison's target: the target region's training pool and test set (:class:`TargetData`), the
shot counts and the nested shot subsets every method of a seed shares, the source (non-target) data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cropmeta.errors import InputError
from cropmeta.evaluate.methods import TargetTask
from cropmeta.evaluate.names import FIXED_SHOTS, is_zero
from cropmeta.tasks import shot_subset


# --------------------------------------------------------------------------------------------------
# Target data
# --------------------------------------------------------------------------------------------------
@dataclass
class TargetData:
    """The target task's labelled samples: training pool and held-out test set (raw canonical x)."""

    task: TargetTask
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    ids_train: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    ids_test: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    summary: dict = field(default_factory=dict)
    #: field (cluster) of every test sample (:func:`cropmeta.io.store.field_ids`); empty → one per sample
    fields_test: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))

    def test_fields(self) -> np.ndarray:
        if len(self.fields_test) == len(self.y_test):
            return np.asarray(self.fields_test).astype(str)
        ids = self.ids_test if len(self.ids_test) == len(self.y_test) else np.arange(len(self.y_test))
        return np.array([f"sample:{i}" for i in ids])

    def data_hash(self) -> str:
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def parse_shots(shots) -> list:
    """``"0,20,32,all"`` or a sequence → ``[0, 20, 32, "all"]`` (0 = zero-shot, ints ≥ 4 and "all",
    order kept)."""
    if isinstance(shots, str):
        shots = [s for s in shots.split(",") if s.strip()]
    out: list = []
    for s in shots:
        key = str(s).strip().lower()
        if key == "all":
            val: Any = "all"
        else:
            try:
                val = int(key)
            except ValueError:
                raise InputError(f"--shots: {s!r} is neither a positive integer nor 'all'") from None
            if 0 < val < 4 or val < 0:
                raise InputError(f"--shots: {val} is too few (need at least 4: 2 per class; 0 = zero-shot)")
        if val not in out:
            out.append(val)
    if not out:
        raise InputError("--shots: no shot count given")
    return out


def build_target(samples, region: str, crop: str | None = None) -> TargetData:
    """The target task from a :class:`~cropmeta.io.store.SampleSet` holding (at least) the region.

    Region/crop resolution, labels and task information are :mod:`cropmeta.tasks`' (the same as
    ``cropmeta train``): kenya → maize, brazil → coffee, togo and others → crop vs non-crop."""
    from cropmeta.io.store import field_ids
    from cropmeta.tasks import resolve_target, task_labels

    task = resolve_target(samples, region, crop)
    meta = samples.meta
    y_all = task_labels(meta, task)  # (CropHarvest test files' own "target" labels included)
    split = meta["split"].astype(str).to_numpy()
    tr = (split == "train") & (y_all != -1)
    te = (split == "test") & (y_all != -1)
    for which, m in (("training", tr), ("test", te)):
        pos, neg = int((y_all[m] == 1).sum()), int((y_all[m] == 0).sum())
        if pos < 2 or neg < 2:
            raise InputError(f"target {task.name}: the {which} labels have {pos} positive and {neg} negative "
                             "samples (need at least 2 of each)")
    target = TargetTask(region=task.region, crop=task.crop, task_info=task.info,
                        name=task.id.replace(":", "_").replace(" ", "_").lower(),
                        extra={"task": task, "samples": samples.subset(tr | te)})  # (lat/lon, dates per sample)
    ids = meta["sample_id"].astype(str).to_numpy()
    in_region = y_all != -1

    fields = field_ids(meta)

    def counts(m):
        return {"positive": int((y_all[m] == 1).sum()), "negative": int((y_all[m] == 0).sum()),
                "fields": int(len(set(fields[m])))}

    summary = {
        "region": task.region, "crop": task.crop, "task": task.id, "task_name": task.name,
        "positive_means": task.crop if task.crop else "crop",
        "train": counts(tr), "test": counts(te),
        "task_rows_without_split": int((in_region & ~tr & ~te).sum()),
        "t": int(samples.t),
        "field_ids": bool("field_id" in meta.columns and meta.loc[te, "field_id"].notna().any()),
    }
    return TargetData(target, samples.x[tr], y_all[tr], samples.x[te], y_all[te], ids[tr], ids[te], summary,
                      fields_test=fields[te].astype(str))


def source_samples(samples, target: TargetData, hold_out_region: bool = False):
    """What ``prepare`` may see: every *training* sample (``split == 'train'``); test samples are
    removed everywhere, and so are any samples whose id is in the target's test set. Excluding the
    target task itself from meta-training/pretraining is the training code's job (it receives the
    target task). ``hold_out_region``: leave the target's whole region out (its other tasks would
    carry the target's shot-pool labels into a prior: leave-one-region-out benchmarks)."""
    from cropmeta.tasks import region_mask

    meta = samples.meta
    keep = (meta["split"].astype(str).to_numpy() == "train")
    keep &= ~meta["sample_id"].astype(str).isin(set(target.ids_test)).to_numpy()
    if hold_out_region:
        keep &= ~region_mask(meta, target.task.region)
    return samples.subset(keep)


def shot_indices(y: np.ndarray, k: int | str, seed: int) -> np.ndarray:
    """Indices of the ``k``-shot training subset of a cell: :func:`cropmeta.tasks.shot_subset` (the
    one sampler, shared with ``cropmeta train --shots``); 0 (zero-shot) or the fixed cells → nothing."""
    if is_zero(k) or k == FIXED_SHOTS:
        return np.zeros(0, dtype=np.int64)
    return shot_subset(y, k, seed)
