"""CAWa crop types in Central Asia (Remelgado et al. 2020): MODIS 16-day NDVI per field
(``../shared/data/cawa_modis_ndvi/cawa_flat.parquet``, see its SOURCE.md) as a
:class:`~cropmeta.io.store.SampleSet`, read by cropmeta's own table path with the shipped mapping
``cawa-modis-ndvi`` (docs/data-formats.md §10.1): one band (NDVI), months by the median of the
16-day composites starting in each month, a field missing NDVI at more than half of its months left
out (counted in the report). Five regions (Fergana, Samarkand, Kashkadarya, Khorezm, Dushanbe), crop
types only (fallow is the one non-crop class).
"""

from __future__ import annotations

from pathlib import Path

TABLE = "cawa_flat.parquet"
MAPPING = "cawa-modis-ndvi"


def data_root(root: str | Path | None = None) -> Path:
    """The ``cawa_modis_ndvi`` folder: ``root`` (that folder, or a ``shared`` folder holding
    ``data/cawa_modis_ndvi``), else ``$CROPMETA_SHARED/data/cawa_modis_ndvi``, else the project's
    sibling ``../shared``. :class:`InputError` when none holds the table."""
    from cropmeta.io.shared_data import shared_folder

    return shared_folder("cawa_modis_ndvi", root, lambda c: (c / TABLE).exists(), f"CAWa NDVI table ({TABLE})",
                         "pass --root FOLDER")


def load_cawa(root: str | Path | None = None):
    """Every usable CAWa field as monthly NDVI samples (band schema ``ndvi``). Returns ``(samples,
    report)``; ``report`` is :func:`~cropmeta.io.tables.read_table`'s (its ``left_out`` counts the
    fields with too little NDVI)."""
    from cropmeta.io.table_mapping import table_mapping
    from cropmeta.io.tables import read_table

    samples, report = read_table(data_root(root) / TABLE, table_mapping(mapping_file=MAPPING))
    samples.meta["dataset"] = "cawa"
    return samples, report


__all__ = ["MAPPING", "TABLE", "data_root", "load_cawa"]
