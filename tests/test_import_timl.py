"""``cropmeta models import-timl``: a state dict in the TIML paper code's layout, saved with
torch.save, becomes a cropmeta run whose predictions equal the paper-layout forward pass."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.reference.timl_reference import RefClassifier, RefTaskEncoder  # noqa: E402
from cropmeta.errors import InputError  # noqa: E402
from cropmeta.schema import BAND_INDEX, BANDS, Normalizer, ndvi_of, recompute_ndvi  # noqa: E402
from cropmeta.train.checkpoint import load_predictor  # noqa: E402
from cropmeta.train.import_timl import import_timl  # noqa: E402

T, H, DIMS = 5, 8, (16, 32, 16)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Random weights and non-trivial BatchNorm statistics (what a trained checkpoint holds)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():  # weights ~ N(0, 9 / fan_in): outputs spread over (0.5, 1)
            p.copy_(torch.randn(p.shape, generator=g) * (3 / p.shape[1] ** 0.5 if p.dim() == 2 else 0.3))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.3)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("num_batches_tracked"):
                b.fill_(1234)


def _reference(tmp_path: Path, n_inputs: int = 18, encoder: bool = True, seed: int = 0):
    """(classifier, encoder, their .pth paths): paper-layout modules with random weights, saved."""
    clf = RefClassifier(T, n_inputs, H, fused=False)
    _randomise(clf, seed)
    clf.eval()
    cpath = tmp_path / "state_dict.pth"
    torch.save(clf.state_dict(), cpath)
    enc, epath = None, None
    if encoder:
        enc = RefTaskEncoder(T, 18, H, dims=DIMS)
        _randomise(enc, seed + 1)
        enc.eval()
        epath = tmp_path / "encoder_state_dict.pth"
        torch.save(enc.state_dict(), epath)
    return clf, enc, cpath, epath


@pytest.fixture(scope="module")
def stats():
    rng = np.random.default_rng(3)
    mean = rng.normal(0, 300, 18)
    std = rng.uniform(5, 400, 18)
    x = rng.normal(mean, std, size=(300, T, 18)).astype(np.float32)
    x[..., BAND_INDEX["B3"]] = rng.uniform(500, 1500, x.shape[:2])
    x[..., BAND_INDEX["B7"]] = rng.uniform(1000, 4000, x.shape[:2])
    x = recompute_ndvi(x)  # canonical samples: true NDVI
    return {"mean": mean.tolist(), "std": std.tolist()}, x, rng.normal(size=13).astype(np.float32)


def _normalise(x, norm):
    return torch.from_numpy((x - np.float32(norm["mean"])) / np.float32(norm["std"]))


def _ref_proba(clf, enc, x, norm, info, concat: bool = False) -> np.ndarray:
    """The paper forward pass: normalise, FiLM from the encoder (or concatenate the task info), sigmoid."""
    xn = _normalise(x, norm)
    with torch.no_grad():
        film = enc(torch.from_numpy(info)) if enc is not None else None
        if concat:
            xn = torch.cat([xn, torch.from_numpy(info).expand(xn.shape[0], xn.shape[1], 13)], dim=-1)
        return torch.sigmoid(clf(xn, film)).double().numpy()


def test_import_matches_reference_forward_with_task_information(tmp_path, stats):
    from cropmeta.mapping.precision import load_fast_predictor

    norm, x, info = stats
    clf, enc, cpath, epath = _reference(tmp_path)
    run = tmp_path / "run"
    meta = import_timl(cpath, epath, run, normalization=norm, task_info=info)
    assert (meta["kind"], meta["t"], meta["ndvi"]) == ("timl", T, "true")
    assert meta["arch"]["encoder"]["dims"] == list(DIMS) and meta["arch"]["classifier"]["hidden"] == H
    want = _ref_proba(clf, enc, x, norm, info)
    assert want.std() > 0.05  # the weights do something: a wrong mapping would show
    got = load_predictor(run).predict_proba(x)
    assert np.abs(got - want).max() < 1e-6
    fast = load_fast_predictor(run).predict_proba(x)  # the map-export loader
    # the fast path folds the LSTM in float32 with another summation order: 1.002e-6 was measured on an
    # AVX2-only AMD EPYC, so the bound is float32 rounding of probabilities near 1, not 1e-6
    assert np.abs(fast - want).max() < 5e-6
    # the reference's fused cell (used by the throughput benchmarks) is the same function
    fused = RefClassifier(T, 18, H, fused=True).eval()
    fused.load_state_dict(clf.state_dict())
    assert np.abs(_ref_proba(fused, enc, x, norm, info) - want).max() < 1e-6
    # another task's information gives other predictions, i.e. the encoder is live
    other = import_timl(cpath, epath, tmp_path / "run2", normalization=norm, task_info=-info)
    assert other["task_info"] != meta["task_info"]
    assert np.abs(load_predictor(tmp_path / "run2").predict_proba(x) - got).max() > 1e-3
    # the stored normalisation is the given one, exactly
    assert load_predictor(run).model.normalizer.std.tolist() == norm["std"]
    assert set(p.name for p in run.iterdir()) == {"model.json", "model.safetensors", "config.json"}


def test_import_region_and_crop_give_cropmeta_task_information(tmp_path, stats):
    from cropmeta.tasks import make_task

    norm, x, _ = stats
    clf, enc, cpath, epath = _reference(tmp_path)
    meta = import_timl(cpath, epath, tmp_path / "run", normalization=norm, region="Kenya", crop="maize")
    info = make_task("Kenya", "maize").info
    np.testing.assert_array_equal(np.float32(meta["task_info"]), info)
    assert meta["task"]["region"] == "Kenya"
    got = load_predictor(tmp_path / "run").predict_proba(x)
    assert np.abs(got - _ref_proba(clf, enc, x, norm, info)).max() < 1e-6


def test_import_without_task_information(tmp_path, stats):
    """No encoder: the paper's classifier alone (18 inputs), and its concatenation ablation (18 + 13)."""
    norm, x, info = stats
    clf, _, cpath, _ = _reference(tmp_path, encoder=False)
    meta = import_timl(cpath, None, tmp_path / "plain", normalization=norm, t=T)
    assert meta["kind"] == "maml" and meta["task_info"] is None
    want = _ref_proba(clf, None, x, norm, info)
    assert want.std() > 0.05
    assert np.abs(load_predictor(tmp_path / "plain").predict_proba(x) - want).max() < 1e-6
    with pytest.raises(InputError, match="uses no task information; pass its ENCODER.pth too"):
        import_timl(cpath, None, tmp_path / "bad", normalization=norm, task_info=info)

    sub = tmp_path / "concat"
    sub.mkdir()
    cclf, _, ccpath, _ = _reference(sub, n_inputs=18 + 13, encoder=False, seed=7)
    meta = import_timl(ccpath, None, sub / "run", normalization=norm, task_info=info, t=T)
    assert meta["kind"] == "concat" and meta["arch"]["classifier"]["extra_inputs"] == 13
    want = _ref_proba(cclf, None, x, norm, info, concat=True)
    assert np.abs(load_predictor(sub / "run").predict_proba(x) - want).max() < 1e-6


def test_ndvi_cropharvest_rule_rebuilds_the_ndvi_column(tmp_path, stats):
    norm, x, info = stats
    clf, enc, cpath, epath = _reference(tmp_path)
    run = tmp_path / "run"
    meta = import_timl(cpath, epath, run, normalization=norm, task_info=info, ndvi="cropharvest")
    assert meta["ndvi"] == "cropharvest"
    assert json.loads((run / "model.json").read_text())["ndvi"] == "cropharvest"
    b7, b3 = x[..., BAND_INDEX["B7"]].astype(np.float64), x[..., BAND_INDEX["B3"]].astype(np.float64)
    upstream = x.copy()
    upstream[..., BAND_INDEX["NDVI"]] = (b7 - b3) / (b7 + b3)
    assert np.abs(upstream[..., -1] - x[..., -1]).max() > 0.1  # the two NDVIs really differ here
    got = load_predictor(run).predict_proba(x)  # canonical input (true NDVI), as export gives it
    assert np.abs(got - _ref_proba(clf, enc, upstream, norm, info)).max() < 1e-6
    default = import_timl(cpath, epath, tmp_path / "true", normalization=norm, task_info=info)
    assert default["ndvi"] == "true"
    assert np.abs(load_predictor(tmp_path / "true").predict_proba(x) - got).max() > 1e-4
    # the schema's rule itself, and the default left alone
    np.testing.assert_allclose(ndvi_of(x, "cropharvest"), (b7 - b3) / (b7 + b3), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(recompute_ndvi(x)[..., -1], x[..., -1])
    with pytest.raises(InputError, match="unknown NDVI rule"):
        import_timl(cpath, epath, tmp_path / "x", normalization=norm, task_info=info, ndvi="b8b4")


def _bad_shape(sd):
    sd["base.0.rnn.output_gate.0.weight"] = torch.zeros(H, 18 + H + 1)
    return sd, "base.0.rnn.output_gate.0.weight"


def _missing(sd):
    del sd["global_classifier.0.2.running_var"]
    return sd, "global_classifier.0.2.running_var"


def _extra(sd):
    sd["base.1.rnn.forget_gate.0.weight"] = torch.zeros(H, 2 * H)
    return sd, "base.1.rnn.forget_gate.0.weight"


def _nan(sd):
    sd["global_classifier.1.0.bias"] = torch.tensor([float("nan")])
    return sd, "global_classifier.1.0.bias"


@pytest.mark.parametrize("damage", [_bad_shape, _missing, _extra, _nan])
def test_malformed_classifier_is_one_clear_error_and_nothing_written(tmp_path, stats, damage):
    norm, _, info = stats
    clf, _, cpath, epath = _reference(tmp_path)
    sd, key = damage(dict(clf.state_dict()))
    torch.save(sd, cpath)
    out = tmp_path / "runs" / "imported"
    with pytest.raises(InputError) as e:
        import_timl(cpath, epath, out, normalization=norm, task_info=info)
    msg = str(e.value)
    assert "\n" not in msg and str(cpath) in msg and repr(key) in msg, msg
    assert not out.exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_malformed_encoder_and_files_refused(tmp_path, stats):
    norm, _, info = stats
    _, enc, cpath, epath = _reference(tmp_path)
    sd = dict(enc.state_dict())
    sd["task_embedding_2_beta.0.weight"] = sd["task_embedding_2_beta.0.weight"][:, :-1]
    torch.save(sd, epath)
    with pytest.raises(InputError, match=r"encoder_state_dict\.pth: key 'task_embedding_2_beta\.0\.weight' has shape"):
        import_timl(cpath, epath, tmp_path / "run", normalization=norm, task_info=info)
    # a GroupNorm grouping the widths do not divide
    torch.save(enc.state_dict(), epath)
    with pytest.raises(InputError, match="channels per group"):
        import_timl(cpath, epath, tmp_path / "run", normalization=norm, task_info=info, channels_per_group=12)
    # task information is required for a TIML model
    with pytest.raises(InputError, match="uses task information"):
        import_timl(cpath, epath, tmp_path / "run", normalization=norm)
    # normalisation of the wrong length
    with pytest.raises(InputError, match="std has 17 values"):
        import_timl(cpath, epath, tmp_path / "run", normalization={"mean": norm["mean"], "std": norm["std"][:17]},
                    task_info=info)
    assert not (tmp_path / "run").exists()


class _Payload:
    """Unpickling this would run code (write a marker file): the importer must never do it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_pickled_objects_are_never_unpickled(tmp_path, stats):
    norm, _, info = stats
    _, _, cpath, epath = _reference(tmp_path)
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth"
    torch.save({"base.0.rnn.forget_gate.0.weight": _Payload(marker)}, evil)
    with pytest.raises(InputError, match=r"evil\.pth: not a weights-only torch state dict"):
        import_timl(evil, epath, tmp_path / "run", normalization=norm, task_info=info)
    assert not marker.exists()
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    with pytest.raises(InputError, match=r"list\.pth: holds a list, not a state dict"):
        import_timl(tmp_path / "list.pth", epath, tmp_path / "run", normalization=norm, task_info=info)
    with pytest.raises(InputError, match="checkpoint not found"):
        import_timl(tmp_path / "nope.pth", epath, tmp_path / "run", normalization=norm, task_info=info)
    assert not (tmp_path / "run").exists()


def test_existing_run_directory_needs_overwrite(tmp_path, stats):
    norm, x, info = stats
    _, _, cpath, epath = _reference(tmp_path)
    run = tmp_path / "run"
    import_timl(cpath, epath, run, normalization=norm, task_info=info)
    with pytest.raises(InputError, match="already exists"):
        import_timl(cpath, epath, run, normalization=norm, task_info=info, ndvi="cropharvest")
    assert json.loads((run / "model.json").read_text())["ndvi"] == "true"
    import_timl(cpath, epath, run, normalization=norm, task_info=info, ndvi="cropharvest", overwrite=True)
    assert json.loads((run / "model.json").read_text())["ndvi"] == "cropharvest"


def test_normalizer_from_fixed_statistics_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=18) * 100, rng.uniform(0.01, 1000, 18)
    n = Normalizer.from_mean_std(mean, std)
    assert n.std.tolist() == std.tolist() and n.mean.tolist() == mean.tolist()
    n.save(tmp_path / "n.json")
    assert Normalizer.load(tmp_path / "n.json").std.tolist() == std.tolist()
    with pytest.raises(InputError, match="std of band 'VH'"):
        Normalizer.from_mean_std(mean, np.r_[1.0, 0.0, np.ones(16)])
    assert len(BANDS) == 18


def test_cli_import_then_export(tmp_path, stats):
    from typer.testing import CliRunner

    from cropmeta.mapping.export import export
    from cropmeta.testing import make_ee_tile
    from cropmeta_cli.app import app

    norm, _, _ = stats
    _reference(tmp_path)
    (tmp_path / "norm.json").write_text(json.dumps(norm))
    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["models", "import-timl", str(tmp_path / "state_dict.pth"),
                                 str(tmp_path / "encoder_state_dict.pth"), "--out", str(run), "--normalization",
                                 str(tmp_path / "norm.json"), "--region", "Kenya", "--crop", "maize",
                                 "--ndvi", "cropharvest"])
    assert r.exit_code == 0, r.output
    assert "NDVI cropharvest" in r.output
    meta = json.loads((run / "model.json").read_text())
    assert meta["ndvi"] == "cropharvest" and meta["imported"]["from"] == "nasaharvest/timl"
    tif = make_ee_tile(tmp_path / "0-tile_2021-01-01_2021-05-31.tif", height=6, width=7, t=T)
    res = export(run, tmp_path / "map.tif", inputs=[tif], progress=False, quicklook=False)
    assert Path(res["map"]).exists()
    r = CliRunner().invoke(app, ["models", "import-timl", str(tmp_path / "norm.json"), "--out",
                                 str(tmp_path / "bad"), "--normalization", str(tmp_path / "norm.json")])
    assert r.exit_code != 0 and not (tmp_path / "bad").exists()


def test_run_with_unknown_ndvi_rule_is_refused(tmp_path, stats):
    norm, _, info = stats
    _, _, cpath, epath = _reference(tmp_path)
    run = tmp_path / "run"
    import_timl(cpath, epath, run, normalization=norm, task_info=info, ndvi="cropharvest")
    meta = json.loads((run / "model.json").read_text())
    meta["ndvi"] = "b7b3"
    (run / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"model\.json \(ndvi\): unknown NDVI rule 'b7b3'"):
        load_predictor(run)
