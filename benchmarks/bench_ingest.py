"""Ingestion throughput: Earth-Engine-layout GeoTIFF tiles + a label file → per-region sample sets.

The simulated world (generated once, not timed) is ingested from scratch several times, each into a
fresh workspace (no staged tiles, no cache; the world itself is shared by a symlink), exactly as
``cropmeta ingest`` does for a user's exports. Reported: MB/s of tile files (bytes on disk), MB/s of
decoded raster (float32 values of every band of every tile), labelled samples/s, median and spread.

    .venv/bin/python benchmarks/bench_ingest.py [--home DIR] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import command_line, machine, summarize, write_result  # noqa: E402


def tile_stats(tiles: Path) -> dict:
    import rasterio

    files = sorted(p for p in tiles.rglob("*.tif"))
    disk = sum(p.stat().st_size for p in files)
    decoded = 0
    for p in files:
        with rasterio.open(p) as ds:
            decoded += ds.width * ds.height * ds.count * 4
    return {"files": len(files), "bytes_on_disk": disk, "bytes_decoded_float32": decoded}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default=None, help="workspace holding (or to hold) the simulated world")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile top entries of one more ingestion")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.reps = 1

    import torch

    from cropmeta.ingest import ingest
    from cropmeta.datasets import load_datasets
    from cropmeta.sim import ensure_world

    torch.set_num_threads(1)
    home = Path(args.home or os.environ.get("CROPMETA_HOME") or tempfile.mkdtemp(prefix="cropmeta-ingest-home-"))
    t0 = time.perf_counter()
    world = Path(ensure_world(seed=args.seed, home=home))
    t_world = time.perf_counter() - t0
    stats = tile_stats(world / "tiles")
    res: dict = {"benchmark": "ingest", "command": command_line("bench_ingest.py", argv), "machine_before": machine(),
                 "world": str(world), "world_generation_s_if_not_cached": t_world, **stats}
    times, n_samples = [], None
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory(prefix="cropmeta-ingest-") as d:
            fresh = Path(d)
            (fresh / "worlds").mkdir()
            os.symlink(world, fresh / "worlds" / world.name)
            t0 = time.perf_counter()
            ingest(progress=False, seed=args.seed, home=fresh)
            times.append(time.perf_counter() - t0)
            n_samples = len(load_datasets(fresh))
            shutil.rmtree(fresh / "datasets", ignore_errors=True)
    if args.profile:
        from benchmarks._common import cprofile_top

        with tempfile.TemporaryDirectory(prefix="cropmeta-ingest-") as d:
            fresh = Path(d)
            (fresh / "worlds").mkdir()
            os.symlink(world, fresh / "worlds" / world.name)
            res["profile"] = cprofile_top(lambda: ingest(progress=False, seed=args.seed, home=fresh), n=20)
    s = summarize(times)
    res.update({"seconds": s, "samples": n_samples,
                "mb_per_s_on_disk": stats["bytes_on_disk"] / 1e6 / s["median"],
                "mb_per_s_decoded": stats["bytes_decoded_float32"] / 1e6 / s["median"],
                "samples_per_s": n_samples / s["median"], "machine_after": machine()})
    print(f"ingest {stats['files']} tiles ({stats['bytes_on_disk'] / 1e6:.1f} MB on disk, "
          f"{stats['bytes_decoded_float32'] / 1e6:.0f} MB decoded), {n_samples} samples: {s['median']:.1f} s "
          f"(min {s['min']:.1f}, max {s['max']:.1f}) = {res['mb_per_s_on_disk']:.1f} MB/s on disk, "
          f"{res['mb_per_s_decoded']:.0f} MB/s decoded, {res['samples_per_s']:.0f} samples/s", flush=True)
    path = write_result("ingest", res, args.out)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
