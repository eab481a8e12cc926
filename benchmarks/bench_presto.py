"""Inference cost per pixel: the Presto encoder against the TIML LSTM, in one run, on the same pixels.

For ``--pixels`` canonical samples (the toy generator's, T = ``--t``), on ``--device``:

- **TIML**: :func:`cropmeta.train.trained.predict_proba` of a TIML classifier with its task encoder
  (random initial weights: the cost does not depend on their values), normalisation included;
- **Presto**: the encoder's embedding (:meth:`PrestoEncoder.embed`), alone and end to end with
  :func:`~cropmeta.models.presto.presto_inputs` (normalisation, masks, months). A frozen-embedding
  classifier adds one 128-number dot product per pixel on top.

**Adaptation cost per task** (``--adapt-shots`` labelled samples, default 64, the fine-tuning
protocol of ``quick``: 250 SGD steps of 10 + 10): TIML's fine-tuning of its classifier
(:func:`cropmeta.train.finetune.finetune`), ``presto`` (embed the shots + logistic regression) and
``presto-ft`` (:func:`cropmeta.train.presto_frozen.finetune_presto`: the encoder and head). One timed
run each (``--adapt-reps``), after a warm-up of 5 steps.

Reported: pixels/s (median of ``--reps`` timed runs after one warm-up), FLOPs/pixel
(``torch.utils.flop_counter``: matrix products only, so LayerNorm, softmax and activations are not
counted), their ratios, and what a 100 km² map at 10 m (10⁶ pixels) costs at those rates. Writes
JSON (default ``benchmarks/results/presto.json``).

    python benchmarks/bench_presto.py                          # 4096 pixels, 1 thread, CPU
    python benchmarks/bench_presto.py --pixels 256 --reps 1 --out /tmp/presto.json   # a smoke run
    python benchmarks/bench_presto.py --device cuda --pixels 65536 --batch 16384
"""

from __future__ import annotations

import argparse
import json
import statistics
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

MAP_PIXELS_100KM2 = 10**6  # 100 km² at 10 m


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _measure(fn, n: int, reps: int, device: str) -> dict:
    """Median wall time of ``fn()`` over ``reps`` runs after a warm-up, and its FLOPs."""
    fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    with FlopCounterMode(display=False) as fc:
        fn()
    sec = statistics.median(times)
    return {"seconds": round(sec, 5), "pixels_per_s": round(n / sec, 1), "flops_per_pixel": fc.get_total_flops() / n,
            "map_100km2_seconds": round(MAP_PIXELS_100KM2 / (n / sec), 1)}


def _timed(fn, reps: int) -> dict:
    times = []
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"seconds": round(statistics.median(times), 3), "runs": len(times)}


def _adaptation(a, samples, timl, presto, cfg) -> dict:
    """Seconds to adapt to one task on ``a.adapt_shots`` class-balanced labels, each method's own way."""
    from cropmeta.models.presto import presto_inputs
    from cropmeta.train.finetune import finetune
    from cropmeta.train.presto_frozen import finetune_presto, fit_logistic

    k = a.adapt_shots
    y_all = (np.arange(len(samples.x)) % 2).astype(int)  # labels alternate: the cost does not depend on them
    pos, neg = np.where(y_all == 1)[0][: k // 2], np.where(y_all == 0)[0][: k - k // 2]
    rows = np.r_[pos, neg]
    x, y, m = samples.x[rows], y_all[rows], samples.meta.iloc[rows]
    inputs = presto_inputs(x, m["lat"].to_numpy(), m["lon"].to_numpy(), m["start_date"].tolist())
    tensors = inputs.tensors(a.device)
    steps, lr, batch = cfg.ft_steps, cfg.ft_lr, cfg.ft_batch
    finetune(timl, x, y, task_info=timl.task_info, cfg=cfg, seed=0, steps=5)  # warm-up
    finetune_presto(presto, tensors, y, 0, 5, lr, batch)
    emb_of = lambda: presto.embed(inputs, batch_size=a.batch)  # noqa: E731
    out = {
        "timl": _timed(lambda: finetune(timl, x, y, task_info=timl.task_info, cfg=cfg, seed=0), a.adapt_reps),
        "presto": _timed(lambda: fit_logistic(emb_of(), y, 0), a.adapt_reps),
        "presto-ft": _timed(lambda: finetune_presto(presto, tensors, y, 0, steps, lr, batch), a.adapt_reps),
    }
    for v in out.values():
        v.update({"shots": int(len(y)), "steps": int(steps), "batch_per_class": int(batch)})
    out["presto"]["steps"] = None  # one logistic-regression fit
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=4096)
    ap.add_argument("--t", type=int, default=12, help="time steps per pixel")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None,
                    help="pixels per forward pass (default: each model's own: TIML's PREDICT_BATCH, "
                         "Presto's default_batch of the device)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--weights", default=None, help="Presto safetensors (default: random weights, same cost)")
    ap.add_argument("--adapt-shots", type=int, default=64, help="labelled samples of the adaptation timing (0: skip)")
    ap.add_argument("--adapt-reps", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "presto.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    from cropmeta.models.presto import PrestoEncoder, default_batch, load_presto, presto_inputs
    from cropmeta.schema import Normalizer
    from cropmeta.tasks import make_task
    from cropmeta.train.config import resolve_config
    from cropmeta.testing import toy_samples
    from cropmeta.train.trained import PREDICT_BATCH, from_scratch, predict_proba

    samples = toy_samples(n_per_label=a.pixels, n_noncrop=a.pixels, t=a.t, seed=0, regions=[("Kenya", 0.2, 37.9, [])])
    x = samples.x[: a.pixels]
    meta = samples.meta.iloc[: a.pixels]
    n = len(x)
    lat, lon, dates = meta["lat"].to_numpy(), meta["lon"].to_numpy(), meta["start_date"].tolist()

    cfg = resolve_config("quick").replace(device=a.device)
    timl = from_scratch(cfg, t=a.t, seed=0, normalizer=Normalizer.fit(x), learner="timl")
    timl.task_info = make_task("Kenya", "maize").info
    timl.to(device=torch.device(a.device), dtype=torch.float32)

    presto = (load_presto(a.weights, device=a.device) if a.weights else PrestoEncoder().to(a.device).eval())
    inputs = presto_inputs(x, lat, lon, dates)

    timl_batch = a.batch or PREDICT_BATCH
    presto_batch = a.batch or default_batch(a.device)
    res = {
        "timl_lstm": _measure(lambda: predict_proba(timl, x, batch_size=timl_batch), n, a.reps, a.device),
        "presto_encoder": _measure(lambda: presto.embed(inputs, batch_size=presto_batch), n, a.reps, a.device),
        "presto_end_to_end": _measure(lambda: presto.embed(presto_inputs(x, lat, lon, dates), batch_size=presto_batch),
                                      n, a.reps, a.device),
    }
    adapt = _adaptation(a, samples, timl, presto, cfg) if a.adapt_shots else None
    ratios = {
        "presto_over_timl_flops_per_pixel": round(res["presto_encoder"]["flops_per_pixel"]
                                                  / max(1.0, res["timl_lstm"]["flops_per_pixel"]), 2),
        "timl_over_presto_pixels_per_s": round(res["timl_lstm"]["pixels_per_s"]
                                               / max(1e-9, res["presto_end_to_end"]["pixels_per_s"]), 2),
    }
    if adapt:
        ratios["presto_ft_over_timl_adapt_seconds"] = round(adapt["presto-ft"]["seconds"] / adapt["timl"]["seconds"], 2)
        ratios["presto_lr_over_timl_adapt_seconds"] = round(adapt["presto"]["seconds"] / adapt["timl"]["seconds"], 2)
    rec = {"benchmark": "presto", "command": "python benchmarks/bench_presto.py " + " ".join(argv or sys.argv[1:]),
           "pixels": n, "t": a.t, "batch": {"timl": timl_batch, "presto": presto_batch}, "threads": a.threads, "device": a.device,
           "weights": a.weights or "random (same cost)", "flops_note": "matrix products only (torch flop_counter)",
           "results": res, "adaptation": adapt, "ratios": ratios, "machine": machine()}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2, default=float))
    print(json.dumps({"results": res, "adaptation": adapt, "ratios": ratios}, indent=2, default=float))
    return rec


if __name__ == "__main__":
    main()
