"""Model commands: train, compare, calibrate, export, assess, demo, and the ``models`` group
(download, import-timl)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from cropmeta.evaluate.names import ALL_METHODS
from cropmeta.learners.base import BUILTIN_KINDS

from ._common import (csv_list, flag_option, home_option, label_option_set, one_run, print_data, print_dict_table,
                      console, emit)


def train(
    region: str = typer.Option(..., help="target region, e.g. kenya"),
    crop: Optional[str] = typer.Option(None, help="target crop (default: the benchmark target of the region)"),
    source: Optional[str] = typer.Option(None, help="ingest this first and train on it only (GeoTIFFs need "
                                                    "--labels); default: the stored datasets"),
    labels: Optional[Path] = typer.Option(None, help="label file of a --source of GeoTIFFs"),
    class_column: Optional[str] = typer.Option(None, help="label column holding the class (with --labels)"),
    crop_values: Optional[str] = typer.Option(None, help="comma-separated class values that mean crop"),
    file_class: Optional[str] = typer.Option(None, help="crop | non-crop: the class of every row of --labels"),
    datasets: Optional[str] = typer.Option(None, help="comma-separated stored datasets to use (default: all)"),
    preset: str = typer.Option("quick", help="quick (CPU, minutes) or paper (full TIML schedule)"),
    seed: int = typer.Option(0, help="random seed (task sampling, initialisation, shot subset)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="the run directory to create (default <home>/runs/<target>-<preset>-s<seed>)"),
    resume: bool = flag_option(False, "--resume", help="continue from the last checkpoint in --out"),
    first_order: Optional[bool] = typer.Option(None, "--first-order/--second-order", metavar="",
                                               help="MAML order (default: the preset's; quick = first, paper = second)"),
    device: Optional[str] = typer.Option(None, help="auto|cpu|cuda (default: the preset's, auto)"),
    config: Optional[Path] = typer.Option(None, help="TOML/YAML file overriding the preset"),
    nprocs: int = typer.Option(1, help="torch.distributed ranks (task-parallel meta-batches), >= 1"),
    shots: Optional[int] = typer.Option(None, help="fine-tune on N >= 2 training labels in total (class-balanced, "
                                                   "N/2 positives) instead of all"),
    learner: Optional[str] = typer.Option(None, help="a registered learner (default: the preset's, ensemble for quick, timl for paper): " + " | ".join(BUILTIN_KINDS)),
    pretrain_source: Optional[str] = typer.Option(None, help="sim: train on the simulated world first, then on this data"),
    sim_seed: int = typer.Option(1, help="seed of the simulated world used by --pretrain-source sim"),
    home: Optional[Path] = home_option(),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="option override SECTION.KEY=VALUE, repeatable "
                                             "(e.g. finetune.steps=100, meta.remove_auc=false; docs/configuration.md)"),
) -> None:
    """Meta-train on all other tasks, fine-tune on the target region, evaluate on its test set."""
    from cropmeta.api import train_model
    from cropmeta.io.store import use_workspace
    from cropmeta.train.config_base import parse_assignments

    use_workspace(home)
    opts = label_option_set(class_column=class_column, crop_values=crop_values, file_class=file_class)
    result = train_model(region, crop, source=source, preset=preset, seed=seed, out=out, resume=resume,
                         first_order=first_order, device=device, config=config, nprocs=nprocs, shots=shots,
                         learner=learner, progress=True, pretrain_source=pretrain_source, sim_seed=sim_seed,
                         datasets=csv_list(datasets), labels=labels, label_options=opts, home=home,
                         overrides=parse_assignments(set_))
    if result is not None:
        def human():
            print_data(result.data)
            print_dict_table(f"held-out metrics — {result.target.get('name', region)}", dict(result.table))
            console.print(f"[green]run directory:[/] {result.run_dir}", soft_wrap=True)

        emit({"run_dir": str(result.run_dir), "target": result.target, "metrics": dict(result.table),
              "data": result.data}, human)


def compare(
    region: Optional[str] = typer.Option(None, help="target region, e.g. kenya"),
    crop: Optional[str] = typer.Option(None, help="target crop (default: the benchmark target of the region)"),
    seeds: int = typer.Option(5, help="number of seeds (0 … N-1) per method and shot count"),
    shots: str = typer.Option("20,32,64,128,256,all", help="comma-separated shot counts ('all' = every label, 0 = zero-shot)"),
    methods: str = typer.Option("timl,maml,pretrained,scratch,random-forest",
                                help="comma-separated, any of " + ", ".join(ALL_METHODS) + " (+sim / +views variants); --zero-shot and --oracle add their rows"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="the report folder to create"),
    source: Optional[str] = typer.Option(None, help="ingest this first and compare on it only; default: the stored "
                                                    "datasets"),
    datasets: Optional[str] = typer.Option(None, help="comma-separated stored datasets to use (default: all)"),
    preset: str = typer.Option("quick", help="training preset of the deep methods: quick or paper"),
    benchmark: Optional[str] = typer.Option(None, help="cropharvest | sim | deafrica | worldcrops | cawa"),
    root: Optional[Path] = typer.Option(None, help="CropHarvest archive root (with --benchmark cropharvest); the "
                                                   "deafrica_cropmask folder (with --benchmark deafrica; default ../shared)"),
    targets: Optional[str] = typer.Option(None, help="with --benchmark: comma-separated target keys (default all), "
                                                     "e.g. kenya,nigeria"),
    flop_seeds: Optional[str] = typer.Option(None, help="comma-separated seeds whose cells also count adaptation FLOPs "
                                                        "(default: the first seed; 'none': no FLOP counting, faster)"),
    config: Optional[Path] = typer.Option(None, help="TOML/YAML file overriding the deep methods' training preset"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="option override SECTION.KEY=VALUE of the deep methods' "
                                             "configuration, repeatable (as train's; docs/configuration.md)"),
    calib_folds: int = typer.Option(3, help="folds of the training labels used to fit the temperature"),
    views: int = typer.Option(0, help="also fit each method on its labels + N generative views of each ('<method> + views' rows)"),
    pretrain_source: Optional[str] = typer.Option(None, help="sim: also pretrain each meta/pretrained method on the simulated world first ('(sim → real)' rows)"),
    sim_seed: int = typer.Option(1, help="seed of the simulated world used by --pretrain-source sim"),
    home: Optional[Path] = home_option(),
    zero_shot: bool = typer.Option(False, help="also the zero-shot column (shots 0): meta-trained/pretrained models without fine-tuning, a random forest on other regions"),
    oracle: bool = typer.Option(False, help="also the oracle rows (simulated world only): RF and LSTM on correctly labelled samples of the test districts and year"),
    world: Optional[Path] = typer.Option(None, help="simulated world of the oracle rows (default: the default source's world)"),
    oracle_n: Optional[int] = typer.Option(None, help="oracle samples per target (default 4000)"),
    hold_out_region: bool = flag_option(False, "--hold-out-region", help="leave the target's whole region out of every method's source data (its other tasks would carry the shot pool's labels into a prior)"),
    split: Optional[str] = typer.Option(None, help="with --benchmark deafrica: the test split, blocks (spatially separated, default) or random"),
) -> None:
    """Compare TIML against the baselines over seeds and shot counts; write report.json/.md/.html."""
    from cropmeta.app.compare import compare as run_compare
    from cropmeta.evaluate.report import print_summary
    from cropmeta.io.store import use_workspace
    from cropmeta.train.config_base import parse_assignments

    use_workspace(home)
    kwargs = dict(region=region, crop=crop, seeds=seeds, shots=csv_list(shots), methods=csv_list(methods), out=out,
                  source=source, preset=preset, benchmark=benchmark, root=root, progress=True, views=views,
                  pretrain_source=pretrain_source, sim_seed=sim_seed, config=config, overrides=parse_assignments(set_),
                  calib_folds=calib_folds,
                  zero_shot=zero_shot, oracle=oracle, world=world, oracle_n=oracle_n, hold_out_region=hold_out_region,
                  split=split)
    if datasets:
        kwargs["datasets"] = csv_list(datasets)
    if targets:
        kwargs["targets"] = csv_list(targets)
    if flop_seeds:
        kwargs["flop_seeds"] = [] if flop_seeds.strip().lower() == "none" else [int(v) for v in csv_list(flop_seeds)]
    report = run_compare(**kwargs)

    def human():
        print_data((report.get("config") or {}).get("data"))
        print_summary(report, console)

    emit({k: report.get(k) for k in ("kind", "target", "targets", "summary", "across_targets", "files") if k in report},
         human)


def calibrate(
    run_arg: Optional[Path] = typer.Argument(None, metavar="[RUN]", help="trained run directory (or --run RUN)"),
    run: Optional[Path] = typer.Option(None, "--run", help="trained run directory"),
    folds: int = typer.Option(3, help="folds of the run's training labels (never its test set)"),
    home: Optional[Path] = home_option(),
) -> None:
    """Fit a temperature on out-of-fold predictions of the run's training labels; export uses it."""
    from cropmeta.app.samples import load_samples
    from cropmeta.evaluate.calibration import calibrate_run
    from cropmeta.io.store import use_workspace

    use_workspace(home)
    run = one_run(run_arg, run)
    rec = calibrate_run(run, folds=folds, loader=load_samples)
    emit(rec, lambda: print_dict_table("calibration", {k: v for k, v in rec.items() if isinstance(v, (int, float))}))


def export(
    run: Path = typer.Option(..., "--run", help="trained run directory"),
    out: Path = typer.Option(..., "--out", "-o", help="the map to create: NAME.tif (one COG) or NAME.vrt (VRT over per-tile COGs)"),
    inputs: Optional[list[Path]] = typer.Option(None, "--input", help="EE GeoTIFF tile(s) or dir, or a dir / list file of dated one-band images (e.g. NDVI_2020-03-01.tif); default: the simulated scene"),
    region: Optional[str] = typer.Option(None, help="map only inside this country (see `cropmeta regions`)"),
    region_file: Optional[Path] = typer.Option(None, help="map only inside the polygon(s) of this file"),
    bbox: Optional[str] = typer.Option(None, help="map only inside min_lon,min_lat,max_lon,max_lat"),
    threshold: float = typer.Option(0.5, help="probability at or above which the class band says crop (0-1)"),
    as_float: bool = flag_option(False, "--float", help="float32 probabilities instead of uint8 0–100"),
    workers: Optional[int] = typer.Option(None, help="local Dask workers (>= 1)"),
    scheduler: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of an existing Dask scheduler (same tasks as --workers)"),
    worker_processes: bool = flag_option(False, "--worker-processes",
                                   help="--workers as separate processes (default: threads of this process)"),
    read_budget_mb: Optional[float] = typer.Option(None, help="working memory of one read strip per worker (MB)"),
    precision: str = typer.Option("fp32", help="fp32 | bf16 | auto (bf16 where native): bf16 only if the map stays within 0.01 probability and 99.9 % of classes of fp32 on the first pixels"),
    truth: Optional[Path] = typer.Option(None, help="truth raster or label file: report map accuracy"),
    class_column: Optional[str] = typer.Option(None, help="--truth label file: column holding the class"),
    crop_values: Optional[str] = typer.Option(None, help="--truth label file: comma-separated values that mean crop"),
    lat_column: Optional[str] = typer.Option(None, help="--truth CSV: latitude column (default lat)"),
    lon_column: Optional[str] = typer.Option(None, help="--truth CSV: longitude column (default lon)"),
    mosaic: str = typer.Option("auto", help="auto (from --out's suffix) | cog | vrt | none (per-tile COGs only)"),
    max_mosaic_gb: float = typer.Option(4.0, help="largest one-COG mosaic written (GB, uncompressed)"),
    start_month: Optional[int] = typer.Option(None, help="inputs longer than the model: use the window from this step (1-based)"),
    months: Optional[str] = typer.Option(None, help="inputs longer than the model: use the months START:END (YYYY-MM:YYYY-MM)"),
    overwrite: bool = flag_option(False, "--overwrite", help="replace an existing map at --out"),
    home: Optional[Path] = home_option(),
) -> None:
    """Write a Cloud-Optimised GeoTIFF crop map (+ PNG quick-look, + accuracy with --truth)."""
    from cropmeta.io.store import use_workspace
    from cropmeta.mapping.export import ExportOptions
    from cropmeta.mapping.export import export as run_export

    use_workspace(home)
    labels = label_option_set(class_column=class_column, crop_values=crop_values, lat_column=lat_column,
                              lon_column=lon_column)
    request = ExportOptions(region=region, region_file=region_file, bbox=bbox, threshold=threshold, as_float=as_float,
                            workers=workers, scheduler=scheduler, truth=truth, mosaic=mosaic, progress=True,
                            overwrite=overwrite, max_mosaic_gb=max_mosaic_gb, start_month=start_month,
                            truth_options=labels, months=months, dask_processes=worker_processes,
                            read_budget_mb=read_budget_mb, precision=precision)
    result = run_export(run, out, inputs=inputs, options=request)
    def human():
        console.print(f"[green]map:[/] {result.get('map', out)}", soft_wrap=True)
        console.print(f"valid pixels: {result['pixels_valid']:,} of {result['pixels']:,} ({result['valid_share']:.1%})")
        for name in result.get("inputs_without_valid_pixel") or []:
            console.print(f"[yellow]warning:[/] {name}: no valid pixel (nodata in the map)", soft_wrap=True)
        for key, what in (("quicklook", "quick-look"), ("stac_item", "STAC Item")):
            if result.get(key):
                console.print(f"[green]{what}:[/] {result[key]}", soft_wrap=True)
        if result.get("accuracy"):
            acc = result["accuracy"]
            print_dict_table("map accuracy", {k: v for k, v in acc.items() if isinstance(v, (int, float))})

    emit({k: v for k, v in result.items() if k != "tags"}, human)


def assess(
    map_path: Path = typer.Argument(..., metavar="MAP", help="a map written by `cropmeta export`"),
    truth: Path = typer.Option(..., help="truth raster (0/1) or label file (e.g. a Collect Earth Online CSV)"),
    out: Optional[Path] = typer.Option(None, help="write the accuracy report here (JSON)"),
    class_column: Optional[str] = typer.Option(None, help="label file: column holding the class"),
    crop_values: Optional[str] = typer.Option(None, help="label file: comma-separated class values that mean crop"),
    lat_column: Optional[str] = typer.Option(None, help="CSV: latitude column (default lat)"),
    lon_column: Optional[str] = typer.Option(None, help="CSV: longitude column (default lon)"),
    run: Optional[Path] = typer.Option(None, "--run", help="the run that made the map: its training points are left out"),
) -> None:
    """Map accuracy: confusion matrix, F1, AUC, crop area and its error-adjusted estimate (ha)."""
    from cropmeta.mapping.accuracy import assess as run_assess

    opts = label_option_set(class_column=class_column, crop_values=crop_values, lat_column=lat_column,
                       lon_column=lon_column)
    acc = run_assess(map_path, truth, out_json=out, label_options=opts, run_dir=run)
    emit(acc, lambda: print_dict_table("map accuracy", {k: v for k, v in acc.items() if isinstance(v, (int, float))}))


def view(
    map_path: Path = typer.Argument(..., metavar="MAP", help="a map written by `cropmeta export` (COG or VRT)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="the HTML file to write (default: MAP.html)"),
) -> None:
    """Write a self-contained HTML page of a map: over an OpenStreetMap basemap when online, on its own grid offline."""
    from cropmeta.mapping.view import write_view

    page = write_view(map_path, out)
    emit({"view": str(page)}, lambda: console.print(f"[green]view:[/] {page}", soft_wrap=True))


def demo(
    region: str = typer.Option("kenya", help="region whose benchmark target is trained and mapped"),
    out: Path = typer.Option(Path("runs/demo"), help="where the run and the map go (a rerun reuses them)"),
    home: Optional[Path] = home_option(),
) -> None:
    """Ingest the simulated world, train on REGION (quick preset), export its map with accuracy."""
    from cropmeta.io.store import use_workspace
    from cropmeta.pipeline import demo as run_demo

    use_workspace(home)

    result = run_demo(region=region, out=out, progress=True)
    emit(result, lambda: console.print_json(json.dumps(result, default=str)))


def models_download(
    name: str = typer.Argument(..., metavar="NAME", help="model name: presto"),
    weights: Optional[Path] = typer.Option(None, help="install this local file instead of downloading"),
    url: Optional[str] = typer.Option(None, help="another location of the published file (its SHA-256 must match)"),
    home: Optional[Path] = typer.Option(None, help="workspace (default $CROPMETA_HOME or ./cropmeta-data)"),
) -> None:
    """Download a model's published weights (SHA-256 checked) into the workspace cache."""
    from cropmeta.models.weights import download_weights

    path = download_weights(name, weights=weights, home=home, url=url)
    emit({"weights": str(path)}, lambda: console.print(f"[green]weights:[/] {path}"))


def models_import_timl(
    classifier: Path = typer.Argument(..., metavar="CLASSIFIER", help="the TIML paper code's classifier state_dict.pth"),
    encoder: Optional[Path] = typer.Argument(None, metavar="[ENCODER]", help="its encoder_state_dict.pth (omit for a model without one)"),
    out: Path = typer.Option(..., "--out", "-o", help="the run directory to create"),
    normalization: Path = typer.Option(..., "--normalization",
                                       help='JSON {"mean": [18], "std": [18]} the model was trained with (CropHarvest band order)'),
    region: Optional[str] = typer.Option(None, help="target region (task information)"),
    crop: Optional[str] = typer.Option(None, help="target crop (task information; omit for crop vs non-crop)"),
    task_info: Optional[str] = typer.Option(None, help="the 13 task-information numbers, comma-separated, instead of --region/--crop"),
    ndvi: str = typer.Option("true", help="true | cropharvest: (B7−B3)/(B7+B3), the CropHarvest arrays' NDVI column"),
    channels_per_group: int = typer.Option(16, help="encoder GroupNorm channels per group (the paper's default 16)"),
    t: Optional[int] = typer.Option(None, help="time steps (read from the encoder; default 12 without one)"),
    overwrite: bool = typer.Option(False, help="replace an existing run directory"),
) -> None:
    """Convert a TIML paper checkpoint (nasaharvest/timl) into a cropmeta run directory."""
    from cropmeta.train.import_timl import import_timl

    meta = import_timl(classifier, encoder, out, normalization=normalization, region=region, crop=crop,
                       task_info=csv_list(task_info), ndvi=ndvi,
                       channels_per_group=channels_per_group, t=t, overwrite=overwrite)
    emit({"run_dir": str(out), **{k: meta.get(k) for k in ("kind", "t", "ndvi")}},
         lambda: console.print(f"[green]run directory:[/] {out} ({meta['kind']}, T={meta['t']}, NDVI {meta['ndvi']})"))
