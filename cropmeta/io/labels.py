"""Label files → labelled points (EPSG:4326) in cropmeta's metadata layout.

Formats: GeoJSON, GeoPackage, Shapefile, GeoParquet (read with geopandas/pyogrio) and CSV or plain
Parquet with latitude/longitude columns. A directory is read as the concatenation of every label
file under it. Polygons become their centroid, computed in the local UTM zone (a metric CRS) and
taken back to EPSG:4326; the polygon itself is kept in the ``footprint`` column so that sampling
can instead take every pixel inside it (``polygons="pixels"`` in :mod:`cropmeta.io.sampling`).
Multi-points are exploded into points (file formats and geometry: :mod:`cropmeta.io.vectors`).

Result columns: ``sample_id, lat, lon, is_crop (1/0/-1), label, crop_group, dataset, split,
start_date, class_value, source_file, footprint, geometry`` plus ``region``/``tile``/``field_id`` when
the file has them (see :data:`cropmeta.io.store.META_COLUMNS`; ``field_id``: the field or polygon a
point lies in, or the column named by ``field_column``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from cropmeta.logs import log
from cropmeta.errors import DataError, InputError
from cropmeta.io.vectors import missing_column, read_vector_frame, to_points
from cropmeta.crops import crop_group_of, normalise_crop

#: suffixes picked up when a directory is given (``.json`` and ``.csv`` are skipped there: STAC
#: catalogues and documentation tables; give such files by name)
DIR_SUFFIXES = (".geojson", ".gpkg", ".shp", ".fgb", ".parquet", ".geoparquet", ".zip")
#: class values that mean "crop" without naming a crop type
GENERIC_CROP_WORDS = {"crop", "crops", "cropland", "croplands", "1", "true", "yes", "y"}
_TRUE = {"1", "true", "yes", "y", "crop", "t"}
_FALSE = {"0", "false", "no", "n", "non_crop", "noncrop", "non-crop", "f"}
#: columns carried over from the file when present
PASSTHROUGH = ("region", "tile", "field_id")

OUTPUT_COLUMNS = ["sample_id", "lat", "lon", "is_crop", "label", "crop_group", "dataset", "split",
                  "start_date", "class_value", "source_file"]


def normalised_value(v) -> str | None:
    """A class value as a comparable string (None for missing); 1.0 → '1'."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    if isinstance(v, (bool, np.bool_)):
        v = int(v)
    return str(v).strip().lower()


def _split_values(values) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = values.split(",")
    out = [normalised_value(v) for v in values]
    return [v for v in out if v]


def _is_crop(path: Path, gdf: pd.DataFrame, class_column, crop_values, crop_type_column, default_is_crop) -> np.ndarray:
    n = len(gdf)
    if class_column is not None:
        if class_column not in gdf.columns:
            raise missing_column(path, "class", class_column, gdf.columns)
        vals = [normalised_value(v) for v in gdf[class_column]]
        wanted = _split_values(crop_values)
        if wanted:
            have = {v for v in vals if v is not None}
            missing = [w for w in wanted if w not in have]
            if missing and len(missing) < len(wanted):  # a list for several files: say which match nothing here
                log.warning("%s: --crop-values %s match no row of class column %r", path, ", ".join(missing),
                            class_column)
            elif missing and have:  # no value matches: every label would silently become non-crop
                import difflib

                near = [m for w in missing for m in difflib.get_close_matches(w, sorted(have), n=1, cutoff=0.5)]
                shown = sorted(have)[:8]
                raise InputError(
                    f"{path}: --crop-values {', '.join(missing)} match(es) no row of class column {class_column!r}"
                    f"{f' (did you mean {near[0]!r}?)' if near else ''}; it holds {', '.join(map(repr, shown))}"
                    f"{f' and {len(have) - len(shown)} more' if len(have) > len(shown) else ''} (compared case-"
                    "insensitively)")
            return np.array([-1 if v is None else int(v in wanted) for v in vals], dtype=np.int8)
        out = np.full(n, -1, dtype=np.int8)
        unknown = set()
        for i, v in enumerate(vals):
            if v is None or v == "-1":
                continue
            if v in _TRUE:
                out[i] = 1
            elif v in _FALSE:
                out[i] = 0
            else:
                unknown.add(v)
        if unknown:
            shown = sorted(unknown)[:10]
            raise InputError(
                f"{path}: class column {class_column!r} holds values {shown}{' …' if len(unknown) > 10 else ''} "
                "that are not 0/1; name the crop value(s) with crop_values= / --crop-values V1,V2"
            )
        return out
    if "is_crop" in gdf.columns:
        v = pd.to_numeric(gdf["is_crop"], errors="coerce").fillna(-1).astype(int).to_numpy()
        if not np.isin(v, (-1, 0, 1)).all():
            raise InputError(f"{path}: column 'is_crop' must hold 1, 0 or -1")
        return v.astype(np.int8)
    if default_is_crop is not None:
        return np.full(n, int(default_is_crop), dtype=np.int8)
    if crop_type_column is not None:  # every row names the crop grown in it
        return np.ones(n, dtype=np.int8)
    raise InputError(
        f"{path}: cannot tell crop from non-crop: no 'is_crop' column; name the class column and its crop "
        f"value(s) (--class-column, --crop-values), or, for a file of one class, --file-class crop|non-crop; "
        f"available columns: "
        f"{', '.join(str(c) for c in gdf.columns if c not in ('geometry', 'footprint', '_row'))}"
    )


def _read_one(path: Path, tag: str, dataset: str | None, class_column, crop_values, crop_type_column, layer,
              lat_column, lon_column, crs, id_column, default_is_crop,
              field_column=None) -> tuple[gpd.GeoDataFrame, int]:
    gdf = read_vector_frame(path, layer, lat_column, lon_column, crs)
    if len(gdf) == 0:
        raise DataError(f"{path}: the file has no features (no rows)")
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise InputError(f"{path}: no geometry column")
    if gdf.crs is None:
        if crs is None:
            raise InputError(f"{path}: the file declares no coordinate reference system; pass its CRS "
                             "(crs= / --crs, e.g. EPSG:4326)")
        gdf = gdf.set_crs(crs)
    elif crs is not None and gdf.crs != CRS.from_user_input(crs) and path.suffix.lower() not in (".csv", ".txt"):
        raise InputError(f"{path}: declares CRS {gdf.crs.to_string()} but crs={crs!r} was given; drop one")
    for col, what in ((crop_type_column, "crop type"), (id_column, "id"), (field_column, "field id")):
        if col is not None and col not in gdf.columns:
            raise missing_column(path, what, col, gdf.columns)
    if class_column is not None and class_column not in gdf.columns:
        raise missing_column(path, "class", class_column, gdf.columns)
    empty = gdf.geometry.isna() | gdf.geometry.is_empty
    n_empty = int(empty.sum())
    gdf = gdf[~empty.to_numpy()].copy()
    gdf["_row"] = np.arange(len(gdf)) if n_empty == 0 else np.where(~empty.to_numpy())[0]
    gdf = to_points(path, gdf)

    is_crop = _is_crop(path, gdf, class_column, crop_values, crop_type_column, default_is_crop)
    if len(is_crop) and (is_crop < 0).all():
        col = class_column or "is_crop"
        raise DataError(f"{path}: no labelled rows ({len(is_crop)} rows, all missing in column {col!r})")
    class_value = ([normalised_value(v) for v in gdf[class_column]] if class_column is not None else [None] * len(gdf))

    if crop_type_column is not None:
        labels = [normalise_crop(normalised_value(v)) for v in gdf[crop_type_column]]
    elif "label" in gdf.columns:
        labels = [normalise_crop(normalised_value(v)) for v in gdf["label"]]
    elif class_column is not None and _split_values(crop_values):
        labels = [None if v in GENERIC_CROP_WORDS else normalise_crop(v) for v in class_value]
    else:
        labels = [None] * len(gdf)
    labels = [lab if c == 1 else None for lab, c in zip(labels, is_crop)]
    if "crop_group" in gdf.columns and crop_type_column is None:
        groups = [None if normalised_value(g) is None else str(g) for g in gdf["crop_group"]]
    else:
        groups = [crop_group_of(lab) for lab in labels]
    groups = ["non_crop" if c == 0 else (g if c == 1 else None) for g, c in zip(groups, is_crop)]

    if id_column is not None:
        ids = gdf[id_column].astype(str).to_numpy()
    elif "sample_id" in gdf.columns:
        ids = gdf["sample_id"].astype(str).to_numpy()
    else:
        ids = np.array([f"{tag}:{r}" for r in gdf["_row"]])

    if "split" in gdf.columns:
        split = gdf["split"].astype(str).str.lower().to_numpy()
        bad = sorted(set(split) - {"train", "test"})
        if bad:
            raise InputError(f"{path}: column 'split' must be 'train' or 'test', found {bad[:5]}")
    elif "is_test" in gdf.columns:
        split = np.where(gdf["is_test"].fillna(False).astype(bool), "test", "train")
    else:
        split = np.full(len(gdf), "train")
    if dataset is None:
        ds = gdf["dataset"].astype(str).to_numpy() if "dataset" in gdf.columns else np.full(len(gdf), tag.split(":")[0])
    else:
        ds = np.full(len(gdf), dataset)
    start = (gdf["start_date"].map(lambda v: None if normalised_value(v) is None else str(v)[:10])
             if "start_date" in gdf.columns else [None] * len(gdf))

    out = pd.DataFrame({
        "sample_id": ids,
        "lat": gdf.geometry.y.to_numpy(dtype=float),
        "lon": gdf.geometry.x.to_numpy(dtype=float),
        "is_crop": is_crop,
        "label": pd.Series(labels, dtype=object),
        "crop_group": pd.Series(groups, dtype=object),
        "dataset": ds,
        "split": split,
        "start_date": pd.Series(list(start), dtype=object),
        "class_value": pd.Series(class_value, dtype=object),
        "source_file": str(path),
    })
    out.attrs["split_given"] = "split" in gdf.columns or "is_test" in gdf.columns
    for col in PASSTHROUGH:
        src = field_column if col == "field_id" and field_column is not None else col
        if src in gdf.columns:
            vals = gdf[src].astype(object).where(gdf[src].notna(), None).to_numpy()
            out[col] = [None if v is None else str(v) for v in vals] if col == "field_id" else vals
    out = gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(gdf.geometry.to_numpy(), crs="EPSG:4326"), crs="EPSG:4326")
    out["footprint"] = gpd.GeoSeries(gdf["footprint"].to_numpy(), crs="EPSG:4326")
    bad_coord = ~(out["lat"].between(-90, 90) & out["lon"].between(-180, 180))
    if bad_coord.any():
        raise InputError(f"{path}: {int(bad_coord.sum())} label(s) have coordinates outside lat ±90 / lon ±180 "
                         "after reprojection to EPSG:4326 (wrong CRS, or lat/lon columns swapped?)")
    return out, n_empty


#: ``--file-class`` values: the class of every row of a single-class label file
FILE_CLASSES = {"crop": 1, "non-crop": 0, "non_crop": 0, "noncrop": 0}


def label_options(class_column: str | None = None, crop_values: str | Iterable | None = None,
                  crop_type_column: str | None = None, id_column: str | None = None, layer: str | None = None,
                  lat_column: str | None = None, lon_column: str | None = None, crs: str | None = None,
                  file_class: str | None = None, **extra) -> dict:
    """The keyword arguments of :func:`read_labels` that the command-line flags set (None values
    dropped). ``file_class``: ``crop`` or ``non-crop`` for a file whose rows all have that class
    (how CropHarvest distributes crop-only and non-crop-only files)."""
    opts = {"class_column": class_column, "crop_values": _split_values(crop_values),
            "crop_type_column": crop_type_column, "id_column": id_column, "layer": layer, "lat_column": lat_column,
            "lon_column": lon_column, "crs": crs, **extra}
    if file_class is not None:
        key = str(file_class).strip().lower()
        if key not in FILE_CLASSES:
            raise InputError(f"--file-class {file_class!r}: expected crop or non-crop")
        if class_column is not None:
            raise InputError("--file-class sets the class of every row; drop --class-column (or drop --file-class)")
        opts["default_is_crop"] = FILE_CLASSES[key]
    return {k: v for k, v in opts.items() if v is not None}


def _strip_zip_scheme(path: str | Path) -> str:
    """``zip://archive.zip`` (GDAL/fiona style) → ``archive.zip``."""
    text = str(path)
    return text[len("zip://"):] if text.startswith("zip://") else text


def label_files(path: str | Path) -> list[Path]:
    """The label files a path names: itself, or every label file under a directory (sorted)."""
    path = Path(_strip_zip_scheme(path))
    if not path.exists():
        raise InputError(f"{path}: label file not found")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DIR_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise InputError(f"{path}: directory holds no label files ({', '.join(DIR_SUFFIXES)})")
    return files


def read_labels(
    path: str | Path,
    class_column: str | None = None,
    crop_values: str | Iterable | None = None,
    crop_type_column: str | None = None,
    layer: str | None = None,
    lat_column: str = "lat",
    lon_column: str = "lon",
    crs: str | None = None,
    *,
    id_column: str | None = None,
    dataset: str | None = None,
    default_is_crop: int | None = None,
    field_column: str | None = None,
) -> gpd.GeoDataFrame:
    """Read a label file (or every label file under a directory) → EPSG:4326 points.

    - ``class_column`` + ``crop_values`` (list or ``"V1,V2"``): rows whose class (case-insensitive) is
      one of ``crop_values`` are crop (1), other classes non-crop (0), empty classes unlabelled (-1);
      without ``crop_values`` the class must be 0/1 (or true/false, crop/non_crop). The class value of
      a crop row is its ``label`` unless it is generic ("crop", "1"…) or ``crop_type_column`` is given.
    - without ``class_column``: an ``is_crop`` column is used; else ``default_is_crop`` (0/1 for the
      whole file); else, with ``crop_type_column``, every row is a crop of that type.
    - ``crop_type_column``: the crop grown (→ ``label`` lower case, ``crop_group``).
    - ``lat_column``/``lon_column``: coordinates of CSV / plain Parquet tables; ``crs``: the CRS of
      files that declare none (tables default to EPSG:4326).
    - ``id_column``: sample ids (default: ``sample_id`` column, else ``<file>:<row>``).
    - ``field_column``: the field (polygon) each point lies in (→ ``field_id``; default: a
      ``field_id`` column when present). Points of one field are one cluster of the comparison's
      field-clustered bootstrap.

    Missing columns raise :class:`InputError` naming the column and listing the available ones.
    ``attrs["dropped_empty_geometry"]`` counts rows without geometry (dropped).
    """
    root = Path(_strip_zip_scheme(path))
    files = label_files(root)
    frames, n_empty, split_given = [], 0, False
    for f in files:
        if root.is_dir():
            rel = f.relative_to(root).with_suffix("")
            tag = root.name if len(files) == 1 else ":".join((root.name,) + rel.parts)
            ds = dataset or root.name
        else:
            tag = f.stem
            ds = dataset
        gdf, empty = _read_one(f, tag, ds, class_column, crop_values, crop_type_column, layer, lat_column,
                               lon_column, crs, id_column, default_is_crop, field_column)
        split_given |= bool(gdf.attrs.get("split_given"))
        frames.append(gdf)
        n_empty += empty
    out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    out["footprint"] = gpd.GeoSeries(out["footprint"], crs="EPSG:4326")
    if out.empty:
        raise DataError(f"{root}: no labels with a geometry")
    out.attrs["source"] = str(root)
    out.attrs["dropped_empty_geometry"] = n_empty
    out.attrs["split_given"] = split_given  # a 'split' / 'is_test' column said which rows are test
    return out


# --------------------------------------------------------------------------------------------------
# CropHarvest benchmark label sets rebuilt from the raw files
# --------------------------------------------------------------------------------------------------
#: the four Togo labeller files (CropHarvest ``process_labels/raw_data/togo``) and their label column
TOGO_EVAL_FILES = {
    "random_sample_hrk": "hrk-label",
    "random_sample_cn": "cn_labels",
    "BB_random_sample_1k": "bb_label",
    "random_sample_bm": "bm_labels",
}
TOGO_EVAL_ROWS = 351
#: Togo export window (12 x 30 days ending 2020-02-01, as in ``98-togo_2019-02-06_2020-02-01.tif``)
TOGO_START_DATE = "2019-02-06"


def togo_eval_points(directory: str | Path) -> gpd.GeoDataFrame:
    """The Togo evaluation set rebuilt by CropHarvest's rule from its four labeller files.

    Rows are aligned by position (the first 351 of each file, same ``id`` and location), the four 0/1
    votes summed, ties (2 of 4) dropped, and crop = at least 3 of 4 votes. On CropHarvest's raw files
    this gives 306 points (106 crop, 200 non-crop). Column ``votes`` holds the sum.
    """
    directory = Path(directory)
    parts = []
    for sub, col in TOGO_EVAL_FILES.items():
        p = directory / sub
        if not p.exists():
            raise InputError(f"{p}: Togo labeller file missing (expected the four folders "
                             f"{', '.join(TOGO_EVAL_FILES)} under {directory})")
        g = read_labels(p, class_column=col, id_column="id", dataset="togo-eval")
        if len(g) < TOGO_EVAL_ROWS:
            raise DataError(f"{p}: {len(g)} rows, expected at least {TOGO_EVAL_ROWS}")
        parts.append(g.iloc[:TOGO_EVAL_ROWS].reset_index(drop=True))
    first = parts[0]
    votes = np.zeros(TOGO_EVAL_ROWS, dtype=int)
    for g, (sub, col) in zip(parts, TOGO_EVAL_FILES.items()):
        if not (g["sample_id"].to_numpy() == first["sample_id"].to_numpy()).all():
            raise DataError(f"{directory / sub}: ids of the first {TOGO_EVAL_ROWS} rows do not align with "
                            f"{list(TOGO_EVAL_FILES)[0]}")
        off = np.hypot(g["lat"] - first["lat"], g["lon"] - first["lon"]).max()
        if off > 1e-6:
            raise DataError(f"{directory / sub}: locations differ from {list(TOGO_EVAL_FILES)[0]} by up to {off:.2g}°")
        if (g["is_crop"] < 0).any():
            raise DataError(f"{directory / sub}: column {col!r} has empty labels among the first {TOGO_EVAL_ROWS} rows")
        votes += g["is_crop"].to_numpy().astype(int)
    keep = votes != 2
    out = first.loc[keep, ["lat", "lon", "geometry"]].copy()
    out.insert(0, "sample_id", [f"togo-eval:{i}" for i in first.loc[keep, "sample_id"]])
    out["is_crop"] = (votes[keep] >= 3).astype(np.int8)
    out["label"] = None
    out["crop_group"] = pd.Series([None if c == 1 else "non_crop" for c in out["is_crop"]], index=out.index,
                                  dtype=object)
    out["dataset"] = "togo-eval"
    out["split"] = "test"
    out["start_date"] = TOGO_START_DATE
    out["region"] = "Togo"
    out["votes"] = votes[keep]
    out["source_file"] = str(directory)
    return gpd.GeoDataFrame(out.reset_index(drop=True), geometry="geometry", crs="EPSG:4326")
