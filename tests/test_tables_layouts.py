"""Real extraction tables as they come (issue 25): the five layouts that were refused — WorldCereal
wide, WorldCereal long with incomplete samples, WorldCereal dekads at another day convention,
a band that is filler in every sample, MODIS MOD13Q1 16-day composites — and per-date Sentinel-2
observations with a cloud fraction. Each is built small from the toy world, ingests, trains and
compares; ``strict`` refuses the incomplete ones with one line naming the samples or the band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cropmeta.errors import DataError, InputError
from cropmeta.ingest import ingest
from cropmeta.datasets import load_datasets
from cropmeta.io.table_mapping import table_mapping
from cropmeta.io.tables import read_table
from cropmeta.schema import CROPHARVEST
from cropmeta.testing import toy_samples

from test_byod_e2e import REGIONS, TINY, worldcereal_of

WC_CODES = {"crop_values": "1101060000", "non_crop_values": "1700000000"}
S2 = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]


@pytest.fixture(scope="module")
def toy():
    return toy_samples(n_per_label=14, n_noncrop=14, t=12, seed=5, regions=REGIONS)


def _v(toy, i, k, band):
    return float(toy.x[i, k, CROPHARVEST.index(band)])


def _latlon(toy):
    centre = {name: (lat, lon) for name, lat, lon, _ in REGIONS}
    return [(centre[r][0] + 1e-4 * i, centre[r][1]) for i, r in enumerate(toy.meta["region"])]


# ---- the layouts ---------------------------------------------------------------------------------
def wc_wide(toy) -> pd.DataFrame:
    """WorldCereal's wide layout: OPTICAL-B02-ts0-10m …, SAR-VV-ts0-20m, METEO-…-ts0-100m, DEM-alt-20m."""
    res = {"B2": "10m", "B3": "10m", "B4": "10m", "B8": "10m"}
    rows = []
    for i, (lat, lon) in enumerate(_latlon(toy)):
        r = {"lat": lat, "lon": lon, "start_date": "2021-01-01", "sample_id": toy.meta["sample_id"][i],
             "split": toy.meta["split"][i],
             "ewoc_code": 1101060000 if toy.meta["is_crop"][i] == 1 else 1700000000,
             "DEM-alt-20m": _v(toy, i, 0, "elevation"), "DEM-slo-20m": _v(toy, i, 0, "slope")}
        for k in range(12):
            for b in S2:
                name = "B8A" if b == "B8A" else f"B{int(b[1:]):02d}"
                r[f"OPTICAL-{name}-ts{k}-{res.get(b, '20m')}"] = round(_v(toy, i, k, b))
            for b in ("VV", "VH"):
                r[f"SAR-{b}-ts{k}-20m"] = 10 ** ((_v(toy, i, k, b) + 83) / 20)
            r[f"METEO-temperature_mean-ts{k}-100m"] = _v(toy, i, k, "temperature_2m") * 100
            r[f"METEO-precipitation_flux-ts{k}-100m"] = _v(toy, i, k, "total_precipitation") * 1e5
        rows.append(r)
    return pd.DataFrame(rows)


def wc_long_without_vv(toy) -> pd.DataFrame:
    """WorldCereal long monthly extraction; 5 samples have no S1 VV at any step."""
    df = worldcereal_of(toy)
    gone = sorted(set(df["sample_id"]))[:5]
    df.loc[df["sample_id"].isin(gone), "S1-SIGMA0-VV"] = np.nan
    return df


def wc_dekads(toy, rng) -> pd.DataFrame:
    """WorldCereal dekadal extraction: timestamps on the 5th/15th/25th (not 1/11/21), 37 or 51 dekads
    a sample, ~48 % of S2 values 65535."""
    df = worldcereal_of(toy)
    df.loc[0, "S2-L2A-B03"] = 1000.0
    parts = []
    for d, day in enumerate((5, 15, 25)):
        p = df.copy()
        p["timestamp"] = p["timestamp"].str[:8] + f"{day:02d}"
        parts.append(p)
    out = pd.concat(parts, ignore_index=True)
    # early dekads (2020-09 … 2020-12) for half of the samples, one late dekad for all: 37 or 51 dekads
    ids = sorted(set(out["sample_id"]))
    extra = []
    for j, sid in enumerate(ids):
        first = out[out["sample_id"] == sid].iloc[0]
        months = ([f"2020-{m:02d}" for m in (9, 10, 11, 12)] if j % 2 else []) + ["2022-01"]
        for mo in months:
            for day in ((5, 15, 25) if mo != "2022-01" else (5,)):
                extra.append({**first.to_dict(), "timestamp": f"{mo}-{day:02d}"})
    out = pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
    s2 = [c for c in out.columns if c.startswith("S2-L2A-")]
    hole = rng.random(len(out)) < 0.48
    out.loc[hole, s2] = 65535
    return out


def wc_b8a_filler(toy) -> pd.DataFrame:
    df = worldcereal_of(toy)
    df["S2-L2A-B8A"] = 65535
    return df


MODIS_CLASSES = ["soybean", "maize", "cotton", "rice", "sugarcane", "sorghum", "millet", "wheat"]


def modis(toy) -> pd.DataFrame:
    """MOD13Q1 as extracted: 6 bands (ndvi, evi, blue, red, nir, mir) at 23 16-day composites a year,
    9 classes; each composite carries the value of the month it starts in."""
    rows = []
    days = pd.date_range("2021-01-01", periods=23, freq="16D")
    for i, (lat, lon) in enumerate(_latlon(toy)):
        crop = toy.meta["is_crop"][i] == 1
        label = MODIS_CLASSES[i % len(MODIS_CLASSES)] if crop else "non-crop"
        for d in days:
            k = d.month - 1
            rows.append({"pixel": toy.meta["sample_id"][i], "x": lon, "y": lat, "composite_date": d.date().isoformat(),
                         "ndvi": round(_v(toy, i, k, "NDVI") * 10000), "evi": round(_v(toy, i, k, "NDVI") * 6000),
                         "blue": round(_v(toy, i, k, "B2")), "red": round(_v(toy, i, k, "B4")),
                         "nir": round(_v(toy, i, k, "B8")), "mir": round(_v(toy, i, k, "B11")), "class": label,
                         "split": toy.meta["split"][i]})
    return pd.DataFrame(rows)


MODIS_MAP = dict(id_column="pixel", lon_column="x", lat_column="y", date_column="composite_date",
                 label_column="class", schema_name="modis",
                 bands={"ndvi": "NDVI", "evi": "EVI", "blue": "B2", "red": "B4", "nir": "B8", "mir": "B11"},
                 scale={"NDVI": 1e-4, "EVI": 1e-4}, derived=[])


def s2_observations(toy, rng) -> pd.DataFrame:
    """Per-acquisition Sentinel-2 field means (reflectance 0–1) with a cloud fraction, three dates a
    month (one cloudy), in two products (L1C, L2A) as WorldCrops' FIS series hold them."""
    rows = []
    for i, (lat, lon) in enumerate(_latlon(toy)):
        for k in range(12):
            days = sorted(rng.choice(np.arange(1, 28), 3, replace=False))
            for j, day in enumerate(days):
                cloudy = j == 1
                delta = (-1, 0, 1)[j] * 0.002  # the clear two straddle the true value: their median is it
                for level in ("L1C", "L2A"):
                    r = {"field_id": toy.meta["sample_id"][i], "date": f"2021-{k + 1:02d}-{day:02d}", "level": level,
                         "cloud_frac": 0.8 if cloudy else 0.0, "lat": lat, "lon": lon,
                         "crop": "maize" if toy.meta["is_crop"][i] == 1 else "non-crop", "split": toy.meta["split"][i]}
                    for b in S2:
                        v = _v(toy, i, k, b) / 10000
                        r[b.replace("B", "B0") if len(b) == 2 else b] = 3 * v if cloudy else v + delta
                    rows.append(r)
    return pd.DataFrame(rows)


S2_MAP = dict(id_column="field_id", label_column="crop", cloud_column="cloud_frac", where={"level": "L2A"},
              schema_name="s2-fis", bands={("B0" + b[1:] if len(b) == 2 else b): b for b in S2},
              scale={b: 10000 for b in S2})


def _write(df, path):
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path)
    return path


# ---- reading -------------------------------------------------------------------------------------
def test_worldcereal_wide_layout_is_recognised_with_its_units(tmp_path, toy):
    p = _write(wc_wide(toy), tmp_path / "wide.parquet")
    s, rep = read_table(p, table_mapping("worldcereal", **WC_CODES))
    assert rep["preset_layout"] == "worldcereal wide" and rep["layout"] == "wide" and s.t == 12
    assert "B9" not in s.schema.bands and rep["absent_bands"] == ["B9"]
    order = {sid: i for i, sid in enumerate(toy.meta["sample_id"])}
    idx = np.array([order[sid] for sid in s.meta["sample_id"]])
    for b, tol in (("B8A", 0.5), ("VV", 1e-4), ("temperature_2m", 1e-3), ("total_precipitation", 1e-8),
                   ("elevation", 1e-3)):
        np.testing.assert_allclose(s.x[:, :, s.schema.index(b)], toy.x[idx, :, CROPHARVEST.index(b)], atol=tol)
    assert set(s.meta["start_date"]) == {"2021-01-01"}


def test_incomplete_samples_are_left_out_and_counted_or_refused(tmp_path, toy, caplog):
    p = _write(wc_long_without_vv(toy), tmp_path / "long.parquet")
    s, rep = read_table(p, table_mapping("worldcereal", **WC_CODES))
    reason = "no value of band 'VV' (column 'S1-SIGMA0-VV') at any step"
    assert rep["left_out"] == {reason: 5} and len(s) == len(toy) - 5 and rep["samples_in_table"] == len(toy)
    assert any("left out 5 of" in r.getMessage() and "S1-SIGMA0-VV" in r.getMessage() for r in caplog.records)
    with pytest.raises(DataError, match=rf"^{p}: 5 sample\(s\) incomplete: no value of band 'VV' \(column "
                                        r"'S1-SIGMA0-VV'\) at any step \('toy-.*'.*--strict refuses"):
        read_table(p, table_mapping("worldcereal", strict=True, **WC_CODES))


def test_a_band_that_is_filler_everywhere_is_dropped_or_refused(tmp_path, toy):
    p = _write(wc_b8a_filler(toy), tmp_path / "b8a.csv")
    s, rep = read_table(p, table_mapping("worldcereal", **WC_CODES))
    assert "B8A" not in s.schema.bands and len(s) == len(toy) and "B8" in s.schema.bands
    assert rep["dropped_bands"] == {"B8A": "band 'B8A' (column 'S2-L2A-B8A') has no value in any sample"}
    with pytest.raises(DataError, match=rf"^{p}: band 'B8A' \(column 'S2-L2A-B8A'\) has no value in any sample "
                                        r"\(--strict refuses"):
        read_table(p, table_mapping("worldcereal", strict=True, **WC_CODES))


def test_dekads_on_any_day_become_months_by_median(tmp_path, toy):
    rng = np.random.default_rng(0)
    df = wc_dekads(toy, rng)
    p = _write(df, tmp_path / "dekads.parquet")
    s, rep = read_table(p, table_mapping("worldcereal", months="2021-01:2021-12", **WC_CODES))
    assert s.t == 12 and s.schema.step == "month" and rep["composited"]["most_rows_in_one_step"] == 3
    # a month's B4 is the median of its clear dekads (all equal to the month's value here)
    order = {sid: i for i, sid in enumerate(toy.meta["sample_id"])}
    idx = np.array([order[sid] for sid in s.meta["sample_id"]])
    month = pd.to_datetime(df["timestamp"]).dt.month.to_numpy()
    year = pd.to_datetime(df["timestamp"]).dt.year.to_numpy()
    has = (df.assign(ok=df["S2-L2A-B04"] != 65535, m=month)[year == 2021].groupby(["sample_id", "m"])["ok"].any())
    seen = np.array([[has.get((sid, k + 1), False) for k in range(12)] for sid in s.meta["sample_id"]])
    got, want = s.x[:, :, s.schema.index("B4")], toy.x[idx, :, CROPHARVEST.index("B4")]
    assert seen.mean() > 0.8
    np.testing.assert_allclose(got[seen], want[seen], atol=1e-3)
    # without a window: 17 months (the longest span half of the samples reach) from each sample's first
    auto, rep2 = read_table(p, table_mapping("worldcereal", **WC_CODES))
    assert rep2["window"]["steps"] == 17 and auto.t == 17 and "13–17 months" in rep2["window"]["rule"]
    assert set(auto.meta["start_date"]) == {"2020-09-01", "2021-01-01"}
    # kept as dekads: the 5th/15th/25th fall in the first/second/third dekad
    dek, _ = read_table(p, table_mapping("worldcereal", step="dekad", months="2021-01:2021-12", **WC_CODES))
    assert dek.t == 36 and dek.schema.step == "dekad"


def test_modis_16_day_composites_become_months(tmp_path, toy):
    df = modis(toy)
    p = _write(df, tmp_path / "mod13q1.csv")
    s, rep = read_table(p, table_mapping(**MODIS_MAP))
    assert s.t == 12 and s.schema.bands == ("NDVI", "EVI", "B2", "B4", "B8", "B11")
    assert rep["composited"]["most_rows_in_one_step"] == 2 and rep["composited"]["observations"] == 23 * len(toy)
    order = {sid: i for i, sid in enumerate(toy.meta["sample_id"])}
    idx = np.array([order[sid] for sid in s.meta["sample_id"]])
    np.testing.assert_allclose(s.x[:, :, s.schema.index("B8")], np.round(toy.x[idx, :, CROPHARVEST.index("B8")]),
                               atol=1e-3)
    assert set(s.meta.loc[s.meta["is_crop"] == 1, "label"]) == set(MODIS_CLASSES)


def test_per_date_s2_observations_with_a_cloud_fraction(tmp_path, toy):
    rng = np.random.default_rng(1)
    p = _write(s2_observations(toy, rng), tmp_path / "fis.parquet")
    s, rep = read_table(p, table_mapping(**S2_MAP))
    assert s.t == 12 and rep["rows_not_clear"] == 12 * len(toy) and rep["clear_rule"] == "column 'cloud_frac' <= 0.1"
    order = {sid: i for i, sid in enumerate(toy.meta["sample_id"])}
    idx = np.array([order[sid] for sid in s.meta["sample_id"]])
    np.testing.assert_allclose(s.x[:, :, s.schema.index("B8")], toy.x[idx, :, CROPHARVEST.index("B8")], atol=0.05)
    assert "NDVI" in s.schema.bands  # derived from B8/B4
    # both products in one table: refused, naming the column that tells them apart
    with pytest.raises(InputError, match=rf"^{p}: duplicate \(sample, date\) rows .*differ in column 'level' "
                                         r"\(L1C, L2A\): keep one with --where level=L1C"):
        read_table(p, table_mapping(**{k: v for k, v in S2_MAP.items() if k != "where"}))
    with pytest.raises(InputError, match=rf"^{p}: --where level=L3 matches no row; column 'level' holds 'L1C', 'L2A'"):
        read_table(p, table_mapping(**{**S2_MAP, "where": {"level": "L3"}}))


def test_error_lists_of_columns_stay_short(tmp_path, toy):
    p = _write(wc_wide(toy), tmp_path / "wide.parquet")
    with pytest.raises(InputError) as e:
        read_table(p, table_mapping("worldcereal", label_column="ewoc_cod", **WC_CODES))
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400 and "did you mean 'ewoc_code'?" in msg and "more)" in msg


# ---- ingest, train, compare ----------------------------------------------------------------------
LAYOUTS = {
    "worldcereal-wide": (lambda toy, rng: wc_wide(toy), "parquet", dict(preset="worldcereal", **WC_CODES)),
    "worldcereal-long-incomplete": (lambda toy, rng: wc_long_without_vv(toy), "parquet",
                                    dict(preset="worldcereal", **WC_CODES)),
    "worldcereal-dekads": (wc_dekads, "parquet", dict(preset="worldcereal", months="2021-01:2021-12", **WC_CODES)),
    "b8a-filler": (lambda toy, rng: wc_b8a_filler(toy), "csv", dict(preset="worldcereal", **WC_CODES)),
    "modis-16-day": (lambda toy, rng: modis(toy), "csv", MODIS_MAP),
    "s2-per-date": (s2_observations, "parquet", S2_MAP),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_ingests_trains_and_compares(tmp_path, toy, layout):
    from cropmeta.app.compare import compare
    from cropmeta.app.train import train

    build, suffix, opts = LAYOUTS[layout]
    p = _write(build(toy, np.random.default_rng(2)), tmp_path / f"t.{suffix}")
    opts = dict(opts)
    preset = opts.pop("preset", None)
    months = opts.pop("months", None)
    res = ingest(table=p, table_mapping=table_mapping(preset, **opts), months=months, home=tmp_path / "h",
                 progress=False)
    assert sorted(res.datasets) == ["kenya", "togo", "uganda"]
    assert load_datasets(tmp_path / "h").t == 12
    out = train("uganda", home=tmp_path / "h", out=tmp_path / "run", overrides=TINY, seed=0)
    assert 0.0 <= out["metrics"]["auc_roc"] <= 1.0
    rep = compare("uganda", home=tmp_path / "h", seeds=1, shots="8", methods="timl,random-forest", config=TINY,
                  calib_folds=0, progress=False, n_boot=10, out=tmp_path / "cmp")
    cells = {c["method"]: c for c in rep["cells"]}
    assert set(cells) == {"timl", "random-forest"} and all(c["n_train"] == 8 for c in cells.values())
    assert all(np.isfinite(c["metrics"]["auc_roc"]) for c in cells.values())


# ---- the real files in ../shared (skip without them) ---------------------------------------------


def test_real_worldcereal_wide_table_ingests_through_the_cli(tmp_path, shared_data):
    import json

    from cropmeta.io.store import read_samples
    from test_issue14 import cli

    src = shared_data / "worldcereal_canada_aafc" / "worldcereal_testdf.parquet"
    r = cli("ingest", "--table", str(src), "--table-mapping", "worldcereal-landcover",
            "--home", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    assert "no column for preset band(s) B9" in r.stderr and "left out 4 of 500 sample(s)" in r.stderr
    spain = tmp_path / "h" / "datasets" / "spain"
    s = read_samples(spain)
    assert s.t == 12 and "B8A" in s.schema.bands and "B9" not in s.schema.bands and s.schema.name == "worldcereal"
    rep = json.loads(spain.joinpath("report.json").read_text())
    assert rep["table"]["preset_layout"] == "worldcereal wide" and rep["table"]["samples_in_table"] == 500
    # units as WorldCereal documents them: S1 in dB, temperature in K
    vv, temp = s.x[:, :, s.schema.index("VV")], s.x[:, :, s.schema.index("temperature_2m")]
    assert -30 < np.median(vv) < 0 and 260 < np.median(temp) < 310


def test_real_worldcrops_per_date_series_ingest_through_the_cli(tmp_path, shared_data):
    from cropmeta.io.store import read_samples
    from test_issue14 import cli

    d = shared_data / "worldcrops_s2_fis"
    r = cli("ingest", "--table", str(d / "s2_field_timeseries.parquet"), "--labels", str(d / "labels.parquet"),
            "--table-mapping", "worldcrops-s2-fis", "--where", "level=L2A",
            "--home", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    kenya = read_samples(tmp_path / "h" / "datasets" / "western_kenya__plantvillage")
    assert kenya.t == 12 and kenya.schema.step == "month" and "NDVI" in kenya.schema.bands
    assert 300 <= len(kenya) <= 319 and (kenya.meta["label"] == "maize").sum() >= 180
    assert set(kenya.meta["start_date"]) == {"2019-01-01"}
    b8 = kenya.x[:, :, kenya.schema.index("B8")]
    assert 1000 < np.median(b8) < 6000  # reflectance x 10 000
    bavaria = [p for p in (tmp_path / "h" / "datasets").iterdir() if p.name.startswith("bavaria")]
    assert len(bavaria) == 1 and (read_samples(bavaria[0]).meta["label"] == "maize").sum() >= 40


@pytest.mark.parametrize("case", ["long-incomplete", "b8a-filler"])
def test_cli_strict_refuses_in_one_line_and_writes_nothing(tmp_path, toy, case):
    from test_issue14 import cli

    df = wc_long_without_vv(toy) if case == "long-incomplete" else wc_b8a_filler(toy)
    p = _write(df, tmp_path / "t.csv")
    flags = ["--preset", "worldcereal", "--crop-values", WC_CODES["crop_values"], "--non-crop-values",
             WC_CODES["non_crop_values"], "--home", str(tmp_path / "h")]
    r = cli("ingest", "--table", str(p), "--strict", *flags)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and str(p) in r.stderr, r.stderr
    assert ("'S1-SIGMA0-VV'" in r.stderr and "5 sample(s)" in r.stderr) if case == "long-incomplete" \
        else "(column 'S2-L2A-B8A') has no value in any sample" in r.stderr
    assert not (tmp_path / "h" / "datasets").exists()
    r = cli("ingest", "--table", str(p), *flags)  # without --strict: ingests, says what it left out
    assert r.returncode == 0 and "warning:" in r.stderr and (tmp_path / "h" / "datasets" / "uganda").exists()


# ---- the three real time-series sets of issue 27: fixtures in their layouts, and the real files ---
def cawa_flat(toy) -> pd.DataFrame:
    """CAWa's flattened MODIS table: one row per field, NDVI at X1, X17 … X353 (day of the field's
    year), a ``year`` column, double-crop labels, no id column."""
    rows = []
    doys = [1 + 16 * k for k in range(23)]
    for i, (lat, lon) in enumerate(_latlon(toy)):
        year = 2016 + i % 3
        r = {"region": toy.meta["region"][i], "year": year, "lat": lat, "lon": lon,
             "label_1": ("cotton" if i % 2 else "wheat-rice") if toy.meta["is_crop"][i] == 1 else "fallow",
             "split": toy.meta["split"][i]}
        for d in doys:
            month = (pd.Timestamp(year, 1, 1) + pd.Timedelta(days=d - 1)).month
            r[f"X{d}"] = _v(toy, i, month - 1, "NDVI")
        rows.append(r)
    return pd.DataFrame(rows)


def test_cawa_wide_modis_by_day_of_year(tmp_path, toy):
    p = _write(cawa_flat(toy), tmp_path / "cawa_flat.parquet")
    s, rep = read_table(p, table_mapping(mapping_file="cawa-modis-ndvi"))
    assert s.schema.bands == ("NDVI",) and s.t == 12 and rep["sample_ids"].startswith("row numbers")
    assert set(s.meta["start_date"]) == {"2016-01-01", "2017-01-01", "2018-01-01"}
    np.testing.assert_allclose(s.x[:, :, 0], toy.x[:, :, CROPHARVEST.index("NDVI")], atol=1e-6)
    assert set(s.meta["label"].dropna()) == {"cotton", "wheat"} and (s.meta["is_crop"] == 0).sum() > 0


def test_real_time_series_sets_ingest_through_the_cli(tmp_path, shared_data):
    """CAWa MODIS NDVI and the Canada WorldCereal long extraction (WorldCrops: above)."""
    from cropmeta.datasets import load_datasets
    from test_issue14 import cli

    r = cli("ingest", "--table", str(shared_data / "cawa_modis_ndvi" / "cawa_flat.parquet"), "--table-mapping",
            "cawa-modis-ndvi", "--home", str(tmp_path / "cawa"))
    assert r.returncode == 0, r.stderr
    cawa = load_datasets(tmp_path / "cawa")
    assert cawa.schema.bands == ("NDVI",) and set(cawa.meta["region"]) == {"Fergana", "Samarkand", "Kashkadarya",
                                                                           "Khorezm", "Dushanbe"}
    assert (cawa.meta["label"] == "cotton").sum() > 3000
    src = shared_data / "worldcereal_canada_aafc" / "test_long_parquet_2017_CAN_AAFC-ACIGTD.parquet"
    r = cli("ingest", "--table", str(src), "--table-mapping", "worldcereal-croptype", "--home", str(tmp_path / "can"))
    assert r.returncode == 0, r.stderr
    can = load_datasets(tmp_path / "can")
    assert len(can) == 3621 and can.t == 12 and (can.meta["label"] == "maize").sum() == 517
    assert -25 < np.nanmedian(can.x[:, :, can.schema.index("VV")]) < 0


def test_a_quality_column_keeps_only_clear_observations(tmp_path, toy):
    """MODIS-style pixel reliability: rows whose quality is not one of quality_values are not used."""
    df = modis(toy)
    df["reliability"] = 0
    cloudy = df.index % 2 == 1
    df.loc[cloudy, "reliability"] = 3
    df.loc[cloudy, "nir"] = 99999  # what a cloudy composite would hold
    p = _write(df, tmp_path / "q.csv")
    s, rep = read_table(p, table_mapping(quality_column="reliability", quality_values="0,1", **MODIS_MAP))
    assert rep["rows_not_clear"] == int(cloudy.sum()) and rep["clear_rule"] == "column 'reliability' in ['0', '1']"
    assert np.nanmax(s.x[:, :, s.schema.index("B8")]) < 99999
    with pytest.raises(InputError, match=r"quality_column 'reliability' needs quality_values"):
        read_table(p, table_mapping(quality_column="reliability", **MODIS_MAP))


def test_wide_per_date_geoparquet_becomes_months(tmp_path, toy):
    """Acquisition dates in the column names (NDVI_2021-01-04 …), points as GeoParquet geometry."""
    import geopandas as gpd

    rows = []
    for i, (lat, lon) in enumerate(_latlon(toy)):
        r = {"sample_id": toy.meta["sample_id"][i], "label": "maize" if toy.meta["is_crop"][i] == 1 else "non-crop",
             "split": toy.meta["split"][i], "lat": lat, "lon": lon}
        for k in range(12):
            v = _v(toy, i, k, "NDVI")
            r[f"NDVI_2021-{k + 1:02d}-05"] = v - 0.01
            r[f"NDVI_2021-{k + 1:02d}-20"] = v + 0.01
        rows.append(r)
    df = pd.DataFrame(rows)
    g = gpd.GeoDataFrame(df.drop(columns=["lat", "lon"]), geometry=gpd.points_from_xy(df["lon"], df["lat"]),
                         crs="EPSG:4326")
    p = tmp_path / "wide.geoparquet"
    g.to_parquet(p)
    s, rep = read_table(p, table_mapping("ndvi", layout="wide"))
    assert s.t == 12 and rep["composited"]["most_rows_in_one_step"] == 2
    order = {sid: i for i, sid in enumerate(toy.meta["sample_id"])}
    idx = np.array([order[sid] for sid in s.meta["sample_id"]])
    np.testing.assert_allclose(s.x[:, :, 0], toy.x[idx, :, CROPHARVEST.index("NDVI")], atol=1e-5)
