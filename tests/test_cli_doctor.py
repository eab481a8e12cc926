from typer.testing import CliRunner

from cropmeta_cli.app import app  # the repo folder cli/, installed as cropmeta_cli
from cropmeta import doctor

runner = CliRunner()


def test_doctor_green_on_this_install():
    checks = {c.name: c for c in doctor.run_checks()}
    assert checks["learn2learn MAML"].ok, checks["learn2learn MAML"].detail
    assert checks["GDAL COG driver"].ok, checks["GDAL COG driver"].detail
    assert checks["data directory"].ok
    res = runner.invoke(app, ["doctor"])
    assert res.exit_code == 0 and "all checks passed" in res.output


def test_doctor_fails_loudly_when_data_dir_is_broken(monkeypatch, tmp_path):
    import cropmeta.regions as regions

    monkeypatch.setenv("CROPMETA_DATA", str(tmp_path / "missing"))
    regions._regions.cache_clear()
    try:
        res = runner.invoke(app, ["doctor"])
        assert res.exit_code == 1 and "data directory" in res.output
    finally:
        regions._regions.cache_clear()


def test_regions_command_lists_countries():
    res = runner.invoke(app, ["regions", "togo"])
    assert res.exit_code == 0 and "Togo" in res.output and "TGO" in res.output


def test_doctor_reports_the_fetch_stack():
    checks = {c.name: c for c in doctor.run_checks()}
    for name in ("pystac_client (fetch)", "odc.stac (fetch)", "ee (fetch)", "planetary_computer (fetch)"):
        assert checks[name].ok and not checks[name].required, checks[name].detail
    assert checks["odc.stac (fetch)"].detail == "0.5.3" and checks["ee (fetch)"].detail == "1.7.50"


def test_global_flags_anywhere_on_the_line():
    """Issue 28 (5): -q/-v worked only before the command."""
    from cropmeta_cli.app import hoist_global_flags

    assert hoist_global_flags(["train", "--region", "kenya", "-q"]) == ["-q", "train", "--region", "kenya"]
    assert hoist_global_flags(["-v", "export", "--run", "r", "-vv"]) == ["-v", "-vv", "export", "--run", "r"]
    assert hoist_global_flags(["ingest", "--", "-q"]) == ["ingest", "--", "-q"]


def test_quiet_silences_progress_and_warnings(tmp_path):
    """`-q` after the command: no progress bar, no warning line; the error of a bad input still prints."""
    from test_issue14 import cli

    p = tmp_path / "t.csv"
    import pandas as pd

    pd.DataFrame({"sample_id": ["a", "a", "b", "b"], "lon": [1.2] * 4, "lat": [8.6] * 4,
                  "date": ["2020-01-01", "2020-02-01"] * 2, "NDVI": [0.1, 0.2, 65535, 65535],
                  "label": ["maize", "maize", "non-crop", "non-crop"]}).to_csv(p, index=False)
    loud = cli("ingest", "--table", str(p), "--preset", "ndvi", "--nodata", "65535", "--home", str(tmp_path / "h"))
    assert loud.returncode == 0 and "warning: " in loud.stderr and "left out 1 of 2" in loud.stderr
    quiet = cli("ingest", "--table", str(p), "--preset", "ndvi", "--nodata", "65535", "--home", str(tmp_path / "h2"),
                "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
    bad = cli("ingest", "--table", str(tmp_path / "none.csv"), "--preset", "ndvi", "-q")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
