"""Prediction maps at scale: ``export`` (trained run + EE tiles / scenes / datacubes → COG or VRT
mosaic, streamed block by block, serial or on Dask, resumable), ``assess`` (map accuracy with the
Olofsson et al. 2014 area estimator) and ``check_cog`` (COG validation).

Modules: ``sources`` (windowed readers), ``infer`` (one block through the model), ``dask_exec``
(serial / Dask executors), ``manifest`` (resume), ``cog`` (GeoTIFF → COG, VRT), ``roi`` (region of
interest), ``accuracy``, ``quicklook``, ``validate``, ``export`` (the entry point), ``testing``
(deterministic stand-in predictors and synthetic tiles)."""

from __future__ import annotations

# (``export`` is imported from its module, ``from cropmeta.mapping.export import export``: the
# submodule of the same name would shadow a package-level alias.)
__all__ = ["assess", "check_cog"]


def __getattr__(name: str):  # lazy: importing cropmeta.mapping stays cheap
    if name == "assess":
        from cropmeta.mapping.accuracy import assess

        return assess
    if name == "check_cog":
        from cropmeta.mapping.validate import check_cog

        return check_cog
    raise AttributeError(name)
