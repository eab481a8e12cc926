"""The band schema as a value: the CropHarvest-18 default, other band sets, and sample sets that
carry theirs to disk and back."""

import numpy as np
import pandas as pd
import pytest

from cropmeta.bandschema import BandSchema
from cropmeta.errors import DataError, InputError
from cropmeta.io.store import SampleSet, read_samples, write_samples
from cropmeta.schema import BANDS, CROPHARVEST, NDVI


def _meta(n):
    return pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "lat": 0.5, "lon": 34.0, "is_crop": [i % 2 for i in range(n)],
                         "label": None, "crop_group": None, "region": "kenya", "dataset": "t", "split": "train",
                         "start_date": "2020-01-01"})


def test_the_default_schema_is_the_cropharvest_layout_defined_once():
    assert list(CROPHARVEST.bands) == BANDS and CROPHARVEST.n_bands == 18 and CROPHARVEST.t == 12
    assert CROPHARVEST.index("NDVI") == NDVI and CROPHARVEST.derived == (("NDVI", "B8", "B4"),)
    assert BandSchema.from_dict(CROPHARVEST.to_dict()) == CROPHARVEST


def test_a_schema_names_missing_and_extra_bands():
    s2 = BandSchema("s2-only", dynamic=("B2", "B3", "B4", "B8"), derived=(("NDVI", "B8", "B4"),), t=6)
    with pytest.raises(DataError, match=r"missing band\(s\) VV, VH.*extra band\(s\)") as e:
        CROPHARVEST.check_compatible(BandSchema("mine", dynamic=("B2", "B3", "B4", "B8", "EVI")), "table x.csv")
    assert "table x.csv" in str(e.value)
    s2.check_compatible(s2.with_t(24))  # T may differ
    with pytest.raises(DataError, match="dekad steps instead of month"):
        s2.check_compatible(BandSchema("d", dynamic=s2.dynamic, derived=s2.derived, step="dekad"))
    with pytest.raises(DataError, match="not dynamic bands"):
        BandSchema("bad", dynamic=("B2",), derived=(("NDVI", "B8", "B4"),))
    with pytest.raises(DataError, match="unknown band-schema key"):
        BandSchema.from_dict({"name": "x", "dynamic": ["a"], "bandz": 1})
    with pytest.raises(DataError, match=r"B9"):
        s2.index("B9")


def test_a_sample_set_with_other_bands_round_trips_through_the_store(tmp_path):
    s = BandSchema("ndvi-dekads", dynamic=("NDVI",), t=36, step="dekad")
    x = np.random.default_rng(0).random((4, 36, 1), dtype=np.float32)
    ss = SampleSet(x, _meta(4), s)
    assert ss.schema == s and ss.subset([0, 1]).schema == s
    back = read_samples(write_samples(ss, tmp_path / "d"))
    assert back.schema == s and np.array_equal(back.x, x)
    with pytest.raises(InputError, match=r"\[N, T, 1\].*ndvi-dekads"):
        SampleSet(np.zeros((4, 36, 18), np.float32), _meta(4), s)
    with pytest.raises(DataError, match="does not match"):
        SampleSet.concat([ss, SampleSet(np.zeros((4, 36, 18), np.float32), _meta(4))])


def test_a_sample_set_takes_its_steps_from_its_array():
    ss = SampleSet(np.zeros((2, 24, 18), np.float32), _meta(2))
    assert ss.schema.t == 24 and ss.schema.same_bands(CROPHARVEST)
