"""Sample tables (issue 16): long/wide CSV, Parquet, GeoParquet; the worldcereal and ndvi presets;
dekad → month resampling; windows of months; every bad-table error names the file and the column."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from cropmeta.errors import DataError, InputError
from cropmeta.ingest import ingest
from cropmeta.datasets import load_datasets
from cropmeta.io.store import read_samples
from cropmeta.io.table_mapping import PRESETS, table_mapping
from cropmeta.io.tables import read_table
from cropmeta.schema import CROPHARVEST

#: two places: Togo (west Africa) and Kenya (east Africa)
PLACES = {"Togo": (1.2, 8.6), "Kenya": (36.8, -0.3)}


def month_dates(first: str, n: int) -> list[str]:
    y, m = int(first[:4]), int(first[5:7])
    out = []
    for i in range(n):
        k = y * 12 + m - 1 + i
        out.append(f"{k // 12:04d}-{k % 12 + 1:02d}-01")
    return out


def ndvi_value(s: int, step: int) -> float:
    return round(0.1 + 0.05 * s + 0.01 * step, 6)


def long_ndvi(n: int = 4, months: int = 12, first: str = "2020-01", regions=("Togo",)) -> pd.DataFrame:
    """A long NDVI-only table: ``n`` samples per region, one row per sample and month."""
    rows = []
    for r, region in enumerate(regions):
        lon, lat = PLACES[region]
        for s in range(n):
            for k, d in enumerate(month_dates(first, months)):
                rows.append({"sample_id": f"{region[:2]}{s}", "lon": lon + 0.01 * s, "lat": lat, "date": d,
                             "NDVI": ndvi_value(s, k), "label": "maize" if s % 2 else "non-crop",
                             "split": "test" if s == n - 1 else "train", "region": region})
    return pd.DataFrame(rows)


def wide_of(long: pd.DataFrame, by_date: bool = False) -> pd.DataFrame:
    """The same table wide: ``NDVI_0 …`` (or ``NDVI_2020-01 …``), one row per sample."""
    long = long.copy()
    long["k"] = long.groupby("sample_id").cumcount()
    key = long["date"].str[:7] if by_date else long["k"].astype(str)
    wide = long.assign(col="NDVI_" + key).pivot(index="sample_id", columns="col", values="NDVI")
    info = long.groupby("sample_id")[["lon", "lat", "label", "split", "region"]].first()
    return info.join(wide).reset_index()


def test_long_csv_ndvi_preset(tmp_path):
    p = tmp_path / "ndvi.csv"
    long_ndvi().to_csv(p, index=False)
    s, rep = read_table(p, table_mapping("ndvi"))
    assert s.schema.bands == ("NDVI",) and s.schema.t == 12 and s.schema.step == "month"
    assert s.x.shape == (4, 12, 1)
    np.testing.assert_allclose(s.x[2, :, 0], [ndvi_value(2, k) for k in range(12)], rtol=1e-6)
    assert list(s.meta["is_crop"]) == [0, 1, 0, 1] and s.meta.loc[1, "label"] == "maize"
    assert s.meta.loc[1, "crop_group"] == "cereals" and list(s.meta["split"]).count("test") == 1
    assert set(s.meta["start_date"]) == {"2020-01-01"} and rep["layout"] == "long"


@pytest.mark.parametrize("by_date", [False, True])
def test_wide_csv_equals_long(tmp_path, by_date):
    long = long_ndvi()
    p = tmp_path / "wide.csv"
    wide_of(long, by_date).to_csv(p, index=False)
    kw = {} if by_date else {"start_date": "2020-01-01"}
    s, rep = read_table(p, table_mapping("ndvi", **kw))
    ref, _ = read_table(_csv(tmp_path, long), table_mapping("ndvi"))
    assert rep["layout"] == "wide"
    np.testing.assert_allclose(s.x, ref.x)
    assert list(s.meta["start_date"]) == list(ref.meta["start_date"])


def test_wide_numbered_steps_need_a_start_date(tmp_path):
    p = tmp_path / "wide.csv"
    wide_of(long_ndvi()).to_csv(p, index=False)
    with pytest.raises(InputError, match=rf"{p}: wide columns number their steps .*--start-date"):
        read_table(p, table_mapping("ndvi"))


def _csv(tmp_path: Path, df: pd.DataFrame, name: str = "t.csv") -> Path:
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def test_parquet_and_geoparquet_in_a_projected_crs(tmp_path):
    long = long_ndvi()
    pq = tmp_path / "t.parquet"
    long.to_parquet(pq)
    s_pq, _ = read_table(pq, table_mapping("ndvi"))
    # GeoParquet in UTM 31N (Togo): the points come back to the same lon/lat
    g = gpd.GeoDataFrame(long.drop(columns=["lon", "lat"]), geometry=gpd.points_from_xy(long["lon"], long["lat"]),
                         crs="EPSG:4326").to_crs("EPSG:32631")
    gp = tmp_path / "t.geoparquet"
    g.to_parquet(gp)
    s_g, rep = read_table(gp, table_mapping("ndvi"))
    assert rep["crs"] == "EPSG:4326" and "32631" not in str(s_g.meta.crs)
    np.testing.assert_allclose(s_g.meta["lon"], s_pq.meta["lon"], atol=1e-7)
    np.testing.assert_allclose(s_g.meta["lat"], s_pq.meta["lat"], atol=1e-7)
    np.testing.assert_allclose(s_g.x, s_pq.x)
    # coordinates in a projected CRS from plain x/y columns (--crs)
    xy = long.assign(x=g.geometry.x.to_numpy(), y=g.geometry.y.to_numpy()).drop(columns=["lon", "lat"])
    s_xy, _ = read_table(_csv(tmp_path, xy, "xy.csv"),
                         table_mapping("ndvi", lon_column="x", lat_column="y", crs="EPSG:32631"))
    np.testing.assert_allclose(s_xy.meta["lon"], s_pq.meta["lon"], atol=1e-7)


# ---- worldcereal preset ------------------------------------------------------------------------------
WC_S2 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def worldcereal_table(n: int = 3, months: int = 12, with_b09: bool = True) -> pd.DataFrame:
    """A synthetic extraction with WorldCereal's column names, uint16 encodings and 65535 nodata."""
    rows = []
    for s in range(n):
        for k, d in enumerate(month_dates("2021-01", months)):
            r = {"sample_id": f"wc{s}", "timestamp": d, "lat": 8.6, "lon": 1.2 + 0.01 * s,
                 "ewoc_code": 1101000000 if s % 2 else 1500000000, "elevation": 300 + s, "slope": 2.5,
                 "S1-SIGMA0-VV": 1000 + 10 * k, "S1-SIGMA0-VH": 500 + 10 * k,
                 "AGERA5-TMEAN": 30000 + k, "AGERA5-PRECIP": 250 + k}
            for i, b in enumerate(WC_S2):
                if b != "B09" or with_b09:
                    r[f"S2-L2A-{b}"] = 1000 + 100 * i + k
            rows.append(r)
    df = pd.DataFrame(rows)
    df.loc[(df["sample_id"] == "wc0") & (df["timestamp"] == "2021-03-01"), "S2-L2A-B04"] = 65535  # nodata
    return df


def test_worldcereal_preset_maps_to_cropharvest_18(tmp_path):
    p = _csv(tmp_path, worldcereal_table())
    m = table_mapping("worldcereal", crop_values="1101000000", non_crop_values="1500000000")
    s, rep = read_table(p, m)
    assert s.schema.same_bands(CROPHARVEST) and s.t == 12
    x = s.x[0]
    # 65535 is nodata: B4 of March is that sample's mean B4 over the other months
    b4 = np.array([1000 + 100 * 2 + k for k in range(12)], dtype=float)
    expect = b4[np.arange(12) != 2].mean()
    assert x[2, s.schema.index("B4")] == pytest.approx(expect, rel=1e-6)
    assert rep["missing_values"]["B4"] == 1
    # units: S1 dB = 20 log10(v) - 83; temperature K x 100; precipitation mm x 100 → m
    assert x[0, s.schema.index("VV")] == pytest.approx(20 * np.log10(1000) - 83, rel=1e-6)
    assert x[5, s.schema.index("temperature_2m")] == pytest.approx(300.05, rel=1e-6)
    assert x[1, s.schema.index("total_precipitation")] == pytest.approx(251e-5, rel=1e-5)
    assert x[0, s.schema.index("elevation")] == 300 and x[0, s.schema.index("B9")] == 1800
    b8, b4v = x[0, s.schema.index("B8")], x[0, s.schema.index("B4")]
    assert x[0, s.schema.index("NDVI")] == pytest.approx((b8 - b4v) / (b8 + b4v), rel=1e-5)
    assert list(s.meta["is_crop"]) == [0, 1, 0]


def test_worldcereal_without_b09_is_its_own_schema(tmp_path):
    p = _csv(tmp_path, worldcereal_table(with_b09=False))
    s, _ = read_table(p, table_mapping("worldcereal", crop_values="1101000000", non_crop_values="1500000000"))
    assert s.schema.name == "worldcereal" and "B9" not in s.schema.bands and s.schema.n_bands == 17
    with pytest.raises(DataError, match="missing band\\(s\\) B9"):
        CROPHARVEST.check_compatible(s.schema, "worldcereal table")
    assert "S2-L2A-B02" in PRESETS["worldcereal"]["bands"]


# ---- dekads ------------------------------------------------------------------------------------------
def dekad_table(months: int = 3) -> pd.DataFrame:
    rows = []
    for s in range(2):
        for k in range(months * 3):
            mi, d = divmod(k, 3)
            rows.append({"sample_id": f"d{s}", "lon": 1.2, "lat": 8.6, "date": f"2020-{mi + 1:02d}-{1 + 10 * d:02d}",
                         "NDVI": float(10 * s + k), "label": s})
    return pd.DataFrame(rows)


def test_dekads_resampled_to_months(tmp_path):
    df = dekad_table()
    df.loc[(df["sample_id"] == "d1") & (df["date"] == "2020-02-11"), "NDVI"] = -3000  # nodata
    p = _csv(tmp_path, df)
    s, rep = read_table(p, table_mapping("ndvi", resample="month", nodata="-3000"))
    assert s.schema.step == "month" and s.t == 3 and "median" in rep["composited"]["rule"]
    np.testing.assert_allclose(s.x[0, :, 0], [1.0, 4.0, 7.0])  # (0+1+2)/3, (3+4+5)/3, (6+7+8)/3
    np.testing.assert_allclose(s.x[1, :, 0], [11.0, (13 + 15) / 2, 17.0])  # the nodata dekad is left out
    kept, _ = read_table(p, table_mapping("ndvi", nodata="-3000"))
    assert kept.schema.step == "dekad" and kept.t == 9
    np.testing.assert_allclose(kept.x[0, :, 0], np.arange(9))
    assert kept.meta.loc[0, "start_date"] == "2020-01-01"


# ---- windows -----------------------------------------------------------------------------------------
def test_window_of_months_from_a_longer_table(tmp_path):
    p = _csv(tmp_path, long_ndvi(months=24, first="2019-06"))
    s, rep = read_table(p, table_mapping("ndvi", months="2020-03:2021-02"))
    assert s.t == 12 and rep["window"]["rule"] == "--months 2020-03:2021-02"
    offset = 9  # 2019-06 → 2020-03
    np.testing.assert_allclose(s.x[1, :, 0], [ndvi_value(1, offset + k) for k in range(12)], rtol=1e-6)
    assert set(s.meta["start_date"]) == {"2020-03-01"}
    with pytest.raises(DataError, match=rf"{p}: window 2023-01:2023-12 lies outside the table's dates "
                                        r"\(2019-06 … 2021-05, column 'date'\)"):
        read_table(p, table_mapping("ndvi", months="2023-01:2023-12"))
    with pytest.raises(DataError, match=rf"{p}: window 2020-03:2021-12 reaches beyond the table's dates "
                                        r"\(2019-06 … 2021-05"):
        read_table(p, table_mapping("ndvi", months="2020-03:2021-12"))


def test_window_of_a_24_month_tif_at_ingest(tmp_path):
    from test_issue14 import real_togo

    tiles, labels = real_togo(tmp_path, t=24)  # 98-togo_2019-02-06_…: 30-day steps from 2019-02-06
    ingest(source=tiles, labels=labels, home=tmp_path / "a", progress=False)
    full = load_datasets(tmp_path / "a")
    res = ingest(source=tiles, labels=labels, home=tmp_path / "b", progress=False, months="2019-04:2020-03")
    win = load_datasets(tmp_path / "b")
    assert win.t == 12 and res.report["datasets"]["togo"]["months"] == "2019-04:2020-03"
    np.testing.assert_array_equal(win.x, full.x[:, 2:14])  # step 3 begins 2019-04-07
    assert set(win.meta["start_date"]) == {"2019-04-07"}
    with pytest.raises(DataError, match=r"98-togo_2019-02-06_2020-02-01.tif.*window 2020-06:2021-05 needs 12 steps"):
        ingest(source=tiles, labels=labels, home=tmp_path / "c", progress=False, months="2020-06:2021-05")
    with pytest.raises(InputError, match="--months '2020-13:2021-02'"):
        ingest(source=tiles, labels=labels, home=tmp_path / "c", progress=False, months="2020-13:2021-02")


# ---- bad tables: one line naming the file and the column -------------------------------------------
def _bad(tmp_path, df, **kw):
    return _csv(tmp_path, df, "bad.csv"), table_mapping("ndvi", **kw)


def test_missing_column_names_file_and_column(tmp_path):
    p, m = _bad(tmp_path, long_ndvi().drop(columns="NDVI"), layout="long")
    with pytest.raises(InputError, match=rf"{p}: band column 'NDVI' does not exist; available columns: sample_id"):
        read_table(p, m)
    p, m = _bad(tmp_path, long_ndvi().drop(columns="lat"))
    with pytest.raises(InputError, match=rf"{p}: latitude / y column 'lat' does not exist"):
        read_table(p, m)


def _set(df, rows, col, value):
    df = df.copy()
    df[col] = df[col].astype(object)
    df.loc[rows(df), col] = value
    return df


#: (change to a good table, mapping options, error, message after "<file>: ")
BAD_TABLES = {
    "non-numeric": (lambda d: _set(d, lambda d: d.index == 5, "NDVI", "cloud"), {}, InputError,
                    r"column 'NDVI' holds non-numeric values \('cloud'; 1 row\(s\), first row 6\)"),
    "duplicate": (lambda d: pd.concat([d, d.iloc[[3]]], ignore_index=True), {}, InputError,
                  r"duplicate \(sample, date\) rows in columns 'sample_id'/'date': sample 'To0' has 2 rows for 2020-04"),
    "unknown label": (lambda d: _set(d, lambda d: d["sample_id"] == "To2", "label", "mystery-plant"), {}, InputError,
                      r"column 'label' holds unknown label value\(s\) \['mystery-plant'\]"),
    "label not listed": (lambda d: d, {"crop_values": "maize", "non_crop_values": "forest"}, InputError,
                         r"column 'label' holds unknown label value\(s\) \['non-crop'\]; expected crop values "
                         r"\['maize'\], non-crop values \['forest'\]"),
    "label changes": (lambda d: _set(d, lambda d: d.index == 0, "label", "maize"), {}, InputError,
                      r"column 'label' \(label\) holds different values for one sample \('To0': maize, non-crop\)"),
    "bad split": (lambda d: d.assign(split="validation"), {}, InputError,
                  r"column 'split' \(split\) must hold 'train' or 'test'"),
    "bad date": (lambda d: _set(d, lambda d: d.index == 7, "date", "someday"), {}, InputError,
                 r"column 'date' holds a value that is not a date \('someday', row 8\)"),
    "short sample": (lambda d: d[~((d["sample_id"] == "To1") & ~d["date"].isin(["2020-01-01", "2020-02-01"]))],
                     {"strict": True}, DataError,
                     r"1 sample\(s\) incomplete: band 'NDVI' missing at more than 50% of the 12 months \('To1'\); "
                     r"--strict refuses"),
    "all nodata": (lambda d: _set(d, lambda d: d["sample_id"] == "To3", "NDVI", 65535), {"nodata": "65535", "strict": True},
                   DataError, r"1 sample\(s\) incomplete: no value of band 'NDVI' at any step \('To3'\)"),
    "band nodata": (lambda d: d.assign(NDVI=65535), {"nodata": "65535"}, DataError,
                    r"no per-step band has a value in any sample \(band 'NDVI' has no value in any sample\)"),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_table_names_file_and_column(tmp_path, case):
    change, opts, err, msg = BAD_TABLES[case]
    p, m = _bad(tmp_path, change(long_ndvi()), **opts)
    with pytest.raises(err, match=rf"^{p}: {msg}"):
        read_table(p, m)


def test_wrong_crs(tmp_path):
    g = long_ndvi()
    utm = gpd.GeoSeries(gpd.points_from_xy(g["lon"], g["lat"]), crs="EPSG:4326").to_crs("EPSG:32631")
    p, m = _bad(tmp_path, g.assign(lon=utm.x.to_numpy(), lat=utm.y.to_numpy()))  # metres read as degrees
    with pytest.raises(InputError, match=rf"{p}: column\(s\) 'lon'/'lat' give 4 sample\(s\) coordinates outside "
                                         r"lat ±90 / lon ±180 in EPSG:4326 .*wrong CRS"):
        read_table(p, m)
    gp = tmp_path / "bad.geoparquet"
    gpd.GeoDataFrame(g.drop(columns=["lon", "lat"]), geometry=utm.to_numpy(), crs="EPSG:32631").to_parquet(gp)
    with pytest.raises(InputError, match=rf"{gp}: column 'geometry' declares CRS EPSG:32631 but --crs EPSG:4326"):
        read_table(gp, table_mapping("ndvi", crs="EPSG:4326"))


def test_bad_mapping_file(tmp_path):
    mf = tmp_path / "map.toml"
    mf.write_text('preset = "ndvi"\nbandz = 1\n')
    with pytest.raises(InputError, match=rf"{mf}: unknown table-mapping key\(s\) \['bandz'\]"):
        table_mapping(mapping_file=mf)


# ---- into the workspace ------------------------------------------------------------------------------
def test_ingest_table_writes_one_dataset_per_region(tmp_path):
    p = tmp_path / "two.parquet"
    long_ndvi(regions=("Togo", "Kenya")).to_parquet(p)
    mf = tmp_path / "map.yaml"
    mf.write_text("preset: ndvi\nsplit_column: split\n")
    res = ingest(table=p, table_mapping=table_mapping(mapping_file=mf), home=tmp_path / "h", progress=False)
    assert sorted(res.datasets) == ["kenya", "togo"]
    s = read_samples(res.datasets["togo"])
    assert s.schema.bands == ("NDVI",) and len(s) == 4 and set(s.meta["region"]) == {"Togo"}
    assert json.loads((res.datasets["togo"] / "schema.json").read_text())["name"] == "ndvi"
    assert load_datasets(tmp_path / "h").schema.bands == ("NDVI",)
    with pytest.raises(InputError, match="holds its own pixels; drop --source"):
        ingest(table=p, source=str(p), home=tmp_path / "h", progress=False)


def test_cli_ingest_table(tmp_path):
    from test_issue14 import cli

    p = _csv(tmp_path, long_ndvi(months=24, first="2019-06"), "ndvi.csv")
    r = cli("ingest", "--table", str(p), "--preset", "ndvi", "--months", "2020-03:2021-02", "--home", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    s = read_samples(tmp_path / "h" / "datasets" / "togo")
    assert s.t == 12 and set(s.meta["start_date"]) == {"2020-03-01"}
    r = cli("ingest", "--table", str(p), "--preset", "ndvi", "--months", "2030-01:2030-12", "--home", str(tmp_path / "h"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and str(p) in r.stderr and "column 'date'" in r.stderr


def test_replacing_a_dataset_with_other_samples_needs_replace(tmp_path):
    """Issue 28 (1): a real dataset replaced another real one silently; now only the same samples
    again ("unchanged") pass without --replace, and nothing is written when refused."""
    home = tmp_path / "h"
    a = _csv(tmp_path, long_ndvi(n=4), "a.csv")
    b = _csv(tmp_path, long_ndvi(n=6), "b.csv")
    first = ingest(table=a, table_mapping=table_mapping("ndvi"), home=home, progress=False)
    before = (first.datasets["togo"] / "samples.parquet").read_bytes()
    again = ingest(table=a, table_mapping=table_mapping("ndvi"), home=home, progress=False)
    assert again.report["summary"]["datasets_unchanged"] == 1
    with pytest.raises(DataError, match=r"holds the real Togo dataset \(4 samples from .*a\.csv\); this real ingest "
                                        r"would replace it with other samples\. Nothing was written: pass --replace"):
        ingest(table=b, table_mapping=table_mapping("ndvi"), home=home, progress=False)
    assert (first.datasets["togo"] / "samples.parquet").read_bytes() == before
    res = ingest(table=b, table_mapping=table_mapping("ndvi"), home=home, progress=False, replace=True)
    assert "4 samples from" in res.report["replaced"]["togo"] and len(read_samples(res.datasets["togo"])) == 6
