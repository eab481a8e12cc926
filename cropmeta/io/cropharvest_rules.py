"""CropHarvest's benchmark rules, defined once: the published targets, the names of the test files
and the published numbers. The archive reader (:mod:`cropmeta.io.cropharvest`), the tasks
(:mod:`cropmeta.tasks`), the benchmark (:mod:`cropmeta.evaluate.benchmark`) and the simulator's
calibration (:mod:`cropmeta.sim.calibrate`) import them from here.

>>> parse_test_file("Kenya_maize_2020_0.h5")
TestFile(region='Kenya', crop='maize', year=2020, k=0)
>>> parse_test_file("Togo_crop_2019").crop is None  # crop vs non-crop
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cropmeta.crops import normalise_crop

__all__ = ["BENCHMARK_TARGETS", "TEST_FILE_NAME", "TEST_FILE_CROP_VS_NON_CROP", "TestFile", "parse_test_file",
           "PUBLISHED", "PUBLISHED_SOURCE", "published_rf_auc"]

#: the published targets by key: (region, crop; ``None`` = crop vs non-crop) — CropHarvest's / TIML's
#: test tasks. ``--region kenya`` without ``--crop`` means Kenya maize, and so on.
BENCHMARK_TARGETS: dict[str, tuple[str, str | None]] = {
    "kenya": ("Kenya", "maize"),
    "brazil": ("Brazil", "coffee"),
    "togo": ("Togo", None),
}

#: a test file's stem: ``test_features/{Country}_{crop}_{year}[_{k}].h5`` (e.g. ``Kenya_maize_2020_0``)
TEST_FILE_NAME = re.compile(r"^(?P<region>[A-Za-z]+)_(?P<crop>[A-Za-z_]+?)_(?P<year>\d{4})(?:_(?P<k>\d+))?$")
#: the crop part of a test file name that means crop vs non-crop (``Togo_crop_2019_0``)
TEST_FILE_CROP_VS_NON_CROP = ("crop", "cropland", "croplands")


@dataclass(frozen=True)
class TestFile:
    """What a test file's name says: its country, crop (``None``: crop vs non-crop), year, part."""

    __test__ = False  # not a pytest test class

    region: str
    crop: str | None
    year: int
    k: int | None = None


def parse_test_file(name: str | Path) -> TestFile | None:
    """A test file's name (with or without ``.h5`` and folders) → :class:`TestFile`; ``None`` when
    it does not follow CropHarvest's naming. The crop is spelt by :func:`cropmeta.schema.normalise_crop`."""
    stem = Path(str(name)).name
    if stem.lower().endswith(".h5"):
        stem = stem[:-3]
    m = TEST_FILE_NAME.match(stem)
    if not m:
        return None
    crop = normalise_crop(m.group("crop"))
    return TestFile(m.group("region"), None if crop in TEST_FILE_CROP_VS_NON_CROP else crop, int(m.group("year")),
                    int(m.group("k")) if m.group("k") is not None else None)


#: published F1 / AUC-ROC with all training labels — Presto paper (Tseng et al. 2023), tables 2 and 12
PUBLISHED = {
    "kenya": {"timl": {"f1": 0.838, "auc_roc": 0.794}, "random-forest": {"f1": 0.559, "auc_roc": 0.578}},
    "brazil": {"timl": {"f1": 0.835, "auc_roc": 0.988}, "random-forest": {"f1": 0.000, "auc_roc": 0.941}},
    "togo": {"timl": {"f1": 0.732, "auc_roc": 0.890}, "random-forest": {"f1": 0.756, "auc_roc": 0.892}},
}
PUBLISHED_SOURCE = "Presto paper (Tseng et al. 2023), tables 2 and 12"


def published_rf_auc() -> dict[str, float]:
    """The published random-forest AUC-ROC of each target (the simulator's calibration anchor)."""
    return {k: v["random-forest"]["auc_roc"] for k, v in PUBLISHED.items()}
