"""Models and checkpoints are generic over the band schema: a learner trained on an NDVI-only sample
set builds a 1-band network, stores its schema, and refuses inputs of another schema naming the bands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cropmeta.bandschema import BandSchema
from cropmeta.errors import DataError, InputError
from cropmeta.io.store import SampleSet
from cropmeta.schema import BAND_INDEX, CROPHARVEST
from cropmeta.tasks import resolve_target, target_data
from cropmeta.train.checkpoint import load_model, load_predictor, save_model
from cropmeta.testing import toy_samples

REGIONS = [("Kenya", 0.2, 37.9, ["maize"]), ("Togo", 8.5, 0.9, ["maize"]), ("Uganda", 1.3, 32.4, ["maize"])]
TINY = {"hidden": 8, "encoder_dims": [8, 8], "encoder_channels_per_group": 4, "iterations": 3, "tasks_per_step": 2,
        "val_every": 3, "checkpoint_every": 3, "ft_steps": 5, "pt_steps": 4, "pt_val_every": 2, "threads": 1,
        "device": "cpu", "k_support": 4, "k_query": 2}


@pytest.fixture(scope="module")
def ndvi_only():
    s = toy_samples(n_per_label=12, n_noncrop=12, t=4, seed=2, regions=REGIONS)
    schema = BandSchema("ndvi-only", dynamic=("NDVI",), t=s.t)
    return SampleSet(np.ascontiguousarray(s.x[..., [BAND_INDEX["NDVI"]]]), s.meta, schema), s


@pytest.mark.parametrize("learner", ["timl", "in-context"])
def test_a_learner_trains_and_predicts_on_another_band_schema(ndvi_only, tmp_path, learner):
    from cropmeta.app.train import train

    s, full = ndvi_only
    over = {**TINY, "ic_d_model": 8, "ic_ff": 8, "ic_heads": 2, "ic_layers": 1} if learner == "in-context" else TINY
    res = train("kenya", samples=s, out=tmp_path / "run", learner=learner, overrides=over, seed=0)
    assert np.isfinite(res["metrics"]["auc_roc"])
    rec = json.loads((tmp_path / "run" / "model.json").read_text())
    assert rec["bands"] == ["NDVI"] and rec["schema"]["name"] == "ndvi-only"
    pred = load_predictor(tmp_path / "run")
    assert pred.model.schema.bands == ("NDVI",)
    td = target_data(s, resolve_target(s, "kenya"))
    p = pred.predict_proba(td.x_test)
    assert p.shape == (len(td.x_test),) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_array_equal(pred.predict_proba(s.subset(np.arange(5))), pred.predict_proba(s.x[:5]))
    # 18-band input to a 1-band model: refused, naming the bands either way
    with pytest.raises(DataError, match="missing band|extra band"):
        pred.predict_proba(full.subset(np.arange(5)))
    with pytest.raises(InputError, match=r"\[N, T, 1\].*ndvi-only"):
        pred.predict_proba(full.x[:5])


def test_checkpoints_store_the_schema_and_old_ones_read_as_cropharvest(ndvi_only, tmp_path):
    from cropmeta.train import from_scratch, resolve_config

    cfg = resolve_config("quick", overrides=TINY)
    m = from_scratch(cfg, t=4, seed=0, schema=ndvi_only[0].schema)
    assert m.classifier.n_bands == 1
    save_model(tmp_path / "a", m)
    back, rec = load_model(tmp_path / "a")
    assert back.schema == ndvi_only[0].schema and rec["schema"]["dynamic"] == ["NDVI"]
    # a checkpoint written before schemas were stored (no "schema" key): the CropHarvest layout
    old = from_scratch(cfg, t=4, seed=0)
    save_model(tmp_path / "b", old)
    jp = tmp_path / "b" / "model.json"
    d = json.loads(jp.read_text())
    del d["schema"]
    jp.write_text(json.dumps(d))
    assert load_model(tmp_path / "b")[0].schema == CROPHARVEST.with_t(4)
