"""The workspace's datasets: writing ingested regions as datasets (atomically, with their
``report.json``), the reports and their summary, and listing, describing and loading the stored
datasets (import them from here); :mod:`cropmeta.ingest`'s entry point
:func:`~cropmeta.ingest.ingest` writes through :func:`write_groups`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cropmeta._fs import atomic_write_text, json_text
from cropmeta._version import __version__
from cropmeta.errors import DataError, InputError
from cropmeta.io.store import SampleSet, dataset_dir, read_report, read_samples, workspace_home, write_samples
from cropmeta.regions import slugify

log = logging.getLogger("cropmeta")


@dataclass
class IngestResult:
    datasets: dict[str, Path] = field(default_factory=dict)  # dataset name (region slug) → directory
    report: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------
def class_balance(meta: pd.DataFrame) -> dict:
    """``{split: {crop, non_crop, unlabelled, labels: {crop type: n}}}``."""
    out = {}
    for split, g in meta.groupby("split", sort=True):
        labels = g.loc[g["is_crop"] == 1, "label"].dropna().astype(str).value_counts()
        out[str(split)] = {"crop": int((g["is_crop"] == 1).sum()), "non_crop": int((g["is_crop"] == 0).sum()),
                           "unlabelled": int((g["is_crop"] == -1).sum()),
                           "labels": {str(k): int(v) for k, v in labels.items()}}
    return out


def _dataset_report(name: str, region: str, samples: SampleSet, extra: dict) -> dict:
    rep = {
        "dataset": name, "region": region, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cropmeta_version": __version__, "t": samples.t, "samples": len(samples),
        "class_balance": class_balance(samples.meta), "data_hash": samples.content_hash(),
    }
    rep.update(extra)
    return rep


def _store_hash(samples: SampleSet) -> str:
    """Hash of everything a dataset stores (arrays and every metadata column but the geometry)."""
    h = hashlib.sha256(np.ascontiguousarray(samples.x).tobytes())
    meta = pd.DataFrame(samples.meta.drop(columns="geometry"))
    h.update(",".join(map(str, meta.columns)).encode())
    h.update(pd.util.hash_pandas_object(meta.astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()[:24]


def _unchanged(out: Path, store_hash: str) -> bool:
    if not ((out / "samples.parquet").exists() and (out / "arrays.nc").exists()):
        return False
    try:
        return read_report(out).get("store_hash") == store_hash
    except (OSError, ValueError):
        return False


def _summary(datasets: dict[str, dict], top: dict) -> dict:
    s = {"datasets": len(datasets),
         "samples": sum(r["samples"] for r in datasets.values()),
         "labels_read": top.get("labels_read", 0)}
    for k in ("labels_outside_region", "labels_outside_all_regions"):
        if k in top:
            s[k] = top[k]
    s["regions_skipped"] = len(top.get("regions_skipped", {}))
    s["outside_raster"] = sum(r.get("outside_raster", 0) for r in datasets.values())
    s["tiles_complete"] = top.get("tiles", {}).get("complete", 0)
    s["tiles_cached"] = top.get("tiles", {}).get("cached", 0)
    s["tiles_failed"] = top.get("tiles", {}).get("failed", 0)
    s["labels_in_failed_tiles"] = sum(r.get("labels_in_failed_tiles", 0) for r in datasets.values())
    s["missing_values_filled"] = (sum(sum(r.get("missing_values", {}).values()) for r in datasets.values())
                                  + sum((top.get("table") or {}).get("missing_values", {}).values()))
    s["datasets_unchanged"] = sum(bool(r.get("unchanged")) for r in datasets.values())
    s["duplicates_dropped"] = sum(r.get("duplicates", {}).get("sample_ids_dropped", 0) for r in datasets.values())
    table = top.get("table") or {}
    for reason, n in (table.get("left_out") or {}).items():
        s[f"left out: {reason}"] = n
    for band in table.get("dropped_bands") or {}:
        s[f"band dropped (no value anywhere): {band}"] = 1
    if table.get("composited"):
        c = table["composited"]
        s["observations composited"] = f"{c['observations']} → {c['values']} ({c['rule']})"
    for split in ("train", "test"):
        for k in ("crop", "non_crop", "unlabelled"):
            s[f"{split}_{k}"] = sum(r["class_balance"].get(split, {}).get(k, 0) for r in datasets.values())
    return s


def write_groups(groups: dict, top: dict, home: Path, pixels: str, replace: bool) -> IngestResult:
    """Write each region's ``(samples, report extras)`` as a workspace dataset, atomically, after
    refusing, before anything is written, to replace an existing dataset with other samples (or one
    of the other kind, simulated vs real) unless ``replace``; the same samples again are "unchanged"."""
    # every existing dataset this ingest would change (other samples, or simulated ↔ real) needs --replace
    clashes = {}
    for name, (samples, _) in groups.items():
        d = dataset_dir(slugify(name), home)
        old = read_report(d) if (d / "samples.parquet").exists() else None
        if old is not None and (dataset_pixels(old) != pixels or old.get("store_hash") != _store_hash(samples)):
            clashes[slugify(name)] = old
    if clashes and not replace:
        slug, old = next(iter(clashes.items()))
        more = f" (and {len(clashes) - 1} other dataset(s))" if len(clashes) > 1 else ""
        raise DataError(
            f"{dataset_dir(slug, home)}: holds the {dataset_pixels(old)} {old.get('region', slug)} dataset "
            f"({old.get('samples', '?')} samples from {old.get('source', '?')}); this {pixels} ingest would replace "
            f"it{more} with other samples. Nothing was written: pass --replace to replace it, or use another "
            "workspace (--home)")
    if clashes:
        top["replaced"] = {slug: f"{dataset_pixels(old)} dataset, {old.get('samples', '?')} samples from "
                                 f"{old.get('source', '?')}" for slug, old in clashes.items()}
        for slug, what in top["replaced"].items():
            log.warning("--replace: dataset %s replaces the %s", slug, what)
    # now write, each dataset atomically
    result = IngestResult(report=top)
    reports = {}
    for name, (samples, extra) in groups.items():
        slug = slugify(name)
        extra = {**extra, "pixels": pixels}
        rep = _dataset_report(slug, name, samples, extra)
        out = dataset_dir(slug, home)
        rep["store_hash"] = _store_hash(samples)
        if _unchanged(out, rep["store_hash"]):
            # idempotent rerun: same samples, so only the report is refreshed (one atomic file write)
            rep["unchanged"] = True
            atomic_write_text(out / "report.json", json_text(rep))
            result.datasets[slug] = out
        else:
            result.datasets[slug] = write_samples(samples, out, report=rep)
        reports[slug] = rep
    top["datasets"] = reports
    top["warnings"] = _t_warnings(reports, home)
    for w in top["warnings"]:
        log.warning("%s", w)
    top["summary"] = _summary(reports, top)
    return result


def dataset_pixels(report: dict) -> str:
    """``"simulated"`` or ``"real"``: the pixels a stored dataset was sampled from (older reports
    without the field: a source inside a simulated world is simulated)."""
    if report.get("pixels") in ("simulated", "real"):
        return report["pixels"]
    src = Path(str(report.get("source") or ""))
    return "simulated" if (src.parent / "world.json").exists() or (src / "world.json").exists() else "real"


def _t_warnings(reports: dict[str, dict], home: Path) -> list[str]:
    """A warning per new dataset whose T differs from the other stored datasets."""
    stored = {n: read_report(dataset_dir(n, home)).get("t") for n in list_datasets(home)}
    out = []
    for slug, rep in reports.items():
        others = {n: t for n, t in stored.items() if n != slug and t is not None and t != rep["t"]}
        if others:
            shown = ", ".join(f"{n} (T={t})" for n, t in sorted(others.items()))
            out.append(f"dataset {slug} has T={rep['t']} time steps, unlike {shown}: training combines datasets of "
                       f"one T; select datasets with --datasets, or re-ingest with --start-month M for a "
                       f"12-step window")
    return out


def list_datasets(home: str | Path | None = None) -> list[str]:
    """Names of the datasets stored in the workspace."""
    base = Path(home) if home is not None else workspace_home()
    d = base / "datasets"
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / "samples.parquet").exists())


def describe_datasets(home: str | Path | None = None, names: list[str] | None = None) -> list[dict]:
    """Which stored datasets ``names`` (default all) are: name, pixels (simulated/real), T, samples, source."""
    base = Path(home) if home is not None else workspace_home()
    out = []
    for n in ([slugify(x) for x in names] if names else list_datasets(base)):
        rep = read_report(dataset_dir(n, base))
        out.append({"dataset": n, "pixels": dataset_pixels(rep), "t": rep.get("t"), "samples": rep.get("samples"),
                    "source": rep.get("source")})
    return out


def load_datasets(home: str | Path | None = None, names: list[str] | None = None) -> SampleSet:
    """Concatenate stored datasets (all, or ``names``: dataset slugs or region names)."""
    base = Path(home) if home is not None else workspace_home()
    have = list_datasets(base)
    if names is None:
        wanted = have
    else:
        wanted = [slugify(n) for n in names]
        missing = [n for n, w in zip(names, wanted) if w not in have]
        if missing:
            raise InputError(f"{base / 'datasets'}: no dataset(s) {missing}; stored: {', '.join(have) or 'none'} "
                             "(run `cropmeta ingest`)")
    if not wanted:
        raise InputError(f"{base / 'datasets'}: no datasets stored; run `cropmeta ingest` first")
    sets = [read_samples(dataset_dir(n, base)) for n in wanted]
    ts: dict[int, list[str]] = {}
    for n, sset in zip(wanted, sets):
        ts.setdefault(sset.t, []).append(n)
    if len(ts) > 1:
        parts = "; ".join(f"T={t}: {', '.join(ns)}" for t, ns in sorted(ts.items()))
        raise InputError(f"{base / 'datasets'}: the datasets have different numbers of time steps ({parts}); "
                         "select datasets of one T with --datasets NAME,... or re-ingest the longer ones with "
                         "--start-month M (a 12-step window)")
    return SampleSet.concat(sets)



__all__ = ["IngestResult", "class_balance", "dataset_pixels", "describe_datasets", "list_datasets", "load_datasets",
           "write_groups"]
