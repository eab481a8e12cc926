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

from cropmeta.evaluate.splits import RegionBenchmark

#: the targets, in the order they run, and the split: 2-km blocks, a 500-m buffer, half the fields to test
WORLDCROPS = RegionBenchmark("worldcrops", (("Western Kenya", "maize"), ("Bavaria", "maize"), ("Bavaria", "wheat"),
                                            ("Fergana", "cotton"), ("Samarkand", "cotton")),
                             block_km=2.0, buffer_m=500.0)


def benchmark_dataset(root=None):
    """Every WorldCrops field with its region's benchmark split (test / shot pool; buffer fields
    left out): the samples a workspace holds after ``cropmeta ingest --benchmark worldcrops``.
    Returns (samples, the table's read report, region → split summary)."""
    from cropmeta.io.worldcrops import load_worldcrops

    samples, rep = load_worldcrops(root)
    kept, splits = WORLDCROPS.dataset(samples)
    return kept, rep, splits


__all__ = ["WORLDCROPS", "benchmark_dataset"]
