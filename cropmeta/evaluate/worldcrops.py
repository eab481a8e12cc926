"""The real time-series benchmark ``cropmeta compare --benchmark worldcrops`` (protocol:
docs/results/worldcrops/PROTOCOL.md, fixed before any result).

WorldCrops' Sentinel-2 field series (:mod:`cropmeta.io.worldcrops`), four regions, five crop-type
targets — Kenya maize, Bavaria maize and wheat, Fergana and Samarkand cotton — each "crop vs every
other field of the region". Leave one region out: the target region is no method's source data
(``compare(..., hold_out_region=True)``). Each region's fields are split once into a spatially
separated test set and shot pool (:func:`cropmeta.evaluate.splits.block_split`: 2-km blocks, a 500-m
buffer), shared by the region's targets.
"""

from __future__ import annotations

from cropmeta.evaluate.splits import block_split
from cropmeta.io.store import SampleSet
from cropmeta.regions import slugify
from cropmeta.tasks import region_mask

#: (region, crop) of every target, in the order they run
TARGET_TASKS = (("Western Kenya", "maize"), ("Bavaria", "maize"), ("Bavaria", "wheat"), ("Fergana", "cotton"),
                ("Samarkand", "cotton"))
BLOCK_KM = 2.0
BUFFER_M = 500.0
TEST_FRACTION = 0.5


def worldcrops_targets(samples=None) -> list[tuple[str, str, str]]:
    """(key, region, crop) of the benchmark's targets."""
    return [(f"{slugify(r)}_{c}", r, c) for r, c in TARGET_TASKS]


def worldcrops_view(samples: SampleSet, region: str) -> tuple[SampleSet, dict]:
    """The sample set one target is compared on: the region's fields split into test / shot pool
    (buffer fields dropped), every other field training data; and the split's summary."""
    meta = samples.meta.copy()
    own = region_mask(meta, region)
    split, summary = block_split(meta.loc[own, "lat"].to_numpy(), meta.loc[own, "lon"].to_numpy(), region,
                                 BLOCK_KM, BUFFER_M, TEST_FRACTION)
    meta["split"] = "train"
    meta.loc[own, "split"] = split
    keep = (meta["split"] != "buffer").to_numpy()
    return SampleSet(samples.x, meta, samples.schema).subset(keep), summary


def benchmark_dataset(root=None) -> tuple[SampleSet, dict, dict]:
    """Every WorldCrops field with its region's benchmark split (test / shot pool; buffer fields
    left out): the samples a workspace holds after ``cropmeta ingest --benchmark worldcrops``.
    Returns (samples, the table's read report, region → split summary)."""
    from cropmeta.io.worldcrops import load_worldcrops

    samples, rep = load_worldcrops(root)
    meta = samples.meta.copy()
    splits = {}
    for region in sorted(set(meta["region"])):
        own = region_mask(meta, region)
        split, splits[region] = block_split(meta.loc[own, "lat"].to_numpy(), meta.loc[own, "lon"].to_numpy(),
                                            region, BLOCK_KM, BUFFER_M, TEST_FRACTION)
        meta.loc[own, "split"] = split
    keep = (meta["split"] != "buffer").to_numpy()
    return SampleSet(samples.x, meta, samples.schema).subset(keep), rep, splits


__all__ = ["BLOCK_KM", "benchmark_dataset", "BUFFER_M", "TARGET_TASKS", "TEST_FRACTION", "worldcrops_targets", "worldcrops_view"]
