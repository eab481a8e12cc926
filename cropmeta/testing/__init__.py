"""The one home of the test factories: tiny synthetic samples, Earth-Engine tiles, CropHarvest
archives and stand-in run directories, for tests, benchmarks and examples. (The fake STAC / Earth
Engine server of ``cropmeta fetch`` stays in :mod:`cropmeta.fetch.testing`.)

>>> from cropmeta.testing import toy_samples
>>> toy_samples(n_per_label=4, n_noncrop=4, t=3).x.shape[1:]
(3, 18)
"""

from cropmeta.testing.archive import FIXTURE_DATASETS, FIXTURE_TESTS, make_archive_fixture, synthetic_series
from cropmeta.testing.runs import DoublePredictor, load_double, make_double_run, make_timl_run, ndvi_probability
from cropmeta.testing.samples import EVAL_CROPS, EVAL_REGIONS, TOY_REGIONS, make_samples, toy_samples
from cropmeta.testing.tiles import END, START, WORLD_TILES, make_ee_tile, make_world, pixel_centre, raw_stack, tiny_tile

__all__ = [
    "toy_samples", "TOY_REGIONS", "make_samples", "EVAL_REGIONS", "EVAL_CROPS",
    "make_archive_fixture", "synthetic_series", "FIXTURE_DATASETS", "FIXTURE_TESTS",
    "make_ee_tile", "tiny_tile", "raw_stack", "pixel_centre", "make_world", "WORLD_TILES", "START", "END",
    "make_double_run", "load_double", "DoublePredictor", "ndvi_probability", "make_timl_run",
]
