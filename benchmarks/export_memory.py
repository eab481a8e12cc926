"""Peak memory of ``cropmeta export`` as the map grows 1×, 4×, 16× (pixels).

Each size runs in a fresh subprocess (serial export, one torch thread). The subprocess first
exports a 16×16 tile (imports — torch alone is ~0.5 GB RSS —, model load, GDAL drivers), then the
measured map; its peak RSS is sampled with psutil every 20 ms (``resource.getrusage`` ``ru_maxrss``
of the whole process is recorded too). The input is
an Earth-Engine-layout tile (T*17+2 bands, pixel-interleaved, 256-px tiles like real exports) with
smooth, highly compressible values so that the 16× input stays small on disk; the model is
cropmeta's real TIML architecture (small ``--hidden`` by default so the 16× run takes about a
minute on 2 cores — the activation memory per batch is tiny either way).

Memory bound by design: one 512×512 output block at a time, read in strips of ≤ 16,384 pixels, and
GDAL's block cache capped at ``gdal_cache_mb`` (256 MB by default) — GDAL's own default (5 % of
RAM) would let the cache, and the process, grow with the input.

    .venv/bin/python benchmarks/export_memory.py                   # 256², 512², 1024² px
    .venv/bin/python benchmarks/export_memory.py --base 512        # 512², 1024², 2048² px

Writes ``benchmarks/results/export_memory.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def write_tile(path: Path, size: int, t: int) -> Path:
    """A compressible EE-layout tile written block by block (never whole in memory)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from cropmeta.schema import DYNAMIC_BANDS_RAW, RAW_PER_STEP, raw_band_names

    names = raw_band_names(t)
    base = {b: 1000.0 for b in DYNAMIC_BANDS_RAW}
    base.update({"VV": -12.0, "VH": -18.0, "temperature_2m": 295.0, "total_precipitation": 0.003})
    b4, b8 = DYNAMIC_BANDS_RAW.index("B4"), DYNAMIC_BANDS_RAW.index("B8")
    profile = dict(driver="GTiff", width=size, height=size, count=len(names), dtype="float32", crs="EPSG:32737",
                   transform=from_origin(300000, 9990000, 10, 10), compress="deflate", interleave="pixel",
                   tiled=True, blockxsize=256, blockysize=256, BIGTIFF="IF_SAFER")
    with rasterio.open(path, "w", **profile) as dst:
        for i, n in enumerate(names, 1):
            dst.set_band_description(i, n)
        for r in range(0, size, 256):
            for c in range(0, size, 256):
                h, w = min(256, size - r), min(256, size - c)
                ndvi = np.broadcast_to(np.linspace(0.0, 0.8, size, dtype=np.float32)[c : c + w], (h, w))
                a = np.empty((len(names), h, w), dtype=np.float32)
                for s in range(t):
                    for j, b in enumerate(DYNAMIC_BANDS_RAW):
                        a[s * RAW_PER_STEP + j] = base[b]
                    a[s * RAW_PER_STEP + b4] = 1000.0
                    a[s * RAW_PER_STEP + b8] = 1000.0 * (1 + ndvi) / (1 - ndvi)
                a[-2] = 1500.0
                a[-1] = 3.0
                dst.write(a, window=Window(c, r, w, h))
    return path


def child(tif: str, run: str, out: str, gdal_cache_mb: int) -> None:
    import psutil

    import torch

    from cropmeta.mapping.export import export

    torch.set_num_threads(1)
    proc = psutil.Process()
    rss_start = proc.memory_info().rss
    # warm-up on a 16 x 16 tile: imports (torch alone is ~0.5 GB RSS), model load, GDAL drivers — so
    # that the measured increment is the export's own working memory
    from cropmeta.testing import make_ee_tile
    from cropmeta.schema import t_from_raw_band_count

    import rasterio

    with rasterio.open(tif) as s:
        t = t_from_raw_band_count(s.count)
    small = make_ee_tile(Path(out).with_name("warmup_in.tif"), height=16, width=16, t=t)
    export(run, Path(out).with_name("warmup.tif"), inputs=[small], progress=False, quicklook=False,
           gdal_cache_mb=gdal_cache_mb)
    base_rss = proc.memory_info().rss
    peak = [base_rss]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    res = export(run, out, inputs=[tif], progress=False, quicklook=False, gdal_cache_mb=gdal_cache_mb)
    dt = time.perf_counter() - t0
    stop.set()
    th.join()
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"pixels": res["pixels"], "seconds": dt, "rss_at_start_mb": rss_start / 2**20,
                      "rss_before_mb": base_rss / 2**20,
                      "peak_rss_sampled_mb": peak[0] / 2**20, "ru_maxrss_mb": ru / 2**20,
                      "pixels_per_s": res["pixels"] / dt}))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", type=int, default=256, help="side of the 1x map in pixels (4x: 2 base, 16x: 4 base)")
    ap.add_argument("--t", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--gdal-cache-mb", type=int, default=256)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "export_memory.json"))
    ap.add_argument("--child", nargs=3, metavar=("TIF", "RUN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child, gdal_cache_mb=args.gdal_cache_mb)
        return {}

    from cropmeta.testing import make_timl_run

    result = {"benchmark": "export_memory", "args": {k: v for k, v in vars(args).items() if k != "child"},
              "command": "python benchmarks/export_memory.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "cores": os.cpu_count(), "load_average_start": os.getloadavg(), "sizes": []}
    with tempfile.TemporaryDirectory(prefix="cropmeta-mem-") as d:
        d = Path(d)
        run = make_timl_run(d / "run", t=args.t, hidden=args.hidden)
        for scale, k in ((1, 1), (4, 2), (16, 4)):
            side = args.base * k
            tif = write_tile(d / f"tile_{side}.tif", side, args.t)
            env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
            cp = subprocess.run([sys.executable, __file__, "--child", str(tif), str(run), str(d / f"map_{side}.tif"),
                                 "--gdal-cache-mb", str(args.gdal_cache_mb)],
                                env=env, capture_output=True, text=True, check=False)
            if cp.returncode != 0:
                raise SystemExit(f"child for {side}x{side} failed:\n{cp.stderr[-3000:]}")
            rec = json.loads(cp.stdout.strip().splitlines()[-1])
            rec.update({"scale": scale, "side": side, "input_mb_uncompressed": side * side * (args.t * 17 + 2) * 4 / 2**20,
                        "input_mb_on_disk": tif.stat().st_size / 2**20})
            result["sizes"].append(rec)
            tif.unlink()
            print(f"{scale:>3}x  {side}x{side} px  peak RSS {rec['peak_rss_sampled_mb']:.0f} MB "
                  f"(after imports + warm-up {rec['rss_before_mb']:.0f}; process ru_maxrss {rec['ru_maxrss_mb']:.0f})  "
                  f"input {rec['input_mb_uncompressed']:.0f} MB raw  {rec['seconds']:.1f} s", flush=True)
    p = {s["scale"]: s["peak_rss_sampled_mb"] for s in result["sizes"]}
    inc = {s["scale"]: s["peak_rss_sampled_mb"] - s["rss_before_mb"] for s in result["sizes"]}
    result["peak_ratio_4x_over_1x"] = p[4] / p[1]
    result["peak_ratio_16x_over_1x"] = p[16] / p[1]
    result["peak_ratio_16x_over_4x"] = p[16] / p[4]
    result["export_increment_mb"] = inc
    print(f"peak RSS ratio 4x/1x = {result['peak_ratio_4x_over_1x']:.2f}, 16x/1x = "
          f"{result['peak_ratio_16x_over_1x']:.2f}, 16x/4x = {result['peak_ratio_16x_over_4x']:.2f}; export's own "
          f"increment (MB): " + ", ".join(f"{k}x {v:.0f}" for k, v in inc.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
