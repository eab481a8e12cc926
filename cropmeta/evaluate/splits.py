"""Spatially separated test splits for real benchmarks.

A random split of one region's points into a shot pool and a test set puts test points next to pool
points (in Kenya 41 % of DE Africa test points lie within 1 km of a pool point), which flatters the
learners that fit the local labels. :func:`block_split` instead assigns whole square blocks of
``block_km`` to the test set and removes from the pool every point closer than ``buffer_m`` to a
test point, so each pool point is at least ``buffer_m`` from every test point.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_M = 6_371_008.8


def _seed(key: str) -> int:
    return int(hashlib.sha256(str(key).encode()).hexdigest()[:12], 16)


def block_split(lat: np.ndarray, lon: np.ndarray, key: str, block_km: float = 2.0, buffer_m: float = 500.0,
                test_fraction: float = 0.5) -> tuple[np.ndarray, dict]:
    """``"test"``, ``"train"`` (the shot pool) or ``"buffer"`` (left out) per point, and a summary.

    Blocks: ``block_km`` squares (longitude scaled by cos(latitude) at each point), in an order
    permuted by a generator seeded from the SHA-256 of ``key`` (e.g. the region name), taken into the
    test set until at least ``test_fraction`` of the points are test. Then every non-test point
    closer than ``buffer_m`` (great-circle) to a test point is ``"buffer"``."""
    from sklearn.neighbors import BallTree

    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    n = len(lat)
    km_lat = lat * 110.574
    km_lon = lon * 111.320 * np.cos(np.deg2rad(lat))
    bx, by = np.floor(km_lon / block_km).astype(np.int64), np.floor(km_lat / block_km).astype(np.int64)
    block = bx * 1_000_003 + by
    uniq, inv, sizes = np.unique(block, return_inverse=True, return_counts=True)
    order = np.random.default_rng(_seed(key)).permutation(len(uniq))
    need = int(np.ceil(test_fraction * n))
    taken = np.zeros(len(uniq), dtype=bool)
    count = 0
    for b in order:
        if count >= need:
            break
        taken[b] = True
        count += int(sizes[b])
    out = np.where(taken[inv], "test", "train").astype(object)
    test = out == "test"
    if buffer_m > 0 and test.any() and (~test).any():
        tree = BallTree(np.deg2rad(np.c_[lat[test], lon[test]]), metric="haversine")
        dist, _ = tree.query(np.deg2rad(np.c_[lat[~test], lon[~test]]), k=1)
        near = dist[:, 0] * EARTH_RADIUS_M < buffer_m
        idx = np.where(~test)[0][near]
        out[idx] = "buffer"
    summary = {"rule": f"{block_km:g}-km blocks to the test set until ≥ {test_fraction:.0%} of the points; pool "
                       f"points within {buffer_m:g} m of a test point left out",
               "blocks": int(len(uniq)), "test_blocks": int(taken.sum()), "test": int((out == "test").sum()),
               "pool": int((out == "train").sum()), "buffer": int((out == "buffer").sum())}
    return out.astype(str), summary


def region_split_view(samples, region: str, block_km: float, buffer_m: float, test_fraction: float = 0.5):
    """(the samples with ``region``'s points split by :func:`block_split` — test / shot pool, buffer
    points dropped — and every other sample training data; the split's summary). The real time-series
    benchmarks' target view (WorldCrops, CAWa)."""
    from cropmeta.io.store import SampleSet
    from cropmeta.tasks import region_mask

    meta = samples.meta.copy()
    own = region_mask(meta, region)
    split, summary = block_split(meta.loc[own, "lat"].to_numpy(), meta.loc[own, "lon"].to_numpy(), region,
                                 block_km, buffer_m, test_fraction)
    meta["split"] = "train"
    meta.loc[own, "split"] = split
    keep = (meta["split"] != "buffer").to_numpy()
    return SampleSet(samples.x, meta, samples.schema).subset(keep), summary


@dataclass(frozen=True)
class RegionBenchmark:
    """A real benchmark of crop-type targets in several regions, leave one region out, each region's
    points split once by :func:`block_split` (WorldCrops, CAWa): its targets ``(region, crop)`` and
    split settings, and the views :mod:`cropmeta.evaluate.benchmark` compares on."""

    name: str
    tasks: tuple  # ((region, crop), ...) in the order they run
    block_km: float
    buffer_m: float
    test_fraction: float = 0.5

    def targets(self, samples=None) -> list[tuple[str, str, str]]:
        """(key, region, crop) of every target."""
        from cropmeta.regions import slugify

        return [(f"{slugify(r)}_{c}", r, c) for r, c in self.tasks]

    def view(self, samples, region: str):
        """(the samples one target of ``region`` is compared on, its split's summary): :func:`region_split_view`."""
        return region_split_view(samples, region, self.block_km, self.buffer_m, self.test_fraction)

    def dataset(self, samples):
        """(every sample with its region's benchmark split — buffer points left out —, region → split
        summary): what ``cropmeta ingest --benchmark`` stores."""
        from cropmeta.io.store import SampleSet
        from cropmeta.tasks import region_mask

        meta = samples.meta.copy()
        splits = {}
        for region in dict.fromkeys(r for r, _ in self.tasks):
            own = region_mask(meta, region)
            meta.loc[own, "split"], splits[region] = block_split(
                meta.loc[own, "lat"].to_numpy(), meta.loc[own, "lon"].to_numpy(), region, self.block_km,
                self.buffer_m, self.test_fraction)
        keep = (meta["split"] != "buffer").to_numpy()
        return SampleSet(samples.x, meta, samples.schema).subset(keep), splits


def min_distance_m(lat_a, lon_a, lat_b, lon_b) -> float:
    """The smallest great-circle distance (m) between a point of A and a point of B."""
    from sklearn.neighbors import BallTree

    tree = BallTree(np.deg2rad(np.c_[lat_b, lon_b]), metric="haversine")
    d, _ = tree.query(np.deg2rad(np.c_[lat_a, lon_a]), k=1)
    return float(d.min() * EARTH_RADIUS_M)


__all__ = ["RegionBenchmark", "block_split", "min_distance_m", "region_split_view"]
