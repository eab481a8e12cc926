"""``cropmeta fetch``: labels or a region + a season → Earth-Engine-layout tifs from STAC or Earth Engine."""

from __future__ import annotations

from pathlib import Path

from cropmeta.errors import InputError
from cropmeta.fetch.common import (
    BOX_METRES,
    TILE_PX,
    FetchResult,
    Manifest,
    label_targets,
    region_targets,
    run_targets,
)
from cropmeta.schema import DEFAULT_T

SOURCES = ("stac", "ee")


def fetch(out: str | Path, *, labels: str | Path | None = None, region=None, year: int | None = None,
          source: str = "stac", t: int = DEFAULT_T, box_metres: float = BOX_METRES, tile_px: int = TILE_PX,
          stac=None, ee=None, label_options: dict | None = None, progress: bool = False) -> FetchResult:
    """Write one Earth-Engine-layout tif per label box (``labels``) or per tile of ``region`` into
    ``out``, for ``t`` 30-day windows of season ``year`` (or each label's ``start_date``).

    - ``source="stac"``: ``stac`` is a :class:`cropmeta.fetch.stac.StacConfig` (default: Planetary
      Computer). ``source="ee"``: ``ee`` is a :class:`cropmeta.fetch.ee.EEConfig`.
    - Files already complete in ``out`` are skipped; ``out/manifest.json`` records every file's
      source items, windows and the software versions.

    >>> from cropmeta.fetch import fetch, stac_config                      # doctest: +SKIP
    >>> fetch("tifs", labels="labels.geojson", year=2020, stac=stac_config(catalog="cat/catalog.json"))
    """
    if source not in SOURCES:
        raise InputError(f"--source {source!r}: use one of {', '.join(SOURCES)}")
    if (labels is None) == (region is None):
        raise InputError("give exactly one of --labels FILE or --region/--region-file/--bbox")
    if not 1 <= int(t) <= 48:
        raise InputError(f"--t {t}: use 1 to 48 monthly steps")
    if labels is not None:
        from cropmeta.io.labels import read_labels

        points = read_labels(labels, **(label_options or {}))
        targets = label_targets(points, year, t, box_metres, source=str(labels))
    else:
        if year is None:
            raise InputError("--region/--bbox needs the season: --year Y")
        targets = region_targets(region, year, t, tile_px)
    if source == "stac":
        from cropmeta.fetch.stac import StacFetcher, stac_config

        fetcher = StacFetcher(stac or stac_config())
        settings = fetcher.settings()
        settings.update(t=t, box_metres=box_metres if labels is not None else None,
                        labels=str(labels) if labels is not None else None,
                        region=getattr(region, "name", None), year=year)
        manifest = Manifest.open(Path(out), settings)
        return run_targets(targets, Path(out), fetcher, manifest, "stac", progress=progress)
    from cropmeta.fetch.ee import EEConfig, run_ee

    return run_ee(targets, Path(out), ee or EEConfig(), progress=progress,
                  extra_settings={"t": t, "year": year, "labels": str(labels) if labels is not None else None,
                                  "region": getattr(region, "name", None)})
