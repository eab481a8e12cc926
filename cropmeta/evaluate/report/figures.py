"""Matplotlib on the Agg backend, and saving a figure atomically as PNG (shared by every plot)."""

from __future__ import annotations

from pathlib import Path

from cropmeta._fs import atomic_path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    pyplot().close(fig)
    return path
