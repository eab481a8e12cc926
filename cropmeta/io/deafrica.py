"""Digital Earth Africa's crop-mask training data as a :class:`~cropmeta.io.store.SampleSet`.

The raw files (``shared/data/deafrica_cropmask/raw/``, see its ``SOURCE.md``; they are read where
they lie, never copied into the project) hold 30,065 crop / non-crop labels in 8 regions, each a
row of 16 features for the two half-year seasons of 2019 (Sentinel-2 geomedian bands, MADs, NDVI,
LAI, MNDWI, CHIRPS rain) plus the static slope. The band schema :data:`DEAFRICA` therefore has 16
dynamic bands over ``t = 2`` steps of one ``season`` each, and the slope as its static band (NDVI is
one of the features: no derived index).

Where samples are:

- 3 regions (eastern, northern, western) have a row-aligned file of EPSG:6933 coordinates: each
  point is transformed to EPSG:4326 and assigned the Natural Earth 1:50m country (``NAME_EN``) it
  lies in; a point outside every polygon (on the coast) takes the nearest country within
  :data:`COAST_TOLERANCE_M`, else its DE Africa region's name;
- the 5 other regions have no coordinates: every sample gets the centroid of the region outline
  (``raw/<region>_region.geojson``, computed in its equal-area EPSG:6933) and ``region`` = the
  region's name (``central``, ``sahel`` …); ``location`` says which of the two a sample has.

The benchmark protocol (:func:`benchmark_countries`, :func:`target_view`), fixed before any result:
the targets are the countries with at least :data:`MIN_PER_CLASS` crop and as many non-crop labels
(16). Each target's labels are split once, stratified by class, into a training pool and a test set
(:data:`TEST_FRACTION` = ½ of each class to test, the permutation seeded by :data:`SPLIT_SEED` and
the country's name); the shots are drawn from the pool. Every other sample (other countries,
coordinate-less regions, countries with fewer labels) is training data of the other tasks. There
are no fields: each point is its own cluster in the bootstrap.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from cropmeta.bandschema import BandSchema
from cropmeta.errors import DataError, InputError

#: the 8 DE Africa regions, in file order
REGIONS = ("central", "eastern", "indian_ocean", "northern", "sahel", "south_eastern", "southern", "western")
#: regions with a row-aligned coordinates file (EPSG:6933 metres)
COORDINATE_FILES = {
    "eastern": "eastern_training_data_coordinates_20210427.txt",
    "northern": "northern_training_data_coordinates_20210803.txt",
    "western": "western_training_data_coordinates_20210609.txt",
}
FEATURES = ("blue", "green", "red", "nir", "swir_1", "swir_2", "red_edge_1", "red_edge_2", "red_edge_3",
            "bcdev", "edev", "sdev", "NDVI", "LAI", "MNDWI", "rain")
SEASONS = ("S1", "S2")
STATIC = ("slope",)
#: the columns of a ``<region>_training_data.txt`` after its leading ``#``
COLUMNS = ("Class", *[f"{f}_{s}" for s in SEASONS for f in FEATURES], *STATIC)
_UNITS = {**{b: "surface reflectance (0–1)" for b in FEATURES[:9]}, "bcdev": "MAD (Bray-Curtis)",
          "edev": "MAD (Euclidean)", "sdev": "MAD (spectral angle)", "NDVI": "index", "LAI": "m²/m²",
          "MNDWI": "index", "rain": "mm per season (CHIRPS)", "slope": "degrees"}
DEAFRICA = BandSchema("deafrica-2season", dynamic=FEATURES, static=STATIC, t=2, step="season", units=_UNITS)
#: the first day of each season (S1 Jan–Jun 2019, S2 Jul–Dec 2019)
START_DATE = "2019-01-01"
CRS = "EPSG:6933"
COAST_TOLERANCE_M = 25_000.0
MIN_PER_CLASS = 30
TEST_FRACTION = 0.5
SPLIT_SEED = 0


def data_root(root: str | Path | None = None) -> Path:
    """The ``deafrica_cropmask`` folder: ``root`` (that folder, or a ``shared`` folder holding
    ``data/deafrica_cropmask``), else ``$CROPMETA_SHARED/data/deafrica_cropmask``, else the
    project's sibling ``../shared``. :class:`InputError` when none exists."""
    from cropmeta.io.shared_data import shared_folder

    return shared_folder("deafrica_cropmask", root, lambda c: (c / "raw").is_dir(), "DE Africa crop-mask data",
                         "pass --root FOLDER (the deafrica_cropmask folder with raw/) or set CROPMETA_SHARED")


def natural_earth_file(root: Path) -> Path:
    """``natural_earth_admin0_50m/ne_50m_admin_0_countries.shp`` beside the DE Africa folder."""
    p = Path(root).parent / "natural_earth_admin0_50m" / "ne_50m_admin_0_countries.shp"
    if not p.exists():
        raise InputError(f"{p}: Natural Earth countries not found (needed to assign DE Africa points to countries)")
    return p


def read_table(path: str | Path) -> pd.DataFrame:
    """One ``<region>_training_data.txt``: checked header (exactly :data:`COLUMNS`), numeric, finite,
    ``Class`` 0/1. Errors name the file and the column."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    with path.open() as fh:
        first = fh.readline()
    if not first.startswith("#"):
        raise DataError(f"{path}: the first line must be the header '# Class blue_S1 … slope', got {first[:60]!r}")
    header = first.lstrip("#").split()
    if tuple(header) != COLUMNS:
        missing = [c for c in COLUMNS if c not in header]
        extra = [c for c in header if c not in COLUMNS]
        what = (f"missing column(s) {missing}" if missing else "") + (f" extra column(s) {extra}" if extra else "")
        raise DataError(f"{path}: unexpected header ({what.strip() or 'columns in another order'})")
    df = pd.read_csv(path, sep=r"\s+", header=None, skiprows=1, names=header, dtype=str)
    out = pd.DataFrame(index=df.index)
    for c in header:
        v = pd.to_numeric(df[c], errors="coerce")
        bad = v.isna() | ~np.isfinite(v.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{path}: column {c!r} row {i + 2}: {df[c].iloc[i]!r} is not a finite number")
        out[c] = v.astype(np.float64)
    cls = out["Class"].to_numpy()
    if not np.isin(cls, [0.0, 1.0]).all():
        i = int(np.argmax(~np.isin(cls, [0.0, 1.0])))
        raise DataError(f"{path}: column 'Class' row {i + 2}: {cls[i]} is neither 1 (crop) nor 0 (non-crop)")
    return out


def to_array(table: pd.DataFrame) -> np.ndarray:
    """``[N, 2, 17]`` float32 in :data:`DEAFRICA`'s band order (slope repeated at both steps)."""
    slope = table["slope"].to_numpy(np.float32)[:, None]
    steps = [np.concatenate([table[[f"{f}_{s}" for f in FEATURES]].to_numpy(np.float32), slope], axis=1)
             for s in SEASONS]
    return np.stack(steps, axis=1)


def read_coordinates(path: str | Path, n_rows: int) -> np.ndarray:
    """``[N, 2]`` EPSG:6933 (x, y) of a coordinates file, which must have ``n_rows`` rows."""
    path = Path(path)
    try:
        xy = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read coordinates ({e})") from e
    if xy.shape != (n_rows, 2):
        raise DataError(f"{path}: expected {n_rows} rows of 2 coordinates (row-aligned with the training data), "
                        f"got {list(xy.shape)}")
    if not np.isfinite(xy).all():
        raise DataError(f"{path}: row {int(np.argmax(~np.isfinite(xy).all(axis=1))) + 1}: coordinate not finite")
    return xy


def assign_countries(x: np.ndarray, y: np.ndarray, countries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(country or None, lon, lat) of EPSG:6933 points: the Natural Earth ``NAME_EN`` polygon a point lies
    in, else the nearest within :data:`COAST_TOLERANCE_M` (distance measured in EPSG:6933)."""
    import geopandas as gpd

    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=CRS)
    ll = pts.to_crs("EPSG:4326")
    lon, lat = ll.geometry.x.to_numpy(), ll.geometry.y.to_numpy()
    shapes = countries[["NAME_EN", "geometry"]]
    hit = gpd.sjoin(ll, shapes, how="left", predicate="within")
    hit = hit[~hit.index.duplicated(keep="first")].reindex(ll.index)
    name = np.array([v if isinstance(v, str) else None for v in hit["NAME_EN"]], dtype=object)
    out = np.where(pd.isna(name))[0]
    if len(out):
        near = gpd.sjoin_nearest(pts.iloc[out], shapes.to_crs(CRS), how="left", distance_col="dist")
        near = near[~near.index.duplicated(keep="first")]
        ok = near["dist"].to_numpy() <= COAST_TOLERANCE_M
        name[near.index.to_numpy()[ok]] = near["NAME_EN"].to_numpy()[ok]
    return name, lon, lat


def region_centroid(path: str | Path) -> tuple[float, float]:
    """(lat, lon) of a region outline's centroid, computed in EPSG:6933 (equal area)."""
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: region outline not found")
    g = gpd.read_file(path)
    g = g.set_crs(CRS) if g.crs is None else g.to_crs(CRS)
    c = gpd.GeoSeries([g.geometry.union_all().centroid], crs=CRS).to_crs("EPSG:4326").iloc[0]
    return float(c.y), float(c.x)


def load_deafrica(root: str | Path | None = None, regions=REGIONS):
    """Every label of ``regions`` (default all 8) as one :class:`~cropmeta.io.store.SampleSet` in
    :data:`DEAFRICA`, with the benchmark split in ``split`` (see the module doc)."""
    import geopandas as gpd

    from cropmeta.io.store import SampleSet, make_meta

    root = data_root(root)
    raw = root / "raw"
    countries = None
    xs, metas = [], []
    for reg in regions:
        if reg not in REGIONS:
            raise InputError(f"unknown DE Africa region {reg!r}; regions: {', '.join(REGIONS)}")
        table = read_table(raw / f"{reg}_training_data.txt")
        n = len(table)
        meta = pd.DataFrame({"sample_id": [f"deafrica:{reg}:{i}" for i in range(n)],
                             "is_crop": table["Class"].to_numpy().astype(np.int8),
                             "deafrica_region": reg, "dataset": f"deafrica-{reg}", "start_date": START_DATE})
        if reg in COORDINATE_FILES:
            if countries is None:
                countries = gpd.read_file(natural_earth_file(root)).set_crs("EPSG:4326", allow_override=True)
            xy = read_coordinates(raw / COORDINATE_FILES[reg], n)
            name, meta["lon"], meta["lat"] = assign_countries(xy[:, 0], xy[:, 1], countries)
            meta["region"] = [c if c is not None else reg for c in name]
            meta["location"] = "point"
        else:
            meta["lat"], meta["lon"] = region_centroid(raw / f"{reg}_region.geojson")
            meta["region"] = reg
            meta["location"] = "region-centroid"
        xs.append(to_array(table))
        metas.append(meta)
    meta = pd.concat(metas, ignore_index=True)
    meta["label"] = None
    meta["crop_group"] = np.where(meta["is_crop"].to_numpy() == 0, "non_crop", None)
    meta["split"] = benchmark_split(meta)
    return SampleSet(np.concatenate(xs), make_meta(meta), DEAFRICA)


def benchmark_countries(meta: pd.DataFrame, min_per_class: int = MIN_PER_CLASS) -> list[str]:
    """The countries (samples with point coordinates) with ≥ ``min_per_class`` crop and non-crop labels, sorted."""
    pts = meta[meta["location"].astype(str) == "point"] if "location" in meta.columns else meta
    counts = pd.crosstab(pts["region"].astype(str), pts["is_crop"].astype(int))
    counts = counts.reindex(columns=[0, 1], fill_value=0)
    keep = counts[(counts[0] >= min_per_class) & (counts[1] >= min_per_class)]
    return sorted(str(c) for c in keep.index if c not in REGIONS)


def benchmark_split(meta: pd.DataFrame, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> np.ndarray:
    """``'test'`` for a stratified ``test_fraction`` of each benchmark country's labels, ``'train'``
    elsewhere. The permutation of a country depends on ``seed`` and the country's name only."""
    split = np.full(len(meta), "train", dtype=object)
    region = meta["region"].astype(str).to_numpy()
    y = meta["is_crop"].to_numpy()
    for c in benchmark_countries(meta):
        h = int(hashlib.sha256(c.encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng([int(seed), h])
        for cls in (0, 1):
            idx = np.where((region == c) & (y == cls))[0]
            n_test = int(round(len(idx) * float(test_fraction)))
            split[rng.permutation(idx)[:n_test]] = "test"
    return split
