"""Report files exist and hold the right numbers and methods; the summary text follows the numbers
(a baseline that wins is named). Built from hand-made predictions, so every number is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cropmeta.evaluate.calibration import apply_temperature
from cropmeta.evaluate.compare import TargetData, make_report
from cropmeta.evaluate.methods import TargetTask
from cropmeta.evaluate.report import narrative, write_report
from cropmeta.metrics import METRIC_NAMES, binary_metrics

Y = np.array([1] * 8 + [0] * 12)
SEEDS = [0, 1, 2]
SHOTS = [20, "all"]


def predictions(method: str, seed: int, k) -> np.ndarray:
    """Scores with a known quality: the random forest is good at 20 shots, TIML at all."""
    rng = np.random.default_rng([seed, len(method), 0 if k == 20 else 1])
    good = (method == "random-forest") == (k == 20)
    signal = 0.35 if good else 0.08
    return np.clip(0.5 + signal * (2 * Y - 1) + rng.normal(0, 0.2, len(Y)), 0.01, 0.99)


def cell(method, seed, k):
    p = predictions(method, seed, k)
    t = 2.0 if method == "timl" else 0.8
    raw, cal = binary_metrics(Y, p), binary_metrics(Y, apply_temperature(p, t))
    return {"method": method, "seed": seed, "shots": k, "n_train": 20 if k == 20 else 100, "n_train_pos": 10,
            "train_ids": [], "metrics": {m: raw[m] for m in METRIC_NAMES} | {"n": raw["n"], "n_pos": raw["n_pos"]},
            "metrics_calibrated": {m: cal[m] for m in METRIC_NAMES}, "temperature": t, "calibration": {},
            "prob_test": p.tolist(), "seconds": {"fit": 0.1, "predict": 0.0, "calibrate": 0.1, "prepare": 0.0}}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    task = TargetTask("Kenya", "maize", np.zeros(13, np.float32), name="kenya_maize")
    summary = {"region": "Kenya", "crop": "maize", "task": "Kenya:maize", "positive_means": "maize",
               "train": {"positive": 31, "negative": 69}, "test": {"positive": 8, "negative": 12}, "t": 12}
    data = TargetData(task, np.zeros((100, 12, 18)), np.r_[np.ones(31), np.zeros(69)], np.zeros((20, 12, 18)), Y,
                      summary=summary)
    cells = [cell(m, s, k) for m in ("timl", "random-forest") for s in SEEDS for k in SHOTS]
    config = {"methods": ["timl", "random-forest"], "shots": SHOTS, "shots_run": SHOTS, "seeds": SEEDS,
              "region": "Kenya", "crop": "maize", "shot_notes": []}
    report = make_report(data, cells, config)
    files = write_report(report, out)
    return out, report, files


def test_report_json_holds_every_number_per_seed(written):
    out, report, _ = written
    rj = json.loads((out / "report.json").read_text())  # strict JSON (NaN would fail to round-trip as null)
    assert rj["config"]["methods"] == ["timl", "random-forest"]
    assert len(rj["cells"]) == 2 * 3 * 2
    for k in ("20", "all"):
        for m in ("timl", "random-forest"):
            aucs = [roc_auc_score(Y, predictions(m, s, k if k == "all" else 20)) for s in SEEDS]
            s = rj["summary"][k][m]["raw"]["auc_roc"]
            assert s["values"] == pytest.approx(aucs)
            assert s["mean"] == pytest.approx(np.mean(aucs))
            assert s["std"] == pytest.approx(np.std(aucs, ddof=1))
            assert s["ci_low"] <= s["mean"] <= s["ci_high"]
            assert set(rj["summary"][k][m]["raw"]) == set(METRIC_NAMES)
            assert set(rj["summary"][k][m]["calibrated"]) == set(METRIC_NAMES)
        assert set(rj["wilcoxon"][k]["auc_roc"]) == {"random-forest"}
    assert "versions" in rj and "numpy" in rj["versions"]


def test_markdown_table_bold_best_and_data_summary(written):
    out, report, _ = written
    md = (out / "report.md").read_text()
    rf20 = report["summary"]["20"]["random-forest"]["raw"]["auc_roc"]
    timl20 = report["summary"]["20"]["timl"]["raw"]["auc_roc"]
    assert rf20["mean"] > timl20["mean"]
    assert f"**{rf20['mean']:.3f} ± {rf20['std']:.3f} [{rf20['ci_low']:.3f}, {rf20['ci_high']:.3f}]**" in md
    assert f"| TIML | {timl20['mean']:.3f} ± {timl20['std']:.3f}" in md  # not bold
    assert "| train | 31 | 69 | 100 |" in md and "| test | 8 | 12 | 20 |" in md
    for name in ("TIML", "Random forest", "AUC-ROC", "F1", "Precision", "Recall", "Accuracy", "IoU", "Cohen's κ",
                 "Brier", "ECE"):
        assert name in md
    for png in ("kshot_curves", "roc_curves", "reliability", "bars_ci", "data_summary"):
        assert f"({png}.png)" in md


def test_summary_names_the_winning_baseline(written):
    _, report, _ = written
    text = " ".join(narrative(report))
    assert "A baseline beat TIML" in text
    assert "Random forest on AUC-ROC at 20 labels" in text
    assert "With all labels, TIML had the highest mean AUC-ROC" in text
    # 3 paired seeds: the smallest two-sided Wilcoxon p is 0.25, and the text says so
    assert "0.250" in text and "more seeds" in text
    ece = report["summary"]["all"]["timl"]
    assert ece["raw"]["ece"]["mean"] != ece["calibrated"]["ece"]["mean"]
    assert "Calibration: temperature scaling" in text
    off = {**report, "config": {**report["config"], "calib_folds": 0}}  # a run without calibration says so
    off_text = " ".join(narrative(off))
    assert "Calibration: off" in off_text and "temperature scaling" not in off_text


def test_html_is_self_contained_and_pngs_are_images(written):
    import matplotlib.image as mpimg

    out, report, files = written
    h = (out / "report.html").read_text()
    assert h.count("data:image/png;base64,") == 5
    assert 'src="http' not in h and "<link" not in h and "<script" not in h
    rf = report["summary"]["20"]["random-forest"]["raw"]["auc_roc"]["mean"]
    assert f"<b>{rf:.3f}" in h
    for name in ("kshot_curves", "roc_curves", "reliability", "bars_ci", "data_summary"):
        p = out / f"{name}.png"
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert min(mpimg.imread(p).shape[:2]) > 200


def test_adaptation_wall_time_leaves_out_flop_counted_cells():
    """The first seed's cells carry FLOP counts and ran under torch's (slow) FLOP counter: their wall
    time must not enter the adaptation-cost mean when the other seeds were timed without it."""
    from cropmeta.evaluate.assemble import aggregate

    cells = []
    for s in SEEDS:
        c = cell("timl", s, 20)
        c["seconds"] = {"fit": 30.0 if s == 0 else 2.0 + s, "predict": 0.5, "calibrate": 0.0, "prepare": 0.0}
        c["flops"] = {"fit": 4e9, "predict": 1e8, "adapt_predict": 4.1e9} if s == 0 else None
        cells.append(c)
    row = aggregate(cells, ["timl"], [20])["summary"]["20"]["timl"]
    assert row["seconds_adapt"]["n"] == 2
    assert row["seconds_adapt"]["mean"] == pytest.approx(((3.0 + 0.5) + (4.0 + 0.5)) / 2)
    assert row["seconds_fit"]["mean"] == pytest.approx(3.5)
    assert row["flops"]["adapt_predict"] == pytest.approx(4.1e9)
    # a single (counted) seed is all there is: it is used rather than reporting nothing
    only = aggregate(cells[:1], ["timl"], [20])["summary"]["20"]["timl"]
    assert only["seconds_adapt"]["mean"] == pytest.approx(30.5)


def test_plot_styles_keep_more_than_ten_rows_distinct():
    """Eleven rows (the committed Kenya report) must not reuse a colour + line style: matplotlib's
    default cycle has ten colours. Variants share their base's colour with their own line style."""
    from cropmeta.evaluate.report import method_style

    rows = ["timl", "timl+sim", "maml", "pretrained", "pretrained+sim", "scratch", "random-forest",
            "in-context", "in-context+sim", "timl+views", "random-forest+views"]
    styles = [(method_style(m, rows)["color"], method_style(m, rows)["ls"]) for m in rows]
    assert len(set(styles)) == len(rows)
    assert method_style("timl+views", rows)["color"] == method_style("timl", rows)["color"]
    assert method_style("maml", rows)["color"] != method_style("timl", rows)["color"]


def test_report_with_zero_shot_and_oracle_rows(tmp_path):
    """A zero-shot column (rows only for the methods that run there) and a fixed oracle row (one cell
    per seed, shown at every shot count, never called best) render in every file, plots included."""
    import io

    from rich.console import Console

    from cropmeta.evaluate.report import print_summary, results_table

    task = TargetTask("Kenya", "maize", np.zeros(13, np.float32), name="kenya_maize")
    summary = {"region": "Kenya", "crop": "maize", "task": "Kenya:maize", "positive_means": "maize",
               "train": {"positive": 31, "negative": 69, "fields": 40}, "test": {"positive": 8, "negative": 12,
                                                                                 "fields": 10}, "t": 12,
               "field_ids": True}
    data = TargetData(task, np.zeros((100, 12, 18)), np.r_[np.ones(31), np.zeros(69)], np.zeros((20, 12, 18)), Y,
                      summary=summary, fields_test=np.repeat(np.arange(10), 2).astype(str))
    shots = [0, 20, "all"]
    cells = [cell(m, s, k) for s in SEEDS for m, ks in (("timl", shots), ("random-forest", [20, "all"]),
                                                         ("random-forest-source", [0]), ("oracle-rf", ["any"]))
             for k in ks]
    for c in cells:
        c["shots"] = "any" if c["method"] == "oracle-rf" else c["shots"]
        # the oracle scores best of all: it must still not be called best
        if c["method"] == "oracle-rf":
            c["metrics"]["auc_roc"] = 0.999
    methods = ["timl", "random-forest", "random-forest-source", "oracle-rf"]
    config = {"methods": methods, "shots": shots, "shots_run": shots, "seeds": SEEDS, "region": "Kenya",
              "crop": "maize", "shot_notes": [], "protocol_notes": ["no zero-shot row for Random forest: x"],
              "oracle": {"n": 4000}}
    report = make_report(data, cells, config)
    assert set(report["summary"]["0"]) == {"timl", "random-forest-source", "oracle-rf"}
    assert set(report["summary"]["20"]) == {"timl", "random-forest", "oracle-rf"}
    files = write_report(report, tmp_path)
    assert all(files[k].exists() for k in files)
    md = (tmp_path / "report.md").read_text()
    assert "### 0 (zero-shot) labelled samples" in md and md.count("| Oracle random forest | 0.999 ± 0.000") == 3
    assert "no zero-shot row for Random forest" in md and "in 10 fields" in md
    paras = narrative(report)
    assert "Oracle" not in paras[1]  # who had the highest mean: never the oracle
    assert any(p.startswith("Oracle (trained on 4000 correctly labelled samples") for p in paras)
    assert "**" not in results_table(report, "all")[3][1]  # the oracle's AUC is not bold
    buf = io.StringIO()
    print_summary(report, Console(file=buf, width=200))
    assert "Oracle random forest" in buf.getvalue()
