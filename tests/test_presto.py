"""Presto encoder: golden embeddings of the reference implementation, inputs from cropmeta samples,
and the weights download (no network: file:// URLs and a failing downloader)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cropmeta.errors import InputError
from cropmeta.models.presto import PrestoEncoder, load_presto
from cropmeta.models.presto_layout import DW_MISSING, PRESTO_BANDS
from cropmeta.models.presto_layout import presto_inputs, step_months
from cropmeta.schema import BANDS, BAND_INDEX

CASES = ("a", "b", "t6", "c", "d")
ARGS = ("x", "dynamic_world", "latlons", "mask", "month")


@pytest.fixture(scope="module")
def golden(shared_presto):
    return np.load(shared_presto / "presto_golden.npz", allow_pickle=False)


@pytest.fixture(scope="module")
def encoder(shared_presto):
    return load_presto(shared_presto / "default_model.safetensors")


def _embed(model, z, case, n=None):
    args = [torch.as_tensor(z[f"{case}_{k}"][:n]) for k in ARGS]
    with torch.no_grad():
        return model(*args).numpy()


@pytest.mark.parametrize("case", CASES)
def test_golden_embeddings(encoder, golden, case):
    """All five reference cases (full Togo tile, masked + wrapped months, T = 6, synthetic masks and
    DW with padding, real DW with per-step months) within 1e-5."""
    got = _embed(encoder, golden, case)
    want = golden[f"{case}_embeddings"]
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-5


def test_golden_tokens_and_band_order(encoder, golden):
    with torch.no_grad():
        h, keep = encoder.tokens(*[torch.as_tensor(golden[f"a_{k}"][:4]) for k in ARGS])
    assert keep.sum(1).tolist() == [98] * 4  # DW all missing: 8T + 2 tokens
    assert np.abs(h[keep].reshape(4, 98, 128).numpy() - golden["a_debug_tokens_before_blocks"]).max() < 1e-6
    assert PRESTO_BANDS == [str(b) for b in golden["presto_input_bands"]]
    assert [str(b) for b in golden["cropharvest_bands"]] == BANDS


def test_pt_needs_matching_sha_and_equals_safetensors(shared_presto, golden, encoder, tmp_path):
    pt = load_presto(shared_presto / "default_model.pt")
    assert np.array_equal(_embed(pt, golden, "b"), _embed(encoder, golden, "b"))
    bad = tmp_path / "default_model.pt"
    data = bytearray((shared_presto / "default_model.pt").read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256"):
        load_presto(bad)


def test_wrong_weights_name_the_key(tmp_path):
    from safetensors.torch import save_file

    state = {f"encoder.{k}": v for k, v in PrestoEncoder().state_dict().items()}
    state["encoder.norm.weight"] = torch.ones(64)
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(InputError, match="encoder.norm.weight has shape"):
        load_presto(tmp_path / "w.safetensors")
    del state["encoder.norm.weight"]
    save_file(state, str(tmp_path / "w2.safetensors"))
    with pytest.raises(InputError, match="missing key encoder.norm.weight"):
        load_presto(tmp_path / "w2.safetensors")


# --------------------------------------------------------------------------------------------------
# Inputs from canonical samples
# --------------------------------------------------------------------------------------------------
def test_inputs_from_raw_equal_golden(golden):
    """The raw CropHarvest-order arrays (= cropmeta's canonical bands) → the exact encoder inputs."""
    for case, start in (("a", "2019-02-06"), ("t6", "2019-02-06"), ("d", None)):
        raw = golden[f"{case}_raw_cropharvest"]
        lat, lon = golden[f"{case}_latlons"].T
        inp = presto_inputs(raw, lat, lon, start_dates=[start] * len(raw) if start else None)
        assert np.abs(inp.x - golden[f"{case}_x"]).max() < 1e-6
        assert not inp.mask.any()
        assert (inp.dynamic_world == DW_MISSING).all()
        assert np.array_equal(inp.latlons, golden[f"{case}_latlons"])
        if case != "d":  # d passes real per-step months; the others start in February
            t = raw.shape[1]
            assert (inp.month == (1 + np.arange(t)) % 12).all()


def test_real_tif_through_cropmeta_reader(encoder, golden, shared_data):
    """The Togo export read by cropmeta's Earth-Engine reader (canonical bands, gaps filled, pixel
    centres, start date from the file name) gives the reference inputs and embeddings."""
    from cropmeta.io.eetiff import pixels_array, read_ee_tiff

    da = read_ee_tiff(shared_data / "cropharvest_eo_tifs" / "98-togo_2019-02-06_2020-02-01.tif", fill=True)
    x = pixels_array(da)
    lat, lon = np.repeat(da.y.values, da.sizes["x"]), np.tile(da.x.values, da.sizes["y"])
    inp = presto_inputs(x, lat, lon, [da.attrs["start_date"]] * len(x))
    assert np.abs(inp.x - golden["a_x"]).max() < 1e-6 and not inp.mask.any()
    assert np.abs(inp.latlons - golden["a_latlons"]).max() < 1e-5
    assert (inp.month == (1 + np.arange(12)) % 12).all()
    assert np.abs(encoder.embed(inp) - golden["a_embeddings"]).max() < 1e-5


def test_missing_values_masked_not_invented(encoder, golden):
    """Case b from raw values with NaN where the reference masked (ERA5 everywhere, every band at
    steps 9–11), started in August from its date: the reference embeddings within 1e-5."""
    raw = golden["b_raw_cropharvest"].copy()
    raw[:, :, [BAND_INDEX["temperature_2m"], BAND_INDEX["total_precipitation"]]] = np.nan
    raw[:, 9:, :] = np.nan
    lat, lon = golden["b_latlons"].T
    inp = presto_inputs(raw, lat, lon, start_dates=["2019-08-06"] * len(raw))
    assert (inp.month[:, 0] == 7).all() and (inp.month[:, 5] == 0).all()
    assert inp.mask[:, 9:, : PRESTO_BANDS.index("elevation")].all() and (inp.x[inp.mask == 1] == 0).all()
    with torch.no_grad():
        got = encoder(*inp.tensors()).numpy()
    assert np.abs(got - golden["b_embeddings"]).max() < 1e-5


def test_inputs_missing_band_and_ndvi_rule():
    rng = np.random.default_rng(0)
    x = rng.uniform(100, 3000, size=(3, 5, len(BANDS))).astype(np.float32)
    x[0, 2, BAND_INDEX["B8"]] = np.nan
    keep = [b for b in BANDS if b != "VH"]  # a sample schema without VH: its tokens are masked
    inp = presto_inputs(x[:, :, [BAND_INDEX[b] for b in keep]], 0.5, 36.0, bands=keep)
    nd, vh = PRESTO_BANDS.index("NDVI"), PRESTO_BANDS.index("VH")
    assert inp.x.shape == (3, 5, len(PRESTO_BANDS)) and inp.month.shape == (3, 5)
    assert inp.mask[:, :, vh].all() and (inp.x[:, :, vh] == 0).all()
    assert inp.mask[0, 2, nd] == 1 and inp.mask[0, 2, PRESTO_BANDS.index("B8")] == 1
    assert inp.mask[:, :, nd].sum() == 1
    b8, b4 = x[1, 3, BAND_INDEX["B8"]], x[1, 3, BAND_INDEX["B4"]]
    assert inp.x[1, 3, nd] == pytest.approx((b8 - b4) / (b8 + b4), abs=1e-6)
    with pytest.raises(InputError, match="unknown band"):
        presto_inputs(x[:, :, :2], 0, 0, bands=["VV", "B99"])
    with pytest.raises(InputError, match="time steps"):
        presto_inputs(np.zeros((1, 25, len(BANDS))), 0, 0)


def test_default_batch_per_device_and_batches_do_not_change_embeddings():
    from cropmeta.models.presto import CPU_BATCH, GPU_BATCH, default_batch

    assert default_batch("cpu") == CPU_BATCH == 64 and default_batch(None) == CPU_BATCH
    assert default_batch("cuda:0") == GPU_BATCH == 4096  # a device name: no GPU needed to resolve it
    rng = np.random.default_rng(1)
    x = rng.uniform(100, 3000, size=(CPU_BATCH * 2 + 5, 12, len(BANDS))).astype(np.float32)  # 3 batches
    inp = presto_inputs(x, rng.uniform(-10, 10, len(x)), rng.uniform(0, 40, len(x)), ["2019-03-01"] * len(x))
    torch.manual_seed(0)
    enc = PrestoEncoder().eval()
    by_default, whole = enc.embed(inp), enc.embed(inp, batch_size=len(x))
    assert by_default.shape == (len(x), 128)
    np.testing.assert_allclose(by_default, whole, atol=1e-5)  # per-sample: the batch only moves rounding


def test_step_months_from_dates():
    m = step_months(["2019-02-06", "2020-02-01", None, "2021-11-20"], 14)
    assert m[0].tolist() == ((1 + np.arange(14)) % 12).tolist()[:12] + [1, 2]
    assert m[1, :12].tolist() == ((1 + np.arange(12)) % 12).tolist()
    assert m[2].tolist() == ((1 + np.arange(14)) % 12).tolist()
    assert m[3, :3].tolist() == [11, 0, 1]
    with pytest.raises(InputError, match="not an ISO date"):
        step_months(["02/06/2019"], 3)


# --------------------------------------------------------------------------------------------------
# Weights download
# --------------------------------------------------------------------------------------------------
def test_download_from_file_url_and_cache(shared_presto, golden, monkeypatch, tmp_path):
    from cropmeta.models.weights import download_weights
    from cropmeta.models.published import PRESTO, cached_weights

    home = tmp_path / "home"
    with pytest.raises(InputError, match="models download presto"):
        cached_weights("presto", home)
    path = download_weights("presto", home=home, url=(shared_presto / "default_model.pt").as_uri())
    assert path == cached_weights("presto", home) and path.suffix == ".safetensors"
    rec = json.loads((path.parent / "source.json").read_text())
    assert rec["published_sha256"] == PRESTO.sha256
    monkeypatch.setenv("CROPMETA_HOME", str(home))
    got = _embed(load_presto(), golden, "t6")  # the workspace copy is used by default
    assert np.abs(got - golden["t6_embeddings"]).max() < 1e-5


def test_download_offline_and_bad_sha_leave_nothing(shared_presto, tmp_path):
    from cropmeta.models.weights import download_weights
    from cropmeta.models.published import PRESTO

    home = tmp_path / "home"

    def offline(url, dest):
        dest.write_bytes(b"partial")
        raise OSError("network unreachable")

    with pytest.raises(InputError) as e:
        download_weights("presto", home=home, fetch=offline)
    msg = str(e.value)
    assert PRESTO.url in msg and "--weights PATH" in msg and "\n" not in msg
    bad = tmp_path / "other.pt"
    bad.write_bytes(b"not the checkpoint")
    with pytest.raises(InputError, match="SHA-256 .* differs"):
        download_weights("presto", home=home, url=bad.as_uri())
    left = [p for p in home.rglob("*") if p.is_file()]
    assert left == []


def test_cli_download_with_local_weights(shared_presto, tmp_path):
    from typer.testing import CliRunner

    from cropmeta_cli.app import app

    home = tmp_path / "home"
    r = CliRunner().invoke(app, ["models", "download", "presto", "--weights",
                                 str(shared_presto / "default_model.safetensors"), "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert (home / "models" / "presto" / "default_model.safetensors").is_file()
    r = CliRunner().invoke(app, ["models", "download", "nope", "--home", str(home)])
    assert r.exit_code != 0


# --------------------------------------------------------------------------------------------------
# The `presto` method of the comparison
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def togo_toy():
    from cropmeta.testing import TOY_REGIONS, toy_samples

    return toy_samples(n_per_label=16, n_noncrop=32, t=12, seed=3, regions=[r for r in TOY_REGIONS if r[0] == "Togo"])


def test_presto_method_beats_chance_and_caches(shared_presto, togo_toy, tmp_path):
    from cropmeta.evaluate.compare import compare
    from cropmeta.models.presto_embed import PrestoEmbedder

    PrestoEmbedder._MEMORY.clear()
    weights = str(shared_presto / "default_model.safetensors")
    rep = compare("togo", samples=togo_toy, methods="presto", seeds=1, shots="all", out=tmp_path / "cmp",
                  progress=False, calib_folds=2, method_options={"presto": {"weights": weights}})
    auc = rep["summary"]["all"]["presto"]["raw"]["auc_roc"]["mean"]
    assert auc > 0.8, auc  # crop (seasonal NIR bump) vs non-crop is separable from the embeddings
    assert rep["config"]["methods"] == ["presto"]
    cached = list((tmp_path / "cropmeta-home" / "cache" / "presto").rglob("*.safetensors"))
    assert len(cached) == 1


def test_presto_method_uses_each_samples_inputs_and_cache(shared_presto, togo_toy, monkeypatch):
    from cropmeta.evaluate.compare import build_target
    from cropmeta.evaluate.methods import make_method
    from cropmeta.models.presto_embed import PrestoEmbedder

    PrestoEmbedder._MEMORY.clear()
    weights = shared_presto / "default_model.safetensors"
    data = build_target(togo_toy, "togo")
    method = make_method("presto", weights=str(weights)).prepare(None, data.task, 0)
    target = data.task.extra["samples"]
    want = load_presto(weights).embed(presto_inputs(target.x, target.meta["lat"].to_numpy(),
                                                    target.meta["lon"].to_numpy(), target.meta["start_date"].tolist()))
    got = method.embeddings(target.x)
    assert np.array_equal(got, want)
    # a sample the target does not hold is placed at the region centre: a different embedding
    moved = method.embeddings(target.x[:1] + np.float32(1e-3))
    assert np.abs(moved - got[:1]).max() > 1e-3
    # a fresh process (memory cache cleared) reads the disk cache: the encoder is not run again
    PrestoEmbedder._MEMORY.clear()
    again = make_method("presto", weights=str(weights))
    monkeypatch.setattr(type(again._embedder().model), "embed", lambda *a, **k: pytest.fail("cache miss"))
    again.prepare(None, data.task, 1)
    assert np.array_equal(again.embeddings(target.x), got)


@pytest.mark.slow
def test_presto_ft_learns_and_leaves_the_pretrained_encoder_alone(shared_presto, togo_toy):
    from cropmeta.evaluate.compare import build_target
    from cropmeta.evaluate.methods import make_method
    from cropmeta.evaluate.names import method_label
    from cropmeta.metrics import binary_metrics

    data = build_target(togo_toy, "togo")
    method = make_method("presto-ft", weights=str(shared_presto / "default_model.safetensors"), steps=20, lr=0.02, batch=5)
    assert method.name == "presto-ft" and method_label("presto-ft") == "Presto fine-tuned"
    method.prepare(None, data.task, 0)
    before = {k: v.clone() for k, v in method._embedder().model.state_dict().items()}
    p0 = method.fit(data.x_train, data.y_train, seed=0).predict_proba(data.x_test)
    assert all(torch.equal(v, method._embedder().model.state_dict()[k]) for k, v in before.items())
    assert binary_metrics(data.y_test, p0)["auc_roc"] > 0.8
    p1 = method.fit(data.x_train, data.y_train, seed=0).predict_proba(data.x_test)
    assert np.array_equal(p0, p1)  # every fit starts again from the pretrained weights, seeded


@pytest.mark.slow
def test_cli_compare_with_presto(shared_presto, togo_toy, tmp_path):
    """`cropmeta models download presto --weights …` then `cropmeta compare --methods presto,…` on a
    stored dataset: the Presto row sits beside the random forest's in the report."""
    from typer.testing import CliRunner

    from cropmeta.io.store import dataset_dir, write_samples
    from cropmeta_cli.app import app

    write_samples(togo_toy, dataset_dir("toy-togo"))
    runner = CliRunner()
    r = runner.invoke(app, ["models", "download", "presto", "--weights", str(shared_presto / "default_model.pt")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "cmp"
    r = runner.invoke(app, ["compare", "--region", "togo", "--methods", "presto,random-forest", "--seeds", "1",
                            "--shots", "20,all", "--calib-folds", "0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["config"]["methods"] == ["presto", "random-forest"]
    cells = [c for c in rep["cells"] if c["method"] == "presto"]
    assert sorted(str(c["shots"]) for c in cells) == ["20", "all"]
    assert all(c["metrics"]["auc_roc"] > 0.5 for c in cells)
