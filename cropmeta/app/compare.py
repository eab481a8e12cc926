"""``cropmeta compare``'s entry point: a benchmark of several targets
(:func:`cropmeta.evaluate.benchmark.run_benchmark`) or one target
(:func:`cropmeta.evaluate.compare.compare`), with the data loaded here (the app layer: where samples
come from) — so benchmark sits above compare, and neither ingests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from cropmeta.errors import InputError
from cropmeta.evaluate.compare import DEFAULT_METHODS, DEFAULT_SHOTS, variant_methods, protocol_rows
from cropmeta.evaluate.methods import Method

__all__ = ["compare"]


def compare(
    region: str | None = None,
    crop: str | None = None,
    seeds: int | list[int] = 5,
    shots=DEFAULT_SHOTS,
    methods=DEFAULT_METHODS,
    out: str | Path | None = None,
    source: str | Path | None = None,
    preset: str = "quick",
    benchmark: str | None = None,
    root: str | Path | None = None,
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
    datasets: list[str] | None = None,
    home: str | Path | None = None,
    zero_shot: bool = False,
    oracle: bool = False,
    world: str | Path | None = None,
    oracle_n: int | None = None,
    n_boot: int = 1000,
    targets: list[str] | None = None,
    hold_out_region: bool = False,
    overrides: dict | None = None,
    split: str | None = None,
) -> dict:
    """Run the comparison and write the report (json, md, html, png) to ``out``.

    ``region``/``crop``: the target (kenya → maize, brazil → coffee, togo → crop vs non-crop by
    default). ``seeds``: a count (seeds 0 … N−1) or an explicit list. ``shots``: e.g. ``"20,all"``.
    ``methods``: any of timl, maml, pretrained, scratch, random-forest. ``source``: the data (None →
    the simulated world; a path → ingested by :func:`cropmeta.ingest.ingest`); ``samples``: a
    :class:`~cropmeta.io.store.SampleSet` to use directly instead. ``preset``/``config``: the
    training configuration of the deep methods (as ``cropmeta train``): a preset name plus a config
    file path or a dict of overrides. ``method_options``: extra keyword arguments per method, e.g.
    ``{"random-forest": {"n_estimators": 10}}`` (recorded in the report). ``benchmark``: "sim" or
    "cropharvest" (with ``root``) runs the three published targets instead
    (:func:`cropmeta.evaluate.benchmark.run_benchmark`). ``views``: also report each method fitted on
    its labels plus ``views`` generative views of each (rows "<method> + views",
    :mod:`cropmeta.sim.views`). ``pretrain_source="sim"``: also report each pretraining method
    (timl, maml, pretrained, in-context) pretrained on the simulated world ``sim_seed`` first
    (rows "<method> (sim → real)", :mod:`cropmeta.train.sim_then_real`). ``flop_seeds``: the seeds
    whose cells also count adaptation FLOPs (default: the first of ``seeds``; pass ``[0]`` when one
    comparison is split into several processes by seed). ``zero_shot``: also the zero-shot column
    (shot count 0: each meta-trained / pretrained model without fine-tuning, and the random forest
    trained on other regions only, "random-forest-source"). ``oracle``: also the oracle rows (random
    forest and LSTM from scratch trained on ``oracle_n`` correctly labelled samples of the target's
    test districts and test year; simulated world only: ``world``, default the world the default
    source ingests — absent with a note for other data). ``n_boot``: resamples of the
    field-clustered test-set bootstrap (0: none). ``targets``: with ``benchmark``, a subset of its
    target keys (e.g. ``["kenya", "nigeria"]``). ``hold_out_region``: no sample of the target's region
    is any method's source data (the worldcrops benchmark always does this). ``overrides``: options on
    top of ``config`` in any spelling (``cropmeta compare --set``). ``split``: with ``benchmark="deafrica"``,
    the test split: "blocks" (spatially separated, the default) or "random". Returns the report dict (also
    report.json).
    """
    from cropmeta.train.config import config_with_overrides

    config = config_with_overrides(config, overrides)
    from cropmeta.app.samples import load_samples, load_sim_samples, select_samples

    if benchmark is not None or targets is not None:
        # the protocol's rows first: their errors come before the benchmark's (as in one compare())
        methods, shots = protocol_rows(methods, shots, zero_shot, oracle)
        if views or pretrain_source not in (None, "none"):
            methods, method_options = variant_methods(methods, method_options, views, pretrain_source, sim_seed)
    if benchmark is not None:
        from cropmeta.evaluate.benchmark import run_benchmark

        return run_benchmark(benchmark, root=root, seeds=seeds, shots=shots, methods=methods, out=out,
                             preset=preset, progress=progress, config=config, calib_folds=calib_folds,
                             method_factory=method_factory, console=console, samples=samples,
                             method_options=method_options, flop_seeds=flop_seeds, world=world,
                             oracle_n=oracle_n, n_boot=n_boot, targets=targets,
                             loader=lambda src, prog: load_samples(src, seed=0, progress=prog),
                             load_sim=load_sim_samples, split=split)
    if split is not None:
        raise InputError("compare: --split chooses the test split of --benchmark deafrica; give --benchmark too")
    if targets is not None:
        raise InputError("compare: --targets selects targets of a --benchmark; give --benchmark too")
    from cropmeta.evaluate.compare import compare as compare_target

    return compare_target(region, crop, seeds, shots, methods, out, source, preset, progress, samples=samples,
                          config=config, calib_folds=calib_folds, method_factory=method_factory,
                          method_options=method_options, console=console, views=views,
                          pretrain_source=pretrain_source, sim_seed=sim_seed, flop_seeds=flop_seeds,
                          zero_shot=zero_shot, oracle=oracle, world=world, oracle_n=oracle_n, n_boot=n_boot,
                          loader=lambda: select_samples(source, 0, progress, datasets=datasets, home=home),
                          load_sim=load_sim_samples, hold_out_region=hold_out_region)
