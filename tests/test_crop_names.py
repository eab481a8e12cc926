"""One crop-name normaliser: label files, tasks, crop groups and the CLI spell a crop the same way, so
a multi-word crop ("sweet potato") can be a target whichever spelling the data and the user chose."""

from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point

from cropmeta.errors import InputError
from cropmeta.io.labels import read_labels
from cropmeta.io.store import SampleSet, make_meta
from cropmeta.crops import crop_group_of, normalise_crop
from cropmeta.tasks import build_tasks, make_task, resolve_target, task_labels
from cropmeta.testing import toy_samples


@pytest.mark.parametrize("spelling", ["sweet potato", "Sweet Potato", "sweet_potato", "sweet-potato",
                                      " SWEET  potato ", "sweetpotato", "Sweet_Potatoes"])
def test_every_spelling_of_sweet_potato_meets(spelling):
    assert normalise_crop(spelling) == "sweetpotato"
    assert crop_group_of(spelling) == "root_tuber"


def test_normaliser_folds_case_and_separators_and_keeps_unknown_crops():
    assert normalise_crop("Oil-Palm") == normalise_crop("oilpalm") == "oil_palm"
    assert normalise_crop("Sugar Beet") == "sugar_beet" and crop_group_of("sugar beet") == "sugar"
    assert normalise_crop("Maize") == "maize"
    assert normalise_crop("Dragon  Fruit") == "dragon_fruit"  # unknown crops keep one spelling too
    assert normalise_crop(None) is None and normalise_crop("  ") is None
    assert crop_group_of("dragon fruit") is None


def test_label_file_with_a_two_word_crop_reads_as_the_normalised_name(tmp_path):
    g = gpd.GeoDataFrame({"Crop1": ["Sweet Potato", "maize", "sweet_potato"]},
                         geometry=[Point(34.1, 0.5), Point(34.2, 0.6), Point(34.3, 0.7)], crs="EPSG:4326")
    g.to_file(tmp_path / "l.geojson")
    out = read_labels(tmp_path / "l.geojson", crop_type_column="Crop1")
    assert out["label"].tolist() == ["sweetpotato", "maize", "sweetpotato"]
    assert out["crop_group"].tolist() == ["root_tuber", "cereals", "root_tuber"]


@pytest.fixture(scope="module")
def mixed_spellings():
    """Kenya samples whose stored labels spell sweet potato two ways (a store written before the
    normaliser), plus maize."""
    regions = [("Kenya", 0.2, 37.9, ["maize", "sweet potato"]), ("Uganda", 1.3, 32.4, ["maize", "sweetpotato"])]
    s = toy_samples(n_per_label=20, n_noncrop=20, t=6, seed=0, regions=regions)
    meta = s.meta.copy()
    kenya_sp = np.where((meta["region"] == "Kenya") & (meta["label"] == "sweet potato"))[0]
    meta.loc[meta.index[kenya_sp[::2]], "label"] = "Sweet_Potato"
    return SampleSet(s.x, make_meta(meta))


def test_resolve_target_accepts_every_spelling(mixed_spellings):
    for spelling in ("sweet potato", "sweet_potato", "Sweet-Potato", "sweetpotato"):
        task = resolve_target(mixed_spellings, "kenya", spelling)
        assert task.crop == "sweetpotato" and task.id == "Kenya:sweetpotato" and task.crop_group == "root_tuber"
    y = task_labels(mixed_spellings.meta, task)
    # every Kenya sweet-potato row is a positive, whichever way the store spelt it
    kenya = (mixed_spellings.meta["region"] == "Kenya").to_numpy()
    sp = mixed_spellings.meta["label"].astype(str).str.lower().str.replace("_", " ").eq("sweet potato").to_numpy()
    assert (y[kenya & sp] == 1).all() and (y[kenya & ~sp & (mixed_spellings.meta["is_crop"] == 1).to_numpy()] == 0).all()
    with pytest.raises(InputError, match="unknown crop 'sweet_corn'"):
        resolve_target(mixed_spellings, "kenya", "sweet corn")


def test_build_tasks_makes_one_task_per_crop_whatever_the_spelling(mixed_spellings):
    ids = [p.id for p in build_tasks(mixed_spellings, min_per_class=5)]
    assert "Kenya:sweetpotato" in ids and "Uganda:sweetpotato" in ids
    assert not any(" " in i or "Sweet" in i for i in ids)
    assert make_task("Kenya", "Sweet Potato").id == "Kenya:sweetpotato"


@pytest.mark.slow
def test_cli_train_resolves_a_two_word_crop_on_the_simulated_world(tmp_path):
    from typer.testing import CliRunner

    from cli.app import app
    from cropmeta.sim import generate_world

    # a tiny world where `cropmeta train` looks for the simulated world of seed 0 ($CROPMETA_HOME)
    generate_world(Path(os.environ["CROPMETA_HOME"]) / "worlds" / "seed-0", seed=0, scene_size=32,
                   regions=["Kenya", "Uganda"])
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("hidden = 8\nencoder_dims = [8, 8, 8]\nencoder_channels_per_group = 4\niterations = 2\n"
                   "tasks_per_step = 2\nval_every = 1\ncheckpoint_every = 2\nft_steps = 3\nthreads = 1\n"
                   "min_per_class = 5\nk_support = 2\nk_query = 2\n")
    r = CliRunner().invoke(app, ["train", "--region", "kenya", "--crop", "sweet potato", "--config", str(cfg), "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["target"]["id"] == "Kenya:sweetpotato" and saved["target"]["crop_group"] == "root_tuber"
    assert (tmp_path / "run" / "model.safetensors").exists()
