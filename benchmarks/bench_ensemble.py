"""The ensemble learner's map cost per pixel against the TIML LSTM alone (issue 26).

One run, one machine, one thread, the same pixels (T = 12, the CropHarvest 18 bands):

- ``timl``: cropmeta's TIML model (paper architecture, hidden 128; ``cropmeta.testing.make_timl_run``)
  through its ``Predictor`` — what a TIML map costs;
- ``ensemble``: an ensemble whose prior is that same TIML model plus a forest of ``--trees`` trees
  (default 300, the learner's default) fitted on 400 toy samples — the prior's cost plus the forest's
  (``cropmeta.models.forest.ForestArrays.predict``) plus two rank transforms;
- ``forest``: the forest alone.

Pixels/s are medians over interleaved repetitions; ``ratio`` = ensemble seconds ÷ TIML seconds.

    .venv/bin/python benchmarks/bench_ensemble.py            # ~1 min on 2 cores
    .venv/bin/python benchmarks/bench_ensemble.py --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import command_line, machine, summarize, write_result  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pixels", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.pixels, args.reps, args.trees = 2000, 2, 30
    import torch

    from cropmeta.learners.ensemble import EnsembleModel, rank_transform
    from cropmeta.models.forest import fit_forest
    from cropmeta.testing import make_timl_run, toy_samples
    from cropmeta.train.checkpoint import load_predictor

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        timl = load_predictor(make_timl_run(Path(d) / "run", t=12))
    toy = toy_samples(n_per_label=100, n_noncrop=200, t=12, seed=0)
    y = toy.meta["is_crop"].to_numpy().astype(int)
    forest = fit_forest(toy.x.reshape(len(toy.x), -1), y, args.trees, seed=0)
    oof_p = timl.model.predict_proba(toy.x)
    oof_f = forest.predict(toy.x.reshape(len(toy.x), -1))
    ens = EnsembleModel(timl.model, forest, 0.5, (4.0, -2.0), oof_p, oof_f)
    x = toy_samples(n_per_label=args.pixels // 4, n_noncrop=args.pixels // 2, t=12, seed=1).x[: args.pixels]
    check = ens.predict_proba(x[:100])
    want = 1 / (1 + np.exp(-(4.0 * (0.5 * rank_transform(oof_p, timl.model.predict_proba(x[:100]))
                                    + 0.5 * rank_transform(oof_f, forest.predict(x[:100].reshape(100, -1)))) - 2.0)))
    assert np.allclose(check, want)
    fns = {"timl": lambda: timl.predict_proba(x, calibrated=False), "ensemble": lambda: ens.predict_proba(x),
           "forest": lambda: forest.predict(x.reshape(len(x), -1))}
    times: dict = {k: [] for k in fns}
    for _ in range(args.reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    px = {k: summarize([len(x) / t for t in v]) for k, v in times.items()}
    ratio = summarize([e / t for e, t in zip(times["ensemble"], times["timl"])])
    result = {"benchmark": "ensemble map cost per pixel", "command": command_line("bench_ensemble.py", argv),
              "machine": machine(), "pixels": len(x), "reps": args.reps, "trees": args.trees,
              "forest_nodes": int(len(forest.left)), "pixels_per_s": px, "ensemble_over_timl_seconds": ratio}
    path = write_result("bench_ensemble", result, args.out)
    print(f"TIML {px['timl']['median']:.0f} px/s, ensemble {px['ensemble']['median']:.0f} px/s, forest alone "
          f"{px['forest']['median']:.0f} px/s ({args.trees} trees, {len(forest.left)} nodes); ensemble / TIML time "
          f"{ratio['median']:.2f}×  → {path}")
    return result


if __name__ == "__main__":
    main()
