"""Why the in-context learner is flat near chance on DE Africa (issue 26): does it read its support set?

For one DE Africa target (spatial split, leave the country out) and one seed, the in-context learner
is meta-trained on the other countries for several lengths, then predicts the target's test points
from support sets of 20, 64 and all pool labels — with the true labels, and with the same samples'
labels permuted (a learner that reads its support labels loses AUC when they are permuted; one
that ignores them does not). Its own meta-training log gives the query AUC on the *source* tasks.

    python benchmarks/diagnose_incontext.py OUT.json [TARGET] [SEED] [ITERATIONS,...]

Writes JSON: per length, the meta-train / meta-validation query AUC at the end of meta-training,
the seconds it took, and the test AUC per support size, true vs permuted labels.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score


def main(out: str, target: str = "tanzania", seed: int = 5, lengths=(200, 2000)) -> dict:
    from cropmeta.evaluate.across import target_view
    from cropmeta.evaluate.deep import LearnerMethod, resolve_train_config
    from cropmeta.evaluate.targets import build_target, source_samples
    from cropmeta.io.deafrica import load_deafrica
    from cropmeta.tasks import shot_subset

    samples = load_deafrica()
    region = data_region(samples, target)
    view, split = target_view(samples, region)
    data = build_target(view, region, None)
    src = source_samples(view, data, hold_out_region=True)
    result = {"target": target, "seed": seed, "split": split, "lengths": {}}
    rng = np.random.default_rng(seed)
    for n_it in lengths:
        cfg, _ = resolve_train_config("quick", {"threads": 1, "in_context.iterations": int(n_it)})
        m = LearnerMethod("in-context", cfg)
        work = Path(tempfile.mkdtemp(prefix="icl-diag-"))
        t0 = time.perf_counter()
        m.prepare(src, data.task, seed, workdir=work)
        secs = time.perf_counter() - t0
        log = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines() if line.strip()]
        vals = [r for r in log if "meta_val_auc" in r]
        tail = log[-20:]
        row = {"meta_seconds": round(secs, 1), "meta_info": {k: m.base.info.get(k) for k in
                                                              ("iterations", "best_iteration", "best_val_loss")},
               "meta_train_auc_last20": round(float(np.mean([r["meta_train_auc"] for r in tail])), 4),
               "meta_val_auc_last": vals[-1]["meta_val_auc"] if vals else None,
               "meta_val_auc_best": max(r["meta_val_auc"] for r in vals) if vals else None, "support": {}}
        shutil.rmtree(work, ignore_errors=True)
        for k in (20, 64, "all"):
            idx = shot_subset(data.y_train, k, seed)
            x, y = data.x_train[idx], data.y_train[idx]
            p_true = m.fit(x, y, seed=seed).predict_proba(data.x_test)
            p_perm = m.fit(x, rng.permutation(y), seed=seed).predict_proba(data.x_test)
            p_flip = m.fit(x, 1 - y, seed=seed).predict_proba(data.x_test)
            row["support"][str(k)] = {"n": int(len(y)), "auc_true": round(roc_auc_score(data.y_test, p_true), 4),
                                      "auc_permuted": round(roc_auc_score(data.y_test, p_perm), 4),
                                      "auc_flipped": round(roc_auc_score(data.y_test, p_flip), 4),
                                      "mean_abs_change_flipped": round(float(np.mean(np.abs(p_true - p_flip))), 4)}
        result["lengths"][str(n_it)] = row
        print(json.dumps({n_it: row}), flush=True)
    with open(out, "w") as fh:
        json.dump(result, fh, indent=2)
    return result


def data_region(view, key: str) -> str:
    names = sorted(set(view.meta["region"].astype(str)))
    want = key.replace("_", " ").lower()
    return next(n for n in names if n.lower() == want)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1] if len(a) > 1 else "tanzania", int(a[2]) if len(a) > 2 else 5,
         tuple(int(v) for v in a[3].split(",")) if len(a) > 3 else (200, 2000))
