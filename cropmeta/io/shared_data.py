"""Where a real third-party data folder lies: the one lookup the loaders of ``../shared/data`` use
(DE Africa, WorldCrops)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from cropmeta.errors import InputError


def shared_folder(name: str, root, present: Callable[[Path], bool], what: str, hint: str) -> Path:
    """The folder ``name`` under ``data/``: ``root`` (that folder, or a ``shared`` folder holding
    ``data/NAME``), else ``$CROPMETA_SHARED/data/NAME``, else the project's sibling ``../shared``;
    the first candidate where ``present(folder)`` holds. :class:`InputError` naming every candidate,
    ``what`` was looked for and ``hint`` otherwise."""
    cands = []
    if root is not None:
        cands += [Path(root), Path(root) / "data" / name]
    else:
        if os.environ.get("CROPMETA_SHARED"):
            cands.append(Path(os.environ["CROPMETA_SHARED"]) / "data" / name)
        cands.append(Path(__file__).resolve().parents[2].parent / "shared" / "data" / name)
    for c in cands:
        if present(c):
            return c
    raise InputError(f"{what} not found (looked in {', '.join(map(str, cands))}); {hint}")


__all__ = ["shared_folder"]
