"""The package version, in one place: ``cropmeta.__version__`` re-exports it and ``pyproject.toml``
reads it (``[tool.setuptools.dynamic]``). Library modules import it from here, never from the
package ``__init__`` (which sits above every layer)."""

__version__ = "0.1.0"
