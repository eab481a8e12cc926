"""Map export: pixels/s against the CropHarvest-``Inference``-style reference, the share of this
machine's matrix-multiply rate that inference reaches, and peak memory as the map grows.

One run, same weights, same tile (cropmeta's TIML architecture, hidden 128, T = 12: the compute per
pixel of a trained model; ``cropmeta.testing.make_timl_run``):

- ``mm``: a large ``torch.mm`` in float32 (1 thread and all threads) and bfloat16 (1 thread) —
  the machine's rate, measured now;
- ``model``: pixels/s of the model alone on in-memory pixels, 1 thread: cropmeta's ``Predictor``
  (what export uses today), the folded model (:mod:`cropmeta.models.inference`, loader
  ``cropmeta.mapping.precision:load_fast_predictor``) in float32 and — where bfloat16 is native —
  bfloat16, and the reference's unrolled-cell model in batches of 64. FLOPs per pixel:
  :func:`cropmeta.models.inference.model_flops_per_pixel`, cross-checked with
  ``torch.utils.flop_counter`` on the actual classifier. Share = model GFLOP/s ÷ mm GFLOP/s in the
  same precision and thread count;
- ``end to end``: read EE tile → map file. Reference: whole tile → numpy → batches of 64 →
  DataFrame → ``to_xarray()`` → netCDF. cropmeta: ``cropmeta.mapping.export.export`` → COG with
  overviews, serial (1 thread) with today's predictor and with the folded one, and on a local Dask
  cluster of N one-thread workers (cluster start included);
- ``memory``: peak RSS (the process's own ``VmHWM``) of a fresh process exporting a tile of
  1×, 4× and 16× the pixels, cropmeta and the reference.

    .venv/bin/python benchmarks/bench_export.py              # full (~6 min on 2 cores)
    .venv/bin/python benchmarks/bench_export.py --quick      # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import REPO, command_line, interleaved_shares, machine, mm_rate, summarize, write_result  # noqa: E402

FAST = "cropmeta.mapping.precision:load_fast_predictor"
FAST_BF16 = "cropmeta.mapping.precision:load_fast_predictor_bf16"


def _tile(d: Path, h: int, w: int, name: str = "0-bench") -> Path:
    from cropmeta.testing import make_ee_tile

    return make_ee_tile(d / f"{name}_2021-01-01_2021-12-31.tif", height=h, width=w, seed=1)


def model_rate(fn, x: np.ndarray, reps: int) -> dict:
    fn(x[: min(len(x), 256)])  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    s = summarize(times)
    return {"pixels": int(len(x)), "seconds": s, "pixels_per_s": len(x) / s["median"]}


def agreement(ref_nc: Path, maps: dict[str, Path]) -> dict:
    """Each cropmeta map against the reference's probabilities on the same pixels: the map stores
    ``rint(100 p)``, so equal probabilities (to float rounding) give identical values except where
    ``100 p`` sits on a .5 boundary. Max |difference| in percentage points and the identical share."""
    import rasterio
    import xarray as xr

    with xr.open_dataset(ref_nc, engine="h5netcdf") as ds:
        p = ds["prediction_0"].transpose("lat", "lon").values[::-1]  # lat ascending → north-up rows
    want = np.rint(np.asarray(p, dtype=np.float64) * 100.0)
    out = {}
    for name, path in maps.items():
        with rasterio.open(path) as m:
            got = m.read(1).astype(np.float64)
        ok = (got != 255) & np.isfinite(want)
        diff = np.abs(got - want)[ok]
        out[name] = {"pixels": int(ok.sum()), "max_abs_diff_percent_points": float(diff.max()) if diff.size else None,
                     "share_identical": float((diff == 0).mean()) if diff.size else None}
    return out


def run_export(run_dir: Path, tif: Path, out: Path, workers: int | None, loader: str | None) -> dict:
    from cropmeta.mapping.export import export

    t0 = time.perf_counter()
    r = export(run_dir, out, inputs=[tif], workers=workers, progress=False, quicklook=False, loader=loader)
    dt = time.perf_counter() - t0
    return {"workers": workers, "loader": loader or "default", "seconds": dt, "pixels": r["pixels"],
            "pixels_per_s": r["pixels"] / dt, "seconds_inference": r["seconds_inference"],
            "pixels_per_s_inference_phase": r["pixels"] / max(r["seconds_inference"], 1e-9),
            "seconds_write": r["seconds_write"]}


def child(argv: list[str]) -> None:
    """``--child KIND RUN TIF OUT [LOADER]``: one export in this fresh process; prints peak RSS JSON."""
    import torch

    torch.set_num_threads(1)
    kind, run_dir, tif, out = argv[:4]
    loader = argv[4] if len(argv) > 4 and argv[4] != "default" else None
    t0 = time.perf_counter()
    if kind == "cropmeta":
        from cropmeta.mapping.export import export

        r = export(run_dir, out, inputs=[tif], progress=False, quicklook=False, loader=loader)
        px = r["pixels"]
    else:
        from benchmarks.reference.inference_reference import ReferenceInference

        px = ReferenceInference(run_dir).run(tif, out)["pixels"]
    print(json.dumps({"kind": kind, "pixels": px, "seconds": time.perf_counter() - t0,
                      "peak_rss_bytes": _vm_hwm()}))


def _vm_hwm() -> int:
    """This process's peak resident set (``VmHWM``, reset at exec — unlike ``ru_maxrss``, which Linux
    carries over from the forking parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss(kind: str, run_dir: Path, tif: Path, out: Path, loader: str | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__)), "--child", kind, str(run_dir), str(tif), str(out), loader or "default"]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1:])
        return {}
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256, help="side of the throughput tile (pixels)")
    ap.add_argument("--mem-size", type=int, default=96, help="side of the 1x memory tile (4x, 16x: 2, 4 times the side)")
    ap.add_argument("--model-pixels", type=int, default=16384)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="Dask workers for the parallel export (0: skip)")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile top entries of the serial export")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.mem_size, args.model_pixels, args.reps = 64, 32, 2048, 1

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.reference.inference_reference import ReferenceInference
    from cropmeta.mapping.precision import FastPredictor
    from cropmeta.testing import make_timl_run
    from cropmeta.models.inference import bf16_fast, model_flops_per_pixel
    from cropmeta.train.checkpoint import load_predictor

    torch.set_num_threads(1)
    res: dict = {"benchmark": "export", "command": command_line("bench_export.py", argv), "machine_before": machine(),
                 "model": {"t": 12, "bands": 18, "hidden": args.hidden}}
    native_bf16 = bf16_fast(args.device)
    res["bf16_native"] = native_bf16
    with tempfile.TemporaryDirectory(prefix="cropmeta-bench-export-") as d:
        d = Path(d)
        run_dir = make_timl_run(d / "run", hidden=args.hidden)
        pred = load_predictor(run_dir, device=args.device)

        # ---- the machine's matmul rate -------------------------------------------------------------
        res["mm_fp32_1thread"] = mm_rate("float32", threads=1, device=args.device)
        res["mm_fp32_all_threads"] = mm_rate("float32", threads=os.cpu_count() or 1, device=args.device)
        res["mm_bf16_1thread"] = mm_rate("bfloat16", n=2048 if native_bf16 else 1024, reps=5 if native_bf16 else 2,
                                         threads=1, device=args.device, max_seconds=15)
        torch.set_num_threads(1)
        mm32 = res["mm_fp32_1thread"]["gflops"]
        res["bf16_over_fp32_mm"] = res["mm_bf16_1thread"]["gflops"] / mm32

        # ---- FLOPs per pixel ----------------------------------------------------------------------
        fpp = model_flops_per_pixel(12, 18, args.hidden)
        xs = np.random.default_rng(2).normal(1000, 200, (args.model_pixels, 12, 18)).astype(np.float32)
        with FlopCounterMode(display=False) as fc:
            pred.predict_proba(xs[:256])
        res["model_flops_per_pixel"] = fpp
        res["model_flops_per_pixel_torch_counter"] = fc.get_total_flops() / 256

        # ---- model alone, 1 thread ------------------------------------------------------------------
        ref = ReferenceInference(run_dir)
        fast = FastPredictor(pred, "fp32")
        rows = {
            "reference_unrolled_cell_batch64": lambda x: ref.predict(x),
            "cropmeta_predictor_batch1024": lambda x: _batched(pred.predict_proba, x, 1024),
            "cropmeta_folded_fp32_batch1024": lambda x: _batched(fast.predict_proba, x, 1024),
        }
        n_cores = os.cpu_count() or 1
        if n_cores > 1:
            rows[f"cropmeta_folded_fp32_batch1024_{n_cores}threads"] = lambda x: _threads(
                n_cores, lambda: _batched(fast.predict_proba, x, 1024))
        # interleaved with the matmul: every repetition times the fp32 mm once and each model once, so a
        # change in machine load (shared cores) hits both sides of each share
        for name, fn in rows.items():
            fn(xs[:256])  # warm-up
        mm_samples, samples, shares = interleaved_shares(rows, xs, args.reps, fpp, threads=1, device=args.device)
        res["mm_fp32_1thread_interleaved_gflops"] = summarize(mm_samples)
        res["model_1thread"] = {}
        for name in rows:
            st = summarize(samples[name])
            r = {"pixels": int(len(xs)), "seconds": st, "pixels_per_s": len(xs) / st["median"]}
            r["gflops"] = r["pixels_per_s"] * fpp / 1e9
            r["share_of_fp32_mm"] = summarize(shares[name])["median"]
            r["share_of_fp32_mm_spread"] = summarize(shares[name])
            res["model_1thread"][name] = r
        bf = FastPredictor(pred, "bf16")
        n_bf = len(xs) if native_bf16 else min(len(xs), 512)  # emulated bf16 is slow: a short measurement
        r = model_rate(lambda x: _batched(bf.predict_proba, x, 1024), xs[:n_bf], 1 if not native_bf16 else args.reps)
        r["gflops"] = r["pixels_per_s"] * fpp / 1e9
        if native_bf16:
            r["share_of_bf16_mm"] = r["gflops"] / res["mm_bf16_1thread"]["gflops"]
        r["share_of_fp32_mm"] = r["gflops"] / mm32
        res["model_1thread"]["cropmeta_folded_bf16_batch1024"] = r
        scan = {}
        for b in (64, 256, 512, 1024, 4096):
            scan[str(b)] = model_rate(lambda x: _batched(fast.predict_proba, x, b), xs[: min(len(xs), 8192)], 1)["pixels_per_s"]
        res["folded_fp32_pixels_per_s_by_batch"] = scan
        ref_px = res["model_1thread"]["reference_unrolled_cell_batch64"]["pixels_per_s"]
        for k, v in res["model_1thread"].items():
            v["speedup_vs_reference"] = v["pixels_per_s"] / ref_px

        # ---- end to end -----------------------------------------------------------------------------
        tif = _tile(d, args.size, args.size)
        e2e = {"tile": [args.size, args.size]}
        e2e["reference"] = ReferenceInference(run_dir).run(tif, d / "ref.nc")
        e2e["cropmeta_serial_default"] = run_export(run_dir, tif, d / "a.tif", None, None)
        e2e["cropmeta_serial_folded"] = run_export(run_dir, tif, d / "b.tif", None, FAST)
        if args.workers:
            e2e[f"cropmeta_dask{args.workers}_default"] = run_export(run_dir, tif, d / "c.tif", args.workers, None)
            e2e[f"cropmeta_dask{args.workers}_folded"] = run_export(run_dir, tif, d / "e.tif", args.workers, FAST)
        maps = {"cropmeta_serial_default": d / "a.tif", "cropmeta_serial_folded": d / "b.tif"}
        if args.workers:
            maps.update({f"cropmeta_dask{args.workers}_default": d / "c.tif", f"cropmeta_dask{args.workers}_folded": d / "e.tif"})
        res["end_to_end_agreement"] = agreement(d / "ref.nc", maps)
        rp = e2e["reference"]["pixels_per_s"]
        for k, v in e2e.items():
            if isinstance(v, dict) and k != "reference":
                v["speedup_vs_reference"] = v["pixels_per_s"] / rp
        res["end_to_end"] = e2e
        if args.profile:
            from benchmarks._common import cprofile_top

            res["profile_export_serial_default"] = cprofile_top(
                lambda: run_export(run_dir, tif, d / "p.tif", None, None), n=18)
        print(f"mm fp32 1 thread {mm32:.1f} GFLOP/s; bf16 {res['mm_bf16_1thread']['gflops']:.2f} GFLOP/s "
              f"(native: {native_bf16}); model {fpp / 1e6:.3f} MFLOP/px", flush=True)
        for k, v in res["model_1thread"].items():
            print(f"  model {k}: {v['pixels_per_s']:.0f} px/s, {100 * v['share_of_fp32_mm']:.1f} % of fp32 mm, "
                  f"{v['speedup_vs_reference']:.2f}x reference", flush=True)
        for k, v in e2e.items():
            if isinstance(v, dict):
                print(f"  end to end {k}: {v['pixels_per_s']:.0f} px/s ({v['seconds']:.1f} s)"
                      + (f", {v['speedup_vs_reference']:.2f}x reference" if "speedup_vs_reference" in v else ""),
                      flush=True)
        for k, v in res["end_to_end_agreement"].items():
            same = round((v["share_identical"] or 0) * v["pixels"])
            print(f"  {k} vs reference probabilities: max |diff| {v['max_abs_diff_percent_points']} percentage "
                  f"points, {same:,} of {v['pixels']:,} pixels identical", flush=True)

        # ---- peak memory vs map size -------------------------------------------------------------------
        if not args.skip_memory:
            mem = {}
            for mult, side in ((1, args.mem_size), (4, 2 * args.mem_size), (16, 4 * args.mem_size)):
                t = _tile(d, side, side, name=f"{mult}-mem")
                mem[f"{mult}x"] = {
                    "side": side, "pixels": side * side,
                    "cropmeta": peak_rss("cropmeta", run_dir, t, d / f"m{mult}.tif"),
                    "reference": peak_rss("reference", run_dir, t, d / f"m{mult}.nc"),
                }
                t.unlink()
                print(f"  memory {mult}x ({side}x{side}): cropmeta {mem[f'{mult}x']['cropmeta']['peak_rss_bytes'] / 2**20:.0f} MiB, "
                      f"reference {mem[f'{mult}x']['reference']['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
            for kind in ("cropmeta", "reference"):
                base = mem["1x"][kind]["peak_rss_bytes"]
                mem[f"{kind}_growth_16x_over_1x"] = mem["16x"][kind]["peak_rss_bytes"] / base
            res["memory"] = mem
    res["machine_after"] = machine()
    path = write_result("export", res, args.out)
    print(f"wrote {path}")
    return res


def _threads(n: int, fn):
    """``fn()`` with ``n`` torch threads (then back to 1)."""
    import torch

    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(1)


def _batched(fn, x: np.ndarray, b: int) -> np.ndarray:
    return np.concatenate([fn(x[i : i + b]) for i in range(0, len(x), b)])


if __name__ == "__main__":
    main()
