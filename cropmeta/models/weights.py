"""Fetching published pretrained weights into the workspace cache (the files, their SHA-256 and the
cache location: :mod:`cropmeta.models.published`).

``cropmeta models download presto`` fetches the published file, checks its SHA-256 and converts it
to safetensors under ``$CROPMETA_HOME/models/presto/``; ``--weights PATH`` installs a local copy
instead (the published ``.pt``, checked the same way, or a ``.safetensors`` file with the same keys).
Every write goes through a temporary file and a rename: an interrupted or failed download never
leaves a half-written file behind.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from cropmeta._fs import atomic_path, atomic_write_text
from cropmeta.provenance import sha256_file
from cropmeta.errors import InputError
from cropmeta.models.published import WeightsSpec, published_spec, weights_dir

__all__ = ["WeightsSpec", "download_weights", "weights_dir"]


def _fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Stream ``url`` (http(s) or file://) into ``dest``."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as fh:
        shutil.copyfileobj(resp, fh, 1 << 20)


def _to_safetensors(spec: WeightsSpec, src: Path, dest: Path) -> str:
    """Load ``src`` as the encoder would (checks keys and shapes), write every tensor of it to
    ``dest`` as safetensors (atomically); returns the SHA-256 of the result."""
    import torch
    from safetensors.torch import save_file

    from cropmeta.models.presto import read_presto_state, load_presto

    load_presto(src)  # refuses files that are not these weights, naming the key
    state = {k: v.detach().cpu().contiguous().clone() for k, v in read_presto_state(src).items() if torch.is_tensor(v)}
    with atomic_path(dest) as tmp:
        save_file(state, str(tmp), metadata={"source": spec.url, "source_sha256": sha256_file(src),
                                              "licence": spec.licence})
        digest = sha256_file(tmp)
    return digest


def download_weights(name: str | WeightsSpec = "presto", weights: str | Path | None = None,
                     home: str | Path | None = None, url: str | None = None,
                     fetch: Callable[[str, Path], None] | None = None) -> Path:
    """Put the model's weights in the workspace cache and return the safetensors path.

    ``weights``: a local file to install instead of downloading (``.pt`` = the published file,
    checked by SHA-256; ``.safetensors`` = the same keys and shapes). ``url``: another location of
    the published file (e.g. a mirror or ``file://``); its SHA-256 must still match. ``fetch``: the
    downloader (tests)."""
    spec = published_spec(name)
    out_dir = weights_dir(spec, home)
    dest = out_dir / spec.safetensors_name
    if weights is not None:
        src = Path(weights)
        if not src.is_file():
            raise InputError(f"--weights {src}: file not found")
        if src.suffix not in (".pt", ".safetensors"):
            raise InputError(f"--weights {src}: expected the published {spec.filename} or a .safetensors copy")
        origin = str(src.resolve())
        digest = _to_safetensors(spec, src, dest)
    else:
        src_url = url or spec.url
        raw = out_dir / spec.filename
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(raw) as tmp:
            try:
                (fetch or _fetch)(src_url, tmp)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise InputError(f"cannot download {spec.name} weights from {src_url} ({reason}); download that "
                                 f"file elsewhere and run `cropmeta models download {spec.name} --weights PATH`"
                                 ) from None
            got = sha256_file(tmp)
            if got != spec.sha256:
                raise InputError(f"{src_url}: SHA-256 {got[:16]}… differs from the published {spec.sha256[:16]}… "
                                 f"(nothing was saved); fetch the file again or pass --weights PATH")
        origin = src_url
        digest = _to_safetensors(spec, raw, dest)
    atomic_write_text(out_dir / "source.json", json.dumps(
        {"name": spec.name, "origin": origin, "published_url": spec.url, "published_sha256": spec.sha256,
         "safetensors": dest.name, "safetensors_sha256": digest, "licence": spec.licence}, indent=2))
    return dest
