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
