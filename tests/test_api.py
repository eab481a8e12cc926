"""The Python API: ``import cropmeta`` is light (no torch), exposes the main objects and functions
with examples in their docstrings, and returns typed results whose ``to_dict()`` is the library's dict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cropmeta
from cropmeta.results import CompareResult, ExportResult, TrainResult

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS = ["load_samples", "train_model", "load_model", "predict", "export_map", "compare"]


def test_import_cropmeta_does_not_import_torch():
    code = ("import sys, cropmeta; heavy = [m for m in ('torch', 'rasterio', 'sklearn', 'learn2learn', 'pandas') "
            "if m in sys.modules]; print(heavy); assert not heavy, heavy; cropmeta.TrainResult; "
            "assert 'torch' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_public_name_resolves_and_the_functions_carry_an_example():
    for name in cropmeta.__all__:
        assert getattr(cropmeta, name) is not None, name
    for name in FUNCTIONS + ["TrainResult"]:
        doc = getattr(cropmeta, name).__doc__ or ""
        assert ">>>" in doc, f"{name}: no example in the docstring"
    assert {"Task", "SampleSet", "TrainConfig", "Predictor", "resolve_target", "build_tasks"} <= set(cropmeta.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cropmeta.nope  # noqa: B018


def test_train_load_predict_through_the_api(tmp_path):
    from cropmeta.testing import toy_samples

    regions = [("Kenya", 0.2, 37.9, ["maize", "sweet potato"]), ("Togo", 8.5, 0.9, ["maize"]),
               ("Uganda", 1.3, 32.4, ["maize", "bean"])]
    samples = toy_samples(n_per_label=20, n_noncrop=20, t=6, seed=2, regions=regions)
    tiny = {"model": {"hidden": 8, "encoder_dims": [8, 8], "encoder_channels_per_group": 4},
            "meta": {"iterations": 3, "tasks_per_step": 2, "val_every": 3, "checkpoint_every": 3},
            "finetune": {"steps": 5}, "execution": {"threads": 1}}
    run = cropmeta.train_model("kenya", "Sweet Potato", samples=samples, out=tmp_path / "run", overrides=tiny, seed=1)
    assert isinstance(run, TrainResult) and run.run_dir == tmp_path / "run"
    assert run.target["id"] == "Kenya:sweetpotato"
    saved = json.loads((run.run_dir / "metrics.json").read_text())
    assert run.auc_roc == saved["auc_roc"] and run.meta == saved["meta"]
    d = run.to_dict()
    assert set(d) == {"run_dir", "target", "metrics", "counts", "meta", "timings", "table", "data"}
    assert run.data and run.data[0]["dataset"] == "in-memory samples"
    assert TrainResult.from_dict(d) == run
    model = cropmeta.load_model(run.run_dir)
    td = cropmeta.target_data(samples, cropmeta.resolve_target(samples, "kenya", "sweet_potato"))
    prob = cropmeta.predict(model, td.x_test)
    np.testing.assert_array_equal(prob, cropmeta.predict(run.run_dir, td.x_test))
    from cropmeta.metrics import binary_metrics

    assert binary_metrics(td.y_test, prob)["auc_roc"] == pytest.approx(run.auc_roc)


def test_export_and_compare_results_wrap_the_library_dicts():
    summary = {"map": "/tmp/m.tif", "quicklook": None, "tiles": [], "pixels": 12, "pixels_valid": 10,
               "seconds": 1.5, "cog_problems": [], "accuracy": None, "blocks": 1}
    e = ExportResult.from_dict(summary)
    assert e.map == Path("/tmp/m.tif") and e.quicklook is None and e.pixels_valid == 10 and e.to_dict() == summary
    report = {"target": {"region": "Kenya"}, "config": {"methods": ["rf"], "shots_run": [20], "seeds": [0]},
              "cells": [{"method": "rf"}], "summary": {"rf": {}}, "files": {"report.json": "/tmp/r.json"}}
    c = CompareResult.from_dict(report)
    assert (c.methods, c.shots, c.seeds) == (["rf"], [20], [0]) and c.files["report.json"] == Path("/tmp/r.json")
    assert c.to_dict() is report
