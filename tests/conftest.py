"""Shared fixtures. Real third-party data lives in ../shared/data (read-only); tests that need it
skip with a clear reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    env = os.environ.get("CROPMETA_SHARED_DATA")
    p = Path(env) if env else REPO.parent / "shared" / "data"
    return p if p.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    p = shared_data_dir()
    if p is None:
        pytest.skip("real data not available: set CROPMETA_SHARED_DATA or place it at ../shared/data")
    return p


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
