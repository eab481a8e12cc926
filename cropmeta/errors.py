"""Errors a user can act on. The CLI turns these into one clear line and a non-zero exit code."""

from __future__ import annotations


class CropmetaError(Exception):
    """Base class: an error caused by the user's input or environment, with a clear message."""


class InputError(CropmetaError):
    """A file, band, column or option is wrong. The message names the file/band/column at fault."""


class DataError(InputError):
    """Values inside an otherwise readable file are unusable (all-NaN band, empty region, ...)."""


class FetchError(CropmetaError):
    """A remote data source (STAC catalogue, Earth Engine) cannot be reached, refuses the request or
    lacks credentials. The message names what is missing and the alternative source."""
