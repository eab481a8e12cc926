"""The error hierarchy: one base, one subclass per area (all of them InputErrors, so code that
caught InputError still does), and a scikit-learn style NotFittedError raised by predict-before-fit."""

from __future__ import annotations

import numpy as np
import pytest

from cropmeta.errors import (
    ConfigError,
    CropmetaError,
    DataError,
    FetchError,
    InputError,
    ModelError,
    NotFittedError,
)


def test_every_area_is_a_cropmeta_input_error():
    for cls in (DataError, ConfigError, ModelError, NotFittedError):
        assert issubclass(cls, InputError) and issubclass(cls, CropmetaError), cls
    assert issubclass(FetchError, CropmetaError) and not issubclass(FetchError, InputError)
    # as in scikit-learn: a NotFittedError is also a ValueError and an AttributeError
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    assert not issubclass(ConfigError, ModelError) and not issubclass(DataError, ConfigError)


def test_configuration_errors_are_config_errors_with_their_message():
    from cropmeta.train.config import resolve_config

    with pytest.raises(ConfigError, match=r"unknown training option 'hiddn' \(did you mean hidden\?\)"):
        resolve_config("quick", overrides={"hiddn": 3})
    with pytest.raises(InputError, match="option 'k_support' must be ≥ 1"):  # still an InputError
        resolve_config("quick", overrides={"k_support": 0})


def test_a_damaged_model_file_is_a_model_error(tmp_path):
    from cropmeta.train.checkpoint import load_model

    with pytest.raises(ModelError, match="run directory not found"):
        load_model(tmp_path / "nope")


@pytest.mark.parametrize("name", ["rf", "in-context", "timl"])
def test_predict_before_fit_raises_not_fitted(name):
    from cropmeta.evaluate.methods import make_method

    m = make_method(name)
    x = np.zeros((3, 6, 18), dtype=np.float32)
    with pytest.raises(NotFittedError, match="predict_proba called before fit"):
        m.predict_proba(x)
    with pytest.raises(ValueError):  # callers written for scikit-learn catch it too
        m.predict_proba(x)


def test_a_model_json_of_another_format_is_a_model_error(tmp_path):
    from cropmeta.train.checkpoint import load_predictor

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.json").write_text('{"format": "something-else", "kind": "timl"}')
    (run / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError):
        load_predictor(run)
