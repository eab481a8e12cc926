"""WorldCrops' real Sentinel-2 per-field series (``../shared/data/worldcrops_s2_fis/``, see its
SOURCE.md) as a :class:`~cropmeta.io.store.SampleSet`, read by cropmeta's own table path.

The files are read where they lie: ``s2_field_timeseries.parquet`` (one row per field, product level
and acquisition date: cloud fraction, B01 … B12 field means in reflectance 0–1) and ``labels.parquet``
(one row per field: region, crop label, centroid). :func:`load_worldcrops` ingests them with the
shipped mapping ``worldcrops-s2-fis`` (docs/data-formats.md §10): one product level (L1C: the only
one of the Central Asian fields), months by the median of the clear acquisitions (cloud fraction ≤ 0.1),
the labels translated to cropmeta's crop names; the regions get short names (:data:`REGION_NAMES`).
"""

from __future__ import annotations

from pathlib import Path

SERIES = "s2_field_timeseries.parquet"
LABELS = "labels.parquet"
MAPPING = "worldcrops-s2-fis"
#: the labels' region names → the short names cropmeta uses
REGION_NAMES = {"Western Kenya (PlantVillage)": "Western Kenya", "Bavaria (Freising, TUM fields)": "Bavaria",
                "Fergana": "Fergana", "Samarkand": "Samarkand"}


def data_root(root: str | Path | None = None) -> Path:
    """The ``worldcrops_s2_fis`` folder: ``root`` (that folder, or a ``shared`` folder holding
    ``data/worldcrops_s2_fis``), else ``$CROPMETA_SHARED/data/worldcrops_s2_fis``, else the project's
    sibling ``../shared``. :class:`InputError` when none holds the two files."""
    from cropmeta.io.shared_data import shared_folder

    return shared_folder("worldcrops_s2_fis", root, lambda c: (c / SERIES).exists() and (c / LABELS).exists(),
                         f"WorldCrops series ({SERIES} and {LABELS})", "pass --root FOLDER")


def load_worldcrops(root: str | Path | None = None, level: str = "L1C"):
    """Every labelled field of the WorldCrops FIS series as monthly samples (band schema ``s2-fis``).
    Returns ``(samples, report)``; ``report`` is :func:`~cropmeta.io.tables.read_table`'s."""
    from cropmeta.io.table_mapping import table_mapping
    from cropmeta.io.tables import read_table

    d = data_root(root)
    m = table_mapping(mapping_file=MAPPING, label_table=str(d / LABELS), where={"level": [level]})
    samples, report = read_table(d / SERIES, m)
    meta = samples.meta
    meta["region"] = [REGION_NAMES.get(r, r) for r in meta["region"]]
    meta["dataset"] = "worldcrops"
    return samples, report


__all__ = ["LABELS", "MAPPING", "REGION_NAMES", "SERIES", "data_root", "load_worldcrops"]
