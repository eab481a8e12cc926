import json

import numpy as np
import pytest

from cropmeta import crops, schema
from cropmeta.errors import DataError, InputError


def test_band_layout():
    assert len(schema.DYNAMIC_BANDS_RAW) == 17
    assert schema.BANDS == ["VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12",
                            "temperature_2m", "total_precipitation", "elevation", "slope", "NDVI"]
    assert schema.n_raw_bands(12) == 206 and schema.n_raw_bands(24) == 410
    names = schema.raw_band_names(12)
    assert names[:2] == ["VV", "VH"] and names[17] == "VV_1" and names[-3:] == ["total_precipitation_11", "elevation", "slope"]
    assert schema.t_from_raw_band_count(206) == 12 and schema.t_from_raw_band_count(410) == 24
    with pytest.raises(InputError, match="205 bands"):
        schema.t_from_raw_band_count(205, "x.tif")


def test_canonical_from_raw_true_ndvi_and_statics():
    rng = np.random.default_rng(0)
    dyn = rng.uniform(100, 5000, size=(5, 3, 17))
    stat = rng.uniform(0, 100, size=(5, 2))
    x = schema.canonical_from_raw(dyn, stat)
    assert x.shape == (5, 3, 18)
    b8 = dyn[..., schema.DYNAMIC_BANDS_RAW.index("B8")]
    b4 = dyn[..., schema.DYNAMIC_BANDS_RAW.index("B4")]
    np.testing.assert_allclose(x[..., schema.NDVI], (b8 - b4) / (b8 + b4), rtol=1e-5)
    # statics repeated at every step; B1 and B10 dropped
    np.testing.assert_allclose(x[:, 1, schema.BAND_INDEX["elevation"]], stat[:, 0], rtol=1e-6)
    np.testing.assert_allclose(x[:, 2, schema.BAND_INDEX["slope"]], stat[:, 1], rtol=1e-6)
    np.testing.assert_allclose(x[..., schema.BAND_INDEX["B11"]], dyn[..., schema.DYNAMIC_BANDS_RAW.index("B11")], rtol=1e-6)


def test_recompute_ndvi_replaces_cropharvest_column():
    x = np.ones((2, 4, 18), dtype=np.float32)
    x[..., schema.B8], x[..., schema.B4] = 3000, 1000
    x[..., schema.NDVI] = -0.7  # CropHarvest's off-by-one value, whatever it was
    np.testing.assert_allclose(schema.recompute_ndvi(x)[..., schema.NDVI], 0.5)


def test_fill_missing_policy():
    x = np.arange(2 * 4 * 18, dtype=np.float32).reshape(2, 4, 18)
    x[0, 1, 0] = np.nan
    x[1, :, schema.BAND_INDEX["slope"]] = np.nan
    out = schema.fill_missing(x, slope_fill=7.0)
    assert out[0, 1, 0] == pytest.approx(np.nanmean(x[0, :, 0]))
    assert (out[1, :, schema.BAND_INDEX["slope"]] == 7.0).all()
    y = x.copy()
    y[1, :, schema.BAND_INDEX["temperature_2m"]] = np.nan
    with pytest.raises(DataError, match="temperature_2m"):
        schema.fill_missing(y, source="tile.tif", slope_fill=1.0)


def test_normalizer_streaming_equals_batch():
    rng = np.random.default_rng(1)
    x = rng.normal(5, 3, size=(1000, 12, 18))
    norm = schema.Normalizer()
    for i in range(0, 1000, 77):
        norm.update(x[i : i + 77])
    flat = x.reshape(-1, 18)
    np.testing.assert_allclose(norm.mean, flat.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm.std, flat.std(0, ddof=1), rtol=1e-10)
    back = schema.Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_allclose(back.transform(x[:3]), norm.transform(x[:3]))
    bad = norm.to_dict()
    bad["bands"] = bad["bands"][::-1]
    with pytest.raises(InputError, match="band order"):
        schema.Normalizer.from_dict(bad)


def test_task_info():
    v = crops.task_info(0.0, 90.0, "cereals")
    assert v.shape == (13,)
    np.testing.assert_allclose(v[:3], [0, 1, 0], atol=1e-6)
    assert v[3 + crops.CROP_GROUPS.index("cereals")] == 1 and v[3:].sum() == 1
    cvn = crops.task_info(10, 10, None)
    assert cvn[3] == 0 and np.allclose(cvn[4:], 1 / 9)
    assert np.linalg.norm(crops.latlon_to_xyz(-33.2, 151.0)) == pytest.approx(1.0)
    assert crops.crop_group_of("Maize") == "cereals" and crops.crop_group_of("Coffee") == "beverage_spice"
