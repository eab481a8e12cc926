"""Presto at the speed of the hardware (issue 29), in one run on one machine.

Prints and writes (JSON, default ``benchmarks/results/presto.json``):

- **the machine's matmul rates**: a 2048² ``torch.mm`` on ``--threads`` threads in float32 and
  bfloat16 (GFLOP/s);
- **the encoder** (:meth:`PrestoEncoder.embed`, T = ``--t``, Dynamic World missing as in every
  cropmeta sample) and **the map path** (what ``cropmeta export`` calls per block: a ``presto`` run's
  predictor on raw pixels with their lat/lon and date — inputs built, embedded, classified): pixels/s,
  FLOPs per pixel (``torch.utils.flop_counter``: matrix products, attention included) and their
  share of the float32 matmul rate, each repetition timed right after one matmul (the load hits both
  sides of the share). ``before``: the attention written out (:meth:`Attention.reference`, the code
  before issue 29); ``fp32``: the fused kernel; ``bf16``: bfloat16 autocast (only where the CPU has
  it natively; elsewhere reported as not native and skipped);
- **the TIML LSTM's folded map predictor** (paper size, random weights) in float32 and bfloat16, to
  see whether bfloat16 pays for it on this CPU;
- **map agreement of bfloat16** with float32 on ``--tif`` (default: the real Togo export of
  ``../shared``): a logistic regression fitted on the tif's own pixels (labels: mean NDVI above its
  median) — the largest probability difference and the share of equal classes, what the export's
  gate (:func:`cropmeta.mapping.precision.check_reduced_precision`) decides on;
- **presto-ft seconds per fit** (``--adapt-shots`` labels, ``--adapt-steps`` SGD steps of 10 + 10):
  before (reference attention, float32, every weight), after (fused, float32), after in bfloat16,
  and the option ``presto_ft.train_blocks = 1`` (first block frozen and cached) in both precisions;
- **Dask maps per core**: ``cropmeta export`` of a ``presto`` run over ``--map-tiles`` simulated EE
  tiles of ``--map-size``² pixels, serial and on ``--workers`` one-thread Dask workers (threads, then
  processes): pixels/s per worker in the inference phase (executor start-up left out).

    python benchmarks/bench_presto.py --weights ../shared/models/presto/default_model.safetensors
    python benchmarks/bench_presto.py --pixels 256 --reps 1 --adapt-steps 5 --map-size 8 --map-tiles 2 --out /tmp/p.json  # smoke
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from benchmarks._common import REPO, command_line, interleaved_shares, machine, mm_rate, write_result  # noqa: E402

TOGO = REPO.parent / "shared" / "data" / "cropharvest_eo_tifs" / "98-togo_2019-02-06_2020-02-01.tif"


@contextlib.contextmanager
def reference_attention(on: bool = True):
    """Presto's attention as written before issue 29 (scores, mask, softmax, product) while inside."""
    from cropmeta.models.presto import Attention

    fused = Attention.forward
    if on:
        Attention.forward = Attention.reference
    try:
        yield
    finally:
        Attention.forward = fused


def flops_per_pixel(fn, n: int) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops() / n


def presto_run(home: Path, weights: Path, x, y, ctx) -> tuple[Path, object]:
    """A ``presto`` run dir (logistic regression on ``x``'s embeddings) reading ``weights`` from ``home``."""
    from cropmeta.learners import get_learner
    from cropmeta.models.weights import weights_dir
    from cropmeta.models.published import PRESTO
    from cropmeta.schema import CROPHARVEST
    from cropmeta.train.checkpoint import load_predictor, save_model
    from cropmeta.train.config import resolve_config

    os.environ["CROPMETA_HOME"] = str(home)
    dest = weights_dir(PRESTO) / PRESTO.safetensors_name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, dest)
    cfg = resolve_config("quick", overrides={"threads": torch.get_num_threads(), "device": "cpu"})
    model = get_learner("presto", cfg).start(x.shape[1], 0, CROPHARVEST).adapt(x, y, cfg=cfg, seed=0, **ctx)
    run = home / "run"
    save_model(run, model, {"seed": 0, "date_range": ["2021-01-01", "2021-12-31"]})
    return run, load_predictor(run)


def agreement(run_home: Path, weights: Path, tif: Path) -> dict:
    """bfloat16 against float32 on every pixel of ``tif`` (the gate's numbers)."""
    import rasterio

    from cropmeta.mapping.precision import check_reduced_precision
    from cropmeta.mapping.sources import open_eetiff
    from cropmeta.schema import BANDS

    src = open_eetiff(tif)
    win = rasterio.windows.Window(0, 0, src.grid.width, src.grid.height)
    x, valid = src.read(win)
    ctx = src.pixel_context(win, valid)
    ndvi = x[:, :, BANDS.index("NDVI")].mean(1)
    _, pred = presto_run(run_home, weights, x, (ndvi > np.median(ndvi)).astype(int), ctx)
    rep = check_reduced_precision(pred, x, context=ctx)
    return {"tif": str(tif), **rep}


def finetune_seconds(enc, tensors, y, steps: int) -> dict:
    from cropmeta.train.presto_frozen import finetune_presto

    variants = {"before (reference attention, fp32, all weights)": (True, 2, "fp32"),
                "after, fp32, all weights": (False, 2, "fp32"),
                "after, bf16, all weights": (False, 2, "bf16"),
                "option train_blocks=1, fp32": (False, 1, "fp32"),
                "option train_blocks=1, bf16": (False, 1, "bf16")}
    out = {}
    for name, (ref, blocks, prec) in variants.items():
        with reference_attention(ref):
            finetune_presto(enc, tensors, y, 0, 3, train_blocks=blocks, precision=prec)  # warm-up
            t0 = time.perf_counter()
            finetune_presto(enc, tensors, y, 0, steps, train_blocks=blocks, precision=prec)
            out[name] = round(time.perf_counter() - t0, 2)
    base = out["before (reference attention, fp32, all weights)"]
    return {"seconds": out, "speedup_over_before": {k: round(base / v, 2) for k, v in out.items()}}


def dask_maps(home: Path, weights: Path, size: int, tiles: int, workers: int) -> dict:
    """``tiles`` EE tiles of ``size``² pixels (one block each: the Dask tasks), mapped into one VRT
    serially and on ``workers`` one-thread workers (threads of this process, then processes)."""
    import rasterio

    from cropmeta.mapping.export import export
    from cropmeta.mapping.sources import open_eetiff
    from cropmeta.testing import make_ee_tile

    tifs = [make_ee_tile(home / f"{i}-bench_2021-01-01_2021-12-31.tif", height=size, width=size, seed=i)
            for i in range(tiles)]
    src = open_eetiff(tifs[0])
    win = rasterio.windows.Window(0, 0, size, size)
    x, valid = src.read(win)
    ctx = src.pixel_context(win, valid)
    y = (np.arange(len(x)) % 2).astype(int)
    run, _ = presto_run(home, weights, x[:64], y[:64], {k: v[:64] for k, v in ctx.items()})
    res = {"tiles": tiles, "tile_pixels": size * size}
    for name, w, procs in (("serial", None, False), (f"dask_{workers}_threads", workers, False),
                           (f"dask_{workers}_processes", workers, True)):
        t0 = time.perf_counter()
        r = export(run, home / f"{name}.vrt", inputs=tifs, workers=w, progress=False, quicklook=False,
                   dask_processes=procs)
        dt = time.perf_counter() - t0
        res[name] = {"seconds": round(dt, 2), "pixels": r["pixels"], "inference_seconds": round(r["seconds_inference"], 2),
                     "executor_start_seconds": round(r["seconds_executor_start"], 2),
                     "pixels_per_s_per_worker": round(r["pixels"] / (r["seconds_inference"] - r["seconds_executor_start"])
                                                      / (w or 1), 1)}
        if w:
            res[name]["per_worker_over_serial"] = round(res[name]["pixels_per_s_per_worker"]
                                                        / res["serial"]["pixels_per_s_per_worker"], 2)
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=2048)
    ap.add_argument("--t", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weights", default=None, help="Presto safetensors (default: random weights, same cost; "
                                                  "the agreement on --tif needs the real ones)")
    ap.add_argument("--tif", default=str(TOGO), help="real EE tif for the bf16 map agreement ('' to skip)")
    ap.add_argument("--adapt-shots", type=int, default=64)
    ap.add_argument("--adapt-steps", type=int, default=250)
    ap.add_argument("--map-size", type=int, default=32, help="side of each simulated tile of the Dask comparison (0: skip)")
    ap.add_argument("--map-tiles", type=int, default=8, help="tiles (Dask tasks) of the Dask comparison")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    from cropmeta.mapping.infer import predict_samples
    from cropmeta.models.inference import bf16_fast
    from cropmeta.models.presto import PrestoEncoder
    from cropmeta.models.presto_layout import presto_inputs
    from safetensors.torch import save_file
    from cropmeta.testing import toy_samples

    tmp = Path(tempfile.mkdtemp(prefix="bench-presto-"))
    old_home = os.environ.get("CROPMETA_HOME")
    try:
        if a.weights:
            weights = Path(a.weights)
        else:
            torch.manual_seed(0)
            weights = tmp / "random.safetensors"
            save_file({f"encoder.{k}": v.contiguous() for k, v in PrestoEncoder().state_dict().items()}, str(weights))
        from cropmeta.models.presto import load_presto

        enc = load_presto(weights)
        s = toy_samples(n_per_label=a.pixels, n_noncrop=a.pixels, t=a.t, seed=0, regions=[("Kenya", 0.2, 37.9, ["maize"])])
        rows = np.random.default_rng(0).permutation(len(s.x))[: a.pixels]  # both classes mixed
        x, meta = s.x[rows], s.meta.iloc[rows]
        ctx = {"lat": meta["lat"].to_numpy(), "lon": meta["lon"].to_numpy(), "start_dates": meta["start_date"].tolist()}
        inputs = presto_inputs(x, ctx["lat"], ctx["lon"], ctx["start_dates"])
        y = meta["is_crop"].to_numpy().astype(int)
        _, pred = presto_run(tmp / "home", weights, x[:128], y[:128], {k: v[:128] for k, v in ctx.items()})
        from cropmeta.mapping.precision import with_precision

        pred16 = with_precision(pred, "bf16")
        native = bf16_fast("cpu")
        n = len(x)
        with reference_attention():  # the fused kernel is invisible to the FLOP counter on CPU
            fpp = flops_per_pixel(lambda: enc.embed(inputs), n)

        fns = {"encoder_before": lambda _: _with_ref(lambda: enc.embed(inputs)),
               "encoder_fp32": lambda _: enc.embed(inputs),
               "map_before": lambda _: _with_ref(lambda: predict_samples(pred, x, context=ctx)),
               "map_fp32": lambda _: predict_samples(pred, x, context=ctx)}
        # the TIML LSTM's folded map predictor, for the same question (is bfloat16 faster here?)
        from cropmeta.mapping.precision import FastPredictor
        from cropmeta.schema import Normalizer
        from cropmeta.tasks import make_task
        from cropmeta.train.checkpoint import Predictor
        from cropmeta.train.config import resolve_config
        from cropmeta.train.trained import from_scratch

        timl = from_scratch(resolve_config("paper").replace(device="cpu"), t=a.t, seed=0,
                            normalizer=Normalizer.fit(x), learner="timl")
        timl.task_info = make_task("Kenya", "maize").info
        lstm = {p: FastPredictor(Predictor(timl, {}), p) for p in ("fp32", "bf16")}
        fns["lstm_fp32"] = lambda _: lstm["fp32"].predict_proba(x)
        if native:
            fns["encoder_bf16"] = lambda _: enc.embed(inputs, precision="bf16")
            fns["map_bf16"] = lambda _: predict_samples(pred16, x, context=ctx)
            fns["lstm_bf16"] = lambda _: lstm["bf16"].predict_proba(x)
        for fn in fns.values():
            fn(None)  # warm-up
        mm_samples, times, shares = interleaved_shares(fns, x, a.reps, fpp, threads=a.threads)
        speed = {k: {"pixels_per_s": round(n / statistics.median(v), 1),
                     "share_of_fp32_matmul": round(statistics.median(shares[k]), 3)} for k, v in times.items()}
        for k in [k for k in speed if k.startswith("lstm")]:  # the share is Presto's FLOPs: not the LSTM's
            speed[k].pop("share_of_fp32_matmul")
        rates = {"fp32_gflops": round(statistics.median(mm_samples), 1),
                 "bf16_gflops": round(mm_rate("bfloat16", threads=a.threads, reps=3)["gflops"], 1) if native else None}
        if native:
            for what in ("encoder", "map", "lstm"):
                speed[f"{what}_bf16_over_fp32"] = round(speed[f"{what}_bf16"]["pixels_per_s"]
                                                        / speed[f"{what}_fp32"]["pixels_per_s"], 2)
        for what in ("encoder", "map"):
            speed[f"{what}_fp32_over_before"] = round(speed[f"{what}_fp32"]["pixels_per_s"]
                                                      / speed[f"{what}_before"]["pixels_per_s"], 2)

        agree = agreement(tmp / "agree", weights, Path(a.tif)) if a.tif and Path(a.tif).exists() and a.weights else None
        k = a.adapt_shots
        pos, neg = np.where(y == 1)[0][: k // 2], np.where(y == 0)[0][: k - k // 2]
        shots = np.r_[pos, neg]
        adapt = (finetune_seconds(enc, inputs[shots].tensors(), y[shots], a.adapt_steps) if k else None)
        if adapt and not native:
            adapt["note"] = "bf16 not native here: its rows are emulated and say nothing about bf16 hardware"
        maps = dask_maps(tmp / "dask", weights, a.map_size, a.map_tiles, a.workers) if a.map_size else None
    finally:
        if old_home is None:
            os.environ.pop("CROPMETA_HOME", None)
        else:
            os.environ["CROPMETA_HOME"] = old_home
        shutil.rmtree(tmp, ignore_errors=True)

    rec = {"benchmark": "presto", "command": command_line("bench_presto.py", argv), "pixels": n, "t": a.t,
           "threads": a.threads, "weights": a.weights or "random (same cost)", "bf16_native": native,
           "flops_per_pixel": round(fpp), "flops_note": "matrix products incl. attention (torch flop_counter)",
           "matmul": rates, "speed": speed, "bf16_map_agreement": agree, "presto_ft": adapt, "dask_maps": maps,
           "machine": machine()}
    path = write_result("presto", rec, a.out)
    import json

    print(json.dumps({k: v for k, v in rec.items() if k != "machine"}, indent=2, default=float))
    print(f"written: {path}")
    return rec


def _with_ref(fn):
    with reference_attention():
        return fn()


if __name__ == "__main__":  # (the guard matters: Dask worker processes import this module)
    main()
