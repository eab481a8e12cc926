"""A random forest stored as plain arrays: fitted with scikit-learn, saved in safetensors (no pickle,
nothing that runs code on load) and evaluated by :class:`ForestArrays` in NumPy.

A fitted ``RandomForestClassifier``'s trees are flattened into one node table (every tree's nodes
one after another): ``left``/``right`` child (−1 at a leaf, global indices), split ``feature`` and
``threshold`` (a sample goes left when ``x[feature] <= threshold``, scikit-learn's rule) and the
positive-class fraction at each leaf; ``roots`` holds each tree's first node. The forest's
probability is the mean of its trees' leaf fractions (``RandomForestClassifier.predict_proba``).
Missing values are replaced by each feature's training median (stored) before the trees read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cropmeta.errors import ModelError

__all__ = ["ForestArrays", "fit_forest"]

#: pixels evaluated at once (the node table walk holds ``chunk × trees`` indices)
CHUNK = 4096



@dataclass
class ForestArrays:
    left: np.ndarray  # int32 [nodes]
    right: np.ndarray  # int32 [nodes]
    feature: np.ndarray  # int32 [nodes] (−1 at a leaf... any value: leaves are never split)
    threshold: np.ndarray  # float64 [nodes]
    value: np.ndarray  # float64 [nodes]: positive-class fraction
    roots: np.ndarray  # int32 [trees]
    fill: np.ndarray  # float64 [features]: training median of each feature (missing values)

    @property
    def n_features(self) -> int:
        return int(len(self.fill))

    @classmethod
    def from_sklearn(cls, rf, fill: np.ndarray) -> "ForestArrays":
        """The node table of a fitted ``RandomForestClassifier`` whose classes are 0 and 1."""
        classes = [int(c) for c in rf.classes_]
        if classes != [0, 1]:
            raise ModelError(f"a forest of classes 0 and 1 is needed, got {classes}")
        lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
        offset = 0
        for est in rf.estimators_:
            t = est.tree_
            left, right = t.children_left.astype(np.int64), t.children_right.astype(np.int64)
            leaf = left < 0
            lefts.append(np.where(leaf, -1, left + offset))
            rights.append(np.where(leaf, -1, right + offset))
            feats.append(np.where(leaf, 0, t.feature))
            thrs.append(np.where(leaf, 0.0, t.threshold))
            v = t.value[:, 0, :].astype(np.float64)
            vals.append(v[:, 1] / np.maximum(v.sum(axis=1), 1e-300))
            roots.append(offset)
            offset += t.node_count
        cat = np.concatenate
        return cls(cat(lefts).astype(np.int32), cat(rights).astype(np.int32), cat(feats).astype(np.int32),
                   cat(thrs).astype(np.float64), cat(vals), np.asarray(roots, np.int32),
                   np.asarray(fill, np.float64))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Positive-class probability ``[N]`` of feature rows ``x [N, F]`` (NaN → the training median)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ModelError(f"the forest reads {self.n_features} features per sample, got shape {list(x.shape)}")
        leaf = self.left < 0
        ids = np.arange(len(leaf), dtype=np.int32)
        go_l, go_r = np.where(leaf, ids, self.left), np.where(leaf, ids, self.right)  # a leaf points at itself
        thr = np.where(leaf, np.inf, self.threshold)
        nt, nf = len(self.roots), self.n_features
        out = np.empty(len(x))
        for s in range(0, len(x), CHUNK):
            xc = x[s:s + CHUNK]
            flat = np.where(np.isnan(xc), self.fill[None, :], xc).ravel()
            n = len(xc)
            # every (sample, tree) pair walks down its tree; pairs that reached a leaf are set aside
            node = np.tile(self.roots, n)
            base = np.repeat(np.arange(n, dtype=np.int64) * nf, nt)
            pos = np.arange(n * nt)
            final = np.empty(n * nt, dtype=np.int32)
            while len(node):
                at_leaf = leaf[node]
                if at_leaf.any():
                    final[pos[at_leaf]] = node[at_leaf]
                    keep = ~at_leaf
                    node, base, pos = node[keep], base[keep], pos[keep]
                    if not len(node):
                        break
                node = np.where(flat[base + self.feature[node]] <= thr[node], go_l[node], go_r[node])
            out[s:s + CHUNK] = self.value[final].reshape(n, nt).mean(axis=1)
        return out

    def to_arrays(self, prefix: str = "forest.") -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": getattr(self, k) for k in ("left", "right", "feature", "threshold", "value", "roots",
                                                          "fill")}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str = "forest.", source: str = "model") -> "ForestArrays":
        try:
            f = cls(**{k: np.asarray(arrays[f"{prefix}{k}"]) for k in ("left", "right", "feature", "threshold",
                                                                          "value", "roots", "fill")})
        except KeyError as e:
            raise ModelError(f"{source}: the forest's array {e.args[0]!r} is missing") from None
        n = len(f.left)
        if not (len(f.right) == len(f.feature) == len(f.threshold) == len(f.value) == n) or n == 0:
            raise ModelError(f"{source}: the forest's node arrays differ in length")
        inner = f.left >= 0
        if (f.left[inner] >= n).any() or (f.right[inner] < 0).any() or (f.right[inner] >= n).any() \
                or (f.feature[inner] < 0).any() or (f.feature[inner] >= len(f.fill)).any() \
                or (f.roots < 0).any() or (f.roots >= n).any():
            raise ModelError(f"{source}: the forest's node table points outside itself")
        ids = np.nonzero(inner)[0]
        if (f.left[inner] <= ids).any() or (f.right[inner] <= ids).any():  # children after their parent: no cycle
            raise ModelError(f"{source}: the forest's node table has a cycle")
        return f


def fit_forest(features: np.ndarray, y: np.ndarray, n_trees: int, seed: int) -> ForestArrays:
    """A scikit-learn random forest (its defaults otherwise, ``n_jobs=1``) on feature rows, missing
    values filled with each feature's median, as :class:`ForestArrays`."""
    from sklearn.ensemble import RandomForestClassifier

    features = np.asarray(features, dtype=np.float64)
    fill = np.nanmedian(np.where(np.isfinite(features), features, np.nan), axis=0) if len(features) else \
        np.zeros(features.shape[1])
    fill = np.where(np.isfinite(fill), fill, 0.0)
    xf = np.where(np.isfinite(features), features, fill[None, :])
    rf = RandomForestClassifier(n_estimators=int(n_trees), random_state=int(seed) % (2**32), n_jobs=1)
    rf.fit(xf, np.asarray(y).astype(int))
    return ForestArrays.from_sklearn(rf, fill)
