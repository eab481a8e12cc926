"""Map accuracy against truth: per-pixel confusion matrix, F1, AUC, and the mapped crop area with its
error-adjusted estimate and 95 % confidence interval (Olofsson et al. 2014, "Good practices for
estimating area and assessing accuracy of land change", Remote Sensing of Environment 148: 42–57,
eqs. 9–10), in hectares.

Areas are computed in an equal-area projection (World Cylindrical Equal Area, ``ESRI:54034``):
each pixel's four corners are projected and the quadrilateral's area taken — never in degrees.
The map is streamed block by block, so assessing a large map needs little memory.

Truth is either a raster (e.g. the simulated scene's ``truth.tif``: 1 crop, 0 not, anything else
ignored), warped onto the map's grid with nearest resampling when its grid differs, or a point
label file (GeoParquet / GeoJSON / GeoPackage / CSV with ``lat``, ``lon``) with an ``is_crop``
column (1/0; −1 ignored). The strata of the area estimator are the map's classes, weighted by
their mapped area; the reference sample is every truth pixel (or ``per_class`` pixels drawn at
random from each map class, Olofsson's stratified random design) or the label points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.windows import Window
from sklearn import metrics as skm

from cropmeta.logs import log
from cropmeta.errors import InputError
from cropmeta.regions import EQUAL_AREA_CRS

Z95 = 1.959963984540054


# ------------------------------------------------------------------------------------------------
# the stratified estimator
# ------------------------------------------------------------------------------------------------
#: fewer reference points of a class than this: the report says its metrics are unreliable
SMALL_SAMPLE = 30


def small_sample_notes(counts) -> list[str]:
    """Why some numbers are missing or unreliable for a confusion matrix ``counts`` (reference ×
    map): a mapped class with fewer than 2 reference points has no error-adjusted area; fewer than
    :data:`SMALL_SAMPLE` points of a reference class give wide, unreliable accuracies."""
    counts = np.asarray(counts)
    notes = []
    per_map = counts.sum(axis=0)
    per_ref = counts.sum(axis=1)
    names = ("non-crop", "crop")
    short = [names[k] for k in range(2) if per_map[k] < 2]
    if short:
        notes.append(f"no error-adjusted area (null): the map class(es) {', '.join(short)} hold fewer than 2 "
                     f"reference points ({int(per_map[0])} non-crop, {int(per_map[1])} crop); Olofsson's estimator "
                     "needs 2 in every mapped class")
    few = [f"{int(per_ref[k])} {names[k]}" for k in range(2) if per_ref[k] < SMALL_SAMPLE]
    if few:
        notes.append(f"only {', '.join(few)} reference point(s): accuracies and areas from so few points are "
                     f"unreliable (≥ {SMALL_SAMPLE} per class is a common minimum)")
    return notes


def olofsson_area(counts, mapped_area, z: float = Z95) -> dict:
    """Stratified area estimator of Olofsson et al. (2014).

    counts: ``[K, K]`` reference sample counts, rows = map class (stratum), columns = reference class.
    mapped_area: ``[K]`` mapped area of each class (any unit; the results are in the same unit).
    Returns per reference class: ``area`` (error-adjusted), ``se``, ``ci`` (half-width, z·SE), and
    ``users_accuracy`` (per map class), ``producers_accuracy`` (per reference class), ``overall_accuracy``.
    NaN where a stratum with mapped area has fewer than 2 reference samples."""
    n = np.asarray(counts, dtype=np.float64)
    a_m = np.asarray(mapped_area, dtype=np.float64)
    k = len(a_m)
    if n.shape != (k, k):
        raise InputError(f"confusion counts {n.shape} do not match {k} mapped areas")
    total = a_m.sum()
    if total <= 0:
        raise InputError("the map has no mapped area to assess")
    w = a_m / total
    n_i = n.sum(axis=1)
    present = w > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n_i[:, None] > 0, n / n_i[:, None], np.nan)  # n_ij / n_i.
        p = w[:, None] * frac  # estimated area proportions p_ij
        p[~present] = 0.0
        p_j = p.sum(axis=0)
        var_terms = w[:, None] ** 2 * frac * (1 - frac) / (n_i[:, None] - 1)
        var_terms[~present] = 0.0
        var_terms[present & (n_i < 2)] = np.nan
        se = np.sqrt(var_terms.sum(axis=0))
        p_i = p.sum(axis=1)
        ua = np.diag(p) / p_i
        pa = np.diag(p) / p_j
    if (present & (n_i == 0)).any():
        p_j = np.full(k, np.nan)
    return {
        "area": total * p_j,
        "se": total * se,
        "ci": z * total * se,
        "proportion": p_j,
        "users_accuracy": ua,
        "producers_accuracy": pa,
        "overall_accuracy": float(np.nansum(np.diag(p))) if not np.isnan(p_j).any() else float("nan"),
    }


# ------------------------------------------------------------------------------------------------
# pixel areas in an equal-area projection
# ------------------------------------------------------------------------------------------------
def pixel_areas(transform, crs, window: Window, area_crs: str = EQUAL_AREA_CRS,
                _cache: dict | None = None) -> np.ndarray:
    """Area (m²) of each pixel of ``window`` ``[h, w]``: corners projected to ``area_crs``, shoelace."""
    if crs is None:
        raise InputError("the map has no CRS: pixel areas cannot be computed")
    key = (str(crs), area_crs)
    tr = _cache.get(key) if _cache is not None else None
    if tr is None:
        tr = Transformer.from_crs(crs, area_crs, always_xy=True)
        if _cache is not None:
            _cache[key] = tr
    r0, c0, h, w = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
    cols, rows = np.meshgrid(np.arange(c0, c0 + w + 1, dtype=np.float64), np.arange(r0, r0 + h + 1, dtype=np.float64))
    xs = transform.c + cols * transform.a + rows * transform.b
    ys = transform.f + cols * transform.d + rows * transform.e
    X, Y = tr.transform(xs, ys)
    X, Y = np.asarray(X), np.asarray(Y)
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise InputError(f"pixel corners cannot be projected to {area_crs} (non-finite coordinates)")
    # corners: a=(i,j) b=(i,j+1) c=(i+1,j+1) d=(i+1,j)
    xa, ya = X[:-1, :-1], Y[:-1, :-1]
    xb, yb = X[:-1, 1:], Y[:-1, 1:]
    xc, yc = X[1:, 1:], Y[1:, 1:]
    xd, yd = X[1:, :-1], Y[1:, :-1]
    area = 0.5 * np.abs((xa * yb - xb * ya) + (xb * yc - xc * yb) + (xc * yd - xd * yc) + (xd * ya - xa * yd))
    return area


# ------------------------------------------------------------------------------------------------
# assess
# ------------------------------------------------------------------------------------------------
def _levels(prob: np.ndarray, is_u8: bool) -> np.ndarray:
    """Probability → integer level: the uint8 value itself, or float rounded to 1e-4."""
    if is_u8:
        return prob.astype(np.int64)
    return np.rint(np.clip(prob, 0, 1) * 10000).astype(np.int64)


def _binary_scores(tn: float, fp: float, fn: float, tp: float) -> dict:
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 0, 1])
    wts = np.array([tn, fp, fn, tp], dtype=np.float64)
    keep = wts > 0
    if not keep.any():
        raise InputError("no map pixel has a truth value: the truth does not overlap the map")
    yt, yp, sw = y_true[keep], y_pred[keep], wts[keep]
    kw = dict(sample_weight=sw, zero_division=0)
    return {
        "f1": float(skm.f1_score(yt, yp, labels=[0, 1], **kw)),
        "precision": float(skm.precision_score(yt, yp, labels=[0, 1], **kw)),
        "recall": float(skm.recall_score(yt, yp, labels=[0, 1], **kw)),
        "accuracy": float(skm.accuracy_score(yt, yp, sample_weight=sw)),
        "kappa": float(skm.cohen_kappa_score(yt, yp, sample_weight=sw)) if len(np.unique(np.r_[yt, yp])) > 1 else 0.0,
    }


def _auc(hist: np.ndarray, scale: float) -> float:
    """AUC from per-class histograms of probability levels ``hist [2, L]``; ties count ½ (exact for
    uint8 maps)."""
    if hist[0].sum() == 0 or hist[1].sum() == 0:
        return float("nan")
    lv = np.nonzero(hist.sum(axis=0))[0]
    y = np.r_[np.zeros(len(lv)), np.ones(len(lv))]
    s = np.r_[lv, lv] * scale
    wts = np.r_[hist[0, lv], hist[1, lv]].astype(np.float64)
    keep = wts > 0
    return float(skm.roc_auc_score(y[keep], s[keep], sample_weight=wts[keep]))


def _read_points(path: Path, label_options: dict | None = None, exclude=None) -> tuple:
    """Reference points of a label file, read by the ingestion reader (:func:`read_labels`, so its
    class/value/lon/lat column options apply). Rows a ``split`` column marks as training and rows
    that are training points of the run (``exclude``: ``sample_id``/``lat``/``lon``) are left out
    (matched by id here, by map pixel in :func:`assess`). → (points, classes, crs, counts, exclude)."""
    from cropmeta.io.labels import read_labels

    gdf = read_labels(path, **(label_options or {}))
    split_given = bool(gdf.attrs.get("split_given"))
    counts = {"n_labels_read": int(len(gdf)), "n_unlabelled": int((gdf["is_crop"] < 0).sum()),
              "n_excluded_train_split": 0, "n_excluded_training_points": 0}
    gdf = gdf[gdf["is_crop"] >= 0]
    if split_given:
        train = (gdf["split"].astype(str) == "train").to_numpy()
        counts["n_excluded_train_split"] = int(train.sum())
        gdf = gdf[~train]
    if exclude is not None and len(exclude):
        same_id = gdf["sample_id"].astype(str).isin(set(exclude["sample_id"].astype(str))).to_numpy()
        counts["n_excluded_training_points"] = int(same_id.sum())
        gdf = gdf[~same_id]
    return gdf.geometry, gdf["is_crop"].to_numpy(dtype=np.int64), gdf.crs, counts


def _training_pixels(ds, exclude) -> set:
    """Map pixels (row, col) holding a training point of the run."""
    import geopandas as gpd

    if exclude is None or not len(exclude):
        return set()
    pts = gpd.GeoSeries(gpd.points_from_xy(exclude["lon"], exclude["lat"]), crs="EPSG:4326")
    if ds.crs is not None:
        pts = pts.to_crs(ds.crs)
    return {ds.index(p.x, p.y) for p in pts}


def training_points(run_dir: str | Path):
    """The training points a run saw (``training_points.parquet``, written by ``cropmeta train``), or None."""
    import pandas as pd

    p = Path(run_dir) / "training_points.parquet"
    return pd.read_parquet(p) if p.exists() else None


def assess(map_path: str | Path, truth: str | Path, per_class: int | None = None, seed: int = 0,
           area_crs: str = EQUAL_AREA_CRS, out_json: str | Path | None = None, *,
           label_options: dict | None = None, exclude=None, run_dir: str | Path | None = None) -> dict:
    """Accuracy of a cropmeta map (COG or VRT) against a truth raster or a point label file.

    ``per_class``: draw that many reference pixels at random from each map class (stratified random
    sample, seeded) instead of using every truth pixel. Returns (and writes to ``out_json`` when
    given) a JSON-able dict: confusion matrix, F1/precision/recall/accuracy/kappa, AUC, mapped and
    error-adjusted crop area (ha) with 95 % CI, user's/producer's accuracy.

    A point label file is read like an ingested one (``label_options``: ``class_column``,
    ``crop_values``, ``lat_column``, ``lon_column``, ...); only points the run did not train on count:
    rows its ``split`` column marks ``train`` and the run's training points (``exclude``, or those
    saved in ``run_dir``; matched by id or map pixel) are left out and counted in the report."""
    if exclude is None and run_dir is not None:
        exclude = training_points(run_dir)
    map_path, truth = Path(map_path), Path(truth)
    if not map_path.exists():
        raise InputError(f"{map_path}: map not found")
    if not truth.exists():
        raise InputError(f"{truth}: truth file not found")
    raster_truth = truth.suffix.lower() in (".tif", ".tiff", ".vrt")
    rng = np.random.default_rng(seed)
    cache: dict = {}
    with rasterio.open(map_path) as ds:
        if ds.count < 2:
            raise InputError(f"{map_path}: expected bands 'probability' and 'class', found {ds.count} band(s)")
        is_u8 = ds.dtypes[0] == "uint8"
        scale = 0.01 if is_u8 else 1e-4
        n_levels = 101 if is_u8 else 10001
        thr = ds.tags(2).get("threshold")
        mapped = np.zeros(2)  # m² per map class
        counts = np.zeros((2, 2))  # [map class, reference class]
        hist = np.zeros((2, n_levels))
        ref_area = np.zeros(2)
        sample_keys: list = [None, None]  # per map class: [random keys, truth, level] of the sample
        truth_src = None
        if raster_truth:
            try:
                truth_src = rasterio.open(truth)
            except rasterio.errors.RasterioIOError as e:
                raise InputError(f"{truth}: cannot read truth raster ({e})") from e
            if (truth_src.crs, truth_src.transform, truth_src.width, truth_src.height) != (
                    ds.crs, ds.transform, ds.width, ds.height):
                from rasterio.vrt import WarpedVRT

                # outside the truth's extent: a value that is neither 0 nor 1 (ignored)
                fill = truth_src.nodata if truth_src.nodata is not None else 255
                truth_src = WarpedVRT(truth_src, crs=ds.crs, transform=ds.transform, width=ds.width,
                                      height=ds.height, resampling=rasterio.enums.Resampling.nearest, nodata=fill)
        try:
            for _, win in ds.block_windows(1):
                prob = ds.read(1, window=win, masked=True)
                cls = ds.read(2, window=win, masked=True)
                valid = ~np.ma.getmaskarray(prob) & ~np.ma.getmaskarray(cls)
                if not is_u8:
                    valid &= np.isfinite(prob.filled(np.nan)) & np.isfinite(cls.filled(np.nan))
                if not valid.any():
                    continue
                area = pixel_areas(ds.transform, ds.crs, win, area_crs, cache)
                c = np.where(valid, cls.filled(0), 0).astype(np.int64)
                for k in (0, 1):
                    mapped[k] += area[valid & (c == k)].sum()
                if truth_src is None:
                    continue
                t = truth_src.read(1, window=win, masked=True)
                tmask = np.ma.getmaskarray(t)
                tv = valid & ~tmask
                td = np.ma.getdata(t).astype(np.float64)
                tt = np.where(tmask | ~np.isfinite(td), -1, np.nan_to_num(td, nan=-1)).astype(np.int64)
                tt[(td != 0) & (td != 1)] = -1
                tv &= (tt == 0) | (tt == 1)
                if not tv.any():
                    continue
                for k in (0, 1):
                    ref_area[k] += area[tv & (tt == k)].sum()
                if per_class:
                    lv = _levels(prob.filled(0)[tv], is_u8)
                    keys = rng.random(int(tv.sum()))
                    for k in (0, 1):  # keep the per_class smallest random keys of each stratum
                        m = c[tv] == k
                        kk, tk, lk = sample_keys[k] or (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
                        kk, tk, lk = np.r_[kk, keys[m]], np.r_[tk, tt[tv][m]], np.r_[lk, lv[m]]
                        if len(kk) > per_class:
                            top = np.argpartition(kk, per_class - 1)[:per_class]
                            kk, tk, lk = kk[top], tk[top], lk[top]
                        sample_keys[k] = [kk, tk, lk]
                else:
                    np.add.at(counts, (c[tv], tt[tv]), 1)
                    lv = _levels(prob.filled(0)[tv], is_u8)
                    np.add.at(hist, (tt[tv], lv), 1)
        except rasterio.errors.RasterioError as e:  # rasterio's "Read failed. See previous exception…"
            raise InputError(f"{map_path} / {truth}: cannot read the map or its truth (corrupt or truncated "
                             f"file?): {e}") from e
        finally:
            if truth_src is not None:
                truth_src.close()
        point_counts: dict = {}
        if not raster_truth:
            pts, labels, pcrs, point_counts = _read_points(truth, label_options, exclude)
            pts = pts.to_crs(ds.crs) if ds.crs is not None and pcrs != ds.crs else pts
            pts = pts.representative_point()
            xy = [(p.x, p.y) for p in pts]
            rows_cols = [ds.index(x, y) for x, y in xy]
            trained = _training_pixels(ds, exclude)
            if trained:
                seen = np.array([rc in trained for rc in rows_cols], dtype=bool)
                point_counts["n_excluded_training_points"] += int(seen.sum())
                xy = [v for v, s_ in zip(xy, seen) if not s_]
                rows_cols = [v for v, s_ in zip(rows_cols, seen) if not s_]
                labels = labels[~seen]
            vals = np.array([v for v in ds.sample(xy, indexes=[1, 2], masked=True)]) if xy else np.zeros((0, 2))
            inside = np.array([0 <= r < ds.height and 0 <= cc < ds.width for r, cc in rows_cols], dtype=bool)
            pv = np.ma.getdata(vals).astype(np.float64) if len(vals) else np.zeros((0, 2))
            nod = ds.nodata
            ok = inside.copy()
            if len(pv):
                ok &= np.isfinite(pv).all(axis=1)
                if nod is not None and not np.isnan(nod):
                    ok &= (pv != nod).all(axis=1)
            for (p, mc), tc in zip(pv[ok], labels[ok]):
                counts[int(mc), int(tc)] += 1
                hist[int(tc), _levels(np.array([p]), is_u8)[0]] += 1
            n_outside = int((~ok).sum())
        elif per_class:
            for k in (0, 1):
                if sample_keys[k]:
                    _, tk, lk = sample_keys[k]
                    np.add.at(counts, (np.full(len(tk), k), tk), 1)
                    np.add.at(hist, (tk, lk), 1)
            n_outside = 0
        else:
            n_outside = 0
    tn, fp, fn, tp = counts[0, 0], counts[1, 0], counts[0, 1], counts[1, 1]
    scores = _binary_scores(tn, fp, fn, tp)
    est = olofsson_area(counts, mapped)
    ha = 1e-4
    result = {
        "map": str(map_path),
        "truth": str(truth),
        "truth_kind": "raster" if raster_truth else "points",
        "design": (f"stratified random sample, {per_class} per map class (seed {seed})" if per_class and raster_truth
                   else ("label points" if not raster_truth else "every truth pixel (census)")),
        "threshold": float(thr) if thr is not None else None,
        "n_reference": int(counts.sum()),
        "n_points_outside_map": n_outside if not raster_truth else None,
        **point_counts,
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp),
                             "rows": "reference (0, 1)", "cols": "map (0, 1)",
                             "matrix": [[int(tn), int(fp)], [int(fn), int(tp)]]},
        **scores,
        "auc_roc": _auc(hist, scale),
        "area_crs": area_crs,
        "mapped_area_ha": float(mapped.sum() * ha),
        "mapped_crop_area_ha": float(mapped[1] * ha),
        "adjusted_crop_area_ha": float(est["area"][1] * ha),
        "adjusted_crop_area_se_ha": float(est["se"][1] * ha),
        "adjusted_crop_area_ci95_ha": float(est["ci"][1] * ha),
        "adjusted_crop_area_interval_ha": [float((est["area"][1] - est["ci"][1]) * ha),
                                           float((est["area"][1] + est["ci"][1]) * ha)],
        "users_accuracy_crop": float(est["users_accuracy"][1]),
        "producers_accuracy_crop": float(est["producers_accuracy"][1]),
        "overall_accuracy_area_weighted": est["overall_accuracy"],
        "reference_crop_area_ha": float(ref_area[1] * ha) if raster_truth else None,
    }
    notes = small_sample_notes(counts)
    result["notes"] = notes
    for n in notes:
        log.warning("%s: %s", map_path, n)
    if out_json is not None:
        from cropmeta._fs import atomic_write_text, json_text

        atomic_write_text(out_json, json_text(result))
    return result
