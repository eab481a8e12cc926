"""Issue 14, the failures a new user hits first (everything but the export items, which are in
test_issue14_export.py). Each test reproduces a failure of the original code."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from rasterio.transform import from_origin

from cropmeta.testing import WORLD_TILES, pixel_centre, tiny_tile
from cropmeta.errors import DataError, InputError
from cropmeta.ingest import ingest
from cropmeta.datasets import list_datasets, load_datasets
from cropmeta.io.labels import read_labels
from cropmeta.io.store import read_report
from test_ingest import world  # noqa: F401 - the simulated-world fixture (Kenya + Togo, T=3)

REPO = Path(__file__).resolve().parent.parent
TOGO = next(t for t in WORLD_TILES if t[0] == "Togo")


def cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed command as a user runs it (through ``main``: errors become one line)."""
    e = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="80", **(env or {}))
    return subprocess.run([sys.executable, "-c", "from cropmeta_cli.app import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, env=e, timeout=300)


def real_togo(tmp_path: Path, t: int = 3, n_labels: int = 4, name: str = "98-togo_2019-02-06_2020-02-01.tif"):
    """A 'real' export over the simulated Togo tile's area and a label file of ``n_labels`` points."""
    _, west, north = TOGO[1], TOGO[2], TOGO[3]
    tif, _, _, tr = tiny_tile(tmp_path / "real" / name, t=t, h=4, w=4, west=west, north=north, res=0.001)
    pts = [pixel_centre(tr, r, c) for r, c in [(0, 0), (1, 1), (2, 2), (3, 3)][:n_labels]]
    lab = gpd.GeoDataFrame({"is_crop": [i % 2 for i in range(len(pts))], "split": ["train"] * len(pts)},
                           geometry=gpd.points_from_xy(*zip(*pts)), crs="EPSG:4326")
    path = tmp_path / "real.geojson"
    lab.to_file(path)
    return tif.parent, path


def ndvi_map(tmp_path: Path, size: int) -> tuple[Path, str]:
    """(run, map) of the ndvi test double over a ``size``² lon/lat tile near (34.0 E, 0.5 N)."""
    from cropmeta.mapping.export import export
    from cropmeta.testing import make_double_run, make_ee_tile

    run = make_double_run(tmp_path / "run", kind="ndvi")
    tif = make_ee_tile(tmp_path / "in" / "a.tif", height=size, width=size, crs="EPSG:4326", origin=(34.0, 0.5),
                       res=0.0001)
    m = export(run, tmp_path / "m.tif", inputs=[tif], loader="cropmeta.testing:load_double",
               progress=False, quicklook=False)["map"]
    return run, m


# ---- item 4: simulated and real data never mix silently -------------------------------------------
def test_labels_without_source_are_refused(world, tmp_path):
    _, labels = real_togo(tmp_path)
    with pytest.raises(InputError, match=r"--labels .*real\.geojson: name the pixels .*--source sim"):
        ingest(labels=labels, home=tmp_path / "h", progress=False)
    assert not (tmp_path / "h" / "datasets").exists()


def test_source_sim_with_labels_warns(world, tmp_path, caplog):
    w, _ = world
    with caplog.at_level(logging.WARNING, logger="cropmeta"):
        ingest(source="sim", labels=w / "labels.parquet", home=tmp_path / "h", progress=False)
    assert any("SIMULATED pixels" in r.getMessage() for r in caplog.records)


def test_real_ingest_does_not_replace_simulated_dataset_without_replace(world, tmp_path, caplog):
    home = tmp_path / "h"
    ingest(home=home, progress=False)
    before = (home / "datasets" / "togo" / "arrays.nc").read_bytes()
    n_sim = read_report(home / "datasets" / "togo")["samples"]
    tiles, labels = real_togo(tmp_path)
    with pytest.raises(DataError, match=r"datasets/togo: holds the simulated Togo dataset \(16 samples.*"
                                        r"this real ingest would replace it.*--replace"):
        ingest(source=tiles, labels=labels, home=home, progress=False)
    assert (home / "datasets" / "togo" / "arrays.nc").read_bytes() == before
    with caplog.at_level(logging.WARNING, logger="cropmeta"):
        r = ingest(source=tiles, labels=labels, home=home, progress=False, replace=True)
    assert r.report["replaced"]["togo"].startswith(f"simulated dataset, {n_sim} samples")
    assert any("--replace: dataset togo replaces the simulated" in m.getMessage() for m in caplog.records)
    assert read_report(home / "datasets" / "togo")["pixels"] == "real"


def test_train_records_which_data_it_used(world, tmp_path):
    from cropmeta.app.samples import select_samples

    home = tmp_path / "h"
    ingest(home=home, progress=False)
    samples, used = select_samples(home=home, datasets=["kenya"])
    assert set(samples.meta["region"]) == {"Kenya"}
    assert used == [{"dataset": "kenya", "pixels": "simulated", "t": 3, "samples": 16,
                     "source": str(world[0] / "tiles")}]
    # a --source of one's own: only the datasets it wrote are used, not the simulated ones beside them
    tiles, labels = real_togo(tmp_path)
    home2 = tmp_path / "h2"
    ingest(home=home2, progress=False)
    with pytest.raises(DataError, match="--replace"):
        select_samples(source=tiles, labels=labels, home=home2)


# ---- item 5: map accuracy never counts training points -------------------------------------------
def test_accuracy_leaves_out_training_points(tmp_path):
    from cropmeta.mapping.accuracy import assess

    run, m = ndvi_map(tmp_path, 8)
    xy = [(34.0 + 0.0001 * (c + 0.5), 0.5 - 0.0001 * (r + 0.5)) for r in range(8) for c in range(0, 8, 2)]
    truth = gpd.GeoDataFrame({"sample_id": [f"p{i}" for i in range(len(xy))], "is_crop": [i % 2 for i in range(len(xy))]},
                             geometry=gpd.points_from_xy(*zip(*xy)), crs="EPSG:4326")
    truth.to_file(tmp_path / "truth.geojson")
    assert assess(m, tmp_path / "truth.geojson")["n_reference"] == 32
    # the run trained on 8 of them (4 by id, 4 by location under other ids)
    pd.DataFrame({"sample_id": [f"p{i}" for i in range(4)] + ["x1", "x2", "x3", "x4"],
                  "lat": [p[1] for p in xy[:8]], "lon": [p[0] for p in xy[:8]]}).to_parquet(
        run / "training_points.parquet")
    acc = assess(m, tmp_path / "truth.geojson", run_dir=run)
    assert acc["n_reference"] == 24 and acc["n_excluded_training_points"] == 8
    # a split column is honoured: its 'train' rows never count
    truth["split"] = ["train"] * 10 + ["test"] * 22
    truth.to_file(tmp_path / "truth2.geojson")
    acc = assess(m, tmp_path / "truth2.geojson", run_dir=run)
    assert acc["n_excluded_train_split"] == 10 and acc["n_reference"] == 22


def test_train_saves_its_training_points(tmp_path):
    from cropmeta.testing import make_samples
    from cropmeta.app.train import train

    tiny = {"hidden": 8, "encoder_dims": [8, 8, 8], "iterations": 1, "tasks_per_step": 2, "k_support": 2,
            "k_query": 1, "ft_steps": 2, "threads": 1, "device": "cpu"}
    s = make_samples(n_per_region=30, seed=1)
    res = train("kenya", samples=s, out=tmp_path / "run", overrides=tiny)
    tp = pd.read_parquet(tmp_path / "run" / "training_points.parquet")
    train_ids = set(s.meta.loc[s.meta["split"] == "train", "sample_id"])
    assert set(tp["sample_id"]) == train_ids and not set(tp["sample_id"]) & set(
        s.meta.loc[s.meta["split"] == "test", "sample_id"])
    # item 14: a log file in the run directory says what ran on which data
    log = (tmp_path / "run" / "train.log").read_text()
    assert "target" in log and "data: dataset in-memory samples" in log and "held-out metrics" in log
    assert res["data"][0]["samples"] == len(s)


# ---- item 6: datasets of another T are named; a 12-step window of a longer export -----------------
def test_other_t_is_named_at_ingest_and_datasets_can_be_selected(world, tmp_path, caplog):
    home = tmp_path / "h"
    ingest(home=home, progress=False)
    tiles, labels = real_togo(tmp_path, t=24)
    with caplog.at_level(logging.WARNING, logger="cropmeta"):
        ingest(source=tiles, labels=labels, home=home, progress=False, replace=True)
    assert any("dataset togo has T=24 time steps, unlike kenya (T=3)" in r.getMessage() for r in caplog.records)
    with pytest.raises(InputError, match=r"different numbers of time steps \(T=3: kenya; T=24: togo\).*--datasets"):
        load_datasets(home)
    assert load_datasets(home, ["kenya"]).t == 3


def test_start_month_window_at_ingest(tmp_path):
    tiles, labels = real_togo(tmp_path, t=24)
    full = ingest(source=tiles, labels=labels, home=tmp_path / "a", progress=False)
    win = ingest(source=tiles, labels=labels, home=tmp_path / "b", progress=False, start_month=4)
    xf, xw = load_datasets(tmp_path / "a"), load_datasets(tmp_path / "b")
    assert xf.t == 24 and xw.t == 12
    np.testing.assert_array_equal(xw.x, xf.x[:, 3:15])
    assert win.report["datasets"]["togo"]["start_month"] == 4 and full.report["datasets"]["togo"]["t"] == 24
    with pytest.raises(InputError, match=r"--start-month 14 needs 25 time steps"):
        ingest(source=tiles, labels=labels, home=tmp_path / "c", progress=False, start_month=14)


# ---- item 7: single-class files, train --labels, split hint, assess columns, zipped shapefiles ----
def test_single_class_file_flag(tmp_path):
    from cropmeta.io.labels import label_options

    g = gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=gpd.points_from_xy([1.1, 1.2], [8.5, 8.5]), crs="EPSG:4326")
    g.to_file(tmp_path / "noncrop.geojson")
    with pytest.raises(InputError, match=r"no 'is_crop' column.*--file-class crop\|non-crop"):
        read_labels(tmp_path / "noncrop.geojson")
    lab = read_labels(tmp_path / "noncrop.geojson", **label_options(file_class="non-crop"))
    assert (lab["is_crop"] == 0).all()
    with pytest.raises(InputError, match="--file-class 'maybe': expected crop or non-crop"):
        label_options(file_class="maybe")


def test_zipped_shapefile_and_zip_scheme(tmp_path):
    import zipfile

    g = gpd.GeoDataFrame({"is_crop": [1, 0]}, geometry=gpd.points_from_xy([1.1, 1.2], [8.5, 8.5]), crs="EPSG:4326")
    g.to_file(tmp_path / "pts.shp")
    with zipfile.ZipFile(tmp_path / "pts.zip", "w") as z:
        for p in tmp_path.glob("pts.*"):
            if p.suffix != ".zip":
                z.write(p, p.name)
    for path in (tmp_path / "pts.zip", f"zip://{tmp_path / 'pts.zip'}"):
        lab = read_labels(path)
        assert list(lab["is_crop"]) == [1, 0]


def test_train_takes_labels_for_a_geotiff_source(tmp_path):
    from cropmeta.app.samples import select_samples

    tiles, labels = real_togo(tmp_path)
    samples, used = select_samples(source=tiles, labels=labels, home=tmp_path / "h")
    assert len(samples) == 4 and used[0]["pixels"] == "real"
    r = cli("train", "--help")
    assert "--labels" in r.stdout and "--datasets" in r.stdout and "--file-class" in r.stdout


def test_test_split_error_points_at_the_split_column():
    from cropmeta.testing import make_samples
    from cropmeta.tasks import resolve_target, target_data

    s = make_samples(n_per_region=20, seed=0)
    s.meta["split"] = "train"
    with pytest.raises(InputError, match=r"test split needs both classes \(0 positives, 0 negatives\); the label "
                                         r"file's 'split' column"):
        target_data(s, resolve_target(s, "kenya", None))


def test_assess_reads_a_collect_earth_online_csv(tmp_path):
    from cropmeta.io.labels import label_options

    from cropmeta.mapping.accuracy import assess

    run, m = ndvi_map(tmp_path, 6)
    ceo = pd.DataFrame({"plotid": range(6), "center_lon": [34.0 + 0.0001 * (i + 0.5) for i in range(6)],
                        "center_lat": [0.5 - 0.0001 * (i + 0.5) for i in range(6)],
                        "Land cover": ["Cropland", "Forest", "Cropland", "Grass", "Cropland", ""]})
    ceo.to_csv(tmp_path / "ceo.csv", index=False)
    acc = assess(m, tmp_path / "ceo.csv", label_options=label_options(
        class_column="Land cover", crop_values="Cropland", lat_column="center_lat", lon_column="center_lon"))
    assert acc["n_reference"] == 5 and acc["n_unlabelled"] == 1
    r = cli("assess", m, "--truth", str(tmp_path / "ceo.csv"), "--class-column", "Land cover", "--crop-values",
            "Cropland", "--lat-column", "center_lat", "--lon-column", "center_lon")
    assert r.returncode == 0, r.stderr
    assert "n_reference" in r.stdout


# ---- item 8: empty files and all-missing labels say so ---------------------------------------------
def test_empty_feature_collection(tmp_path):
    (tmp_path / "e.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(DataError, match=r"e\.geojson: the file has no features"):
        read_labels(tmp_path / "e.geojson")


def test_all_labels_missing(tmp_path):
    df = pd.DataFrame({"lat": [8.5, 8.6], "lon": [1.1, 1.2], "klass": [None, None]})
    df.to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(DataError, match=r"l\.csv: no labelled rows \(2 rows, all missing in column 'klass'\)"):
        read_labels(tmp_path / "l.csv", class_column="klass", crop_values="maize")


def test_unlabelled_counts_in_ingest_summary(world, tmp_path):
    r = ingest(home=tmp_path / "h", progress=False)
    assert r.report["summary"]["train_unlabelled"] == 0 and "test_unlabelled" in r.report["summary"]


# ---- item 10: the demo is rerunnable ----------------------------------------------------------------
@pytest.mark.slow
def test_demo_twice(tmp_path, monkeypatch):
    from cropmeta.pipeline import demo
    from cropmeta.sim import generate_world

    home = Path(os.environ["CROPMETA_HOME"])
    generate_world(home / "worlds" / "seed-0", seed=0, scene_size=32, regions=["Kenya", "Togo", "Brazil"])
    tiny = {"hidden": 8, "encoder_dims": [8, 8, 8], "iterations": 2, "tasks_per_step": 2, "k_support": 2,
            "k_query": 1, "ft_steps": 2, "threads": 1, "val_every": 1}
    first = demo(out=tmp_path / "demo", progress=False, overrides=tiny)
    second = demo(out=tmp_path / "demo", progress=False, overrides=tiny)
    assert first["map"] == second["map"] and Path(second["map"]).exists()
    assert second["test_metrics"] == first["test_metrics"]


# ---- item 12: option checks and wording ---------------------------------------------------------------
def test_negative_shots_and_nprocs_zero():
    from cropmeta.testing import make_samples
    from cropmeta.tasks import resolve_target, target_data
    from cropmeta.app.train import train

    s = make_samples(n_per_region=20, seed=0)
    with pytest.raises(InputError, match=r"--shots must be at least 2 .*got -5"):
        target_data(s, resolve_target(s, "kenya", None), shots=-5)
    with pytest.raises(InputError, match=r"--nprocs must be >= 1, got 0"):
        train("kenya", samples=s, nprocs=0)


def test_huge_shots_column_says_all():
    from cropmeta.evaluate.compare import resolve_effective_shots

    eff, notes = resolve_effective_shots([20, 100000], 64)
    assert eff == [20, "all"] and "reported as 'all'" in notes[0]


def test_messages_name_flags_not_python_parameters():
    import inspect

    import cropmeta.datasets
    import cropmeta.ingest
    import cropmeta.ingest_tiles
    import cropmeta.io.eetiff
    import cropmeta.io.labels

    for mod in (cropmeta.ingest, cropmeta.ingest_tiles, cropmeta.datasets, cropmeta.io.eetiff, cropmeta.io.labels):
        src = inspect.getsource(mod)
        assert "allow_failed=True to" not in src and "Pass check_descriptions=False" not in src
        assert "class_column= /" not in src


def test_unreadable_map_names_the_file(tmp_path):
    from cropmeta.mapping.accuracy import assess
    from cropmeta.mapping.export import export
    from cropmeta.testing import make_double_run, make_ee_tile

    run = make_double_run(tmp_path / "run", kind="ndvi")
    tif = make_ee_tile(tmp_path / "in" / "a.tif", height=600, width=600)
    m = Path(export(run, tmp_path / "m.tif", inputs=[tif], loader="cropmeta.testing:load_double",
                    progress=False, quicklook=False)["map"])
    data = m.read_bytes()
    m.write_bytes(data[: len(data) // 2])  # truncated: block reads fail ("Read failed. See previous exception")
    with pytest.raises(InputError, match=r"m\.tif.*cannot read the map"):
        assess(m, m)


# ---- item 13: a temperature at its bound is flagged and refused --------------------------------------
def test_temperature_at_bound_is_refused_and_reported():
    from cropmeta.evaluate.calibration import checked_temperature
    from cropmeta.evaluate.report import calibration_flags

    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 10)
    p = rng.uniform(0.01, 0.99, 20)  # no information: the NLL falls towards T → ∞
    t, note = checked_temperature(p, y)
    assert t is None and "ran into its bound 50.00" in note and "not applied" in note
    y2 = np.array([0, 1] * 20)
    p_good = 1 / (1 + np.exp(-((2 * y2 - 1) * 3.0 + rng.normal(0, 2.0, 40))))  # informative, over-confident
    t2, note2 = checked_temperature(p_good, y2)
    assert t2 is not None and 0.05 < t2 < 50 and "fewer than 10" not in note2
    cells = [{"method": "timl", "shots": 20, "calibration": {"note": note}} for _ in range(4)]
    flags = calibration_flags(cells)
    assert flags == [f"timl @ 20: 4 seed(s): {note}"]


# ---- item 14: CLI conventions ----------------------------------------------------------------------
def test_cli_version_help_and_flags():
    from cropmeta import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"cropmeta {__version__}"
    r = cli("export", "-h")
    assert r.returncode == 0 and "--overwrite" in r.stdout
    assert "<bool>" not in r.stdout  # on/off flags are shown as flags


def test_every_option_has_help_and_workspace_commands_take_home():
    import typer.main

    from cropmeta_cli.app import app

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        for p in cmd.params:
            if p.param_type_name == "option":
                assert p.help, f"{name} {p.opts} has no help text"
        if name in ("doctor", "ingest", "train", "compare", "calibrate", "export", "demo"):
            assert any("--home" in p.opts for p in cmd.params), f"{name} has no --home"


def test_errors_are_one_unwrapped_line_naming_the_input(tmp_path):
    deep = tmp_path / ("a-very-long-folder-name-" * 4) / "missing-labels-file.geojson"
    r = cli("ingest", "--source", str(tmp_path), "--labels", str(deep), "--home", str(tmp_path / "h"))
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(deep) in lines[0], r.stderr


def test_verbose_and_quiet(world, tmp_path):
    from cropmeta.logs import configure, console_handlers

    try:
        configure(quiet=True)
        assert [h.level for h in console_handlers()] == [logging.ERROR]
        configure(verbose=1)
        assert [h.level for h in console_handlers()] == [logging.INFO]
    finally:
        configure()
    # through the command: -q hides the --source sim warning, the default shows it as one line
    from typer.testing import CliRunner

    from cropmeta_cli.app import app

    w, _ = world
    args = ["ingest", "--source", "sim", "--labels", str(w / "labels.parquet"), "--home", str(tmp_path / "h")]
    try:
        quiet = CliRunner().invoke(app, ["-q", *args])
        loud = CliRunner().invoke(app, args)
    finally:
        configure()
    assert quiet.exit_code == 0 and loud.exit_code == 0, (quiet.output, loud.output)
    assert "SIMULATED" not in quiet.stderr
    assert [line for line in loud.stderr.splitlines() if "SIMULATED" in line][0].startswith("warning: --source sim")


# ---- item 9: region names decoded correctly, found with or without accents ---------------------------
def test_region_names_are_decoded_and_match_without_accents():
    from cropmeta.regions import get_region, region_names

    names = region_names()
    assert not [n for n in names if "Ã" in n or "Â" in n], "mis-decoded names in data/regions.geojson"
    for spelled, want in (("Åland Islands", "Åland Islands"), ("aland islands", "Åland Islands"),
                          ("Sao Tome and Principe", "São Tomé and Príncipe"), ("curacao", "Curaçao"),
                          ("Saint-Barthélemy", "Saint-Barthélemy"), ("saint barthelemy", "Saint-Barthélemy")):
        assert get_region(spelled).name == want


def test_region_file_is_rebuilt_with_utf8_names(shared_data, tmp_path):
    import geopandas as gpd

    from cropmeta.regions import build_region_file, region_file

    out = build_region_file(shared_data / "natural_earth_admin0_50m" / "ne_50m_admin_0_countries.shp",
                            tmp_path / "regions.geojson")
    built = gpd.read_file(out)
    assert {"São Tomé and Príncipe", "Curaçao", "Saint-Barthélemy", "Åland Islands"} <= set(built["name"])
    assert out.read_bytes() == region_file().read_bytes()  # the committed file is exactly this build


# ---- item 11 (compare): a failed comparison leaves no empty output folder ----------------------------
def test_failed_benchmark_leaves_no_output_folder(tmp_path):
    from cropmeta.app.compare import compare

    out = tmp_path / "reports" / "bench"
    with pytest.raises(InputError):
        compare(benchmark="cropharvest", root=tmp_path / "no-archive", out=out, progress=False)
    assert not out.exists() and not (tmp_path / "reports").exists()


def test_json_files_are_strict_json(tmp_path):
    """Issue 28 (5): `*.accuracy.json` held bare NaN (not JSON); every number a metric cannot give is null."""
    from cropmeta._fs import json_text
    from cropmeta.io.labels import label_options
    from cropmeta.mapping.accuracy import assess

    def strict(text):
        def refuse(c):
            raise ValueError(f"not JSON: {c}")
        return json.loads(text, parse_constant=refuse)

    run, m = ndvi_map(tmp_path, 6)
    ceo = pd.DataFrame({"center_lon": [34.0 + 0.0001 * (i + 0.5) for i in range(4)],
                        "center_lat": [0.5 - 0.0001 * (i + 0.5) for i in range(4)],
                        "Land cover": ["Cropland", "Forest", "Cropland", "Grass"]})
    ceo.to_csv(tmp_path / "ceo.csv", index=False)
    out = tmp_path / "acc.json"
    acc = assess(m, tmp_path / "ceo.csv", out_json=out, label_options=label_options(
        class_column="Land cover", crop_values="Cropland", lat_column="center_lat", lon_column="center_lon"))
    text = out.read_text()
    doc = strict(text)
    assert doc["n_reference"] == acc["n_reference"] == 4
    assert strict(json_text({"a": float("nan"), "b": [np.float32(np.inf), 1.5], "c": np.arange(2)})) == \
        {"a": None, "b": [None, 1.5], "c": [0, 1]}


def test_small_samples_say_so(tmp_path, caplog):
    """Issue 28 (8): 4 test labels gave "AUC 0.2500" and 4 reference points "nan" areas with no word."""
    from cropmeta.io.labels import label_options
    from cropmeta.mapping.accuracy import assess
    from cropmeta.metrics import small_test_set

    assert small_test_set([1, 0, 1, 0]).startswith("the held-out metrics come from 4 test labels (2 positive")
    assert small_test_set([1] * 25 + [0] * 25) is None
    run, m = ndvi_map(tmp_path, 6)
    ceo = pd.DataFrame({"center_lon": [34.0 + 0.0001 * (i + 0.5) for i in range(4)],
                        "center_lat": [0.5 - 0.0001 * (i + 0.5) for i in range(4)],
                        "Land cover": ["Cropland", "Forest", "Cropland", "Grass"]})
    ceo.to_csv(tmp_path / "ceo.csv", index=False)
    acc = assess(m, tmp_path / "ceo.csv", label_options=label_options(
        class_column="Land cover", crop_values="Cropland", lat_column="center_lat", lon_column="center_lon"))
    assert any("reference point(s): accuracies and areas from so few points are unreliable" in n for n in acc["notes"])
    if not np.isfinite(acc["adjusted_crop_area_ha"]):
        assert any(n.startswith("no error-adjusted area (null)") for n in acc["notes"])
    assert any("unreliable" in r.getMessage() for r in caplog.records)
