"""Seeded draws over tasks: meta-training batches (:class:`TaskSampler`, explicit
``torch.Generator`` objects only) and the target's shot subsets (:func:`shot_subset`, the one shot
sampler, shared with ``cropmeta compare``; :func:`target_data`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cropmeta.errors import InputError
from cropmeta.io.store import SampleSet
from cropmeta.tasks.build import Task, TaskPools, task_labels


def _perm(n: int, g: torch.Generator) -> np.ndarray:
    return torch.randperm(n, generator=g).numpy()


class TaskSampler:
    """Seeded batches of tasks: support ``k_support`` positives + ``k_support`` negatives, query
    ``k_query`` + ``k_query``, disjoint, drawn without replacement within the task. Negatives of a
    crop-label task are split half/half between other crops and non-crop (the remainder from the
    other pool when one is short)."""

    def __init__(self, pools: list[TaskPools], k_support: int = 10, k_query: int = 4):
        self.pools = list(pools)
        self.k_support, self.k_query = int(k_support), int(k_query)
        need = self.k_support + self.k_query
        for p in self.pools:
            if len(p.pos) < need or p.n_neg < need:
                raise InputError(f"task {p.id}: {len(p.pos)} positives / {p.n_neg} negatives, "
                                 f"fewer than the {need} per class a batch needs")

    def __len__(self) -> int:
        return len(self.pools)

    def choose(self, active: list[int], k: int, g: torch.Generator) -> list[int]:
        """``k`` task positions from ``active``: a random permutation, cycled when there are fewer."""
        if not active:
            raise InputError("no meta-training task left to sample")
        out: list[int] = []
        while len(out) < k:
            out += [active[i] for i in _perm(len(active), g)]
        return out[:k]

    @staticmethod
    def _split_neg(n_crop: int, n_non: int, need: int) -> tuple[int, int]:
        if n_crop == 0:
            return 0, need
        a = min(n_crop, (need + 1) // 2)
        b = need - a
        if b > n_non:
            b = n_non
            a = need - b
        return a, b

    def sample(self, task_pos: list[int], g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``support [K, 2·k_support]`` and ``query [K, 2·k_query]`` (positives first, then
        negatives) for the tasks at ``task_pos``; labels are :meth:`labels`."""
        ks, kq = self.k_support, self.k_query
        sup = np.empty((len(task_pos), 2 * ks), dtype=np.int64)
        qry = np.empty((len(task_pos), 2 * kq), dtype=np.int64)
        for row, ti in enumerate(task_pos):
            p = self.pools[ti]
            pos = p.pos[_perm(len(p.pos), g)[: ks + kq]]
            a, b = self._split_neg(len(p.neg_crop), len(p.neg_noncrop), ks + kq)
            na = p.neg_crop[_perm(len(p.neg_crop), g)[:a]] if a else p.neg_crop[:0]
            nb = p.neg_noncrop[_perm(len(p.neg_noncrop), g)[:b]] if b else p.neg_noncrop[:0]
            # interleave the two negative kinds so support and query both get their share
            order = np.argsort(np.r_[np.arange(a) / max(a, 1), np.arange(b) / max(b, 1)], kind="stable")
            neg = np.r_[na, nb][order]
            sup[row] = np.r_[pos[:ks], neg[:ks]]
            qry[row] = np.r_[pos[ks:], neg[ks:]]
        return sup, qry

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        ks, kq = self.k_support, self.k_query
        return (np.r_[np.ones(ks), np.zeros(ks)].astype(np.float32),
                np.r_[np.ones(kq), np.zeros(kq)].astype(np.float32))


@dataclass
class TargetData:
    """The target task's labelled training data (possibly a ``shots`` subset) and its test set."""

    task: Task
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    counts: dict = field(default_factory=dict)
    train_index: np.ndarray | None = None  # rows of the samples fine-tuning used
    test_index: np.ndarray | None = None  # rows of the test samples


def shot_subset(y: np.ndarray, k: int | str, seed: int) -> np.ndarray:
    """The one shot sampler: sorted indices of a ``k``-sample subset of the training labels ``y``
    (1 / 0), used by ``cropmeta train --shots`` (:func:`target_data`) and by every ``cropmeta
    compare`` cell, so a compare cell is reproduced by ``train --shots k --seed S``.

    Class-balanced (⌊k/2⌋ positives) when the pool allows, otherwise every sample of the scarce
    class and the rest from the other. Nested across ``k`` for a seed (the first ``n`` of one fixed
    permutation per class, ``numpy.random.default_rng([seed, 104729])``), so a larger shot count
    always contains the smaller ones. ``"all"`` (or ``k`` ≥ the pool) → everything; ``k`` = 0 → nothing.
    (The draw of the committed benchmark results under docs/results.)"""
    y = np.asarray(y)
    n = len(y)
    if k == "all" or int(k) >= n:
        return np.arange(n)
    k = int(k)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([int(seed), 104729])
    pos = rng.permutation(np.where(y == 1)[0])
    neg = rng.permutation(np.where(y == 0)[0])
    n_pos = min(k // 2, len(pos))
    n_neg = min(k - n_pos, len(neg))
    n_pos = min(k - n_neg, len(pos))
    return np.sort(np.concatenate([pos[:n_pos], neg[:n_neg]]))


def check_shots(shots) -> int | None:
    """``--shots`` as an int (None: every label), or :class:`InputError` unless it is a whole number
    >= 2 — checked before any data is loaded, and again by :func:`target_data`."""
    if shots is None:
        return None
    try:
        k = int(shots)
    except (TypeError, ValueError):
        raise InputError(f"--shots must be a whole number >= 2, got {shots!r}") from None
    if k != shots and not isinstance(shots, str):
        raise InputError(f"--shots must be a whole number >= 2, got {shots!r}")
    if k < 2:
        raise InputError(f"--shots must be at least 2 (half positives, half negatives), got {shots}")
    return k


def target_data(samples: SampleSet, task: Task, shots: int | None = None, seed: int = 0) -> TargetData:
    """Training and test data of the target task. ``shots``: a class-balanced subset of that many
    training labels (⌊shots/2⌋ positives, the rest negatives), drawn with ``seed`` by
    :func:`shot_subset` from the training labels in sample order — the very samples a ``cropmeta
    compare`` cell with ``k = shots`` and the same seed fits on.

    Raises :class:`InputError` when the target has no test set with both classes, too few training
    labels of a class, or fewer labels than ``shots`` asks for."""
    y_all = task_labels(samples.meta, task)
    split = samples.meta["split"].astype(str).to_numpy()
    tr = np.where((y_all >= 0) & (split == "train"))[0]
    te = np.where((y_all >= 0) & (split == "test"))[0]
    counts = {"train_pos": int((y_all[tr] == 1).sum()), "train_neg": int((y_all[tr] == 0).sum()),
              "test_pos": int((y_all[te] == 1).sum()), "test_neg": int((y_all[te] == 0).sum())}
    check_shots(shots)
    if counts["test_pos"] == 0 or counts["test_neg"] == 0:
        raise InputError(f"target {task.name}: the test split needs both classes "
                         f"({counts['test_pos']} positives, {counts['test_neg']} negatives); the label file's "
                         "'split' column (train/test; rows without one are training) decides which labels "
                         "are test: mark some labels of each class 'test' and ingest again")
    if counts["train_pos"] == 0 or counts["train_neg"] == 0:
        raise InputError(f"target {task.name}: no training labels of one class "
                         f"({counts['train_pos']} positives, {counts['train_neg']} negatives)")
    if shots is not None:
        shots = int(shots)
        n_pos, n_neg = shots // 2, shots - shots // 2
        if shots < 2 or n_pos > counts["train_pos"] or n_neg > counts["train_neg"]:
            raise InputError(f"target {task.name}: --shots {shots} needs {n_pos} positive and {n_neg} negative "
                             f"training labels; there are {counts['train_pos']} and {counts['train_neg']}")
        tr = tr[shot_subset(y_all[tr], shots, seed)]
        counts["shots"] = shots
    return TargetData(task, samples.x[tr], y_all[tr].astype(np.int64), samples.x[te], y_all[te].astype(np.int64),
                      counts, train_index=tr, test_index=te)
