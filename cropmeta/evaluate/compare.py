"""The comparison protocol behind ``cropmeta compare``.

For every seed, method and shot count (a *cell*):

1. the target's training pool (``split == 'train'`` in the target region) is subsampled to ``k``
   labelled samples — the same nested, class-proportional subset for every method (paired design);
2. the method, prepared once per seed on the non-target training data (meta-training / pretraining;
   test samples are removed everywhere before anything sees the data), is fitted on the ``k`` samples
   and predicts the target's test set;
3. calibration: the method is refitted on ``folds`` stratified folds of the same ``k`` samples; the
   out-of-fold predictions fit a temperature (:func:`cropmeta.evaluate.calibration.fit_temperature`),
   which is applied to the test predictions of the model fitted on all ``k`` (scikit-learn's
   ``CalibratedClassifierCV(ensemble=False)`` scheme). The test set is never used to fit anything;
4. metrics (:func:`cropmeta.metrics.binary_metrics`) before and after calibration.

Test-set uncertainty: every report also gives a field-clustered bootstrap interval of each row's
seed-mean AUC-ROC and F1 (whole test fields resampled — the labels' ``field_id``, each sample its
own field where there is none — the same resamples for every row) and each row's paired difference
to TIML on the same resamples; the number of test fields stands beside the number of test samples.

Optional rows, all entries of the method registry (:data:`cropmeta.evaluate.methods.SHOT_MODES`):
``zero_shot`` adds shot count 0, where the meta-trained and pretrained models predict without any
target label or fine-tuning and a random forest is trained on the other regions only
("random-forest-source"); ``oracle`` adds the oracle rows of the simulated benchmark (random forest
and LSTM from scratch trained on correctly labelled samples of the target's test districts and year,
:mod:`cropmeta.evaluate.oracle`), one cell per seed shown at every shot count.

Each finished cell is written atomically as JSON under ``OUT/cells/``; a rerun with the same data,
configuration and protocol reuses it (an interrupted comparison continues where it stopped). The
prepared weights of each (method, seed) are cached under ``OUT/prepared/`` (safetensors + JSON).

The parts: :mod:`cropmeta.evaluate.targets` (the target's data, shot subsets),
:mod:`cropmeta.evaluate.cells` (one cell, the caches and their fingerprints),
:mod:`cropmeta.evaluate.assemble` (aggregation and the report dict); this module runs the protocol
over them (their names stay importable from here).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cropmeta.errors import InputError
from cropmeta.evaluate.methods import Method, make_method, resolve_methods, split_method
from cropmeta.evaluate.names import METHOD_INPUTS, expand_methods, is_zero, method_label, method_shots, shot_mode
from cropmeta.evaluate.base import NO_ZERO_SHOT
from cropmeta._fs import atomic_write_text, output_dir
from cropmeta.evaluate.targets import TargetData, build_target, parse_shots, source_samples
from cropmeta.evaluate.cells import (
    backbone_fingerprint,
    fingerprint_of,
    inputs_fingerprint,
    load_prepared,
    prepared_name,
    read_cell,
    save_prepared,
    cell_path,
    prepared_workdir,
    run_cell,
)
from cropmeta.evaluate.assemble import PROTOCOL_VERSION, make_report

DEFAULT_SHOTS: tuple = (20, 32, 64, 128, 256, "all")
DEFAULT_METHODS: tuple = ("timl", "maml", "pretrained", "scratch", "random-forest")


def resolve_effective_shots(shots: list, n_train: int) -> tuple[list, list[str]]:
    """Drop shot counts that would duplicate "all" (k ≥ training pool); notes say which and why."""
    out, notes, seen = [], [], set()
    for k in shots:
        eff = n_train if k == "all" else min(int(k), n_train)
        if eff in seen:
            notes.append(f"shots {k} skipped: the training pool has only {n_train} labels (same as a larger setting)")
            continue
        if k != "all" and int(k) >= n_train:
            if "all" in shots:
                notes.append(f"shots {k} skipped: the training pool has only {n_train} labels (same as 'all')")
                continue
            notes.append(f"shots {k}: the training pool has only {n_train} labels; reported as 'all'")
            k = "all"
        seen.add(eff)
        out.append(k)
    return out, notes


def run_protocol(
    data: TargetData,
    source: Any,
    methods: list[str],
    seeds: list[int],
    shots: list,
    out: Path,
    method_factory: Callable[[str], Method],
    config: dict,
    calib_folds: int = 3,
    progress: bool = True,
    source_hash: str = "",
    flop_seeds: list[int] | None = None,
) -> tuple[list[dict], dict]:
    """Every (method, seed, shot) cell, cached under ``out``; returns (cells, run info).
    ``flop_seeds``: the seeds whose cells also count FLOPs (None → the first seed of ``seeds``).
    Adaptation FLOPs depend on shapes only, and counting slows the fit several times over."""
    flop_seeds = [seeds[0]] if flop_seeds is None else [int(s) for s in flop_seeds]
    out = Path(out)
    info = {"computed": 0, "reused": 0, "prepared": 0, "prepared_reused": 0, "prepare_seconds": {}}
    cells: list[dict] = []
    base = {"protocol": PROTOCOL_VERSION, "data": data.data_hash(), "source": source_hash,
            "calib_folds": calib_folds, "config": config}
    todo = [(m, s, k) for s in seeds for m in methods for k in method_shots(m, shots)]
    from cropmeta.progress import Progress

    prog = Progress(progress, len(todo), description="compare", lines=100)  # a bar on a terminal, timed lines in a log
    try:
        for s in seeds:
            for m in methods:
                backbone = backbone_fingerprint(m, config)
                fp = fingerprint_of(base | {"method": m, "seed": s} | inputs_fingerprint(m, data) | backbone)
                # the prepared weights depend on the source data, configuration, target task and seed only
                fp_prep = fingerprint_of({"protocol": PROTOCOL_VERSION, "source": source_hash, "config": config,
                                        "task": data.task.name, "method": prepared_name(m), "seed": s} | backbone)
                pending = []
                for k in method_shots(m, shots):
                    c = read_cell(cell_path(out, m, s, k), fp)
                    if c is not None:
                        cells.append(c)
                        info["reused"] += 1
                        prog.advance()
                    else:
                        pending.append(k)
                if not pending:
                    continue
                method = method_factory(m)
                prog.update(description=f"{method_label(m)} · seed {s} · preparing")
                t0 = time.perf_counter()
                secs = None
                if method.needs_source:
                    method.set_target(data.task, s)
                    secs = load_prepared(out, method, s, fp_prep)
                if secs is None:
                    method.prepare(source if method.needs_source else None, data.task, s,
                                   workdir=prepared_workdir(out, prepared_name(m), s, fp_prep) if method.needs_source
                                   else None)
                    secs = time.perf_counter() - t0
                    if method.needs_source:
                        info["prepared"] += 1
                        save_prepared(out, method, s, fp_prep, secs)
                else:
                    info["prepared_reused"] += 1
                info["prepare_seconds"][f"{m}/seed-{s}"] = round(secs, 3)
                for k in pending:
                    prog.update(description=f"{method_label(m)} · seed {s} · {k} shots")
                    # adaptation FLOPs depend on shapes, not on the seed: counted on flop_seeds only
                    c = run_cell(method, data, s, k, calib_folds, count_flops=s in flop_seeds)
                    c["fingerprint"] = fp
                    c["seconds"]["prepare"] = round(secs, 3)
                    atomic_write_text(cell_path(out, m, s, k), json.dumps(c))
                    cells.append(c)
                    info["computed"] += 1
                    prog.advance()
    finally:
        prog.close()
    return cells, info


def compare(
    region: str | None = None,
    crop: str | None = None,
    seeds: int | list[int] = 5,
    shots=DEFAULT_SHOTS,
    methods=DEFAULT_METHODS,
    out: str | Path | None = None,
    source: str | Path | None = None,
    preset: str = "quick",
    progress: bool = True,
    *,
    samples=None,
    config: str | Path | dict | None = None,
    calib_folds: int = 3,
    method_factory: Callable[[str], Method] | None = None,
    method_options: dict[str, dict] | None = None,
    console=None,
    views: int = 0,
    pretrain_source: str | None = None,
    sim_seed: int = 1,
    flop_seeds: list[int] | None = None,
    zero_shot: bool = False,
    oracle: bool = False,
    world: str | Path | None = None,
    oracle_n: int | None = None,
    n_boot: int = 1000,
    loader: Callable[[], tuple] | None = None,
    load_sim: Callable | None = None,
    hold_out_region: bool = False,
) -> dict:
    """One target's comparison (:func:`cropmeta.app.compare.compare` documents the options; it
    dispatches ``benchmark=`` to :func:`cropmeta.evaluate.benchmark.run_benchmark` and loads the data).
    ``samples``: the data; else ``loader()`` gives ``(samples, data used)`` — called after
    the options are checked; ``load_sim``: the simulated world's loader of the ``+sim`` rows.
    Returns the report dict (also report.json)."""
    methods, shots = protocol_rows(methods, shots, zero_shot, oracle)
    if views or pretrain_source not in (None, "none"):
        methods, method_options = variant_methods(methods, method_options, views, pretrain_source, sim_seed)
    if region is None:
        raise InputError("compare: give --region (e.g. kenya) or --benchmark sim|cropharvest|deafrica|worldcrops|cawa")
    seed_list = list(range(int(seeds))) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not seed_list:
        raise InputError("--seeds: need at least one seed")
    method_list = resolve_methods(methods)
    shot_list = parse_shots(shots)
    data_used = None
    if samples is None:
        if loader is None:
            raise InputError("compare: give samples= (cropmeta.app.compare.compare loads the workspace's)")
        samples, data_used = loader()
    data = build_target(samples, region, crop)
    out = Path(out) if out is not None else Path("compare-" + data.task.name)
    with output_dir(out):
        return _compare_target(data, samples, out, source, method_list, seed_list, shot_list, preset, config,
                               method_factory, method_options, calib_folds, progress, flop_seeds, views,
                               pretrain_source, data_used, world, oracle_n, n_boot, load_sim,
                               hold_out_region=hold_out_region)


def _compare_target(data, samples, out, source, method_list, seed_list, shot_list, preset, config, method_factory,
                    method_options, calib_folds, progress, flop_seeds, views, pretrain_source, data_used,
                    world, oracle_n, n_boot, load_sim=None, hold_out_region: bool = False) -> dict:
    protocol_notes, oracle_summary = [], None
    if any(METHOD_INPUTS.get(split_method(m)[0]) == ("oracle",) for m in method_list):
        from cropmeta.evaluate.oracle import ORACLE_N, sim_oracle

        if world is None and source in (None, "sim"):
            world = default_sim_world()
        od, why = sim_oracle(world, data.task.region, data.task.crop, data.ids_test, data.y_test, data.x_test,
                             n=int(oracle_n or ORACLE_N))
        if od is None:
            method_list = [m for m in method_list if not METHOD_INPUTS.get(split_method(m)[0])]
            protocol_notes.append(f"oracle rows absent: {why}")
        else:
            data.task.extra["oracle"] = od
            oracle_summary = od.summary()
    if any(is_zero(k) for k in shot_list):
        for m in method_list:
            if not any(is_zero(k) for k in method_shots(m, shot_list)) and shot_mode(m) == "few":
                base = split_method(m)[0]
                why = NO_ZERO_SHOT.get(base, "it is fitted on the target's labels")
                if "views" in split_method(m)[1]:
                    why = "its generative views are made from the target's labels"
                protocol_notes.append(f"no zero-shot row for {method_label(m)}: {why}")
    eff_shots, shot_notes = resolve_effective_shots(shot_list, len(data.y_train))
    src = source_samples(samples, data, hold_out_region)
    if hold_out_region:
        protocol_notes.append(f"leave one region out: no sample of {data.task.region} is source data")
    cfg_dict, factory = _resolve_config(preset, config, method_factory, method_options, load_sim)
    cells, info = run_protocol(data, src, method_list, seed_list, eff_shots, out, factory, cfg_dict,
                               calib_folds=calib_folds, progress=progress, source_hash=src.content_hash(),
                               flop_seeds=flop_seeds)
    config_rec = {
        "region": data.task.region, "crop": data.task.crop, "seeds": seed_list, "shots": shot_list,
        "shots_run": eff_shots, "shot_notes": shot_notes, "methods": method_list, "preset": preset,
        "calib_folds": calib_folds, "source": str(source) if source is not None else "sim",
        "views": int(views or 0), "pretrain_source": pretrain_source if pretrain_source != "none" else None,
        "training_config": cfg_dict, "method_options": cfg_dict.get("method_options", {}),
        "data": data_used,
        "protocol_notes": protocol_notes, "oracle": oracle_summary, "n_boot": int(n_boot),
        "hold_out_region": bool(hold_out_region),
    }
    src_summary = {"n_samples": int(len(src)), "n_regions": int(src.meta["region"].nunique()) if len(src) else 0}
    report = make_report(data, cells, config_rec, info, src_summary)
    from cropmeta.evaluate.report import write_report

    report["files"] = {k: str(v) for k, v in write_report(report, out).items()}
    return report


def protocol_rows(methods, shots, zero_shot: bool = False, oracle: bool = False) -> tuple[list[str], list]:
    """The methods and shot counts of a comparison with the protocol's optional rows: ``zero_shot``
    adds the zero-shot column (shot count 0) and the other-regions random forest,
    ``oracle`` the two oracle rows."""
    methods, shots = resolve_methods(methods), parse_shots(shots)
    extra = []
    if zero_shot:
        shots = shots if any(is_zero(k) for k in shots) else [0] + shots
        extra.append("random-forest-source")
    if oracle:
        extra += ["oracle-rf", "oracle-lstm"]
    return methods + [m for m in extra if m not in methods], shots


def default_sim_world() -> Path:
    """The simulated world the default data source ingests (seed 0 of the workspace: what
    :func:`cropmeta.app.samples.load_samples` reads when nothing else is stored)."""
    from cropmeta.sim import ensure_world

    return Path(ensure_world(seed=0))


def variant_methods(methods, method_options, views: int, pretrain_source, sim_seed: int) -> tuple[list[str], dict]:
    """The expanded method rows (:func:`cropmeta.evaluate.methods.expand_methods`) and their options:
    a variant gets its base method's options plus ``n_views`` / ``sim_seed`` (which therefore enter
    the cache fingerprints)."""
    rows = expand_methods(methods, int(views or 0), pretrain_source)
    given = {resolve_methods([k])[0]: dict(v) for k, v in (method_options or {}).items()}
    opts = dict(given)
    for m in rows:
        base, variants = split_method(m)
        if not variants:
            continue
        o = {**given.get(base, {}), **given.get(m, {})}
        if "views" in variants:
            o.setdefault("n_views", int(views or 4))
        if "sim" in variants:
            o.setdefault("sim_seed", int(sim_seed))
        opts[m] = o
    return rows, opts


def _resolve_config(preset: str, config, method_factory, method_options=None,
                    load_sim=None) -> tuple[dict, Callable[[str], Method]]:
    """The deep methods' training configuration (resolved, JSON-able; it enters the cache keys) and
    the method factory."""
    opts = {resolve_methods([k])[0]: dict(v) for k, v in (method_options or {}).items()}
    if method_factory is not None:
        return {"preset": preset, "config": config if isinstance(config, dict) else str(config),
                "method_options": opts}, method_factory
    from cropmeta.evaluate.deep import resolve_train_config

    cfg, cfg_dict = resolve_train_config(preset, config)
    return cfg_dict | {"method_options": opts}, lambda name: make_method(name, cfg=cfg, load_sim=load_sim,
                                                                 **opts.get(name, {}))

