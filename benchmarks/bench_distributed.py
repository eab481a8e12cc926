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

Communication share per step (issue 18): in a separate 2-rank run each rank's
:class:`~cropmeta.train.distributed.DistContext` is wrapped so that the time inside every collective
(gradient all-reduce, BatchNorm-buffer and statistics all-reduces) is summed per step. That time is
transfer plus waiting for the slower rank; after training both ranks, in step, time the same
all-reduces again (the sizes recorded during training, and a 1-float one for the latency): pure
transfer. From those, the projection for N ranks on one machine (ring all-reduce:
``2(N−1)·α + 2(N−1)/N · bytes/β``, α and β measured here) and for two 8-core nodes over 10 GbE
(β = 1.25 GB/s, α = 50 µs: assumed, not measured) beside the measured compute per step of one rank.

    .venv/bin/python benchmarks/bench_distributed.py            # full (~4 min on 2 cores)
    .venv/bin/python benchmarks/bench_distributed.py --quick
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import command_line, machine, summarize, write_result  # noqa: E402
from benchmarks.bench_meta_train import _intervals, load_samples, run_ours_ranks  # noqa: E402

COLLECTIVES = ("all_reduce_", "all_reduce_grads_", "average_buffers_")


def _timed_context(ctx):
    """``ctx`` with every collective timed (seconds summed in ``.comm``; flat sizes of one step in ``.sizes``)."""
    import time as _t

    from cropmeta.train.distributed import DistContext

    class TimedDist(DistContext):
        comm = 0.0
        sizes: list = []

        def _timed(self, name, *a):
            t0 = _t.perf_counter()
            out = getattr(DistContext, name)(self, *a)
            self.comm += _t.perf_counter() - t0
            return out

        def all_reduce_(self, t):
            self.sizes.append(t.numel())
            return self._timed("all_reduce_", t)

        def all_reduce_grads_(self, params):
            params = list(params)
            self.sizes.append(sum(p.numel() for p in params if p.requires_grad))
            return self._timed("all_reduce_grads_", params)

        def average_buffers_(self, module, weight):
            self.sizes.append(sum(b.numel() for b in module.buffers() if b.is_floating_point()))
            return self._timed("average_buffers_", module, weight)

    out = TimedDist(ctx.rank, ctx.world_size, ctx.backend)
    out.sizes = []
    return out


def _comm_worker(ctx, samples, target, cfg, workdir: str, reps: int = 20) -> None:
    """One rank: meta-train with timed collectives, then time the same all-reduces with both ranks in step."""
    import json
    import time as _t

    import torch
    import torch.distributed as tdist

    from cropmeta.train.maml import meta_train

    tctx = _timed_context(ctx)
    stamps: list[tuple[float, float, float, int]] = []
    meta_train(samples, target, cfg, learner="timl", seed=0, dist=tctx,
               callback=lambda i, rec: stamps.append((_t.perf_counter(), _t.process_time(), tctx.comm,
                                                      len(tctx.sizes))))
    n_steps = max(1, len(stamps))
    per_step = tctx.sizes[: len(tctx.sizes) // n_steps] if tctx.sizes else []

    def timed_allreduce(n: int) -> float:
        buf = torch.zeros(max(1, n))
        times = []
        for _ in range(reps):
            tdist.barrier()
            t0 = _t.perf_counter()
            tdist.all_reduce(buf)
            times.append(_t.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    pure = [timed_allreduce(n) for n in per_step]
    latency = timed_allreduce(1)
    (Path(workdir) / f"rank{ctx.rank}.json").write_text(json.dumps(
        {"stamps": stamps, "sizes_per_step": per_step, "pure_s": pure, "latency_s": latency}))


def ring_allreduce_s(n_ranks: int, floats_per_call: list[int], alpha: float, beta_bytes_per_s: float) -> float:
    """Ring all-reduce time of one step's collectives on ``n_ranks`` (0 on one rank)."""
    if n_ranks <= 1:
        return 0.0
    return sum(2 * (n_ranks - 1) * alpha + 2 * (n_ranks - 1) / n_ranks * 4 * n / beta_bytes_per_s
               for n in floats_per_call)


def communication(samples, task, cfg) -> dict:
    """The 2-rank run with timed collectives → per-step compute / in-collective / pure transfer."""
    import json
    import tempfile

    from cropmeta.train.distributed import spawn

    cfg = cfg.replace(threads=1, checkpoint_every=10_000)
    with tempfile.TemporaryDirectory(prefix="cropmeta-comm-") as d:
        spawn(_comm_worker, 2, args=(samples, task, cfg, d), threads=1)
        ranks = [json.loads((Path(d) / f"rank{r}.json").read_text()) for r in range(2)]
    r0 = ranks[0]
    st = r0["stamps"]
    wall = _intervals([s[0] for s in st])
    comm = _intervals([s[2] for s in st])
    sizes = r0["sizes_per_step"]
    pure = sum(r0["pure_s"])
    alpha = r0["latency_s"]
    total_floats = sum(sizes)
    # β from the transfer beyond latency: 2 ranks move 2·(1/2)·bytes per call in a ring
    beyond = max(pure - len(sizes) * 2 * alpha, 1e-9)
    beta = 4 * total_floats / beyond
    w, c = summarize(wall), summarize(comm)
    return {"step_s": w, "in_collectives_s_per_step": c, "pure_allreduce_s_per_step": pure,
            "collective_calls_per_step": len(sizes), "floats_per_step": total_floats,
            "latency_s": alpha, "bandwidth_bytes_per_s": beta,
            "share_in_collectives": c["median"] / w["median"], "share_pure_transfer": pure / w["median"],
            "share_waiting_for_other_rank": max(c["median"] - pure, 0.0) / w["median"],
            "sizes_per_step": sizes}


def projection(one_rank_step_s: float, comm: dict, tasks: int) -> dict:
    """Steps/s for N ranks from the measured 1-rank compute and the measured α, β (see module docstring)."""
    out = {}
    sizes = comm["sizes_per_step"]
    for label, n, alpha, beta in [("4 ranks, one machine", 4, comm["latency_s"], comm["bandwidth_bytes_per_s"]),
                                  ("16 ranks, one 16-core machine", 16, comm["latency_s"], comm["bandwidth_bytes_per_s"]),
                                  ("16 ranks, two 8-core nodes, 10 GbE (assumed a=50us, b=1.25 GB/s)", 16, 50e-6, 1.25e9)]:
        per_rank_tasks = -(-tasks // n)
        compute = one_rank_step_s * per_rank_tasks / tasks
        t_comm = ring_allreduce_s(n, sizes, alpha, beta)
        step = compute + t_comm
        out[label] = {"ranks": n, "tasks_per_rank": per_rank_tasks, "compute_s": compute, "allreduce_s": t_comm,
                      "step_s": step, "speedup_vs_1_rank": one_rank_step_s / step,
                      "communication_share": t_comm / step}
    return out




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
    ap.add_argument("--no-comm", action="store_true", help="skip the communication-share run")
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
        if not args.no_comm and args.ranks == 2:
            cm = communication(samples, task, cfg)
            o = res["orders"][order]
            o["communication_2_ranks"] = cm
            o["projection"] = projection(s1["median"], cm, args.tasks)
            print(f"  2 ranks: {cm['step_s']['median']:.3f} s/step, in collectives {cm['in_collectives_s_per_step']['median']:.4f} s "
                  f"({100 * cm['share_in_collectives']:.1f} %), pure all-reduce {cm['pure_allreduce_s_per_step']:.4f} s "
                  f"({100 * cm['share_pure_transfer']:.2f} %; {cm['floats_per_step']:,} floats in "
                  f"{cm['collective_calls_per_step']} calls, latency {1e6 * cm['latency_s']:.0f} us, "
                  f"{cm['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s)", flush=True)
            for k, v in o["projection"].items():
                print(f"  projected {k}: {v['speedup_vs_1_rank']:.1f}x one rank "
                      f"(communication {100 * v['communication_share']:.1f} % of the step)", flush=True)
    res["machine_after"] = machine()
    path = write_result("distributed", res, args.out)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
