"""The folded TIML predictor against the machine's matmul rate: every variant as a share of the fp32
``torch.mm`` rate measured in the same run, on 1 and on 2 torch threads, beside the CropHarvest-style
reference (hand-unrolled cell, batches of 64), and the probability change of each variant against
fp32 on the real CropHarvest tiles (``../shared/data/cropharvest_eo_tifs``; skipped with a reason
when absent) and on a simulated scene.

Variants (one run, interleaved repetitions: each repetition times the matmul once and every
variant once, so a change in machine load hits all of them):

- ``reference_unrolled_batch64``: ``benchmarks/reference/inference_reference.py`` (1 thread only);
- ``folded_nnlstm_b{B}``: the default export model (:class:`cropmeta.models.inference.FoldedTIML`,
  ``torch.nn.LSTM`` = oneDNN's fused RNN) at batch sizes B;
- ``fused_loop_b1024``: :class:`cropmeta.models.inference.FusedLoopLSTM` (explicit loop, fused gates);
- ``compiled_loop_b1024`` (``--compile``): the same loop through ``torch.compile`` (inductor C++);
- ``int8_dynamic_b1024``: ``torch.ao.quantization.quantize_dynamic`` of the LSTM and both head
  linears (int8 weights, activations quantised per batch; fbgemm on AVX2).

FLOPs per pixel: :func:`cropmeta.models.inference.model_flops_per_pixel` (1.827 MFLOP at hidden
128, T = 12, 18 bands). Writes ``benchmarks/results/lstm.json``.

    .venv/bin/python benchmarks/bench_lstm.py            # ~2 min on 2 idle cores
    .venv/bin/python benchmarks/bench_lstm.py --quick
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import REPO, command_line, interleaved_shares, machine, summarize, write_result  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "cropharvest_eo_tifs"


def build_variants(fast, threads: int, batches: list[int], compile_: bool) -> dict:
    """name → fn(x torch [N, T, F] model inputs) for the variants (the folded net of ``fast``)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from cropmeta.models.inference import FusedLoopLSTM

    net = fast.net
    loop = FusedLoopLSTM(net)

    def loop_forward(x):
        x = torch.addcmul(net.in_shift, x, net.in_scale)
        return net.fc2(F.gelu(net.fc1(loop(x)))).squeeze(-1)

    def batched(fn, b):
        def run(x):
            with torch.inference_mode():
                return torch.cat([fn(x[i : i + b]) for i in range(0, len(x), b)])
        return run

    out = {f"folded_nnlstm_b{b}": batched(net, b) for b in batches}
    out["fused_loop_b1024"] = batched(loop_forward, 1024)
    if compile_:
        comp = torch.compile(loop_forward, dynamic=False)
        out["compiled_loop_b1024"] = batched(comp, 1024)
    qnet = torch.ao.quantization.quantize_dynamic(copy.deepcopy(net).float(), {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    out["int8_dynamic_b1024"] = batched(qnet, 1024)
    return out


def probability_change(fast, variants: dict, x: np.ndarray) -> dict:
    """max / mean |p − p_fp32| and the share of flipped classes (0.5) of each variant on pixels ``x``."""
    import torch

    xin = torch.from_numpy(np.ascontiguousarray(fast.base.model.inputs(x), dtype=np.float32))
    temp = float(fast.temperature) if fast.temperature is not None else 1.0
    ref = torch.sigmoid(variants["folded_nnlstm_b1024"](xin).double() / temp).numpy()
    res = {}
    for name, fn in variants.items():
        p = torch.sigmoid(fn(xin).double() / temp).numpy()
        d = np.abs(p - ref)
        res[name] = {"pixels": int(len(x)), "max_abs_prob_diff": float(d.max()), "mean_abs_prob_diff": float(d.mean()),
                     "class_flips": int(((p >= 0.5) != (ref >= 0.5)).sum())}
    return res


def real_pixels() -> tuple[np.ndarray | None, str]:
    tifs = sorted(REAL.glob("*.tif")) if REAL.is_dir() else []
    if not tifs:
        return None, f"skipped: {REAL} not present"
    from cropmeta.mapping.sources import open_source
    from rasterio.windows import Window

    xs = []
    for p in tifs:
        s = open_source(p)
        x, _ = s.read(Window(0, 0, s.grid.width, s.grid.height))
        xs.append(x)
    return np.concatenate(xs), f"{len(tifs)} real CropHarvest EE tiles in {REAL}"


def scene_pixels(d: Path, n: int) -> tuple[np.ndarray, str]:
    """Pixels of a simulated scene (the simulator's Togo scene, 64 x 64 px)."""
    from rasterio.windows import Window

    from cropmeta.mapping.sources import open_source
    from cropmeta.sim import generate_world, load_world

    world = generate_world(d / "world", seed=0, scene_size=64, regions=["Togo"])
    sc = load_world(world)["scenes"]["togo"]
    s = open_source(Path(world) / sc["tif"])
    x, _ = s.read(Window(0, 0, s.grid.width, s.grid.height))
    return x[:n], f"simulated scene togo (seed 0, {s.grid.width}x{s.grid.height} px)"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pixels", type=int, default=16384)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="256,1024,4096")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the fused loop")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.pixels, args.reps = 4096, 2

    import torch

    from benchmarks.reference.inference_reference import ReferenceInference
    from cropmeta.mapping.precision import FastPredictor
    from cropmeta.testing import make_timl_run
    from cropmeta.models.inference import model_flops_per_pixel
    from cropmeta.train.checkpoint import load_predictor

    fpp = model_flops_per_pixel(12, 18, args.hidden)
    res: dict = {"benchmark": "lstm", "command": command_line("bench_lstm.py", argv), "machine_before": machine(),
                 "model": {"t": 12, "bands": 18, "hidden": args.hidden, "flops_per_pixel": fpp}, "threads": {}}
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="cropmeta-bench-lstm-") as d:
        d = Path(d)
        run_dir = make_timl_run(d / "run", hidden=args.hidden)
        pred = load_predictor(run_dir)
        fast = FastPredictor(pred, "fp32")
        ref = ReferenceInference(run_dir)
        raw = np.random.default_rng(2).normal(1000, 200, (args.pixels, 12, 18)).astype(np.float32)
        x = torch.from_numpy(np.ascontiguousarray(pred.model.inputs(raw), dtype=np.float32))

        for th in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(th)
            variants = build_variants(fast, th, batches, args.compile)
            fns = dict(variants)
            if th == 1:
                fns = {"reference_unrolled_batch64": lambda _x: ref.predict(raw), **fns}
            for fn in fns.values():  # warm-up (and compilation)
                fn(x[:2048])
            mms, times, shares = interleaved_shares(fns, x, args.reps, fpp, threads=th)
            rows = {}
            for k in fns:
                st = summarize(times[k])
                sh = summarize(shares[k])
                rows[k] = {"seconds": st, "pixels_per_s": len(x) / st["median"], "share_of_fp32_mm": sh["median"],
                           "share_spread": sh}
            base = rows.get("reference_unrolled_batch64") or res["threads"].get("1", {}).get("variants", {}).get(
                "reference_unrolled_batch64")
            for k, v in rows.items():
                if base:
                    v["speedup_vs_reference_1thread"] = v["pixels_per_s"] / base["pixels_per_s"]
            res["threads"][str(th)] = {"mm_fp32_gflops": summarize(mms), "variants": rows}
            print(f"{th} thread(s): fp32 mm {summarize(mms)['median']:.1f} GFLOP/s", flush=True)
            for k, v in rows.items():
                print(f"  {k:<28} {v['pixels_per_s']:>9,.0f} px/s  {100 * v['share_of_fp32_mm']:5.1f} % of mm "
                      f"[{100 * v['share_spread']['min']:.1f}–{100 * v['share_spread']['max']:.1f}]"
                      + (f"  {v['speedup_vs_reference_1thread']:.2f}x ref" if "speedup_vs_reference_1thread" in v else ""),
                      flush=True)
        torch.set_num_threads(1)
        variants = build_variants(fast, 1, [1024], False)
        xr, why = real_pixels()
        res["accuracy_real"] = {"source": why}
        if xr is not None:
            res["accuracy_real"].update(probability_change(fast, variants, xr))
        xs, why_s = scene_pixels(d, 4096)
        res["accuracy_scene"] = {"source": why_s, **probability_change(fast, variants, xs)}
        for name in ("accuracy_real", "accuracy_scene"):
            a = res[name]
            print(f"{name} ({a['source']}): " + ", ".join(
                f"{k} max|dp| {v['max_abs_prob_diff']:.2e}" for k, v in a.items() if isinstance(v, dict)), flush=True)
    res["machine_after"] = machine()
    path = write_result("lstm", res, args.out)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
