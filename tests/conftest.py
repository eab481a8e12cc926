"""Shared fixtures. Real third-party data lives in ../shared/data (read-only); tests that need it
skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _shared_dir(env: str, folder: str, marker: str = "") -> Path | None:
    """``$env`` or ``../shared/<folder>`` (with ``marker`` inside, when given), None when absent."""
    p = Path(os.environ[env]) if os.environ.get(env) else REPO.parent / "shared" / folder
    return p if p.is_dir() and (not marker or (p / marker).exists()) else None


def _need(p: Path | None, what: str, env: str, folder: str) -> Path:
    if p is None:
        pytest.skip(f"{what} not available: set {env} or place it at ../shared/{folder}")
    return p


def shared_data_dir() -> Path | None:
    return _shared_dir("CROPMETA_SHARED_DATA", "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(shared_data_dir(), "real data", "CROPMETA_SHARED_DATA", "data")


@pytest.fixture(scope="session")
def shared_presto() -> Path:
    """../shared/models/presto: the published Presto weights and the reference golden embeddings."""
    p = _shared_dir("CROPMETA_SHARED_PRESTO", "models/presto", "presto_golden.npz")
    return _need(p, "Presto weights and golden file", "CROPMETA_SHARED_PRESTO", "models/presto")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own CROPMETA_HOME so nothing touches ./cropmeta-data."""
    monkeypatch.setenv("CROPMETA_HOME", str(tmp_path / "cropmeta-home"))
    yield


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    yield
