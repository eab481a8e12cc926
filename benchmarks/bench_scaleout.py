"""Map export scale-out: serial vs a local Dask cluster of N one-thread workers, end to end, on maps
of growing size, and the crossover map size at which Dask starts to win.

For each map side S (one Earth-Engine-layout tile, T = 12, 206 bands, deflate, 256-px tiles; its
content is a 256² synthetic tile repeated, which costs the model exactly what any pixels cost):

- ``serial``: ``export(...)`` in this process, one torch thread (the default);
- ``dask_local``: ``export(..., workers=N)``: a new ``LocalCluster`` per export, N one-thread
  workers inside the export process (the default) — what ``cropmeta export --workers N`` costs;
- ``dask_processes`` (``--processes``, default on): the same with worker processes
  (``--worker-processes``: interpreters started, torch imported, the model loaded once per worker
  by the export's worker plugin) — the side-by-side check of which local cluster scales better;
- ``dask_warm`` (sizes ≤ ``--warm-max``): ``export(..., scheduler=ADDRESS)`` on a cluster started
  beforehand — what ``cropmeta export --scheduler`` costs once a cluster is up.

Each output's probability band is compared with the serial map's (equal: bit-identical bytes).
The crossover is fitted from the measured times (``t = a + b · pixels`` for serial and for
``dask_local``): ``pixels* = (a_dask − a_serial) / (b_serial − b_dask)``; the smallest measured size
where Dask wins is printed beside it. The model is cropmeta's TIML (hidden 128): the compute per
pixel of a trained one. Writes ``benchmarks/results/scaleout.json``.

    .venv/bin/python benchmarks/bench_scaleout.py                    # 512, 1024, 2048 (~6 min, 2 idle cores)
    .venv/bin/python benchmarks/bench_scaleout.py --sizes 2048       # the Done-when row only
    .venv/bin/python benchmarks/bench_scaleout.py --quick            # 128, 256: smoke test
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import command_line, machine, write_result  # noqa: E402


def make_map(d: Path, side: int) -> Path:
    """An EE-layout tile of ``side`` × ``side`` px written window by window (bounded memory)."""
    import rasterio
    from rasterio.windows import Window

    from cropmeta.testing import make_ee_tile

    pat_side = min(256, side)
    pattern = make_ee_tile(d / f"pattern{pat_side}_2021-01-01_2021-12-31.tif", height=pat_side, width=pat_side, seed=1)
    with rasterio.open(pattern) as src:
        data = src.read()
        profile = dict(src.profile)
        desc = src.descriptions
        tags = src.tags()
    profile.update(width=side, height=side, tiled=True, blockxsize=pat_side, blockysize=pat_side)
    out = d / f"0-scale{side}_2021-01-01_2021-12-31.tif"
    with rasterio.open(out, "w", **profile) as dst:
        for r in range(0, side, pat_side):
            for c in range(0, side, pat_side):
                dst.write(data, window=Window(c, r, pat_side, pat_side))
        for i, name in enumerate(desc, start=1):
            dst.set_band_description(i, name)
        if tags:
            dst.update_tags(**tags)
    pattern.unlink()
    return out


def run_export(run_dir: Path, tif: Path, out: Path, **kw) -> dict:
    from cropmeta.mapping.export import export

    t0 = time.perf_counter()
    r = export(run_dir, out, inputs=[tif], progress=False, quicklook=False, **kw)
    dt = time.perf_counter() - t0
    return {"seconds": dt, "pixels": r["pixels"], "pixels_per_s": r["pixels"] / dt, "blocks": r["blocks"],
            "seconds_inference": r["seconds_inference"], "seconds_executor_start": r.get("seconds_executor_start"),
            "seconds_write": r["seconds_write"]}


def same_map(a: Path, b: Path) -> dict:
    import rasterio

    with rasterio.open(a) as x, rasterio.open(b) as y:
        pa, pb = x.read(1).astype(np.int16), y.read(1).astype(np.int16)
    return {"bytes_identical": a.read_bytes() == b.read_bytes(), "max_abs_prob_diff_percent": int(np.abs(pa - pb).max())}


def fit(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """(a, b) of ``t = a + b · pixels`` (least squares; exact through two points)."""
    px = np.array([s * s for s in sizes], dtype=float)
    if len(px) == 1:
        return 0.0, seconds[0] / px[0]
    b, a = np.polyfit(px, np.array(seconds, dtype=float), 1)
    return float(a), float(b)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="512,1024,2048")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--warm-max", type=int, default=1024, help="largest side also run on a warm cluster")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--no-processes", action="store_true", help="skip the worker-process cluster")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.warm_max = "128,256", 256
    sizes = [int(s) for s in args.sizes.split(",")]

    import torch

    from cropmeta.testing import make_timl_run

    torch.set_num_threads(1)
    res: dict = {"benchmark": "scaleout", "command": command_line("bench_scaleout.py", argv),
                 "machine_before": machine(), "workers": args.workers, "hidden": args.hidden, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="cropmeta-bench-scale-") as d:
        d = Path(d)
        run_dir = make_timl_run(d / "run", hidden=args.hidden)
        warm = None
        if any(s <= args.warm_max for s in sizes):
            from dask.distributed import LocalCluster

            warm = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        try:
            for side in sizes:
                t0 = time.perf_counter()
                tif = make_map(d, side)
                row: dict = {"pixels": side * side, "seconds_make_input": time.perf_counter() - t0}
                row["serial"] = run_export(run_dir, tif, d / f"s{side}.tif")
                row["dask_local"] = run_export(run_dir, tif, d / f"d{side}.tif", workers=args.workers)
                row["dask_local"]["vs_serial"] = same_map(d / f"s{side}.tif", d / f"d{side}.tif")
                row["dask_local_speedup"] = row["serial"]["seconds"] / row["dask_local"]["seconds"]
                if not args.no_processes:
                    row["dask_processes"] = run_export(run_dir, tif, d / f"p{side}.tif", workers=args.workers,
                                                       dask_processes=True)
                    row["dask_processes"]["vs_serial"] = same_map(d / f"s{side}.tif", d / f"p{side}.tif")
                    row["dask_processes_speedup"] = row["serial"]["seconds"] / row["dask_processes"]["seconds"]
                if warm is not None and side <= args.warm_max:
                    row["dask_warm"] = run_export(run_dir, tif, d / f"w{side}.tif", scheduler=warm.scheduler_address)
                    row["dask_warm"]["vs_serial"] = same_map(d / f"s{side}.tif", d / f"w{side}.tif")
                    row["dask_warm_speedup"] = row["serial"]["seconds"] / row["dask_warm"]["seconds"]
                res["sizes"][str(side)] = row
                print(f"{side}x{side}: serial {row['serial']['seconds']:.1f} s, dask x{args.workers} "
                      f"{row['dask_local']['seconds']:.1f} s (start {row['dask_local']['seconds_executor_start']:.1f} s) "
                      f"= {row['dask_local_speedup']:.2f}x serial"
                      + (f"; worker processes {row['dask_processes']['seconds']:.1f} s = {row['dask_processes_speedup']:.2f}x"
                         if "dask_processes" in row else "")
                      + (f"; warm cluster {row['dask_warm']['seconds']:.1f} s = {row['dask_warm_speedup']:.2f}x"
                         if "dask_warm" in row else "")
                      + f"; identical to serial: {row['dask_local']['vs_serial']['bytes_identical']}", flush=True)
                for p in d.glob(f"*{side}.tif"):
                    p.unlink()
        finally:
            if warm is not None:
                warm.close()
    s_list = [int(k) for k in res["sizes"]]
    a_s, b_s = fit(s_list, [res["sizes"][str(s)]["serial"]["seconds"] for s in s_list])
    a_d, b_d = fit(s_list, [res["sizes"][str(s)]["dask_local"]["seconds"] for s in s_list])
    cross = (a_d - a_s) / (b_s - b_d) if b_s > b_d else None
    won = [s for s in s_list if res["sizes"][str(s)]["dask_local_speedup"] > 1.0]
    res["fit"] = {"serial": {"a_s": a_s, "b_s_per_pixel": b_s}, "dask_local": {"a_s": a_d, "b_s_per_pixel": b_d},
                  "asymptotic_speedup": b_s / b_d if b_d > 0 else None}
    res["crossover_pixels"] = cross
    res["crossover_side"] = float(np.sqrt(cross)) if cross and cross > 0 else None
    res["smallest_measured_side_where_dask_wins"] = min(won) if won else None
    res["machine_after"] = machine()
    print(f"crossover: {cross:,.0f} px ≈ {res['crossover_side']:.0f}² px (fit t = a + b·px over {s_list}); "
          f"asymptotic dask/serial {res['fit']['asymptotic_speedup']:.2f}x; smallest measured side where dask wins: "
          f"{res['smallest_measured_side_where_dask_wins']}" if cross else
          f"no crossover in the fit (dask per-pixel cost not below serial's); measured wins at: {won}", flush=True)
    path = write_result("scaleout", res, args.out)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
