"""Errors a user can act on. The CLI turns these into one clear line and a non-zero exit code.

One base, :class:`CropmetaError`, and one subclass per area, so that a script can catch what it can
handle (``except ConfigError``) and let the rest through::

    CropmetaError
    ├── InputError            a file, band, column or option is wrong (every area below is one)
    │   ├── DataError         values inside a readable file are unusable (samples, labels, tiles)
    │   ├── ConfigError       a training/comparison configuration option is unknown or invalid
    │   ├── ModelError        a model or checkpoint file cannot be used (format, weights, metadata)
    │   └── NotFittedError    predict before fit (also ValueError and AttributeError, as in scikit-learn)
    └── FetchError            a remote data source cannot be reached or refuses the request

Every subclass is an :class:`InputError`, so code that caught ``InputError`` before the areas
existed still catches them, and every message is the one the code raised before.

>>> from cropmeta.errors import ConfigError, InputError
>>> issubclass(ConfigError, InputError)
True
"""

from __future__ import annotations

__all__ = ["CropmetaError", "InputError", "DataError", "ConfigError", "ModelError",
           "NotFittedError", "FetchError"]


class CropmetaError(Exception):
    """Base class: an error caused by the user's input or environment, with a clear message."""


class InputError(CropmetaError):
    """A file, band, column or option is wrong. The message names the file/band/column at fault."""


class DataError(InputError):
    """Values inside an otherwise readable file are unusable (all-NaN band, empty region, ...)."""


class ConfigError(InputError):
    """A configuration option is unknown, misspelt, of the wrong type or out of range (the message
    names the option and, for a misspelling, the closest known one)."""


class ModelError(InputError):
    """A model or checkpoint cannot be used: not a cropmeta model, unknown kind or format version,
    weights that do not match the architecture, missing metadata."""


class NotFittedError(InputError, ValueError, AttributeError):
    """A method or model was asked to predict (or fit) before the step it needs ran, in the manner
    of scikit-learn's ``sklearn.exceptions.NotFittedError`` (which is also a ``ValueError`` and an
    ``AttributeError``)."""


class FetchError(CropmetaError):
    """A remote data source (STAC catalogue, Earth Engine) cannot be reached, refuses the request or
    lacks credentials. The message names what is missing and the alternative source."""
