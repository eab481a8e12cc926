"""Map export throughput (pixels/s) and the share of this machine's matrix-multiply rate that
inference reaches — measured side by side in one run.

What runs (same weights, same tile, one torch thread unless stated):
- ``mm``: a large ``torch.mm`` (fp32; bf16 too where the CPU/GPU has it) → the machine's GFLOP/s;
- ``model``: the TIML model's ``predict_proba`` on in-memory pixels in cropmeta's export batches
  (FLOPs per pixel counted by ``torch.utils.flop_counter`` on the actual model) → GFLOP/s and its
  share of the fp32 ``mm`` rate;
- ``export``: ``cropmeta.mapping.export`` end to end (read EE tile → COG + overviews), serial and
  on a local Dask cluster (``--workers``, one thread each);
- ``reference``: the path the CropHarvest ``Inference`` class takes: the whole tile read into
  memory, pixels through the model in batches of 64, predictions assembled in a pandas DataFrame
  indexed by lat/lon → ``to_xarray()`` → netCDF. (Issue 7's full reference also swaps in the
  paper's hand-unrolled LSTM cell; here the model is cropmeta's, so the ratio isolates the
  pipeline.)

The model is cropmeta's real TIML architecture (paper defaults, hidden 128) with initialised
weights — compute per pixel is exactly a trained model's.

    .venv/bin/python benchmarks/export_throughput.py                 # 128 x 512 px tile
    .venv/bin/python benchmarks/export_throughput.py --height 512 --width 512 --workers 2

Writes ``benchmarks/results/export_throughput.json`` (``--out``) and prints a table.
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def machine() -> dict:
    import torch

    cpu = platform.processor()
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "amx": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def mm_rate(dtype: str = "float32", n: int = 2048, reps: int = 5, threads: int = 1, device: str = "cpu") -> dict:
    import torch

    torch.set_num_threads(threads)
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, device=device).to(dt)
    b = torch.randn(n, n, device=device).to(dt)
    a @ b  # warm up
    times = []
    for _ in range(reps):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    return {"dtype": dtype, "n": n, "threads": threads, "device": device, "median_s": med,
            "gflops": 2 * n**3 / med / 1e9, "spread_s": [min(times), max(times)]}


def model_flops_per_pixel(pred, t: int, n: int = 1024) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = np.random.default_rng(1).normal(1000, 200, (n, t, 18)).astype(np.float32)
    with FlopCounterMode(display=False) as fc:
        pred.predict_proba(x)
    return fc.get_total_flops() / n


def model_rate(pred, t: int, batch: int, n: int, reps: int) -> dict:
    from cropmeta.mapping.infer import predict_samples

    x = np.random.default_rng(2).normal(1000, 200, (n, t, 18)).astype(np.float32)
    predict_samples(pred, x[:batch], batch)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        predict_samples(pred, x, batch)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"pixels": n, "batch": batch, "median_s": med, "pixels_per_s": n / med,
            "spread_s": [min(times), max(times)]}


def reference_path(run_dir: Path, tif: Path, out_nc: Path, batch: int = 64) -> dict:
    """CropHarvest-``Inference``-style: whole tile → numpy → batches of 64 → DataFrame → xarray → netCDF."""
    import pandas as pd

    from cropmeta.io.eetiff import pixels_array, read_ee_tiff
    from cropmeta.train.checkpoint import load_predictor

    pred = load_predictor(run_dir)
    t0 = time.perf_counter()
    da = read_ee_tiff(tif, fill=True)
    x = pixels_array(da)
    lat = np.repeat(da["y"].values, da.sizes["x"])
    lon = np.tile(da["x"].values, da.sizes["y"])
    preds = []
    for i in range(0, len(x), batch):
        preds.append(pred.predict_proba(x[i : i + batch]))
    df = pd.DataFrame({"lat": lat, "lon": lon, "prediction_0": np.concatenate(preds)})
    ds = df.set_index(["lat", "lon"]).to_xarray()
    ds.to_netcdf(out_nc, engine="h5netcdf")
    dt = time.perf_counter() - t0
    return {"pixels": int(len(x)), "seconds": dt, "pixels_per_s": len(x) / dt, "batch": batch}


def run_export(run_dir: Path, tif: Path, out: Path, workers: int | None, batch: int) -> dict:
    from cropmeta.mapping.export import export

    t0 = time.perf_counter()
    res = export(run_dir, out, inputs=[tif], workers=workers, progress=False, quicklook=False, batch_size=batch)
    dt = time.perf_counter() - t0
    return {"workers": workers, "seconds": dt, "pixels": res["pixels"], "pixels_per_s": res["pixels"] / dt,
            "inference_seconds": res["seconds_inference"], "write_seconds": res["seconds_write"],
            "pixels_per_s_inference_phase": res["pixels"] / res["seconds_inference"]}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--t", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2, help="local Dask workers for the parallel export (0: skip)")
    ap.add_argument("--batch", type=int, default=None, help="pixels per model call (default: cropmeta's)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model-pixels", type=int, default=8192)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "export_throughput.json"))
    args = ap.parse_args(argv)

    import torch

    from cropmeta.mapping.infer import DEFAULT_BATCH
    from cropmeta.testing import make_ee_tile, make_timl_run
    from cropmeta.train.checkpoint import load_predictor

    batch = args.batch or DEFAULT_BATCH
    result: dict = {"benchmark": "export_throughput", "machine": machine(), "args": vars(args),
                    "command": "python benchmarks/export_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="cropmeta-bench-") as d:
        d = Path(d)
        run_dir = make_timl_run(d / "run", t=args.t, hidden=args.hidden)
        tif = make_ee_tile(d / "0-bench_2021-01-01_2021-12-31.tif", height=args.height, width=args.width, t=args.t)
        pred = load_predictor(run_dir, device=args.device)

        _log("matmul rates")
        result["mm_fp32_1thread"] = mm_rate("float32", threads=1, device=args.device)
        result["mm_fp32_all_threads"] = mm_rate("float32", threads=os.cpu_count() or 1, device=args.device)
        torch.set_num_threads(1)
        # bf16 only where the hardware has it: a 256³ probe first (without AMX/AVX512-BF16 torch
        # falls back to a slow path that would take minutes at n = 2048)
        try:
            probe = mm_rate("bfloat16", n=256, reps=1, threads=1, device=args.device)
            hw = args.device != "cpu" or result["machine"]["amx"] or result["machine"]["avx512_bf16"]
            if hw and probe["gflops"] > 0.5 * result["mm_fp32_1thread"]["gflops"]:
                result["mm_bf16_1thread"] = mm_rate("bfloat16", threads=1, device=args.device)
            else:
                result["mm_bf16_1thread"] = {"skipped": "no bf16 matmul hardware (no AMX / AVX512-BF16)",
                                             "probe_256": probe}
        except Exception as e:  # noqa: BLE001 - hardware without bf16 matmul
            result["mm_bf16_1thread"] = {"error": str(e)}
        torch.set_num_threads(1)
        _log("model FLOPs and inference rate")
        fpp = model_flops_per_pixel(pred, args.t)
        result["model_flops_per_pixel"] = fpp
        mr = model_rate(pred, args.t, batch, args.model_pixels, args.reps)
        mr["gflops"] = mr["pixels_per_s"] * fpp / 1e9
        mr["share_of_fp32_mm"] = mr["gflops"] / result["mm_fp32_1thread"]["gflops"]
        result["model_inference_1thread"] = mr
        batch_scan = {}
        for b in (64, 256, 1024, 4096):
            r = model_rate(pred, args.t, b, min(args.model_pixels, 4096), 1)
            batch_scan[str(b)] = r["pixels_per_s"]
        result["model_pixels_per_s_by_batch"] = batch_scan

        _log("export, serial")
        result["export_serial"] = run_export(run_dir, tif, d / "serial.tif", None, batch)
        if args.workers:
            _log(f"export, {args.workers} Dask workers")
            result["export_dask"] = run_export(run_dir, tif, d / "dask.tif", args.workers, batch)
            result["dask_identical_to_serial"] = (d / "dask.tif").read_bytes() == (d / "serial.tif").read_bytes()
        if not args.skip_reference:
            _log("reference path")
            result["reference"] = reference_path(run_dir, tif, d / "ref.nc")
            result["speedup_export_serial_vs_reference"] = (result["export_serial"]["pixels_per_s"]
                                                            / result["reference"]["pixels_per_s"])
            if args.workers:
                result["speedup_export_dask_vs_reference"] = (result["export_dask"]["pixels_per_s"]
                                                              / result["reference"]["pixels_per_s"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    _print(result)
    return result


def _print(r: dict) -> None:
    mm = r["mm_fp32_1thread"]["gflops"]
    m = r["model_inference_1thread"]
    rows = [
        ("fp32 torch.mm, 1 thread", f"{mm:.1f} GFLOP/s"),
        ("fp32 torch.mm, all threads", f"{r['mm_fp32_all_threads']['gflops']:.1f} GFLOP/s"),
        ("bf16 torch.mm, 1 thread", f"{r['mm_bf16_1thread'].get('gflops', float('nan')):.1f} GFLOP/s"),
        ("model FLOPs / pixel", f"{r['model_flops_per_pixel'] / 1e6:.3f} MFLOP"),
        ("model inference, 1 thread", f"{m['pixels_per_s']:.0f} px/s = {m['gflops']:.2f} GFLOP/s "
                                      f"= {100 * m['share_of_fp32_mm']:.1f} % of fp32 mm"),
        ("model px/s by batch", ", ".join(f"{k}: {v:.0f}" for k, v in r["model_pixels_per_s_by_batch"].items())),
        ("export serial (end to end)", f"{r['export_serial']['pixels_per_s']:.0f} px/s "
                                       f"({r['export_serial']['seconds']:.1f} s)"),
    ]
    if "export_dask" in r:
        rows.append((f"export {r['export_dask']['workers']} Dask workers", f"{r['export_dask']['pixels_per_s']:.0f} px/s "
                     f"({r['export_dask']['seconds']:.1f} s incl. cluster start; identical: "
                     f"{r['dask_identical_to_serial']})"))
    if "reference" in r:
        rows.append(("reference (batches of 64, DataFrame)", f"{r['reference']['pixels_per_s']:.0f} px/s"))
        rows.append(("export serial / reference", f"{r['speedup_export_serial_vs_reference']:.2f}x"))
    w = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{w}}  {b}")


if __name__ == "__main__":
    main()
