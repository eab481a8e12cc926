"""Checkpoints: safetensors for tensors + JSON for everything else. Never a pickle.

A trained model in a run directory is ``model.safetensors`` + ``model.json`` (format, kind, band
order, T, architecture, normalisation stats, task and its 13 task-information numbers, resolved
config, versions, data hash, seed, SHA-256 of the weights, calibration temperature). The resume
state of meta-training is ``checkpoint/state.safetensors`` + ``checkpoint/state.json`` (weights,
optimiser moments, generator states, best weights; iteration, scheduler, removed tasks, AUC
histories), written as one directory atomically.

Loading refuses pickles / ``torch.save`` archives, damaged files (SHA-256 mismatch, unreadable
header), another band layout or T, with a :class:`~cropmeta.errors.ModelError` (an ``InputError``)
naming the file.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from cropmeta.errors import InputError, ModelError
from cropmeta._fs import atomic_dir, atomic_path, atomic_write_text, recover_dir
from cropmeta.provenance import sha256_file, software_versions
from cropmeta.learners.base import Model, model_from_state

__all__ = [
    "MODEL_WEIGHTS",
    "MODEL_JSON",
    "versions",
    "save_tensors",
    "load_tensors",
    "save_model",
    "load_model",
    "Predictor",
    "load_predictor",
    "save_temperature",
    "save_state",
    "load_state",
    "sha256_file",
]

MODEL_WEIGHTS = "model.safetensors"
MODEL_JSON = "model.json"
STATE_DIR = "checkpoint"


def versions() -> dict:
    """The software a checkpoint was written with (:func:`cropmeta.provenance.software_versions`)."""
    return software_versions(("torch", "numpy", "learn2learn"))


def _sniff(path: Path) -> None:
    """Refuse pickles, torch.save archives and anything else that is not safetensors, before any
    parser sees the bytes (safetensors: 8-byte little-endian header length, then a JSON header)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9:
        n = int.from_bytes(head[:8], "little")
        if 0 < n <= size - 8 and head[8:9] == b"{":
            return
    if head[:2] == b"PK" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        raise ModelError(f"{path}: this is a pickle / torch.save file; cropmeta loads only safetensors "
                         "checkpoints (it never unpickles files)")
    raise ModelError(f"{path}: not a safetensors file (truncated, empty or corrupted)")


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor | np.ndarray], metadata: dict | None = None) -> str:
    """Write a safetensors file atomically; returns its SHA-256."""
    from safetensors.torch import save_file

    clean = {k: (torch.as_tensor(v) if not torch.is_tensor(v) else v).detach().cpu().contiguous()
             for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
        digest = sha256_file(tmp)
    return digest


def load_tensors(path: str | Path, expect_sha256: str | None = None) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: checkpoint weights not found")
    _sniff(path)
    if expect_sha256 and sha256_file(path) != expect_sha256:
        raise ModelError(f"{path}: SHA-256 differs from the one recorded at save time: the file is corrupted "
                         "or was replaced")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: not a readable safetensors file ({e})") from e


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise ModelError(f"{path}: missing")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(d, dict):
        raise ModelError(f"{path}: expected a JSON object")
    return d


def save_model(run_dir: str | Path, model: Model, extra: dict | None = None) -> dict:
    """Write ``model.safetensors`` + ``model.json`` into ``run_dir`` (each atomically; the JSON,
    written last, records the SHA-256 of the weights). Returns the JSON record. ``model``: anything
    with ``to_state() -> (meta, arrays)`` (TIML/MAML models, the in-context learner)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta, arrays = model.to_state()
    digest = save_tensors(run_dir / MODEL_WEIGHTS, arrays, {"format": meta["format"]})
    meta.update({
        "weights": MODEL_WEIGHTS,
        "weights_sha256": digest,
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "temperature": None,
    })
    meta.update(extra or {})
    atomic_write_text(run_dir / MODEL_JSON, json.dumps(meta, indent=2, default=_json_default))
    return meta


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def load_model(run_dir: str | Path, t: int | None = None) -> tuple[Model, dict]:
    """(model, its JSON record) from a run directory (or a path to its ``model.json``): the model type
    registered for the record's ``kind`` (:func:`cropmeta.learners.base.model_from_state`)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        run_dir = run_dir.parent
    if not run_dir.exists():
        raise ModelError(f"{run_dir}: run directory not found")
    jpath = run_dir / MODEL_JSON
    meta = _read_json(jpath)
    arrays = load_tensors(run_dir / str(meta.get("weights", MODEL_WEIGHTS)), meta.get("weights_sha256"))
    model = model_from_state(meta, {k: v.numpy() for k, v in arrays.items()}, source=str(jpath), t=t)
    return model, meta


class Predictor:
    """What map export and comparison use: ``predict_proba(x [N, T, n_bands] raw) → [N]`` of any
    registered model (its own ``predict_proba``: normalising internally, applying the task's FiLM,
    concatenated task info or support set), then the calibration temperature when one was saved."""

    def __init__(self, model: Model, metadata: dict, run_dir: Path | None = None):
        self.model = model
        self.metadata = metadata
        self.run_dir = run_dir
        t = metadata.get("temperature")
        self.temperature: float | None = float(t) if t is not None else None

    @property
    def t(self) -> int:
        return self.model.t

    @property
    def bands(self) -> list[str]:
        return list(self.metadata.get("bands", []))

    def to(self, device) -> "Predictor":
        self.model.to(device=torch.device(device) if isinstance(device, str) else device)
        return self

    @property
    def uses_locations(self) -> bool:
        """Whether :meth:`predict_proba` reads each sample's ``lat``, ``lon`` and ``start_dates``."""
        return bool(getattr(self.model, "uses_locations", False))

    def predict_proba(self, x: np.ndarray, batch_size: int | None = None, calibrated: bool = True,
                      **context) -> np.ndarray:
        """``batch_size``: samples per forward pass (None: the model's default). ``context``: the
        samples' ``lat``, ``lon``, ``start_dates`` for a model that ``uses_locations`` (ignored by others)."""
        extra = context if self.uses_locations else {}
        return self.model.predict_proba(x, batch_size=batch_size, temperature=self.temperature if calibrated else None,
                                        **extra)

    def set_temperature(self, temperature: float | None) -> None:
        self.temperature = None if temperature is None else float(temperature)


def load_predictor(run_dir: str | Path, device: str = "cpu") -> Predictor:
    """The :class:`Predictor` of a trained run directory (the contract map export relies on)."""
    from cropmeta.train.common import resolve_device

    model, meta = load_model(run_dir)
    model.to(device=resolve_device(device))
    model.check_ready(run_dir)
    md = dict(meta)
    md.setdefault("model_sha256", meta.get("weights_sha256"))
    return Predictor(model, md, Path(run_dir))


def save_temperature(run_dir: str | Path, temperature: float | None) -> None:
    """Record (or clear, with ``None``) the calibration temperature in ``model.json``, atomically."""
    run_dir = Path(run_dir)
    jpath = run_dir / MODEL_JSON
    meta = _read_json(jpath)
    if temperature is not None:
        temperature = float(temperature)
        if not np.isfinite(temperature) or temperature <= 0:
            raise InputError(f"temperature must be a positive finite number, got {temperature}")
    meta["temperature"] = temperature
    atomic_write_text(jpath, json.dumps(meta, indent=2, default=_json_default))


# ---- resume state ---------------------------------------------------------------------------------
def save_state(workdir: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write the resume state (one directory, replaced atomically)."""
    target = Path(workdir) / STATE_DIR
    with atomic_dir(target) as tmp:
        digest = save_tensors(tmp / "state.safetensors", tensors)
        (tmp / "state.json").write_text(json.dumps({**meta, "tensors_sha256": digest}, default=_json_default))


def load_state(workdir: str | Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The resume state in ``workdir``, or ``None`` when there is none."""
    target = Path(workdir) / STATE_DIR
    recover_dir(target)
    if not (target / "state.json").exists():
        return None
    meta = _read_json(target / "state.json")
    tensors = load_tensors(target / "state.safetensors", meta.get("tensors_sha256"))
    return tensors, meta


def optimizer_to_state(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """An optimiser's state as (tensors, JSON)."""
    sd = opt.state_dict()
    tensors, js = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        js["state"][str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.{idx}.{k}"] = v
                js["state"][str(idx)][k] = {"tensor": f"{prefix}.{idx}.{k}"}
            else:
                js["state"][str(idx)][k] = v
    return tensors, js


def optimizer_from_state(opt: torch.optim.Optimizer, tensors: dict, js: dict) -> None:
    state = {}
    for idx, st in js["state"].items():
        state[int(idx)] = {k: (tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v)
                           for k, v in st.items()}
    opt.load_state_dict({"state": state, "param_groups": js["param_groups"]})
