"""Adaptation cost and training throughput: the in-context learner vs TIML fine-tuning.

Measures, on the same data, target and seed:

- meta-training throughput (outer steps per second) of the in-context learner and of TIML (quick
  preset: 16 tasks per step, first order), ``--steps`` steps each;
- **adaptation cost per target task** — wall time and FLOPs (``torch.utils.flop_counter``) of
  adapting to ``--shots`` labelled samples and predicting the target's test set: TIML fine-tunes
  (``ft_steps`` SGD steps), the in-context learner reads the support set (no gradient step);
- the per-pixel prediction cost (FLOPs per sample) of both, which is what map export pays.

With ``--train`` both learners are meta-trained to the preset's full length first and the held-out
AUC / F1 of the adapted models is recorded too (accuracy against compute). Writes
``benchmarks/results/incontext.json``.

    python benchmarks/bench_incontext.py --data toy            # seconds, no ingestion
    python benchmarks/bench_incontext.py --data sim --train    # simulated world, kenya (minutes)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from _common import machine  # noqa: E402


def _flops(fn):
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    with FlopCounterMode(display=False) as fc:
        out = fn()
    return out, wall, int(fc.get_total_flops())


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["toy", "sim"], default="toy")
    ap.add_argument("--region", default="kenya")
    ap.add_argument("--shots", type=int, default=20)
    ap.add_argument("--steps", type=int, default=10, help="outer steps timed per learner")
    ap.add_argument("--train", action="store_true", help="meta-train both to the preset length and evaluate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "incontext.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)

    from cropmeta.metrics import binary_metrics
    from cropmeta.tasks import resolve_target, target_data
    from cropmeta.train import finetune, predict_proba
    from cropmeta.train.config import resolve_config
    from cropmeta.train.incontext import meta_train_incontext
    from cropmeta.train.incontext_model import adapt
    from cropmeta.train.incontext_model import predict_proba as ic_predict
    from cropmeta.train.maml import meta_train

    if a.data == "toy":
        from cropmeta.testing import toy_samples

        samples = toy_samples(n_per_label=40, n_noncrop=60, t=12, seed=a.seed)
    else:
        from cropmeta.app.samples import load_samples

        samples = load_samples(None, seed=0)
    task = resolve_target(samples, a.region)
    td = target_data(samples, task, shots=a.shots, seed=a.seed)
    cfg = resolve_config("quick")
    rec: dict = {"benchmark": "incontext", "command": "python benchmarks/bench_incontext.py " + " ".join(argv or sys.argv[1:]),
                 "data": a.data, "target": task.id, "shots": a.shots, "n_test": int(len(td.y_test)),
                 "machine_before": machine(), "config": {"preset": "quick", "tasks_per_step": cfg.tasks_per_step,
                                                           "ft_steps": cfg.ft_steps}}

    # ---- meta-training throughput -----------------------------------------------------------------
    thr = {}
    for name, fn in (("in-context", lambda c: meta_train_incontext(samples, task, c, a.seed)),
                     ("timl", lambda c: meta_train(samples, task, c, learner="timl", seed=a.seed))):
        c = cfg.replace(iterations=a.steps, val_every=10**6)
        t0 = time.perf_counter()
        fn(c)
        dt = time.perf_counter() - t0
        thr[name] = {"steps": a.steps, "seconds": round(dt, 3), "steps_per_s": round(a.steps / dt, 3)}
    rec["meta_train_throughput"] = thr

    # ---- models to adapt ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    ic_model = meta_train_incontext(samples, task, cfg if a.train else cfg.replace(iterations=2), a.seed)
    ic_train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    timl_model = meta_train(samples, task, cfg if a.train else cfg.replace(iterations=2), learner="timl", seed=a.seed)
    timl_train_s = time.perf_counter() - t0

    # ---- adaptation cost per task ---------------------------------------------------------------------
    cost = {}
    ft, wall, fl = _flops(lambda: finetune(timl_model, td.x_train, td.y_train, task.info, cfg, seed=a.seed))
    p_timl, pwall, pfl = _flops(lambda: predict_proba(ft, td.x_test))
    cost["timl"] = {"adapt_s": round(wall, 4), "adapt_flops": fl, "predict_s": round(pwall, 4), "predict_flops": pfl,
                    "predict_flops_per_sample": pfl / max(1, len(td.x_test)), "gradient_steps": cfg.ft_steps}
    ad, wall, fl = _flops(lambda: adapt(ic_model, td.x_train, td.y_train, task.info, seed=a.seed))
    p_ic, pwall, pfl = _flops(lambda: ic_predict(ad, td.x_test))
    cost["in-context"] = {"adapt_s": round(wall, 4), "adapt_flops": fl, "predict_s": round(pwall, 4),
                          "predict_flops": pfl, "predict_flops_per_sample": pfl / max(1, len(td.x_test)),
                          "gradient_steps": 0, "support_chunks": int(-(-len(td.y_train) // ad.max_support))}
    for k in cost:
        cost[k]["adapt_plus_predict_s"] = round(cost[k]["adapt_s"] + cost[k]["predict_s"], 4)
        cost[k]["adapt_plus_predict_flops"] = cost[k]["adapt_flops"] + cost[k]["predict_flops"]
    rec["adaptation_cost"] = cost
    rec["ratios"] = {
        "timl_over_incontext_adapt_plus_predict_flops": round(
            cost["timl"]["adapt_plus_predict_flops"] / max(1, cost["in-context"]["adapt_plus_predict_flops"]), 2),
        "timl_over_incontext_adapt_plus_predict_s": round(
            cost["timl"]["adapt_plus_predict_s"] / max(1e-9, cost["in-context"]["adapt_plus_predict_s"]), 2),
        "incontext_over_timl_predict_flops_per_sample": round(
            cost["in-context"]["predict_flops_per_sample"] / max(1, cost["timl"]["predict_flops_per_sample"]), 2),
    }
    if a.train:
        rec["trained"] = {
            "timl": {"meta_train_s": round(timl_train_s, 1), **{k: binary_metrics(td.y_test, p_timl)[k] for k in ("auc_roc", "f1")}},
            "in-context": {"meta_train_s": round(ic_train_s, 1), **{k: binary_metrics(td.y_test, p_ic)[k] for k in ("auc_roc", "f1")}},
        }
    rec["machine_after"] = {"load_average": machine()["load_average"]}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2, default=float))
    print(json.dumps({k: rec[k] for k in ("meta_train_throughput", "adaptation_cost", "ratios", *(["trained"] if a.train else []))},
                     indent=2, default=float))
    return rec


if __name__ == "__main__":
    main()
