"""A CropHarvest-``Inference``-style map path, the baseline cropmeta's export is measured against.

Structure of ``cropharvest/inference.py`` + the TIML model (re-written here, not copied):

1. the whole tile is read into memory (xarray), turned into a ``[pixels, T, bands]`` numpy array and
   normalised with numpy, with flat lat/lon arrays beside it;
2. pixels go through the model in batches of 64 (``Inference.batch_size``), each batch a fresh
   tensor; the model is the TIML classifier with the hand-unrolled LSTM cell and FiLM, the task
   encoder applied to the task information with every batch;
3. all predictions are put into a pandas DataFrame indexed by (lat, lon) and turned into an
   ``xarray.Dataset`` with ``to_xarray()``, written as netCDF (float probabilities, no overviews,
   no nodata — the map product a GIS then has to convert).

It runs on a cropmeta run directory's weights (:func:`~.timl_reference.from_cropmeta`), so its
probabilities equal cropmeta's for the same tile (checked in tests/test_perf_reference.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.reference.timl_reference import from_cropmeta

__all__ = ["ReferenceInference"]


class ReferenceInference:
    """``ReferenceInference(run_dir).run(tif, out_nc)`` → summary dict (pixels, seconds, pixels/s)."""

    def __init__(self, run_dir: str | Path, batch_size: int = 64, device: str = "cpu"):
        from cropmeta.train.checkpoint import load_model

        model, _ = load_model(run_dir)
        self.device = torch.device(device)
        self.model = from_cropmeta(model.classifier).to(self.device).eval()
        self.encoder = model.encoder.to(self.device).eval() if model.encoder is not None else None
        self.mean = model.normalizer.mean.astype(np.float32)
        self.std = model.normalizer.std.astype(np.float32)
        self.inputs = model.inputs  # the run's NDVI rule (cropmeta.schema.NDVI_RULES)
        self.task_info = None if model.task_info is None else np.asarray(model.task_info, dtype=np.float32)
        self.batch_size = int(batch_size)

    def _tif_to_np(self, tif: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from cropmeta.io.eetiff import pixels_array, read_ee_tiff

        da = read_ee_tiff(tif, fill=True)
        x = pixels_array(da)
        lat = np.repeat(da["y"].values, da.sizes["x"])
        lon = np.tile(da["x"].values, da.sizes["y"])
        return x, lat, lon

    def _on_single_batch(self, batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            film = None
            if self.encoder is not None:
                film = self.encoder(torch.from_numpy(self.task_info).view(1, -1).to(self.device))
            logits = self.model(torch.from_numpy(batch).float().to(self.device), film)
            return torch.sigmoid(logits).cpu().numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of raw canonical pixels ``[N, T, 18]`` (normalised here), batches of 64."""
        x = (self.inputs(x) - self.mean) / self.std
        return np.concatenate([self._on_single_batch(x[i : i + self.batch_size])
                               for i in range(0, len(x), self.batch_size)])

    @staticmethod
    def combine_predictions(lat: np.ndarray, lon: np.ndarray, preds: np.ndarray):
        df = pd.DataFrame({"lat": lat, "lon": lon, "prediction_0": preds})
        return df.set_index(["lat", "lon"]).to_xarray()

    def run(self, tif: str | Path, out_nc: str | Path) -> dict:
        t0 = time.perf_counter()
        x, lat, lon = self._tif_to_np(Path(tif))
        t_read = time.perf_counter()
        preds = self.predict(x)
        t_model = time.perf_counter()
        ds = self.combine_predictions(lat, lon, preds)
        ds.to_netcdf(out_nc, engine="h5netcdf")
        t1 = time.perf_counter()
        n = int(len(x))
        return {"pixels": n, "seconds": t1 - t0, "pixels_per_s": n / (t1 - t0), "batch": self.batch_size,
                "seconds_read": t_read - t0, "seconds_model": t_model - t_read, "seconds_write": t1 - t_model}
