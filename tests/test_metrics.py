import numpy as np
import pytest

from cropmeta.metrics import binary_metrics, expected_calibration_error


def test_metrics_on_hand_made_predictions():
    y = np.array([1, 1, 0, 0, -1])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.99])  # the -1 point is ignored
    m = binary_metrics(y, p)
    assert m["n"] == 4 and m["n_pos"] == 2
    assert m["auc_roc"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5) and m["accuracy"] == pytest.approx(0.5)
    assert m["iou"] == pytest.approx(1 / 3)
    assert m["brier"] == pytest.approx(np.mean([0.01, 0.36, 0.36, 0.01]))


def test_ece_known_value():
    # bin 0.9: 2 preds of 0.9, both positive → |1-0.9|; bin 0.1: 2 preds of 0.1, both negative → |0-0.1|
    assert expected_calibration_error([1, 1, 0, 0], [0.9, 0.9, 0.1, 0.1]) == pytest.approx(0.1)
    # perfectly uninformative but calibrated
    assert expected_calibration_error([1, 0], [0.5, 0.5]) == pytest.approx(0.0)
