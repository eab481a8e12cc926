"""Published pretrained weights: where each file comes from, its SHA-256 and licence, and where the
workspace caches its safetensors copy. Reading them is :mod:`cropmeta.models.presto`'s; fetching and
converting them, :mod:`cropmeta.models.weights`'s (``cropmeta models download``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cropmeta.errors import InputError

__all__ = ["PRESTO", "WEIGHTS", "WeightsSpec", "cached_weights", "weights_dir"]


@dataclass(frozen=True)
class WeightsSpec:
    """A published weights file: ``url`` of the original, its ``sha256``, the licence notice."""

    name: str
    url: str
    sha256: str
    filename: str
    licence: str

    @property
    def safetensors_name(self) -> str:
        return Path(self.filename).with_suffix(".safetensors").name


#: Presto's published checkpoint (nasaharvest/presto @ 13173d0, ``data/default_model.pt``, MIT)
PRESTO = WeightsSpec(
    name="presto",
    url="https://raw.githubusercontent.com/nasaharvest/presto/13173d028f035abcbcc3b13829314323a5c15d02/"
        "data/default_model.pt",
    sha256="559c9d76f525bdf2dd3774da8b1e7f1510769b73baacac12e9e4d8d5c67fbe65",
    filename="default_model.pt",
    licence="MIT License, Copyright (c) 2024 Presto Authors (github.com/nasaharvest/presto)",
)
WEIGHTS = {PRESTO.name: PRESTO}


def published_spec(name: str | WeightsSpec) -> WeightsSpec:
    if isinstance(name, WeightsSpec):
        return name
    key = str(name).strip().lower()
    if key not in WEIGHTS:
        raise InputError(f"unknown model {name!r}; downloadable: {', '.join(WEIGHTS)}")
    return WEIGHTS[key]


def weights_dir(name: str | WeightsSpec, home: str | Path | None = None) -> Path:
    from cropmeta.io.store import workspace_home

    return Path(home or workspace_home()) / "models" / published_spec(name).name


def cached_weights(name: str | WeightsSpec, home: str | Path | None = None) -> Path:
    """The cached safetensors weights, or :class:`InputError` saying how to get them."""
    spec = published_spec(name)
    path = weights_dir(spec, home) / spec.safetensors_name
    if not path.is_file():
        raise InputError(f"{path}: {spec.name} weights are not in the workspace; run `cropmeta models download "
                         f"{spec.name}` (or `cropmeta models download {spec.name} --weights PATH` offline)")
    return path
