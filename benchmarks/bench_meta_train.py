"""Meta-training throughput: cropmeta's learn2learn loop vs the TIML-paper-style reference loop.

Both sides in the same process, alternating (A B, B A, …) so that a change in machine load hits
both; same tasks, same seed, same initial weights (benchmarks/reference/timl_reference.py; its
meta-gradient equals cropmeta's, tests/test_perf_reference.py):

- outer steps/s, second and first order: 32 tasks × (10 + 10 support, 4 + 4 query), T = 12,
  18 bands, hidden 128 (the paper's sizes); per-step times from the steps after the first of every
  block, median and spread over all blocks. One thread each (``--threads``), and the whole machine:
  cropmeta on 2 gloo ranks of one thread (``cropmeta train --nprocs 2``) vs the reference on 2 torch
  threads (its loop is single-process);
- held-out AUC after the same wall time: each side meta-trains for ``--auc-seconds`` (its steps
  estimated from its measured rate; the reference also stops at the wall time) with the CPU preset's
  settings (first order, Adam 3e-3; ``--auc-order``, ``--auc-preset``) and 32 tasks per step, then
  the same fine-tuning (cropmeta's, 250 SGD steps) and AUC on the target's held-out test set; plus
  the AUC of the same fine-tuning from the untrained initialisation (the floor).

No task removal and no meta-validation on either side (``remove_auc=None, val_fraction=0``): the
reference has neither, so the loops do the same work.

    .venv/bin/python benchmarks/bench_meta_train.py               # full (~10 min on 2 cores)
    .venv/bin/python benchmarks/bench_meta_train.py --quick       # smoke test (~1 min)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import command_line, machine, mm_rate, summarize, write_result  # noqa: E402


def load_samples(data: str, home: str | None):
    if data == "toy":
        from cropmeta.testing import toy_samples

        return toy_samples(n_per_label=40, n_noncrop=60, t=12, seed=0)
    from cropmeta.ingest import ingest
    from cropmeta.datasets import list_datasets, load_datasets

    if not list_datasets(home):
        ingest(progress=False, seed=0, home=home)
    return load_datasets(home)


def _intervals(stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(stamps, stamps[1:])]


def run_ours(samples, target, cfg, seed: int) -> tuple[list[float], object, float]:
    from cropmeta.train.maml import meta_train

    stamps: list[float] = []
    t0 = time.perf_counter()
    model = meta_train(samples, target, cfg, learner="timl", seed=seed,
                       callback=lambda i, rec: stamps.append(time.perf_counter()))
    return stamps, model, time.perf_counter() - t0


class _Stop(Exception):
    pass


def run_ours_for(samples, target, cfg, seed: int, wall: float):
    """cropmeta's meta_train stopped once ``wall`` seconds have passed since the call (setup included):
    a checkpoint is written after every step and the last one is loaded (the step in progress when
    the time ran out is lost: conservative for cropmeta). Returns (model, steps, seconds)."""
    import tempfile

    from cropmeta.train import checkpoint as ck
    from cropmeta.train.maml import fit_normalizer, meta_train
    from cropmeta.train.trained import TrainedModel, build_model

    t0 = time.perf_counter()

    def cb(i, rec):
        if time.perf_counter() - t0 >= wall:
            raise _Stop

    with tempfile.TemporaryDirectory(prefix="cropmeta-auc-") as d:
        try:
            model = meta_train(samples, target, cfg.replace(checkpoint_every=1), learner="timl", seed=seed,
                               workdir=d, callback=cb)
            return model, int(model.info["iterations"]), time.perf_counter() - t0
        except _Stop:
            seconds = time.perf_counter() - t0
            tensors, meta = ck.load_state(d)
    clf, enc = build_model(cfg, samples.t, "timl", seed)
    clf.load_state_dict({k[len("classifier."):]: v for k, v in tensors.items() if k.startswith("classifier.")})
    enc.load_state_dict({k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")})
    model = TrainedModel("timl", clf.eval(), enc.eval(), fit_normalizer(samples), cfg, None,
                         {"iterations": int(meta["iteration"])})
    return model, int(meta["iteration"]), seconds


def _timed_worker(ctx, samples, target, cfg, workdir: str) -> None:
    """One rank: meta-train its share, recording wall and this process's CPU time after every step."""
    import json

    from cropmeta.train.maml import meta_train

    stamps: list[tuple[float, float]] = []
    meta_train(samples, target, cfg, learner="timl", seed=0, dist=ctx,
               callback=lambda i, rec: stamps.append((time.perf_counter(), time.process_time())))
    (Path(workdir) / f"rank{ctx.rank}.json").write_text(json.dumps(stamps))


def run_ours_ranks(samples, target, cfg, nprocs: int, with_cpu: bool = False):
    """Step intervals of a ``nprocs``-rank gloo run (one thread per rank, started by
    :func:`cropmeta.train.distributed.spawn` like ``cropmeta train --nprocs``), from rank 0's wall
    clock; ``with_cpu``: also each rank's CPU seconds per step (a measure of the work per rank
    that other jobs on a shared machine hardly change)."""
    import json
    import tempfile

    from cropmeta.train.distributed import spawn

    cfg = cfg.replace(threads=1, checkpoint_every=10_000)
    with tempfile.TemporaryDirectory(prefix="cropmeta-ranks-") as d:
        spawn(_timed_worker, nprocs, args=(samples, target, cfg, d), threads=1)
        ranks = [json.loads((Path(d) / f"rank{r}.json").read_text()) for r in range(nprocs)]
    wall = _intervals([s[0] for s in ranks[0]])
    if not with_cpu:
        return wall
    cpu = [_intervals([s[1] for s in rk]) for rk in ranks]
    return wall, cpu


def run_reference(samples, target, cfg, seed: int, iterations: int, wall_time: float | None = None):
    from benchmarks.reference.timl_reference import reference_meta_train

    stamps: list[float] = []
    t0 = time.perf_counter()
    model, rec = reference_meta_train(samples, target, cfg, seed=seed, iterations=iterations, wall_time=wall_time,
                                      callback=lambda i, t: stamps.append(t))
    return stamps, model, time.perf_counter() - t0


def heldout_auc(model, td, task, cfg, seed: int) -> float:
    from sklearn.metrics import roc_auc_score

    from cropmeta.train.finetune import finetune
    from cropmeta.train.trained import predict_proba

    ft = finetune(model, td.x_train, td.y_train, task_info=task.info, cfg=cfg, seed=seed)
    return float(roc_auc_score(td.y_test, predict_proba(ft, td.x_test)))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=["sim", "toy"], default="sim", help="simulated world (ingested) or toy samples")
    ap.add_argument("--home", default=None, help="CROPMETA_HOME holding the ingested world (default: the environment's)")
    ap.add_argument("--region", default="kenya")
    ap.add_argument("--steps", type=int, default=4, help="outer steps per timed block (the first is warm-up)")
    ap.add_argument("--rounds", type=int, default=3, help="blocks per side and order")
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    ap.add_argument("--orders", default="second,first")
    ap.add_argument("--no-machine-best", action="store_true",
                    help="skip the whole-machine sides (cropmeta on 2 gloo ranks, the reference on 2 threads)")
    ap.add_argument("--auc-seconds", type=float, default=90.0, help="meta-training wall time per side (0: skip)")
    ap.add_argument("--auc-order", choices=["second", "first"], default="first",
                    help="order of the AUC comparison (default: first, the CPU preset's)")
    ap.add_argument("--auc-preset", default="quick", help="learning rates etc. of this preset for the AUC comparison")
    ap.add_argument("--auc-region", default="togo",
                    help="target of the AUC comparison (default togo: learnable within the budget; see the report)")
    ap.add_argument("--auc-only", action="store_true",
                    help="redo only the AUC comparison, reusing the throughput of the existing result file")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", action="store_true", help="torch.profiler top operators of cropmeta's steps")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.auc_seconds = 3, 1, min(args.auc_seconds, 8.0)

    import torch

    from cropmeta.tasks import resolve_target, target_data
    from cropmeta.train.config import resolve_config

    torch.set_num_threads(args.threads)
    samples = load_samples(args.data, args.home)
    task = resolve_target(samples, args.region)
    base = resolve_config("paper", overrides={
        "tasks_per_step": args.tasks, "k_support": 10, "k_query": 4, "hidden": args.hidden, "remove_auc": None,
        "val_fraction": 0.0, "threads": args.threads, "device": args.device})
    res: dict = {"benchmark": "meta_train", "command": command_line("bench_meta_train.py", argv),
                 "machine_before": machine(), "data": args.data, "n_samples": len(samples), "target": task.name,
                 "sizes": {"tasks_per_step": args.tasks, "support": "10+10", "query": "4+4", "t": samples.t,
                           "bands": 18, "hidden": args.hidden, "threads": args.threads, "device": args.device},
                 "throughput": {}}
    from cropmeta.tasks import build_tasks

    res["n_meta_train_tasks"] = len(build_tasks(samples, exclude=task, min_per_class=base.min_examples))

    out_path = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / "meta_train.json"
    if args.auc_only:
        import json

        prev = json.loads(out_path.read_text())
        res = {**prev, "command_auc": command_line("bench_meta_train.py", argv), "machine_before_auc": machine()}
        args.orders, args.profile = "", False
    for order in [o.strip() for o in args.orders.split(",") if o.strip()]:
        cfg = base.replace(first_order=(order == "first"), iterations=args.steps)
        sides = ["ours", "ref"] + ([] if args.no_machine_best else ["ours_2ranks", "ref_2threads"])
        times: dict[str, list[float]] = {k: [] for k in sides}
        ratios = []
        for r in range(args.rounds):
            order_r = sides if r % 2 == 0 else sides[::-1]
            got = {}
            for side in order_r:
                if side == "ours":
                    stamps, _, _ = run_ours(samples, task, cfg, seed=r)
                    got[side] = _intervals(stamps)
                elif side == "ref":
                    stamps, _, _ = run_reference(samples, task, cfg, seed=r, iterations=args.steps)
                    got[side] = _intervals(stamps)
                elif side == "ours_2ranks":
                    got[side] = run_ours_ranks(samples, task, cfg, 2)
                else:
                    stamps, _, _ = run_reference(samples, task, cfg.replace(threads=2), seed=r, iterations=args.steps)
                    got[side] = _intervals(stamps)
                times[side] += got[side]
            torch.set_num_threads(args.threads)
            ratios.append(summarize(got["ref"])["median"] / summarize(got["ours"])["median"])
        st = {k: summarize(v) for k, v in times.items()}
        so, sr = st["ours"], st["ref"]
        tp = {
            "cropmeta_step_s": so, "reference_step_s": sr,
            "cropmeta_steps_per_s": 1.0 / so["median"], "reference_steps_per_s": 1.0 / sr["median"],
            "speedup": sr["median"] / so["median"], "speedup_per_round": ratios,
        }
        msg = ""
        if not args.no_machine_best:
            best_ours = min(so["median"], st["ours_2ranks"]["median"])
            best_ref = min(sr["median"], st["ref_2threads"]["median"])
            tp.update({"cropmeta_2ranks_step_s": st["ours_2ranks"], "reference_2threads_step_s": st["ref_2threads"],
                       "cropmeta_2ranks_steps_per_s": 1.0 / st["ours_2ranks"]["median"],
                       "reference_2threads_steps_per_s": 1.0 / st["ref_2threads"]["median"],
                       "speedup_whole_machine": best_ref / best_ours})
            msg = (f"; whole machine: cropmeta 2 ranks {1 / st['ours_2ranks']['median']:.3f}, reference 2 threads "
                   f"{1 / st['ref_2threads']['median']:.3f} steps/s → {best_ref / best_ours:.2f}x")
        res["throughput"][order] = tp
        print(f"{order} order: cropmeta {1 / so['median']:.3f} steps/s, reference {1 / sr['median']:.3f} steps/s, "
              f"speed-up {sr['median'] / so['median']:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)}){msg}",
              flush=True)

    if args.profile:
        from benchmarks._common import torch_profile_top

        res["profile"] = {}
        for order in res["throughput"]:
            cfg = base.replace(first_order=(order == "first"), iterations=2)
            res["profile"][order] = torch_profile_top(lambda: run_ours(samples, task, cfg, seed=0))
        from torch.utils.flop_counter import FlopCounterMode

        for order in res["throughput"]:
            cfg = base.replace(first_order=(order == "first"), iterations=1)
            with FlopCounterMode(display=False) as fc:
                run_ours(samples, task, cfg, seed=0)
            tp = res["throughput"][order]
            tp["cropmeta_gflop_per_step"] = fc.get_total_flops() / 1e9
            tp["cropmeta_gflops_achieved"] = fc.get_total_flops() / 1e9 * tp["cropmeta_steps_per_s"]
        res["mm_fp32_gflops"] = mm_rate("float32", threads=args.threads)["gflops"]

    if args.auc_seconds > 0:
        order = args.auc_order
        cfg = resolve_config(args.auc_preset, overrides={
            "tasks_per_step": args.tasks, "hidden": args.hidden, "remove_auc": None, "val_fraction": 0.0,
            "threads": args.threads, "device": args.device, "first_order": order == "first"})
        tp = res["throughput"].get(order)
        if tp is None:
            raise SystemExit(f"--auc-order {order} needs its throughput measured (--orders)")
        w = float(args.auc_seconds)
        # the cosine schedule's horizon: the steps each side is expected to fit in the budget
        n_ours = max(2, int(w * tp["cropmeta_steps_per_s"]))
        n_ref = max(2, int(w * tp["reference_steps_per_s"]))
        auc_task = resolve_target(samples, args.auc_region)
        atd = target_data(samples, auc_task, seed=0)
        auc: dict = {"order": order, "preset": args.auc_preset, "wall_seconds_budget": w, "target": auc_task.name}
        m_ours, steps_ours, t_ours = run_ours_for(samples, auc_task, cfg.replace(iterations=n_ours), 0, w)
        auc["cropmeta"] = {"steps": steps_ours, "planned_steps": n_ours, "seconds": t_ours,
                           "auc": heldout_auc(m_ours, atd, auc_task, cfg, 0)}
        _, m_ref, t_ref = run_reference(samples, auc_task, cfg, seed=0, iterations=n_ref, wall_time=w)
        auc["reference"] = {"steps": int(m_ref.info["iterations"]), "planned_steps": n_ref, "seconds": t_ref,
                            "auc": heldout_auc(m_ref, atd, auc_task, cfg, 0)}
        from cropmeta.train.maml import fit_normalizer
        from cropmeta.train.trained import TrainedModel, build_model

        clf, enc = build_model(cfg, samples.t, "timl", 0)
        init = TrainedModel("timl", clf.eval(), enc.eval(), fit_normalizer(samples), cfg, None, {})
        auc["untrained_init"] = {"auc": heldout_auc(init, atd, auc_task, cfg, 0)}
        auc["test_points"] = int(len(atd.y_test))
        res["heldout_auc_same_wall_time"] = auc
        print(f"held-out AUC ({auc_task.name}) after ~{w:.0f} s ({order} order): cropmeta {auc['cropmeta']['auc']:.4f} "
              f"({steps_ours} steps, {t_ours:.1f} s), reference {auc['reference']['auc']:.4f} "
              f"({auc['reference']['steps']} steps, {t_ref:.1f} s), untrained {auc['untrained_init']['auc']:.4f}",
              flush=True)
    res["machine_after"] = machine()
    path = write_result("meta_train", res, args.out)
    print(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
