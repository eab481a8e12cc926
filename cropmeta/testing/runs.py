"""Deterministic stand-in predictors and run directories for tests, benchmarks and custom-loader
examples (formerly ``cropmeta.mapping.testing``).

``make_double_run(dir, kind=...)`` writes a tiny "run directory" (``double.json`` + ``config.json``)
that :func:`load_double` (``loader="cropmeta.testing:load_double"``) turns into a predictor
with the :class:`cropmeta.train.checkpoint.Predictor` interface:

- ``ndvi``: P = sigmoid(k · (mean NDVI over time − c)) — a known function of the input, so map
  values can be checked exactly;
- ``lstm``: a seeded one-layer torch LSTM (hidden ``hidden``) + linear head on normalised inputs —
  real torch inference (threads, batching) without a training run.

``delay`` (seconds per ``predict_proba`` call, or the environment variable
``CROPMETA_TEST_PREDICT_DELAY``, which leaves the model's identity unchanged) slows the model down so
that tests can interrupt an export mid-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from cropmeta._fs import atomic_write_text
from cropmeta.schema import BAND_INDEX, DEFAULT_T, N_BANDS

__all__ = ["make_double_run", "ndvi_probability", "DoublePredictor", "load_double", "make_timl_run"]

_NDVI = BAND_INDEX["NDVI"]


def make_double_run(run_dir: str | Path, kind: str = "ndvi", t: int = DEFAULT_T, k: float = 10.0, c: float = 0.4,
                    hidden: int = 16, seed: int = 0, delay: float = 0.0, target: str | None = None,
                    task: dict | None = None, date_range: list | None = None) -> Path:
    """``task`` / ``date_range``: what the double says it was trained on (its metadata: the target's
    ``region``, ``lat``, ``lon`` …; the training series' first and last start dates)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {"kind": kind, "t": t, "k": k, "c": c, "hidden": hidden, "seed": seed, "delay": delay}
    if task is not None:
        spec["task"] = task
    if date_range is not None:
        spec["date_range"] = list(date_range)
    atomic_write_text(run_dir / "double.json", json.dumps(spec, sort_keys=True))
    cfg = {"double": spec, "seed": seed}
    if target:
        cfg["target"] = target
    atomic_write_text(run_dir / "config.json", json.dumps(cfg, sort_keys=True))
    return run_dir


def ndvi_probability(x: np.ndarray, k: float = 10.0, c: float = 0.4) -> np.ndarray:
    """The ``ndvi`` double's answer for canonical samples ``[N, T, 18]`` (float64)."""
    m = np.asarray(x, dtype=np.float64)[:, :, _NDVI].mean(axis=1)
    return 1.0 / (1.0 + np.exp(-k * (m - c)))


class DoublePredictor:
    def __init__(self, spec: dict, sha: str):
        self.spec = spec
        self.t = int(spec["t"])
        self.temperature = None
        self.metadata = {"model_sha256": sha, "config": {"double": spec}, "task": spec.get("task", {"kind": "double"}),
                         "seed": spec.get("seed", 0), "date_range": spec.get("date_range")}
        self._net = None
        if spec["kind"] == "lstm":
            import torch

            g = torch.Generator().manual_seed(int(spec["seed"]))
            h = int(spec["hidden"])
            self._lstm = torch.nn.LSTM(N_BANDS, h, batch_first=True)
            self._head = torch.nn.Linear(h, 1)
            with torch.no_grad():
                for p in list(self._lstm.parameters()) + list(self._head.parameters()):
                    p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(p.shape[-1]))
                self._head.weight.mul_(4.0)
            self._lstm.eval()
            # fixed normalisation: rough centre and spread of each raw band (canonical order)
            self._center = torch.tensor([-12, -18] + [1000] * 11 + [290, 0.003, 1000, 5, 0.4], dtype=torch.float32)
            self._scale = torch.tensor([5, 5] + [100] * 11 + [10, 0.003, 500, 3, 0.25], dtype=torch.float32)
        elif spec["kind"] != "ndvi":
            raise ValueError(f"unknown double kind {spec['kind']!r}")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        delay = float(self.spec.get("delay") or os.environ.get("CROPMETA_TEST_PREDICT_DELAY") or 0)
        if delay:
            time.sleep(delay)
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != self.t or x.shape[2] != N_BANDS:
            raise ValueError(f"expected [N, {self.t}, {N_BANDS}], got {list(x.shape)}")
        if self.spec["kind"] == "ndvi":
            return ndvi_probability(x, self.spec["k"], self.spec["c"])
        import torch

        with torch.no_grad():
            xb = torch.tanh((torch.from_numpy(x) - self._center) / self._scale)
            out, _ = self._lstm(xb)
            return torch.sigmoid(self._head(out[:, -1])).squeeze(-1).double().numpy()

    def flops_per_pixel(self) -> float:
        """Multiply-adds ×2 of one pixel's forward pass (LSTM gates + head)."""
        if self.spec["kind"] != "lstm":
            return 0.0
        h = int(self.spec["hidden"])
        return float(self.t * 2 * 4 * h * (N_BANDS + h) + 2 * h)


def load_double(run_dir: str | Path) -> DoublePredictor:
    p = Path(run_dir) / "double.json"
    text = p.read_text()
    return DoublePredictor(json.loads(text), hashlib.sha256(text.encode()).hexdigest())


def make_timl_run(run_dir: str | Path, t: int = DEFAULT_T, hidden: int = 128, seed: int = 0,
                  region: str = "Kenya", crop: str | None = "maize") -> Path:
    """A run directory holding cropmeta's real TIML model (paper architecture, ``hidden`` LSTM units),
    initialised (not trained) and with normalisation statistics from synthetic samples — for
    throughput/memory benchmarks: the compute per pixel is exactly a trained model's."""
    from cropmeta.regions import get_region
    from cropmeta.schema import Normalizer
    from cropmeta.crops import crop_group_of, task_info
    from cropmeta.train import checkpoint as ck
    from cropmeta.train.config import resolve_config
    from cropmeta.testing.samples import toy_samples
    from cropmeta.train.trained import TrainedModel, build_model

    cfg = resolve_config("paper", overrides={"hidden": hidden})
    clf, enc = build_model(cfg, t, "timl", seed=seed)
    norm = Normalizer.fit(toy_samples(n_per_label=20, n_noncrop=20, t=t, seed=seed).x)
    lat, lon = get_region(region).centre
    ti = task_info(lat, lon, crop_group_of(crop))
    model = TrainedModel("timl", clf, enc, norm, cfg, ti, {"seed": seed})
    task = {"region": region, "crop": crop, "lat": lat, "lon": lon}
    ck.save_model(run_dir, model, {"task": task, "seed": seed, "date_range": None, "config": cfg.to_dict()})
    atomic_write_text(Path(run_dir) / "config.json", json.dumps({**cfg.to_dict(), "target": task, "seed": seed}))
    return Path(run_dir)
