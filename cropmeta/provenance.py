"""Provenance: which software produced a result and digests of what it read (one home for both).

- :func:`software_versions`: python (and platform), cropmeta, and the versions of the named packages
  from their metadata (nothing is imported) — recorded in model checkpoints, comparison reports and
  acquisition manifests;
- :func:`sha256_file`: SHA-256 of a file, read in chunks;
- :func:`sha256_arrays`: SHA-256 of named arrays (sorted by name; name and raw bytes of each), e.g.
  a network's ``state_dict`` or a method's inputs.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

__all__ = ["software_versions", "sha256_file", "sha256_arrays"]


def software_versions(packages: Iterable[str] = (), *, with_platform: bool = False,
                      missing: str | None = None) -> dict[str, str]:
    """``{"python", ["platform"], "cropmeta", <package>: version, …}``; a package that is not installed
    is left out, or recorded as ``missing`` when that is given (e.g. ``"not installed"``)."""
    from cropmeta import __version__

    out = {"python": platform.python_version()}
    if with_platform:
        out["platform"] = platform.platform()
    out["cropmeta"] = __version__
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if missing is not None:
                out[name] = missing
    return out


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_arrays(arrays: Mapping) -> str:
    """SHA-256 hex digest of named arrays (numpy arrays or tensors), in name order."""
    h = hashlib.sha256()
    for k, v in sorted(arrays.items()):
        if hasattr(v, "detach"):
            v = v.detach().cpu().contiguous().numpy()
        h.update(str(k).encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()
