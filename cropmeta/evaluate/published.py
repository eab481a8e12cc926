"""The benchmarks ``--benchmark`` runs and the published targets they compare against (CropHarvest's
rules and the published numbers live in :mod:`cropmeta.io.cropharvest_rules`; this module only shapes
them for :mod:`cropmeta.evaluate.benchmark` and :mod:`cropmeta.evaluate.report.benchmark`)."""

from cropmeta.io.cropharvest_rules import BENCHMARK_TARGETS

__all__ = ["TARGETS", "BENCHMARKS"]

#: (key, region, crop) of the published targets
TARGETS = [(key, region, crop) for key, (region, crop) in BENCHMARK_TARGETS.items()]
BENCHMARKS = ("cropharvest", "sim", "deafrica", "worldcrops", "cawa")
