"""Generative views: each control changes only what it should (and keeps the label), is driven by the
simulator's parameters, is deterministic in the seed — and views never touch a test set."""

from __future__ import annotations

import numpy as np
import pytest

from cropmeta.errors import InputError
from cropmeta.evaluate.compare import TargetData, run_cell
from cropmeta.evaluate.methods import Method, TargetTask
from cropmeta.schema import BAND_INDEX, BANDS, true_ndvi
from cropmeta.sim.views import (
    S1_IDX,
    S2_IDX,
    ViewControls,
    WithViews,
    cloud_gaps,
    default_controls,
    make_views,
    shift_planting,
    swap_soil,
)
from cropmeta.testing import toy_samples

WEATHER_STATIC = [BAND_INDEX[b] for b in ("temperature_2m", "total_precipitation", "elevation", "slope")]


@pytest.fixture(scope="module")
def x():
    return toy_samples(n_per_label=6, n_noncrop=6, t=12, seed=2, regions=None).x[:60]


def test_views_keep_labels_weather_and_terrain_and_are_seeded(x):
    y = np.arange(len(x)) % 2
    v = make_views(x, y, n_views=3, seed=7)
    n = len(x)
    assert v.x.shape == (4 * n, 12, 18) and np.isfinite(v.x).all()
    np.testing.assert_array_equal(v.x[:n], x)  # originals first, untouched
    np.testing.assert_array_equal(v.y, np.tile(y, 4))  # labels copied
    np.testing.assert_array_equal(v.source, np.tile(np.arange(n), 4))
    assert v.is_view.sum() == 3 * n
    views = v.x[n:].reshape(3, n, 12, 18)
    for k in range(3):
        # weather (ERA5) and terrain are never moved by a label-preserving control
        np.testing.assert_array_equal(views[k][:, :, WEATHER_STATIC], x[:, :, WEATHER_STATIC])
        # the surface bands did move, and NDVI is true NDVI of the new B8/B4
        assert np.abs(views[k][:, :, S2_IDX] - x[:, :, S2_IDX]).mean() > 10
        assert np.abs(views[k][:, :, S1_IDX] - x[:, :, S1_IDX]).mean() > 0.1
        np.testing.assert_allclose(views[k][..., BAND_INDEX["NDVI"]],
                                   true_ndvi(views[k][..., BAND_INDEX["B8"]], views[k][..., BAND_INDEX["B4"]]), atol=1e-6)
    assert not np.allclose(views[0], views[1])  # each view draws its own controls
    np.testing.assert_array_equal(make_views(x, y, 3, seed=7).x, v.x)  # deterministic in the seed
    assert not np.array_equal(make_views(x, y, 3, seed=8).x, v.x)
    assert (views[..., S2_IDX] >= 0).all() and (views[..., S2_IDX] <= 15000).all()
    with pytest.raises(InputError, match="unknown view control"):
        make_views(x, y, 1, controls="planting,sunshine")
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        make_views(bad, y, 1)


def test_controls_come_from_the_simulator():
    c = default_controls()
    assert c.plant_sd_days == pytest.approx(np.hypot(10.0, 8.0))  # world.toml plant_sd, tile_onset_sd
    assert c.s2_noise == 0.03 and c.s1_speckle == 1.0 and c.cloud_max == 0.35
    assert len(c.soils) >= 30 and c.ndvi_soil < 0.3 < 0.7 < c.ndvi_canopy
    with pytest.raises(InputError, match="scale"):
        ViewControls.from_simulator(bogus_scale=2)


def test_planting_shift_moves_the_season_not_the_weather():
    t = 12
    x = np.zeros((2, t, 18), np.float32)
    bump = np.exp(-0.5 * ((np.arange(t) - 5) / 1.2) ** 2)
    x[:, :, BAND_INDEX["B8"]] = 1000 + 3000 * bump
    x[:, :, BAND_INDEX["temperature_2m"]] = 290 + np.arange(t)
    out = shift_planting(x, np.array([30.0, -45.0]))  # one step later; one and a half steps earlier
    assert np.argmax(out[0, :, BAND_INDEX["B8"]]) == 6
    np.testing.assert_allclose(out[0, 1:, BAND_INDEX["B8"]], x[0, :-1, BAND_INDEX["B8"]], rtol=1e-6)
    np.testing.assert_allclose(out[1, 3, BAND_INDEX["B8"]], 0.5 * (x[1, 4, BAND_INDEX["B8"]] + x[1, 5, BAND_INDEX["B8"]]),
                               rtol=1e-6)
    assert out[0, 0, BAND_INDEX["B8"]] == x[0, 0, BAND_INDEX["B8"]]  # ends held, no wrap-around
    np.testing.assert_array_equal(out[..., BAND_INDEX["temperature_2m"]], x[..., BAND_INDEX["temperature_2m"]])


def test_cloud_gaps_fall_on_wet_months_and_are_filled_like_ingestion(x):
    c = ViewControls.from_simulator(gap_scale=30.0, haze_scale=0.0)
    xx = x.copy()
    xx[:, :, BAND_INDEX["total_precipitation"]] = 0.0
    xx[:, 4, BAND_INDEX["total_precipitation"]] = 0.01  # one wet month; the others dry (gap_base = 0)
    out = cloud_gaps(xx, np.random.default_rng(0), c)
    changed = np.abs(out - xx).max(axis=2) > 1e-3  # [n, t]
    assert changed[:, 4].all() and not np.delete(changed, 4, axis=1).any()
    # the gap is filled with the band's mean over the other steps (cropmeta.schema.fill_missing)
    b = BAND_INDEX["B11"]
    np.testing.assert_allclose(out[:, 4, b], np.delete(xx[:, :, b], 4, axis=1).mean(axis=1), rtol=1e-5)
    # residual haze brightens the visible bands toward the cloud spectrum
    hazy = cloud_gaps(x, np.random.default_rng(1), ViewControls.from_simulator(gap_scale=0.0, haze_scale=3.0))
    assert (hazy[..., BAND_INDEX["B2"]] >= x[..., BAND_INDEX["B2"]] - 1e-3).all()


def test_soil_swap_changes_bare_soil_more_than_a_closed_canopy():
    t = 12
    x = np.zeros((400, t, 18), np.float32)
    x[:200, :, BAND_INDEX["B8"]], x[:200, :, BAND_INDEX["B4"]] = 2400, 1700  # bare soil (NDVI ≈ 0.17)
    x[200:, :, BAND_INDEX["B8"]], x[200:, :, BAND_INDEX["B4"]] = 3800, 320  # closed canopy (NDVI ≈ 0.85)
    out = swap_soil(x, np.random.default_rng(0), default_controls())
    d = np.abs(out - x)[..., BAND_INDEX["B4"]]
    assert d[:200].mean() > 50 and d[200:].max() < 1e-3
    assert (out[..., S1_IDX] == x[..., S1_IDX]).all()


class Spy(Method):
    """Records what fit and predict_proba receive; predicts a linear score."""

    name = "spy"

    def __init__(self):
        self.fit_x, self.pred_x = [], []

    def fit(self, x, y, seed=0):
        self.fit_x.append(np.array(x))
        self.w = np.array(x)[np.asarray(y) == 1].mean(axis=0) - np.array(x)[np.asarray(y) == 0].mean(axis=0)
        return self

    def predict_proba(self, x):
        self.pred_x.append(np.array(x))
        s = (np.asarray(x) * self.w).sum(axis=(1, 2))
        return 1 / (1 + np.exp(-(s - s.mean()) / (s.std() + 1e-9)))


def test_views_never_touch_the_test_set(x):
    mark = -98765.0
    y_train = np.r_[np.ones(15, int), np.zeros(15, int)]
    x_test = x[30:50].copy()
    x_test[:, :, BAND_INDEX["slope"]] = mark  # a poison only test samples carry
    data = TargetData(TargetTask("Kenya", "maize", np.zeros(13, np.float32)), x[:30], y_train, x_test,
                      np.r_[np.ones(10, int), np.zeros(10, int)])
    spy = Spy()
    wrapped = WithViews(spy, n_views=4)
    assert wrapped.name == "spy+views"
    cell = run_cell(wrapped, data, seed=0, k=20, calib_folds=2)
    # every fit (main + calibration folds) saw views of training samples only: 5× the labels given
    assert len(spy.fit_x) == 3 and len(spy.fit_x[0]) == 5 * 20
    assert all(not np.isin(mark, f).any() for f in spy.fit_x)
    # prediction on the test set received exactly the test samples, never views of them
    test_calls = [p for p in spy.pred_x if len(p) == len(x_test)]
    assert test_calls and all(np.array_equal(p, x_test) for p in test_calls)
    assert all(not np.isin(mark, p).any() for p in spy.pred_x if len(p) != len(x_test))
    assert cell["n_train"] == 20 and len(cell["prob_test"]) == len(x_test)


def _tiny_png(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def test_compare_reports_in_context_and_views_rows_with_adaptation_cost(tmp_path, monkeypatch):
    import json

    import cropmeta.evaluate.report as rp
    from cropmeta.testing import make_samples
    from cropmeta.evaluate.compare import compare

    monkeypatch.setattr(rp, "PLOTS", {name: _tiny_png for name in rp.PLOTS})
    samples = make_samples(n_per_region=70, seed=1)
    tiny = {"hidden": 16, "encoder_dims": [16, 16, 16], "iterations": 3, "tasks_per_step": 4, "k_support": 3,
            "k_query": 2, "ft_steps": 10, "threads": 1, "device": "cpu"}
    opts = {"in-context": {"d_model": 16, "ff": 32, "heads": 2}, "rf": {"n_estimators": 10}}
    out = tmp_path / "cmp"
    rep = compare("kenya", samples=samples, seeds=1, shots="8,all", methods="timl,in-context,rf", views=2, out=out,
                  config=tiny, calib_folds=2, method_options=opts, progress=False)
    methods = ["timl", "timl+views", "in-context", "in-context+views", "random-forest", "random-forest+views"]
    assert rep["config"]["methods"] == methods and rep["config"]["views"] == 2
    # views reuse their method's prepared (meta-trained) weights: timl and in-context prepared once each
    assert rep["run"]["prepared"] == 2
    cells = {(c["method"], str(c["shots"])): c for c in rep["cells"]}
    assert cells[("in-context", "8")]["flops"]["fit"] == 0 < cells[("in-context", "8")]["flops"]["predict"]
    assert cells[("timl", "8")]["flops"]["fit"] > cells[("in-context", "8")]["flops"]["adapt_predict"]
    assert cells[("random-forest", "8")]["flops"] is None  # not torch: unknown, not zero
    # a +views fit sees 1 + 2 views per label, the plain one its labels only: other predictions
    assert cells[("timl+views", "all")]["prob_test"] != cells[("timl", "all")]["prob_test"]
    md = (out / "report.md").read_text()
    for text in ("In-context learner + views", "TIML + views", "Random forest + views", "GFLOP / task",
                 "Adapt + predict (s)"):
        assert text in md
    row = next(line for line in md.splitlines() if line.startswith("| In-context learner |"))
    assert row.count("[") >= 9  # every metric with its CI, as the other rows
    assert json.loads((out / "report.json").read_text())["summary"]["8"]["in-context"]["flops"]["predict"] > 0
