"""Tasks and their construction: :class:`Task` (region × target), resolving a target in a sample
set, task labels, the meta-training task pools (:func:`build_tasks`) and the meta-validation split.

The leakage rules and the package's overview are in :mod:`cropmeta.tasks`.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from cropmeta.errors import InputError
from cropmeta.io.cropharvest_rules import BENCHMARK_TARGETS, parse_test_file
from cropmeta.io.store import SampleSet
from cropmeta.regions import get_region, slugify
from cropmeta.crops import CROP_GROUPS, crop_group_of, normalise_crop, task_info

#: words that mean "crop vs non-crop" when given as a crop
CROP_VS_NON_CROP = {"crop", "none", "crop_vs_non_crop", "cropland", "crop_vs_noncrop"}


@lru_cache(maxsize=512)
def region_centre(region: str) -> tuple[float, float] | None:
    """(lat, lon) centre of a named region from :mod:`cropmeta.regions`; ``None`` if unknown."""
    try:
        return get_region(region).centre
    except InputError:
        return None


@dataclass(frozen=True)
class Task:
    """One binary task. ``crop=None`` is crop vs non-crop."""

    region: str
    crop: str | None
    crop_group: str | None  # None for crop vs non-crop (→ 1/9 on the 9 crop groups)
    lat: float
    lon: float

    @property
    def id(self) -> str:
        return f"{self.region}:{self.crop or 'crop'}"

    @property
    def name(self) -> str:
        return f"{self.region} {self.crop}" if self.crop else f"{self.region} crop vs non-crop"

    @property
    def info(self) -> np.ndarray:
        """The 13 task-information numbers (:func:`cropmeta.schema.task_info`)."""
        return task_info(self.lat, self.lon, self.crop_group if self.crop else None)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "region": self.region, "crop": self.crop,
                "crop_group": self.crop_group, "lat": self.lat, "lon": self.lon,
                "info": [float(v) for v in self.info]}

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        return cls(str(d["region"]), d.get("crop"), d.get("crop_group"), float(d["lat"]), float(d["lon"]))


def _norm_crop(crop: str | None) -> str | None:
    """A target crop as :func:`~cropmeta.schema.normalise_crop` spells it; ``None`` for crop vs non-crop."""
    key = normalise_crop(crop)
    return None if key is None or key in CROP_VS_NON_CROP else key


def _label_keys(meta: pd.DataFrame) -> np.ndarray:
    """The ``label`` column as normalised crop names ("" where missing), one per row: sample sets
    written before the normaliser existed ("sweet potato") meet today's spelling ("sweetpotato")."""
    label = meta["label"].astype(object).where(meta["label"].notna(), None)
    keys = {v: normalise_crop(v) or "" for v in set(label) if v is not None}
    return np.array([keys[v] if v is not None else "" for v in label], dtype=object)


def region_slugs(meta: pd.DataFrame) -> np.ndarray:
    """The slug of every row's ``region`` (each distinct name slugified once: sample sets are large)."""
    names = meta["region"].astype(str)
    return names.map({n: slugify(n) for n in names.unique()}).to_numpy()


def region_mask(meta: pd.DataFrame, region: str) -> np.ndarray:
    """Rows of ``meta`` in ``region`` (names compared by slug)."""
    return region_slugs(meta) == slugify(region)


_region_mask = region_mask


def make_task(region: str, crop: str | None = None, samples: SampleSet | None = None) -> Task:
    """A :class:`Task`. The centre comes from :mod:`cropmeta.regions`; for a region it does not
    know (a user's own area) the mean position of the region's samples is used."""
    crop = _norm_crop(crop)
    centre = region_centre(region)
    if centre is None:
        if samples is None or not _region_mask(samples.meta, region).any():
            raise InputError(f"unknown region {region!r}: not in cropmeta's region list and no samples carry it")
        m = samples.meta[_region_mask(samples.meta, region)]
        centre = (float(m["lat"].mean()), float(m["lon"].mean()))
    group = None
    if crop is not None:
        group = crop_group_of(crop)
        if group is None and samples is not None:
            m = samples.meta
            hit = m[(_label_keys(m) == crop) & m["crop_group"].notna()]
            if len(hit):
                group = str(hit["crop_group"].mode().iloc[0])
        if group not in CROP_GROUPS or group == "non_crop":
            group = "other"
    return Task(region, crop, group, float(centre[0]), float(centre[1]))


def resolve_target(samples: SampleSet, region: str, crop: str | None = None, use_default: bool = True) -> Task:
    """The target task named by ``--region`` / ``--crop``.

    Region names match case/space-insensitively (``kenya``, ``South Africa``, ISO A3 codes). Without a
    crop, ``kenya`` → maize, ``brazil`` → coffee, ``togo`` and every other region → crop vs non-crop.
    Unknown regions or crops raise :class:`InputError` listing the close matches."""
    meta = samples.meta
    names = sorted({str(r) for r in meta["region"].dropna().unique()})
    by_slug = {slugify(n): n for n in names}
    key = slugify(region)
    name = by_slug.get(key)
    known = None
    if name is None:
        try:  # ISO code or another spelling that regions.py knows
            known = get_region(region).name
            name = by_slug.get(slugify(known))
        except InputError:
            name = None
    if name is None:
        if known is not None:
            raise InputError(f"region {known} has no labelled samples (ingest labels there first); "
                             f"regions with labels: {', '.join(names) or 'none'}")
        close = difflib.get_close_matches(region.strip().title(), names, n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputError(f"unknown region {region!r} in the labelled data{hint} "
                         f"(regions with labels: {', '.join(names) or 'none'})")
    if crop is None and use_default and key in BENCHMARK_TARGETS:
        crop = BENCHMARK_TARGETS[key][1]
    crop = _norm_crop(crop)
    if crop is not None:
        m = meta[_region_mask(meta, name) & (meta["is_crop"].to_numpy() == 1)]
        labels = sorted({v for v in _label_keys(m) if v})
        if crop not in labels:
            close = difflib.get_close_matches(crop, labels, n=4, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise InputError(f"unknown crop {crop!r} for region {name}{hint} "
                             f"(labels there: {', '.join(labels) or 'none'}; omit --crop for crop vs non-crop)")
    return make_task(name, crop, samples)


def test_file_rows(meta, task) -> np.ndarray:
    """Rows of ``meta`` that come from a CropHarvest test file of exactly this task
    (``test_features/{Country}_{crop}_{year}_{k}.h5``; crop "crop" = crop vs non-crop) and carry
    that file's own label in column ``target``."""
    if "target" not in meta.columns or "dataset" not in meta.columns:
        return np.zeros(len(meta), dtype=bool)
    hits = set()
    for name in meta.loc[meta["split"].astype(str) == "test", "dataset"].astype(str).unique():
        named = parse_test_file(name)  # CropHarvest's naming rule (cropmeta.io.cropharvest_rules)
        if named and slugify(named.region) == slugify(task.region) and named.crop == task.crop:
            hits.add(name)
    if not hits:
        return np.zeros(len(meta), dtype=bool)
    return ((meta["split"].astype(str) == "test") & meta["dataset"].astype(str).isin(hits)
            & meta["target"].notna()).to_numpy()


def task_labels(meta: pd.DataFrame, task: Task) -> np.ndarray:
    """Per-sample label of ``task``: 1 positive, 0 negative, −1 not part of the task (other region,
    unlabelled, or a crop of unknown type in a crop-label task). Split is *not* looked at."""
    y = rule_labels(meta, task.crop, _region_mask(meta, task.region))
    own = test_file_rows(meta, task)
    if own.any():
        y[own] = meta.loc[own, "target"].astype(int).to_numpy()
    return y


def rule_labels(meta: pd.DataFrame, crop: str | None, rows: np.ndarray) -> np.ndarray:
    """The labelling rule of a task applied to any ``rows`` (a mask, e.g. one region, or every region
    but the target's): crop vs non-crop (``crop=None``) or ``crop`` vs everything else with a known
    label; 1 / 0, −1 outside ``rows`` or not part of such a task. Split is *not* looked at."""
    rows = np.asarray(rows, dtype=bool)
    is_crop = meta["is_crop"].to_numpy().astype(np.int64)
    y = np.full(len(meta), -1, dtype=np.int64)
    if crop is None:
        ok = rows & (is_crop >= 0)
        y[ok] = is_crop[ok]
        return y
    return _crop_label_targets(meta, crop, rows, is_crop, y)


def _crop_label_targets(meta, crop, region, is_crop, y):
    lab = _label_keys(meta)
    pos = region & (is_crop == 1) & (lab == crop)
    neg = region & ((is_crop == 0) | ((is_crop == 1) & (lab != "") & (lab != crop)))
    y[neg] = 0
    y[pos] = 1
    return y


@dataclass
class TaskPools:
    """The training indices of one task: positives and the two kinds of negatives."""

    task: Task
    pos: np.ndarray
    neg_crop: np.ndarray  # other crops (crop-label tasks only)
    neg_noncrop: np.ndarray

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def n_neg(self) -> int:
        return len(self.neg_crop) + len(self.neg_noncrop)

    def counts(self) -> dict:
        return {"pos": len(self.pos), "neg_crop": len(self.neg_crop), "neg_noncrop": len(self.neg_noncrop)}


def build_tasks(samples: SampleSet, exclude=(), min_per_class: int = 14) -> list[TaskPools]:
    """Every (region, crop vs non-crop) and (region, label vs rest) task with at least
    ``min_per_class`` training examples per class, sorted by id. ``exclude``: tasks (or task ids)
    left out, e.g. the target. Only ``split == 'train'`` samples are used."""
    if exclude is None or isinstance(exclude, (Task, str)):
        exclude = [exclude]
    excl = {e.id if isinstance(e, Task) else str(e) for e in exclude if e is not None}
    meta = samples.meta
    train = (meta["split"].astype(str) == "train").to_numpy()
    is_crop = meta["is_crop"].to_numpy().astype(np.int64)
    lab = _label_keys(meta)
    region_slug = region_slugs(meta)
    names: dict[str, str] = {}
    for r in meta["region"].dropna().astype(str):
        names.setdefault(slugify(r), r)
    out: list[TaskPools] = []
    for slug, rname in sorted(names.items()):
        reg = train & (region_slug == slug)
        if not reg.any():
            continue
        noncrop = np.where(reg & (is_crop == 0))[0]
        crop_rows = reg & (is_crop == 1)
        candidates: list[str | None] = [None] + sorted({v for v in lab[crop_rows] if v})
        for crop in candidates:
            tid = f"{rname}:{crop or 'crop'}"
            if tid in excl:
                continue
            if crop is None:
                pos = np.where(crop_rows)[0]
                neg_crop = np.zeros(0, dtype=np.int64)
            else:
                pos = np.where(crop_rows & (lab == crop))[0]
                neg_crop = np.where(crop_rows & (lab != "") & (lab != crop))[0]
            if len(pos) < min_per_class or len(neg_crop) + len(noncrop) < min_per_class:
                continue
            out.append(TaskPools(make_task(rname, crop, samples), pos.astype(np.int64),
                                 neg_crop.astype(np.int64), noncrop.astype(np.int64)))
    return sorted(out, key=lambda p: p.id)


def validation_score(task_id: str) -> float:
    """A number in [0, 1) fixed by the task id (SHA-256): the task is a meta-validation task when
    it is below the validation fraction."""
    return int(hashlib.sha256(task_id.encode()).hexdigest()[:12], 16) / float(16**12)


def split_tasks(pools: list[TaskPools], val_fraction: float = 0.1) -> tuple[list[TaskPools], list[TaskPools]]:
    """Deterministic meta-train / meta-validation split by hash of the task id. With at least 3 tasks
    and a fraction > 0 there is always one validation task (the lowest hash) and never fewer than
    one training task."""
    if val_fraction <= 0 or len(pools) < 2:
        return list(pools), []
    scored = sorted(pools, key=lambda p: validation_score(p.id))
    val = [p for p in scored if validation_score(p.id) < val_fraction]
    if not val and len(pools) >= 3:
        val = scored[:1]
    if len(val) >= len(pools):
        val = val[: len(pools) - 1]
    vid = {p.id for p in val}
    return [p for p in pools if p.id not in vid], [p for p in pools if p.id in vid]
