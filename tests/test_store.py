import numpy as np
import pandas as pd
import pytest

from cropmeta.errors import InputError
from cropmeta.io import store


def _samples(n=6, t=4, seed=0):
    rng = np.random.default_rng(seed)
    meta = store.make_meta(pd.DataFrame({
        "sample_id": [f"s{i}" for i in range(n)], "lat": rng.uniform(-1, 1, n), "lon": rng.uniform(30, 31, n),
        "is_crop": [1, 0] * (n // 2), "label": ["maize", None] * (n // 2),
        "crop_group": ["cereals", "non_crop"] * (n // 2), "region": "Kenya", "dataset": "test",
        "split": ["train"] * (n - 2) + ["test"] * 2, "start_date": "2019-02-01",
    }))
    return store.SampleSet(rng.normal(size=(n, t, 18)).astype(np.float32), meta)


def test_roundtrip(tmp_path):
    s = _samples()
    store.write_samples(s, tmp_path / "ds", report={"n": 6})
    back = store.read_samples(tmp_path / "ds")
    np.testing.assert_array_equal(back.x, s.x)
    assert back.meta["label"].tolist() == s.meta["label"].tolist()
    assert back.meta.crs.to_epsg() == 4326
    assert store.read_report(tmp_path / "ds") == {"n": 6}
    assert back.content_hash() == s.content_hash()


def test_failed_write_keeps_previous(tmp_path, monkeypatch):
    s = _samples()
    store.write_samples(s, tmp_path / "ds")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("xarray.Dataset.to_netcdf", boom)
    with pytest.raises(RuntimeError):
        store.write_samples(_samples(seed=1), tmp_path / "ds")
    np.testing.assert_array_equal(store.read_samples(tmp_path / "ds").x, s.x)
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temp dirs left behind


def test_bad_shapes_and_missing_dataset(tmp_path):
    s = _samples()
    with pytest.raises(InputError, match="lacks column"):
        store.SampleSet(s.x, s.meta.drop(columns=["split"]))
    with pytest.raises(InputError, match=r"\[N, T, 18\]"):
        store.SampleSet(s.x[..., :5], s.meta)
    with pytest.raises(InputError, match="cropmeta ingest"):
        store.read_samples(tmp_path / "nope")
