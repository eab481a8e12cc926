"""Distributed scaling of meta-training: outer steps/s with 1 vs 2 torch.distributed (gloo) ranks.

Each rank runs one torch thread and takes half of every meta-batch of tasks
(:mod:`cropmeta.train.distributed`); 1 and 2 ranks are started the same way
(:func:`cropmeta.train.distributed.spawn`) and alternate block by block so that changes in machine
load hit both. Step times: rank 0's wall clock after every outer step (the first step of each block
is warm-up). Also each rank's CPU time per step: on a machine shared with other jobs a rank may wait
for a core, which inflates wall time but hardly its CPU time, so "CPU-time scaling" (one rank's CPU
seconds per step ÷ the busiest rank's of N) is the speed-up N idle cores would give if nothing else
(memory bandwidth, all-reduce) limited it. Paper sizes: 32 tasks × (10 + 10, 4 + 4),
T = 12, hidden 128; first order (the CPU preset) and second order.

    .venv/bin/python benchmarks/bench_distributed.py            # full (~4 min on 2 cores)
    .venv/bin/python benchmarks/bench_distributed.py --quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import command_line, machine, summarize, write_result  # noqa: E402
from benchmarks.bench_meta_train import load_samples, run_ours_ranks  # noqa: E402




def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=["sim", "toy"], default="sim")
    ap.add_argument("--home", default=None)
    ap.add_argument("--region", default="kenya")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--orders", default="first,second")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 3, 1

    from cropmeta.tasks import resolve_target
    from cropmeta.train.config import resolve_config

    samples = load_samples(args.data, args.home)
    task = resolve_target(samples, args.region)
    base = resolve_config("paper", overrides={
        "tasks_per_step": args.tasks, "hidden": args.hidden, "remove_auc": None, "val_fraction": 0.0,
        "threads": 1, "device": "cpu", "iterations": args.steps, "checkpoint_every": 10_000})
    res: dict = {"benchmark": "distributed", "command": command_line("bench_distributed.py", argv),
                 "machine_before": machine(), "backend": "gloo", "threads_per_rank": 1, "data": args.data,
                 "sizes": {"tasks_per_step": args.tasks, "hidden": args.hidden, "t": samples.t}, "orders": {}}
    for order in [o.strip() for o in args.orders.split(",") if o.strip()]:
        cfg = base.replace(first_order=(order == "first"))
        times: dict[int, list[float]] = {1: [], args.ranks: []}
        cpu: dict[int, list[float]] = {1: [], args.ranks: []}  # per step: the busiest rank's CPU seconds
        ratios = []
        for r in range(args.rounds):
            sides = [1, args.ranks] if r % 2 == 0 else [args.ranks, 1]
            got = {}
            for n in sides:
                wall, per_rank = run_ours_ranks(samples, task, cfg, n, with_cpu=True)
                got[n] = wall
                times[n] += wall
                cpu[n] += [max(v) for v in zip(*per_rank)]
            ratios.append(summarize(got[1])["median"] / summarize(got[args.ranks])["median"])
        s1, sn = summarize(times[1]), summarize(times[args.ranks])
        c1, cn = summarize(cpu[1]), summarize(cpu[args.ranks])
        res["orders"][order] = {"1_rank_step_s": s1, f"{args.ranks}_ranks_step_s": sn,
                                "1_rank_steps_per_s": 1 / s1["median"], f"{args.ranks}_ranks_steps_per_s": 1 / sn["median"],
                                "scaling": s1["median"] / sn["median"], "scaling_per_round": ratios,
                                "1_rank_cpu_s_per_step": c1, f"{args.ranks}_ranks_busiest_cpu_s_per_step": cn,
                                "cpu_time_scaling": c1["median"] / cn["median"]}
        print(f"{order} order: 1 rank {1 / s1['median']:.3f} steps/s, {args.ranks} ranks "
              f"{1 / sn['median']:.3f} steps/s, scaling {s1['median'] / sn['median']:.2f}x "
              f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}); CPU s/step: 1 rank {c1['median']:.3f}, "
              f"busiest of {args.ranks} {cn['median']:.3f} → {c1['median'] / cn['median']:.2f}x", flush=True)
    res["machine_after"] = machine()
    path = write_result("distributed", res, args.out)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
