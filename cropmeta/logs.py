"""Logging: warnings and progress notes of the library go to the ``cropmeta`` logger. The CLI shows
them on stderr (``-v`` more, ``-q`` less); every run directory keeps its own log file."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator

LOGGER = "cropmeta"
log = logging.getLogger(LOGGER)
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Console(logging.Handler):
    """``warning: message`` on stderr, one line, never wrapped (paths stay copyable)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"{record.levelname.lower()}: {record.getMessage()}\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def console_handlers() -> list[logging.Handler]:
    return [h for h in log.handlers if isinstance(h, _Console)]


_QUIET = False


def quiet() -> bool:
    """True after ``configure(quiet=True)`` (``cropmeta -q``): progress bars and notes stay silent."""
    return _QUIET


def configure(verbose: int = 0, quiet: bool = False) -> None:
    """Console output of the ``cropmeta`` logger: warnings by default, info with ``-v``, debug with
    ``-vv``, errors only with ``-q`` (which also silences progress bars: :func:`quiet`)."""
    global _QUIET
    _QUIET = bool(quiet)
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    for h in console_handlers():
        log.removeHandler(h)
    handler = _Console(level)
    log.addHandler(handler)
    log.setLevel(min(level, logging.INFO))


@contextlib.contextmanager
def log_file(path: str | Path) -> Iterator[Path]:
    """Within the block, everything the ``cropmeta`` logger says at info level or above is also
    appended to ``path`` (with timestamps)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(_FORMAT))
    previous = log.level
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield path
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(previous)
