"""Shared helpers of the issue-7 benchmark suite: machine record, matmul rate, statistics, JSON out."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """Cores, torch threads, CPU model and its bf16 features, GPU, versions, load average now."""
    import torch

    flags = cpu_flags()
    gpu = None
    if torch.cuda.is_available():
        gpu = {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
               "bf16": bool(torch.cuda.is_bf16_supported())}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "avx512f": "avx512f" in flags,
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def summarize(values: list[float]) -> dict:
    """Median and spread (min, max, and the quartiles when there are ≥ 4 values)."""
    v = sorted(float(x) for x in values)
    if not v:
        return {"n": 0}
    out = {"n": len(v), "median": statistics.median(v), "min": v[0], "max": v[-1]}
    if len(v) >= 4:
        q = statistics.quantiles(v, n=4)
        out.update({"q1": q[0], "q3": q[2]})
    return out


def mm_rate(dtype: str = "float32", n: int = 2048, reps: int = 5, threads: int = 1, device: str = "cpu",
            max_seconds: float = 20.0) -> dict:
    """GFLOP/s of a square ``torch.mm`` (``2 n³`` FLOPs), median over ``reps`` (fewer when one
    product takes long: emulated bf16 on a CPU without native support)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dt = getattr(torch, dtype)
        a = torch.randn(n, n, device=device).to(dt)
        b = torch.randn(n, n, device=device).to(dt)

        def once() -> float:
            if device != "cpu":
                torch.cuda.synchronize()
            t = time.perf_counter()
            torch.mm(a, b)
            if device != "cpu":
                torch.cuda.synchronize()
            return time.perf_counter() - t

        first = once()  # warm-up
        times = []
        t_end = time.perf_counter() + max_seconds
        for _ in range(reps):
            times.append(once())
            if time.perf_counter() > t_end:
                break
        if not times:
            times = [first]
        s = summarize(times)
        return {"dtype": dtype, "n": n, "threads": threads, "device": device, "seconds": s,
                "gflops": 2 * n**3 / s["median"] / 1e9, "gflops_best": 2 * n**3 / s["min"] / 1e9}
    finally:
        torch.set_num_threads(old)


def interleaved_shares(fns: dict, x, reps: int, flops_per_item: float, threads: int = 1,
                       device: str = "cpu") -> tuple[list[float], dict, dict]:
    """Every repetition times one fp32 ``torch.mm`` (``threads`` threads) and then each ``fn(x)`` once,
    so a change in machine load hits both sides of each share. Returns (mm GFLOP/s samples,
    {name: seconds samples}, {name: share-of-mm samples}) with ``len(x) · flops_per_item`` FLOPs per call."""
    mm_samples: list[float] = []
    times: dict = {k: [] for k in fns}
    shares: dict = {k: [] for k in fns}
    for _ in range(reps):
        m = mm_rate("float32", threads=threads, reps=1, device=device)["gflops"]
        mm_samples.append(m)
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn(x)
            dt = time.perf_counter() - t0
            times[k].append(dt)
            shares[k].append(len(x) / dt * flops_per_item / 1e9 / m)
    return mm_samples, times, shares


def write_result(name: str, result: dict, out: str | Path | None = None) -> Path:
    """``benchmarks/results/<name>.json`` (atomically)."""
    from cropmeta._fs import atomic_write_text

    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=2, default=_plain))
    return path


def _plain(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def command_line(script: str, argv: list[str] | None) -> str:
    """How to rerun this benchmark (``--out``/``--home`` paths of one run left out)."""
    args = list(sys.argv[1:] if argv is None else argv)
    keep, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("--out", "--home"):
            skip = True
            continue
        keep.append(a)
    return " ".join([".venv/bin/python", f"benchmarks/{script}", *keep]).strip()


def cprofile_top(fn, n: int = 20, sort: str = "tottime") -> list[str]:
    """cProfile's top ``n`` entries (by ``sort``) of ``fn()``, as text lines."""
    import cProfile
    import io
    import pstats

    pr = cProfile.Profile()
    pr.enable()
    try:
        fn()
    finally:
        pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats(sort).print_stats(n)
    lines = [ln for ln in s.getvalue().splitlines() if ln.strip()]
    # keep the header line and the table
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return lines[start:]


def torch_profile_top(fn, n: int = 15) -> list[str]:
    """torch.profiler's top ``n`` operators by self CPU time of ``fn()``, as text lines."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=n).splitlines()
