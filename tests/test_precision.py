"""The folded inference model and the reduced-precision (bfloat16) option, on the real CropHarvest
Earth-Engine exports in ../shared/data/cropharvest_eo_tifs/ (issue 7 §2).

A TIML model is fine-tuned briefly on the real tiles' pixels (pseudo-labels: mean NDVI above the
tile's median) so that its probabilities spread over (0, 1); then
- the folded float32 model equals cropmeta's ``Predictor`` (normalisation, FiLM, BatchNorm, head);
- bfloat16 keeps every probability within 0.01 of float32 and ≥ 99.9 % of the class map identical,
  both on the pixels and in the exported COGs (same run, same tile, fp32 loader vs bf16 loader);
- ``resolve_precision`` refuses bfloat16 where the check fails or (``auto``) where it is not native.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from cropmeta.errors import InputError

TIFS = ["98-togo_2019-02-06_2020-02-01.tif", "373-croplands_2016-02-07_2017-02-01.tif"]


def _read_tile(path):
    from rasterio.windows import Window

    from cropmeta.mapping.sources import open_source

    s = open_source(path)
    x, valid = s.read(Window(0, 0, s.grid.width, s.grid.height))
    return x, valid


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data):
    """(run_dir, predictor, pixels of both real tiles, tile paths) — a TIML model fine-tuned on the tiles."""
    root = shared_data
    torch.set_num_threads(1)
    from cropmeta.schema import BAND_INDEX, Normalizer
    from cropmeta.crops import task_info
    from cropmeta.train import checkpoint as ck
    from cropmeta.train.config import resolve_config
    from cropmeta.train.finetune import finetune
    from cropmeta.train.trained import TrainedModel, build_model

    tifs = [root / "cropharvest_eo_tifs" / f for f in TIFS]
    parts = [_read_tile(p)[0] for p in tifs]
    x = np.concatenate(parts)
    # pseudo-labels: mean NDVI above the tile's median (both classes on every tile)
    y = np.concatenate([(n > np.median(n)) for n in (xp[:, :, BAND_INDEX["NDVI"]].mean(axis=1) for xp in parts)])
    y = y.astype(np.int64)
    cfg = resolve_config("quick", overrides={"ft_lr": 0.05, "ft_steps": 100})
    clf, enc = build_model(cfg, x.shape[1], "timl", seed=0)
    ti = task_info(8.5, 0.9, None)
    model = TrainedModel("timl", clf, enc, Normalizer.fit(x), cfg, ti, {"seed": 0})
    model = finetune(model, x, y, ti, cfg, seed=0)
    run_dir = tmp_path_factory.mktemp("prec") / "run"
    task = {"region": "Togo", "crop": None, "lat": 8.5, "lon": 0.9}
    ck.save_model(run_dir, model, {"task": task, "seed": 0, "date_range": None, "config": cfg.to_dict()})
    (run_dir / "config.json").write_text(json.dumps({**cfg.to_dict(), "target": task, "seed": 0}))
    pred = ck.load_predictor(run_dir)
    return run_dir, pred, x, tifs


def test_model_spreads_probabilities(trained):
    """Guard: the precision tests below are meaningful only if probabilities are not all ≈ 0.5."""
    _, pred, x, _ = trained
    p = pred.predict_proba(x)
    assert p.min() < 0.2 and p.max() > 0.8
    assert 0.1 < np.mean(p >= 0.5) < 0.9


def test_folded_fp32_equals_predictor(trained):
    from cropmeta.mapping.precision import FastPredictor

    _, pred, x, _ = trained
    fast = FastPredictor(pred, "fp32", batch_size=100)
    np.testing.assert_allclose(fast.predict_proba(x), pred.predict_proba(x), atol=2e-6, rtol=0)
    assert fast.t == pred.t


def test_folded_temperature_applied(trained):
    from cropmeta.mapping.precision import FastPredictor

    _, pred, x, _ = trained
    pred.set_temperature(2.5)
    try:
        fast = FastPredictor(pred, "fp32")
        np.testing.assert_allclose(fast.predict_proba(x[:64]), pred.predict_proba(x[:64]), atol=2e-6, rtol=0)
    finally:
        pred.set_temperature(None)


@pytest.mark.parametrize("learner", ["maml", "concat"])
def test_folded_other_learners_and_batchnorm_stats(learner, trained):
    """No FiLM (plain MAML) and task info concatenated to the input; non-trivial BatchNorm statistics."""
    from cropmeta.mapping.precision import FastPredictor
    from cropmeta.schema import Normalizer
    from cropmeta.crops import task_info
    from cropmeta.train.checkpoint import Predictor
    from cropmeta.train.config import resolve_config
    from cropmeta.train.trained import TrainedModel, build_model

    _, _, x, _ = trained
    cfg = resolve_config("quick")
    clf, enc = build_model(cfg, x.shape[1], learner, seed=3)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in (clf.bn1, clf.bn2):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.3)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
    model = TrainedModel(learner, clf.eval(), enc, Normalizer.fit(x), cfg, task_info(0.2, 37.9, "cereals"), {})
    pred = Predictor(model, {})
    np.testing.assert_allclose(FastPredictor(pred, "fp32").predict_proba(x[:200]), pred.predict_proba(x[:200]),
                               atol=2e-6, rtol=0)


def test_bf16_within_tolerance_on_real_tiles(trained):
    from cropmeta.mapping.precision import check_reduced_precision

    _, pred, x, _ = trained
    rep = check_reduced_precision(pred, x)
    assert rep["pixels"] == len(x)
    assert rep["max_abs_prob_diff"] <= 0.01, rep
    assert rep["class_agreement"] >= 0.999, rep
    assert rep["ok"]


def test_bf16_export_map_matches_fp32_map(trained, tmp_path):
    """The exported maps (uint8 probability 0–100 and class band) of the real Togo tile: bf16 vs fp32."""
    import rasterio

    from cropmeta.mapping.export import export

    run_dir, _, _, tifs = trained
    maps = {}
    for name, loader in (("fp32", None), ("bf16", "cropmeta.mapping.precision:load_fast_predictor_bf16")):
        out = tmp_path / f"{name}.tif"
        export(run_dir, out, inputs=[tifs[0]], progress=False, quicklook=False, loader=loader)
        with rasterio.open(out) as ds:
            maps[name] = (ds.read(1), ds.read(2), ds.shape, ds.transform)
    p32, c32, shape, tr = maps["fp32"]
    p16, c16, shape16, tr16 = maps["bf16"]
    assert shape == shape16 == (17, 17) and tr == tr16
    valid = c32 != 255
    assert valid.all()
    assert np.abs(p16.astype(int) - p32.astype(int)).max() <= 1  # 0.01 in the 0–100 scale (+ rounding)
    assert np.mean(c16 == c32) >= 0.999
    assert 0 < np.mean(c32 == 1) < 1  # both classes present: the comparison is not trivial


def test_resolve_precision_gate(trained, monkeypatch):
    import cropmeta.mapping.precision as prec

    _, pred, x, _ = trained
    assert prec.resolve_precision("fp32", pred, x)[0] == "fp32"
    monkeypatch.setattr(prec, "bf16_fast", lambda device="cpu": False)
    p, rep = prec.resolve_precision("auto", pred, x)
    assert p == "fp32" and "check" not in rep  # not native: not even tried
    monkeypatch.setattr(prec, "bf16_fast", lambda device="cpu": True)
    real_timed = prec.timed_proba

    def clock(bf16_seconds):  # the real probabilities, a clock that says how long bf16 took against fp32's 1 s
        return lambda predictor, xs, extra: (real_timed(predictor, xs, extra)[0],
                                             bf16_seconds if predictor.metadata.get("precision") == "bf16" else 1.0)

    monkeypatch.setattr(prec, "timed_proba", clock(0.5))
    p, rep = prec.resolve_precision("auto", pred, x[:300])
    assert p == "bf16" and rep["check"]["ok"] and rep["check"]["seconds_bf16"] < rep["check"]["seconds_fp32"]
    # auto keeps float32 where bf16 passes the check but runs slower (the folded LSTM's case)
    monkeypatch.setattr(prec, "timed_proba", clock(3.0))
    p, rep = prec.resolve_precision("auto", pred, x[:300])
    assert p == "fp32" and rep["check"]["ok"] and "not faster" in rep["why"]
    assert prec.resolve_precision("bf16", pred, x[:300])[0] == "bf16"  # asked for explicitly: what was asked
    monkeypatch.setattr(prec, "timed_proba", real_timed)
    # a check that fails (tolerance far below bf16's error) falls back to fp32 with a warning
    real_check = prec.check_reduced_precision
    monkeypatch.setattr(prec, "check_reduced_precision",
                        lambda pr, xs, threshold=0.5, context=None: real_check(pr, xs, threshold, prob_tol=1e-7))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        p, rep = prec.resolve_precision("bf16", pred, x[:300])
    assert p == "fp32" and not rep["check"]["ok"]
    assert any("float32" in str(m.message) for m in w)
    with pytest.raises(InputError, match="precision"):
        prec.resolve_precision("fp16", pred, x)


def test_bf16_fast_detection(monkeypatch):
    import cropmeta.models.inference as inf

    monkeypatch.setattr(inf, "_cpu_flags", lambda: "flags : fpu avx2 fma")
    assert inf.bf16_fast("cpu") is False
    monkeypatch.setattr(inf, "_cpu_flags", lambda: "flags : fpu avx2 avx512f amx_bf16 amx_tile")
    assert inf.bf16_fast("cpu") is True


def test_flops_per_pixel_counts_the_actual_model():
    """The FLOP count used for the matmul-rate share equals torch's count on the real classifier."""
    from torch.utils.flop_counter import FlopCounterMode

    from cropmeta.models.inference import model_flops_per_pixel
    from cropmeta.models.timl import TIMLClassifier

    clf = TIMLClassifier(t=12, hidden=128).eval()
    n = 32
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        clf(torch.randn(1, n, 12, 18))
    assert fc.get_total_flops() / n == model_flops_per_pixel(12, 18, 128)
    assert abs(model_flops_per_pixel(12, 18, 128) / 1e6 - 1.83) < 0.01
