"""Per-date raster stacks (issue 16): a folder of one-band NDVI images per date, in MODIS sinusoidal,
becomes a windowed map input for ``export`` on its own grid, with a one-band schema."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cropmeta.bandschema import BandSchema
from cropmeta.errors import DataError, InputError
from cropmeta.mapping.stacks import date_from_name, is_stack_folder, open_stack, stack_files
from rasterio.windows import Window

#: MODIS sinusoidal (the MOD13Q1 grid's CRS)
SINUSOIDAL = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
#: a 250 m grid near Lomé, Togo, in sinusoidal metres
ORIGIN = (133000.0, 956000.0)


def ndvi_field(h: int, w: int, k: int) -> np.ndarray:
    """NDVI of image ``k``: a left-to-right ramp 0 … 0.8 plus a small seasonal term."""
    return (np.linspace(0.0, 0.8, w)[None, :] + 0.01 * k + np.zeros((h, 1))).astype(np.float32)


def write_image(path: Path, a: np.ndarray, crs: str = SINUSOIDAL, nodata=None, dtype="float32") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    driver = "JP2OpenJPEG" if path.suffix == ".jp2" else "GTiff"
    with rasterio.open(path, "w", driver=driver, width=a.shape[1], height=a.shape[0], count=1, dtype=dtype, crs=crs,
                       transform=from_origin(*ORIGIN, 250.0, 250.0), nodata=nodata) as dst:
        dst.write(a.astype(dtype), 1)
    return path


def monthly_stack(folder: Path, n: int = 12, first: str = "2020-01", h: int = 6, w: int = 7) -> Path:
    y, m = int(first[:4]), int(first[5:7])
    for k in range(n):
        mi = y * 12 + m - 1 + k
        write_image(folder / f"NDVI_{mi // 12:04d}-{mi % 12 + 1:02d}-01.tif", ndvi_field(h, w, k))
    return folder


def test_dates_from_file_names():
    assert date_from_name("NDVI_2020-03-01.tif") == dt.date(2020, 3, 1)
    assert date_from_name("ndvi_20200301.tif") == dt.date(2020, 3, 1)
    assert date_from_name("MOD13Q1.A2020065.h18v08.061.2020082.250m_16_days_NDVI.tif") == dt.date(2020, 3, 5)
    assert date_from_name("ndvi.tif") is None


def test_open_a_monthly_sinusoidal_stack(tmp_path):
    folder = monthly_stack(tmp_path / "ndvi", n=24, first="2019-06")
    assert is_stack_folder(folder)
    s = open_stack(folder)
    assert s.t == 24 and s.schema.bands == ("NDVI",) and s.schema.step == "month"
    assert s.grid.width == 7 and "sinu" in rasterio.crs.CRS.from_wkt(s.grid.crs).to_proj4()
    x, valid = s.read(Window(0, 0, 7, 6))
    assert valid.all() and x.shape == (42, 24, 1)
    np.testing.assert_allclose(x[6, :, 0], 0.8 + 0.01 * np.arange(24), rtol=1e-6)  # pixel (0, 6)
    w = open_stack(folder, months="2020-03:2021-02")
    assert w.t == 12 and w.start_date == "2020-03-01" and w.name == "ndvi_2020-03-01_2021-02-01.tif"
    # the window's first step is its first month (a Presto map reads each pixel's start from it; it was
    # moved on a second time by the window's offset: 2020-11-26)
    from cropmeta.mapping.stacks import window_stack

    cut = window_stack(s, "2020-03:2021-02")  # what export --months does
    assert w.first_date() == cut.first_date() == "2020-03-01" and s.first_date() == "2019-06-01"
    xw, _ = w.read(Window(0, 0, 7, 6))
    np.testing.assert_allclose(xw, x[:, 9:21])
    with pytest.raises(DataError, match=r"ndvi: window 2022-01:2022-12 is outside the images' dates "
                                        r"\(2019-06-01 … 2021-05-01\)"):
        open_stack(folder, months="2022-01:2022-12")


def test_16_day_composites_average_into_months_and_nodata(tmp_path):
    folder = tmp_path / "modis"
    # MOD13Q1 day-of-year names: 2020-01-01, 2020-01-17, 2020-02-02, 2020-02-18 (ints x 10000, nodata -3000)
    vals = [2000, 4000, 5000, -3000]
    for doy, v in zip((1, 17, 33, 49), vals):
        write_image(folder / f"MOD13Q1.A2020{doy:03d}.h18v08.061.tif", np.full((3, 3), v), nodata=-3000, dtype="int16")
    s = open_stack(folder, scale=0.0001)
    assert s.t == 2 and [len(i) for i in s.steps] == [2, 2]
    x, valid = s.read(Window(0, 0, 3, 3))
    assert valid.all()
    np.testing.assert_allclose(x[0, :, 0], [0.3, 0.5])  # Jan: mean of 0.2 and 0.4; Feb: the nodata image left out


def test_jpeg2000_images_in_utm(tmp_path):
    folder = tmp_path / "s2"
    for k in range(3):  # Sentinel-2-style NDVI x 10000 as uint16 JPEG 2000, in UTM 31N
        write_image(folder / f"ndvi_2021{k + 4:02d}01.jp2", np.full((4, 5), 1000 * (k + 1)), crs="EPSG:32631",
                    dtype="uint16")
    s = open_stack(folder, scale=1e-4)
    assert s.t == 3 and rasterio.crs.CRS.from_wkt(s.grid.crs).to_epsg() == 32631 and s.start_date == "2021-04-01"
    x, valid = s.read(Window(0, 0, 5, 4))
    assert valid.all()
    np.testing.assert_allclose(x[0, :, 0], [0.1, 0.2, 0.3], rtol=1e-6)


def test_stack_errors_name_the_file(tmp_path):
    folder = monthly_stack(tmp_path / "a", n=3)
    write_image(folder / "NDVI_2020-05-01.tif", ndvi_field(6, 7, 0))  # April missing
    with pytest.raises(DataError, match=r"no image dated in the month of 2020-04-01"):
        open_stack(folder)
    folder = monthly_stack(tmp_path / "b", n=3)
    bad = write_image(folder / "NDVI_2020-04-01.tif", ndvi_field(5, 7, 0))
    with pytest.raises(InputError, match=rf"{bad}: 7x5 pixels, unlike NDVI_2020-01-01.tif \(7x6\)"):
        open_stack(folder)
    folder = monthly_stack(tmp_path / "c", n=2)
    (folder / "notes.tif").write_bytes(b"")
    with pytest.raises(InputError, match=r"notes.tif: the file name carries no date"):
        stack_files(folder)
    lst = tmp_path / "list.txt"
    lst.write_text("path,date\nb/NDVI_2020-01-01.tif,2021-01-01\nb/NDVI_2020-02-01.tif,2021-02-01\n")
    s = open_stack(lst)  # the list's dates win over the names
    assert s.t == 2 and s.start_date == "2021-01-01"
    lst.write_text("a/NDVI_2020-01-01.tif 2020-01-01\na/NDVI_2020-02-01.tif 2020-02-99\n")
    with pytest.raises(InputError, match=rf"{lst}: line 2: '2020-02-99' is not an ISO date"):
        stack_files(lst)


class MeanNdvi:
    """A one-band stand-in model: P = mean NDVI over time (clipped), schema NDVI-only."""

    def __init__(self, run_dir: Path):
        spec = json.loads((Path(run_dir) / "mean.json").read_text())
        self.t = int(spec["t"])
        self.schema = BandSchema("ndvi", dynamic=("NDVI",), t=self.t)
        self.metadata = {"model_sha256": "mean-ndvi", "task": {"kind": "double"}, "date_range": None}
        self.temperature = None

    def predict_proba(self, x):
        x = self.schema.input_array(x)
        return np.clip(x[:, :, 0].mean(axis=1), 0, 1)


def load_mean_ndvi(run_dir):
    return MeanNdvi(run_dir)


def test_export_a_stack_on_its_own_grid(tmp_path):
    from cropmeta.mapping.export import export

    run = tmp_path / "run"
    run.mkdir()
    (run / "mean.json").write_text(json.dumps({"t": 12}))
    folder = monthly_stack(tmp_path / "ndvi", n=24, first="2019-06")
    loader = "test_stacks:load_mean_ndvi"
    with pytest.raises(InputError, match=r"ndvi: the images make 24 month steps from 2019-06-01.*--months"):
        export(run, tmp_path / "m.tif", inputs=[folder], loader=loader, progress=False, quicklook=False)
    res = export(run, tmp_path / "m.tif", inputs=[folder], loader=loader, progress=False, quicklook=False,
                 months="2020-03:2021-02")
    with rasterio.open(res["map"]) as ds:
        assert ds.crs == rasterio.crs.CRS.from_user_input(SINUSOIDAL) and (ds.width, ds.height) == (7, 6)
        assert ds.transform == from_origin(*ORIGIN, 250.0, 250.0)
        prob = ds.read(1)
        assert json.loads(ds.tags()["DATE_RANGE"]) == ["2020-03-01", "2021-02-01"]
    expect = np.clip(np.linspace(0, 0.8, 7) + 0.01 * np.mean(np.arange(9, 21)), 0, 1)
    assert np.abs(prob.astype(int) - np.rint(expect * 100)[None, :]).max() <= 1  # uint8 0–100 (float32 rounding)


def test_export_months_on_an_earth_engine_tile_equals_start_month(tmp_path):
    from cropmeta.mapping.export import export
    from cropmeta.testing import make_double_run, make_ee_tile

    run = make_double_run(tmp_path / "run", kind="lstm", t=12)
    rng = np.random.default_rng(0)
    tif = make_ee_tile(tmp_path / "in" / "7-togo_2019-02-06_2021-01-26.tif", height=5, width=6, t=24,
                       ndvi=rng.uniform(0.1, 0.7, (5, 6)))
    kw = dict(loader="cropmeta.testing:load_double", progress=False, quicklook=False)
    a = export(run, tmp_path / "a.tif", inputs=[tif], months="2019-04:2020-03", **kw)["map"]
    b = export(run, tmp_path / "b.tif", inputs=[tif], start_month=3, **kw)["map"]  # step 3 begins 2019-04-07
    with rasterio.open(a) as da, rasterio.open(b) as db:
        np.testing.assert_array_equal(da.read(), db.read())
    with pytest.raises(DataError, match=r"7-togo_2019-02-06_2021-01-26.tif: window 2020-06:2021-05 needs 12 steps"):
        export(run, tmp_path / "c.tif", inputs=[tif], months="2020-06:2021-05", **kw)
