"""The trained model as the map export sees it: loaded once per process (once per Dask worker),
with one torch thread, from a run directory through a loader ``"module:function"``.

The default loader is :func:`cropmeta.train.checkpoint.load_predictor` (the run directory is already
adapted to its task, so inference never adapts again). Another loader (a custom model) is any
importable ``function(run_dir) -> predictor`` whose predictor has ``predict_proba(x [N,T,18]) ->
[N]``, ``t`` and ``metadata``.
"""

from __future__ import annotations

import importlib
import json
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cropmeta.provenance import sha256_file
from cropmeta.errors import InputError

# the folded fp32 model (same probabilities as load_predictor to 2e-6, 1.7x faster: docs/benchmarks-perf.md)
DEFAULT_LOADER = "cropmeta.mapping.precision:load_fast_predictor"

_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()
#: how many times this process loaded a model (tests check: once per worker)
LOAD_COUNT: dict[str, int] = {}


def resolve_loader(spec: str | None) -> Callable[[Path], Any]:
    spec = spec or DEFAULT_LOADER
    mod, _, fn = spec.partition(":")
    if not fn:
        raise InputError(f"predictor loader {spec!r}: expected 'module:function'")
    try:
        return getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise InputError(f"predictor loader {spec!r} cannot be imported ({e})") from e


def _run_key(run_dir: Path) -> tuple:
    """Size and mtime of the run's files (so a run retrained in place is reloaded)."""
    try:
        files = sorted(p for p in run_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError:
        return ()
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def get_predictor(run_dir: str | Path, loader: str | None = None, device: str = "cpu"):
    """The run's predictor, loaded once in this process (keyed by run path, loader, device and the
    run's files) and moved to ``device`` (``cpu``, ``cuda``, ``cuda:N``) when it has ``.to``."""
    run_dir = Path(run_dir)
    key = (str(run_dir.resolve()), loader or DEFAULT_LOADER, device, _run_key(run_dir))
    with _LOCK:
        pred = _CACHE.get(key)
        if pred is None:
            if not run_dir.is_dir():
                raise InputError(f"{run_dir}: run directory not found (train one with `cropmeta train`)")
            pred = resolve_loader(loader)(run_dir)
            if device != "cpu":
                if not hasattr(pred, "to"):
                    raise InputError(f"{run_dir}: this predictor cannot be moved to {device}")
                from cropmeta.train.common import resolve_device

                pred.to(resolve_device(device))
            for attr in ("predict_proba", "t"):
                if not hasattr(pred, attr):
                    raise InputError(f"{run_dir}: loader {loader or DEFAULT_LOADER} returned an object "
                                     f"without {attr!r}")
            _CACHE[key] = pred
            LOAD_COUNT[key[0]] = LOAD_COUNT.get(key[0], 0) + 1
        return pred


def set_threads(threads: int) -> int | None:
    """Set torch's intra-op threads (when torch is in use); returns the previous setting."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return None
    old = torch.get_num_threads()
    if old != threads:
        torch.set_num_threads(threads)
    return old


def load_counts() -> dict[str, int]:
    """Per-process load counts (call on each Dask worker with ``client.run``)."""
    return dict(LOAD_COUNT)


def model_tags(run_dir: str | Path, predictor) -> dict[str, str]:
    """GeoTIFF tags describing the model: cropmeta version, model SHA-256, config, task, seed, dates."""
    from cropmeta._version import __version__

    run_dir = Path(run_dir)
    meta = dict(getattr(predictor, "metadata", None) or {})
    sha = meta.get("model_sha256") or meta.get("sha256")
    if not sha:
        w = run_dir / "model.safetensors"
        sha = sha256_file(w) if w.exists() else "unknown"
    config = meta.get("config")
    if config is None and (run_dir / "config.json").exists():
        config = json.loads((run_dir / "config.json").read_text())
    task = meta.get("task")
    seed = meta.get("seed")
    if seed is None and isinstance(config, dict):
        seed = config.get("seed")
    dates = meta.get("date_range")
    temperature = meta.get("temperature", getattr(predictor, "temperature", None))
    return {
        "CROPMETA_VERSION": __version__,
        "MODEL_SHA256": str(sha),
        "CONFIG": json.dumps(_plain(config), sort_keys=True),
        "TASK": json.dumps(_plain(task), sort_keys=True),
        "SEED": json.dumps(_plain(seed)),
        "DATE_RANGE": json.dumps(_plain(dates)),
        "TEMPERATURE": json.dumps(_plain(temperature)),
        "RUN_DIR_NAME": run_dir.resolve().name,
    }


def _plain(v):
    """JSON-safe copy (numpy scalars/arrays → Python)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return v


