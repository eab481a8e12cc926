"""End to end: wall time of the default ``cropmeta train --region kenya`` (quick preset) on this
machine, as a user runs it (the installed command, a fresh process, torch's default threads).

- ``warm``: the simulated world is already generated and ingested in the workspace (the usual case
  after ``cropmeta ingest`` or a first run) — the command's own work: meta-training, fine-tuning,
  evaluation, checkpoint;
- ``cold`` (``--cold``): a fresh workspace: world generation + ingestion + the above (first run
  after install).

The run's ``metrics.json`` gives its own split (meta-training, fine-tuning + evaluation) and the
held-out AUC / F1, recorded beside the wall time. ``--profile`` adds cProfile's top entries of an
in-process run of the same command (warm).

    .venv/bin/python benchmarks/bench_train_e2e.py [--home DIR] [--cold] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import command_line, machine, write_result  # noqa: E402

TARGET_S = 300.0


def cli() -> list[str]:
    exe = Path(sys.executable).parent / "cropmeta"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cropmeta_cli.app"]


def run_cli(home: Path, out: Path, extra: list[str]) -> dict:
    env = {**os.environ, "CROPMETA_HOME": str(home), "COLUMNS": "120"}
    cmd = [*cli(), "train", "--region", "kenya", "--out", str(out), *extra]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    shown = [a for a in extra if not a.endswith(".toml")]
    return {"command": " ".join(["cropmeta", "train", "--region", "kenya", *shown]), "wall_s": wall,
            "timings": m.get("timings"), "auc_roc": m.get("auc_roc"), "f1": m.get("f1"),
            "iterations": (m.get("meta") or {}).get("iterations"), "target_s": TARGET_S,
            "met": wall < TARGET_S}


def profile_inprocess(home: Path, out: Path, n: int = 25) -> list[str]:
    import cProfile
    import io
    import pstats

    os.environ["CROPMETA_HOME"] = str(home)
    from cropmeta.app.train import train

    pr = cProfile.Profile()
    pr.enable()
    train("kenya", out=out, progress=False)
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(n)
    return s.getvalue().splitlines()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", default=None, help="workspace with the ingested world (warm run); default: a new one")
    ap.add_argument("--cold", action="store_true", help="also time a first run in a fresh workspace")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--extra", default="", help="extra flags for cropmeta train (e.g. '--nprocs 2')")
    ap.add_argument("--quick", action="store_true", help="smoke test: a tiny config instead of the default run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from cropmeta.ingest import ingest
    from cropmeta.datasets import list_datasets

    extra = args.extra.split() if args.extra else []
    tmp = Path(tempfile.mkdtemp(prefix="cropmeta-e2e-"))
    if args.quick:  # not the measured command: only checks that this script works
        (tmp / "tiny.toml").write_text("iterations = 3\nft_steps = 5\ntasks_per_step = 4\nval_every = 2\n")
        extra += ["--config", str(tmp / "tiny.toml")]
    res: dict = {"benchmark": "train_e2e", "command": command_line("bench_train_e2e.py", argv), "machine_before": machine(),
                 "target_s": TARGET_S, "quick_smoke_test": bool(args.quick)}
    try:
        home = Path(args.home) if args.home else tmp / "home"
        if not list_datasets(home):
            ingest(progress=False, seed=0, home=home)
        res["warm"] = run_cli(home, tmp / "run-warm", extra)
        print(f"warm: {res['warm']['wall_s']:.1f} s (target < {TARGET_S:.0f} s: {res['warm']['met']}), "
              f"AUC {res['warm']['auc_roc']:.3f}, F1 {res['warm']['f1']:.3f}, timings {res['warm']['timings']}",
              flush=True)
        if args.cold:
            res["cold"] = run_cli(tmp / "fresh-home", tmp / "run-cold", extra)
            print(f"cold (fresh workspace): {res['cold']['wall_s']:.1f} s", flush=True)
        if args.profile:
            res["profile_cumulative_top"] = profile_inprocess(home, tmp / "run-prof")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["machine_after"] = machine()
    path = write_result("train_e2e", res, args.out)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
