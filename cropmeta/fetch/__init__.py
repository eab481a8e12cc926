"""Acquisition: Sentinel-1/2, ERA5 and DEM stacks for labels or a region, written in the
Earth-Engine export layout that :mod:`cropmeta.ingest` and map export read.

Sources: public STAC catalogues (:mod:`cropmeta.fetch.stac`, no account) and Earth Engine
(:mod:`cropmeta.fetch.ee`). Shared grid, windows, manifest and resumable loop:
:mod:`cropmeta.fetch.common`.
"""

from cropmeta.fetch.common import FetchResult, export_windows, start_for_year
from cropmeta.fetch.run import fetch
from cropmeta.fetch.stac import PRESETS, StacConfig, stac_config

__all__ = ["FetchResult", "PRESETS", "StacConfig", "export_windows", "fetch", "stac_config", "start_for_year"]
