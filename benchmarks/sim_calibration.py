"""Difficulty calibration of the simulated world against the published CropHarvest random-forest
AUC-ROC (Presto paper, Tseng et al. 2023, table 12: Kenya maize 0.578, Brazil coffee 0.941, Togo
crop 0.892), plus the time and size of the default world.

Protocol (:func:`cropmeta.sim.calibrate.rf_auc`): ``RandomForestClassifier()`` with scikit-learn's
defaults (random_state fixed), flattened normalised T x 18 features of the target's training pool,
AUC-ROC on its test set; samples read back from the world's GeoTIFFs. Each seed's world is built
with only the three target regions (their data are byte-identical to the full world's: every
region has its own random streams).

    python benchmarks/sim_calibration.py [--seeds 0,1,2,3,4] [--no-full-world]

Prints the three AUCs beside the targets (mean and per seed) and writes
``benchmarks/results/sim_calibration.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cropmeta.io.atomic import atomic_write_text  # noqa: E402
from cropmeta.sim import generate_world  # noqa: E402
from cropmeta.sim.calibrate import PUBLISHED_RF_AUC, TOLERANCE, rf_auc  # noqa: E402
from cropmeta.sim.params import load_params  # noqa: E402


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4", help="world seeds (comma separated)")
    ap.add_argument("--no-full-world", action="store_true", help="skip timing the default world")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "sim_calibration.json"))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    p = load_params()
    targets = p.targets()
    regions = [t["region"] for t in targets.values()]
    per_seed: dict[str, list[dict]] = {k: [] for k in targets}
    with tempfile.TemporaryDirectory(prefix="cropmeta-sim-cal-") as tmp:
        for seed in seeds:
            w = generate_world(Path(tmp) / f"seed-{seed}", seed=seed, scene_size=32, regions=regions)
            for key in targets:
                r = rf_auc(w, key, random_state=0)
                r["seed"] = seed
                per_seed[key].append(r)
                print(f"seed {seed}  {key:7s} AUC {r['auc_roc']:.3f}  (train {r['n_train']}, "
                      f"{r['pos_train']} pos; test {r['n_test']}, {r['pos_test']} pos)", flush=True)
        full = None
        if not args.no_full_world:
            t0, c0 = time.perf_counter(), time.process_time()
            w = generate_world(Path(tmp) / "default", seed=0)
            full = {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
                    "bytes": _du(w), "files": sum(1 for q in w.rglob("*.tif")),
                    "samples": json.loads((w / "world.json").read_text())["n_samples"]}
    summary = {}
    print(f"\n{'target':8s} {'published':>9s} {'simulated':>9s} {'diff':>7s}  per seed")
    for key, rows in per_seed.items():
        aucs = [r["auc_roc"] for r in rows]
        mean = float(np.mean(aucs))
        pub = PUBLISHED_RF_AUC[key]
        ok = abs(mean - pub) <= TOLERANCE
        summary[key] = {"published": pub, "mean": round(mean, 4), "sd": round(float(np.std(aucs, ddof=1)), 4)
                        if len(aucs) > 1 else None, "diff": round(mean - pub, 4), "within_tolerance": ok,
                        "per_seed": {str(r["seed"]): round(r["auc_roc"], 4) for r in rows},
                        "n_train": rows[0]["n_train"], "n_test": rows[0]["n_test"]}
        print(f"{key:8s} {pub:9.3f} {mean:9.3f} {mean - pub:+7.3f}  "
              + " ".join(f"{a:.3f}" for a in aucs) + ("" if ok else "  OUTSIDE +-%.2f" % TOLERANCE))
    if full:
        print(f"\ndefault world (seed 0): {full['wall_s']} s wall, {full['cpu_s']} s CPU, "
              f"{full['bytes'] / 1e6:.1f} MB in {full['files']} GeoTIFFs, {full['samples']} labelled points")
    out = {
        "protocol": "sklearn RandomForestClassifier() defaults (random_state=0) on flattened normalised "
                    "T x 18 features of the target's training pool; AUC-ROC on its test set",
        "published_source": "Tseng et al. 2023 (Presto), table 12, Random Forest",
        "tolerance": TOLERANCE,
        "seeds": seeds,
        "world_version": p.version,
        "targets": summary,
        "default_world": full,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
