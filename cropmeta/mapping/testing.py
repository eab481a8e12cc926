"""Moved to :mod:`cropmeta.testing` (the one home of the test factories); this name stays for the
benchmarks and the ``loader="cropmeta.mapping.testing:load_double"`` spelling that import it."""

from cropmeta.testing.runs import DoublePredictor, load_double, make_double_run, make_timl_run, ndvi_probability
from cropmeta.testing.tiles import make_ee_tile

__all__ = ["make_double_run", "ndvi_probability", "DoublePredictor", "load_double", "make_ee_tile", "make_timl_run"]
