"""The real MODIS time-series benchmark ``cropmeta compare --benchmark cawa`` (protocol:
docs/results/cawa/PROTOCOL.md, fixed before any result).

CAWa's crop-type fields in Central Asia (:mod:`cropmeta.io.cawa`: MODIS 16-day NDVI as monthly
medians, one band), five targets — cotton vs every other field of Fergana, Samarkand, Kashkadarya,
Khorezm and Dushanbe. Leave one region out (the target region is no method's source data). Each
region's fields are split once into a spatially separated test set and shot pool
(:func:`cropmeta.evaluate.splits.block_split`: 5-km blocks, a 1-km buffer — four MODIS pixels).
"""

from __future__ import annotations

from cropmeta.evaluate.splits import RegionBenchmark

#: the targets (largest region first) and the split: 5-km blocks, a 1-km buffer, half the fields to test
CAWA = RegionBenchmark("cawa", (("Fergana", "cotton"), ("Kashkadarya", "cotton"), ("Samarkand", "cotton"),
                                ("Khorezm", "cotton"), ("Dushanbe", "cotton")), block_km=5.0, buffer_m=1000.0)


def benchmark_dataset(root=None):
    """Every usable CAWa field with its region's benchmark split (test / shot pool; buffer fields left
    out): the samples a workspace holds after ``cropmeta ingest --benchmark cawa``. Returns (samples,
    the table's read report, region → split summary)."""
    from cropmeta.io.cawa import load_cawa

    samples, rep = load_cawa(root)
    kept, splits = CAWA.dataset(samples)
    return kept, rep, splits


__all__ = ["CAWA", "benchmark_dataset"]
