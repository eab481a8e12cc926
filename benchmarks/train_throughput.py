"""Meta-training throughput and the wall time of the default ``cropmeta train`` run.

Measures, on the same data and seed:

- outer steps per second of :func:`cropmeta.train.maml.meta_train` (paper model: LSTM hidden 128,
  T = 12, 18 bands; support 10 + 10, query 4 + 4), first and second order, with the quick preset's
  meta-batch (16 tasks) and the paper's (32 tasks), for the task-batched learn2learn clone
  (``vectorize=True``, the default) and a plain clone-per-task loop (``vectorize=False``);
- optionally 1 vs N torch.distributed ranks (``--nprocs N``, gloo, one thread each);
- the wall time and held-out metrics of the default ``train`` run (quick preset) for the targets
  given with ``--targets`` (on the simulated world: ingested on first use).

Writes ``benchmarks/results/train_throughput.json``. Every number also records the machine's load
average, because these machines are shared.

    python benchmarks/train_throughput.py                      # sim world, kenya end to end
    python benchmarks/train_throughput.py --data toy --targets ''   # throughput only, no ingestion
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cropmeta.train.config import resolve_config  # noqa: E402
from cropmeta.train.maml import meta_train  # noqa: E402


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg": list(os.getloadavg())}


def load_data(kind: str):
    if kind == "toy":
        from cropmeta.testing import toy_samples

        return toy_samples(n_per_label=40, n_noncrop=60, t=12)
    from cropmeta.app.samples import load_samples

    return load_samples(None, 0)


def steps_per_second(samples, target, overrides: dict, steps: int, warmup: int = 2) -> dict:
    cfg = resolve_config("paper", overrides={"val_fraction": 0.0, "remove_auc": None, "iterations": steps + warmup,
                                             **overrides})
    stamps: list[float] = []
    t0 = time.perf_counter()
    meta_train(samples, target, cfg, seed=0, callback=lambda i, rec: stamps.append(time.perf_counter()))
    dts = [b - a for a, b in zip(stamps[warmup - 1 :], stamps[warmup:])]
    med = statistics.median(dts)
    return {"steps_per_s": round(1.0 / med, 3), "median_step_s": round(med, 4), "min_step_s": round(min(dts), 4),
            "max_step_s": round(max(dts), 4), "steps_timed": len(dts), "wall_s": round(time.perf_counter() - t0, 2),
            "loadavg_after": round(os.getloadavg()[0], 2)}


def distributed_rate(samples, target, overrides: dict, steps: int, nprocs: int) -> dict:
    from cropmeta.train.distributed import spawn
    from cropmeta.train.maml import meta_train_worker

    cfg = resolve_config("paper", overrides={"val_fraction": 0.0, "remove_auc": None, "iterations": steps + 2,
                                             "checkpoint_every": 10_000, **overrides})
    with tempfile.TemporaryDirectory() as d:
        spawn(meta_train_worker, nprocs, args=(samples, target, cfg, 0, d, False, False), threads=1)
        log = [json.loads(x) for x in (Path(d) / "log.jsonl").read_text().splitlines()]
    el = [r["elapsed_s"] for r in log]
    dts = [b - a for a, b in zip(el[1:], el[2:])]
    med = statistics.median(dts)
    return {"nprocs": nprocs, "steps_per_s": round(1.0 / med, 3), "median_step_s": round(med, 4),
            "steps_timed": len(dts), "loadavg_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=["sim", "toy"], default="sim")
    ap.add_argument("--steps", type=int, default=6, help="timed outer steps per configuration")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-loop", action="store_true", help="skip the clone-per-task loop variants")
    ap.add_argument("--nprocs", type=int, default=0, help="also time N gloo ranks vs 1 (first order, 16 tasks)")
    ap.add_argument("--targets", default="kenya", help="comma-separated regions for the end-to-end train run")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "train_throughput.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    res: dict = {"machine": machine(), "command": " ".join(["python"] + sys.argv), "data": a.data, "throughput": []}
    samples = load_data(a.data)
    from cropmeta.tasks import resolve_target

    target = resolve_target(samples, "kenya")
    res["n_samples"] = len(samples)
    for first_order in (True, False):
        for batch, name in ((16, "quick"), (32, "paper")):
            for vectorize in ((True,) if a.no_loop else (True, False)):
                over = {"first_order": first_order, "tasks_per_step": batch, "vectorize": vectorize,
                        "threads": a.threads}
                r = steps_per_second(samples, target, over, a.steps)
                row = {"order": "first" if first_order else "second", "batch": name, "tasks_per_step": batch,
                       "vectorize": vectorize, **r}
                res["throughput"].append(row)
                print(json.dumps(row), flush=True)
    for row in res["throughput"]:
        if not row["vectorize"]:
            ref = next(r for r in res["throughput"] if r["vectorize"] and r["order"] == row["order"]
                       and r["batch"] == row["batch"])
            ref["speedup_vs_loop"] = round(ref["steps_per_s"] / row["steps_per_s"], 2)
    if a.nprocs > 1:
        over = {"first_order": True, "tasks_per_step": 16, "threads": 1}
        one = steps_per_second(samples, target, over, a.steps)
        many = distributed_rate(samples, target, over, a.steps, a.nprocs)
        res["distributed"] = {"one_rank": one, "ranks": many,
                              "speedup": round(many["steps_per_s"] / one["steps_per_s"], 2)}
        print(json.dumps(res["distributed"]), flush=True)
    res["train_runs"] = []
    targets = [t for t in a.targets.split(",") if t.strip()]
    if targets and a.data == "sim":
        from cropmeta.app.train import train

        for region in targets:
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                r = train(region, out=Path(d) / "run", preset="quick")
                wall = time.perf_counter() - t0
            row = {"region": region, "target": r["target"]["id"], "wall_s": round(wall, 1), "timings": r["timings"],
                   **{k: round(v, 4) for k, v in r["metrics"].items() if k in ("auc_roc", "f1", "precision", "recall")},
                   "loadavg_after": round(os.getloadavg()[0], 2)}
            res["train_runs"].append(row)
            print(json.dumps(row), flush=True)
    res["machine"]["loadavg_end"] = list(os.getloadavg())
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
