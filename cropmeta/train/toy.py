"""Moved to :mod:`cropmeta.testing` (the one home of the test factories); this name stays for the
benchmarks that import it."""

from cropmeta.testing.samples import TOY_REGIONS, toy_samples

__all__ = ["toy_samples", "TOY_REGIONS"]
