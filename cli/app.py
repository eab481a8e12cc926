"""The ``cropmeta`` command: parses flags, calls one library function per command, prints with Rich.
No logic lives here: every command is a call into ``cropmeta`` that the tests call too."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
import typer.core
from rich.console import Console
from rich.table import Table

from cropmeta.errors import CropmetaError

def _help_shown_as_flag(get_help_option):
    def wrapper(self, ctx):
        opt = get_help_option(self, ctx)
        if opt is not None:
            opt.metavar = ""  # -h/--help is a flag: no value type in the help table
        return opt
    return wrapper


for _cls in (typer.core.TyperCommand, typer.core.TyperGroup):
    _cls.get_help_option = _help_shown_as_flag(_cls.get_help_option)

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="cropmeta: task-informed meta-learning (TIML) for crop maps.")
console = Console()

HOME_HELP = "workspace folder (default $CROPMETA_HOME or ./cropmeta-data)"


def _flag(default: bool, *decls: str, help: str):
    """An on/off flag, shown as a flag (no value type) in the help."""
    return typer.Option(default, *decls, help=help, metavar="")


def _home_option():
    return typer.Option(None, "--home", help=HOME_HELP)


def _version(value: bool) -> None:
    if value:
        from cropmeta import __version__

        console.print(f"cropmeta {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: bool = typer.Option(False, "--version", help="print the version and exit", callback=_version,
                                 is_eager=True, metavar=""),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="say more (-v: progress notes, -vv: debug)",
                                metavar=""),
    quiet: bool = _flag(False, "--quiet", "-q", help="only errors (no warnings or notes)"),
) -> None:
    """cropmeta: task-informed meta-learning (TIML) for crop maps."""
    from cropmeta.logs import configure

    configure(verbose=verbose, quiet=quiet)


def _print_data(rows) -> None:
    """Which datasets a command used (simulated or real pixels)."""
    for d in rows or []:
        console.print(f"data: {d.get('dataset')} ({d.get('pixels')} pixels, T={d.get('t')}, {d.get('samples')} samples)",
                      soft_wrap=True)


def _label_opts(**kw) -> Optional[dict]:
    from cropmeta.io.labels import label_options

    return label_options(**kw) or None


def _csv(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _print_dict_table(title: str, d: dict) -> None:
    table = Table(title=title)
    table.add_column("key")
    table.add_column("value")
    for k, v in d.items():
        table.add_row(str(k), f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)


@app.command()
def doctor(home: Optional[Path] = _home_option()) -> None:
    """Check the installation: versions, device, learn2learn, GDAL COG driver, data directory."""
    from cropmeta.doctor import run_doctor
    from cropmeta.io.store import use_workspace

    use_workspace(home)

    raise typer.Exit(0 if run_doctor(console) else 1)


@app.command()
def regions(contains: Optional[str] = typer.Argument(None, help="only names containing this text")) -> None:
    """List the named regions (every country, Natural Earth 50m)."""
    from cropmeta.regions import list_regions

    gdf = list_regions()
    if contains:
        gdf = gdf[gdf["name"].str.lower().str.contains(contains.lower())]
    table = Table(title=f"{len(gdf)} regions")
    for col in ("name", "iso_a3", "continent"):
        table.add_column(col)
    for _, r in gdf.iterrows():
        table.add_row(r["name"], str(r["iso_a3"]), str(r["continent"]))
    console.print(table)


@app.command()
def sim(
    out: Path = typer.Option(..., "--out", help="directory to write the world to"),
    seed: int = typer.Option(0, help="world seed"),
    scene_size: int = typer.Option(128, help="scene size in pixels (square)"),
    overwrite: bool = _flag(False, "--overwrite", help="replace an existing world at --out"),
) -> None:
    """Write a simulated world (tiles, labels, scenes) to disk for inspection."""
    from cropmeta.sim import generate_world

    path = generate_world(out, seed=seed, scene_size=scene_size, overwrite=overwrite)
    console.print(f"[green]world written:[/] {path}")


@app.command()
def ingest(
    region: Optional[str] = typer.Option(None, help="country name (see `cropmeta regions`); default: all"),
    region_file: Optional[Path] = typer.Option(None, help="polygon file defining the region"),
    bbox: Optional[str] = typer.Option(None, help="min_lon,min_lat,max_lon,max_lat"),
    source: Optional[str] = typer.Option(None, help="pixels: a GeoTIFF or folder of EE exports, a CropHarvest root, "
                                                    "or 'sim' (the simulated world; the default without --labels)"),
    labels: Optional[Path] = typer.Option(None, help="label file (GeoJSON/GPKG/SHP/zipped SHP/GeoParquet/CSV); "
                                                     "needs --source"),
    class_column: Optional[str] = typer.Option(None, help="label column holding the class"),
    crop_values: Optional[str] = typer.Option(None, help="comma-separated class values that mean crop"),
    file_class: Optional[str] = typer.Option(None, help="crop | non-crop: the class of every row (single-class files)"),
    crop_type_column: Optional[str] = typer.Option(None, help="label column holding the crop type (e.g. Crop1)"),
    id_column: Optional[str] = typer.Option(None, help="label column with unique ids"),
    field_column: Optional[str] = typer.Option(None, help="label column naming each point's field/polygon (default: field_id)"),
    layer: Optional[str] = typer.Option(None, help="layer of a multi-layer file (GeoPackage)"),
    lat_column: Optional[str] = typer.Option(None, help="CSV latitude column (default lat)"),
    lon_column: Optional[str] = typer.Option(None, help="CSV longitude column (default lon)"),
    crs: Optional[str] = typer.Option(None, help="CRS of a label file that has none (e.g. EPSG:32636)"),
    polygons: Optional[str] = typer.Option(None, help="centroid (default) | pixels: every pixel inside a polygon"),
    start_date: Optional[str] = typer.Option(None, help="first time step (YYYY-MM-DD) when file names carry no dates"),
    start_month: Optional[int] = typer.Option(None, help="keep the 12 time steps from this step (1-based) of longer exports"),
    allow_failed: bool = _flag(False, "--allow-failed", help="skip unreadable tiles (reported) instead of stopping"),
    replace: bool = _flag(False, "--replace", help="let real and simulated datasets of a region replace each other"),
    seed: int = typer.Option(0, help="simulated world seed (with --source sim)"),
    home: Optional[Path] = typer.Option(None, "--home", "--out", help=HOME_HELP),
) -> None:
    """Build a region's samples into the workspace (idempotent, resumable, atomic)."""
    from cropmeta.ingest import ingest as run_ingest
    from cropmeta.regions import resolve_region

    reg = None if (region is None and region_file is None and bbox is None) else resolve_region(region, region_file, bbox)
    opts = _label_opts(class_column=class_column, crop_values=crop_values, crop_type_column=crop_type_column,
                       id_column=id_column, layer=layer, lat_column=lat_column, lon_column=lon_column, crs=crs,
                       file_class=file_class, polygons=polygons, field_column=field_column)
    result = run_ingest(region=reg, source=source, labels=labels, seed=seed, home=home, label_options=opts,
                        progress=True, start_date=start_date, allow_failed=allow_failed, replace=replace,
                        start_month=start_month)
    for name, path in result.datasets.items():
        console.print(f"[green]dataset[/] {name}: {path}", soft_wrap=True)
    summary = result.report.get("summary", {}) if isinstance(result.report, dict) else {}
    if summary:
        _print_dict_table(f"ingest report ({result.report.get('pixels', '?')} pixels)", summary)


@app.command()
def fetch(
    out: Path = typer.Option(..., "--out", help="folder for the Earth-Engine-layout tifs and manifest.json"),
    labels: Optional[Path] = typer.Option(None, help="label file: one small box per label point"),
    region: Optional[str] = typer.Option(None, help="country name: tiles over the region (for maps)"),
    region_file: Optional[Path] = typer.Option(None, help="polygon file: tiles over it"),
    bbox: Optional[str] = typer.Option(None, help="min_lon,min_lat,max_lon,max_lat: tiles over it"),
    year: Optional[int] = typer.Option(None, help="season: --t 30-day steps ending YEAR+1-02-01 (default: labels' start_date)"),
    source: str = typer.Option("stac", help="stac (no account) | ee (Earth Engine)"),
    catalog: Optional[str] = typer.Option(None, help="planetary-computer (default) | earth-search | STAC URL | local catalog.json"),
    preset: str = typer.Option("planetary-computer", help="asset keys and default URL: planetary-computer | earth-search"),
    catalog_for: Optional[list[str]] = typer.Option(None, "--catalog-for", help="KIND=URL: another catalogue for s2, s1, dem or era5"),
    collection: Optional[list[str]] = typer.Option(None, "--collection", help="KIND=NAME: collection name for s2, s1, dem or era5"),
    s1_pad_days: int = typer.Option(0, help="widen each window by N days for Sentinel-1"),
    t: int = typer.Option(12, "--t", help="number of 30-day steps"),
    box_metres: float = typer.Option(80.0, help="half-size of a label box in metres (CropHarvest: 80)"),
    tile_px: int = typer.Option(512, help="region tile size in pixels"),
    class_column: Optional[str] = typer.Option(None, help="label column holding the class"),
    crop_values: Optional[str] = typer.Option(None, help="comma-separated class values that mean crop"),
    id_column: Optional[str] = typer.Option(None, help="label column with unique ids"),
    ee_project: Optional[str] = typer.Option(None, help="Earth Engine Cloud project (default $EE_PROJECT)"),
    ee_mode: str = typer.Option("download", help="download (label boxes) | drive | gcs"),
    folder: str = typer.Option("cropmeta", help="Drive folder (--ee-mode drive)"),
    bucket: Optional[str] = typer.Option(None, help="Cloud Storage bucket (--ee-mode gcs)"),
    max_tasks: int = typer.Option(20, help="most Earth Engine export tasks queued at once"),
) -> None:
    """Download Sentinel-1/2, ERA5 and DEM stacks for labels or a region, in the layout ingest reads."""
    from cropmeta.fetch import fetch as run_fetch
    from cropmeta.fetch.ee import EEConfig
    from cropmeta.fetch.stac import stac_config
    from cropmeta.regions import resolve_region

    reg = None if (region is None and region_file is None and bbox is None) else resolve_region(region, region_file, bbox)
    opts = {"class_column": class_column, "crop_values": _csv(crop_values), "id_column": id_column}
    stac = stac_config(preset, catalog=catalog, catalogs=catalog_for, collections=collection, s1_pad_days=s1_pad_days) \
        if source == "stac" else None
    ee = EEConfig(project=ee_project, mode=ee_mode, folder=folder, bucket=bucket, max_tasks=max_tasks,
                  s1_pad_days=s1_pad_days) if source == "ee" else None
    result = run_fetch(out, labels=labels, region=reg, year=year, source=source, t=t, box_metres=box_metres,
                       tile_px=tile_px, stac=stac, ee=ee, label_options={k: v for k, v in opts.items() if v} or None,
                       progress=True)
    console.print(f"[green]fetched[/] {len(result.written)} file(s), {len(result.skipped)} already complete"
                  + (f", {len(result.queued)} Earth Engine task(s) queued" if result.queued else "")
                  + f": {result.out}")
    console.print(f"manifest: {result.manifest}")


@app.command("era5-catalogue")
def era5_catalogue(
    netcdf: list[Path] = typer.Argument(..., help="CDS ERA5(-Land) monthly means netCDF file(s) with t2m and tp"),
    out: Path = typer.Option(..., "--out", help="folder for the catalogue (then --catalog-for era5=OUT/catalog.json)"),
) -> None:
    """Turn a Climate Data Store ERA5 monthly download into a local STAC catalogue for `fetch`."""
    from cropmeta.fetch.catalogue import era5_catalogue as build

    console.print(f"[green]ERA5 catalogue:[/] {build(list(netcdf), out)}")


@app.command()
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
    out: Optional[Path] = typer.Option(None, help="run directory (default <home>/runs/<target>-<preset>-s<seed>)"),
    resume: bool = _flag(False, "--resume", help="continue from the last checkpoint in --out"),
    first_order: Optional[bool] = typer.Option(None, "--first-order/--second-order", metavar="",
                                               help="MAML order (default: the preset's; quick = first, paper = second)"),
    device: Optional[str] = typer.Option(None, help="auto|cpu|cuda (default: the preset's, auto)"),
    config: Optional[Path] = typer.Option(None, help="TOML/YAML file overriding the preset"),
    nprocs: int = typer.Option(1, help="torch.distributed ranks (task-parallel meta-batches), >= 1"),
    shots: Optional[int] = typer.Option(None, help="fine-tune on N >= 2 training labels in total (class-balanced, "
                                                   "N/2 positives) instead of all"),
    learner: Optional[str] = typer.Option(None, help="timl (default) | maml | concat | in-context"),
    pretrain_source: Optional[str] = typer.Option(None, help="sim: train on the simulated world first, then on this data"),
    sim_seed: int = typer.Option(1, help="seed of the simulated world used by --pretrain-source sim"),
    home: Optional[Path] = _home_option(),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="option override SECTION.KEY=VALUE, repeatable "
                                             "(e.g. finetune.steps=100, meta.remove_auc=false; docs/configuration.md)"),
) -> None:
    """Meta-train on all other tasks, fine-tune on the target region, evaluate on its test set."""
    from cropmeta.api import train_model
    from cropmeta.io.store import use_workspace
    from cropmeta.train.config import parse_assignments

    use_workspace(home)
    opts = _label_opts(class_column=class_column, crop_values=crop_values, file_class=file_class)
    result = train_model(region, crop, source=source, preset=preset, seed=seed, out=out, resume=resume,
                         first_order=first_order, device=device, config=config, nprocs=nprocs, shots=shots,
                         learner=learner, progress=True, pretrain_source=pretrain_source, sim_seed=sim_seed,
                         datasets=_csv(datasets), labels=labels, label_options=opts, home=home,
                         overrides=parse_assignments(set_))
    if result is not None:
        _print_data(result.data)
        _print_dict_table(f"held-out metrics — {result.target.get('name', region)}", dict(result.table))
        console.print(f"[green]run directory:[/] {result.run_dir}", soft_wrap=True)


@app.command()
def compare(
    region: Optional[str] = typer.Option(None, help="target region, e.g. kenya"),
    crop: Optional[str] = typer.Option(None, help="target crop (default: the benchmark target of the region)"),
    seeds: int = typer.Option(5, help="number of seeds (0 … N-1) per method and shot count"),
    shots: str = typer.Option("20,32,64,128,256,all", help="comma-separated shot counts ('all' = every label, 0 = zero-shot)"),
    methods: str = typer.Option("timl,maml,pretrained,scratch,random-forest",
                                help="any of timl, maml, pretrained, scratch, random-forest, in-context, presto (+sim / +views variants); --zero-shot and --oracle add their rows"),
    out: Optional[Path] = typer.Option(None, help="report directory"),
    source: Optional[str] = typer.Option(None, help="ingest this first and compare on it only; default: the stored "
                                                    "datasets"),
    datasets: Optional[str] = typer.Option(None, help="comma-separated stored datasets to use (default: all)"),
    preset: str = typer.Option("quick", help="training preset of the deep methods: quick or paper"),
    benchmark: Optional[str] = typer.Option(None, help="cropharvest | sim | deafrica"),
    root: Optional[Path] = typer.Option(None, help="CropHarvest archive root (with --benchmark cropharvest); the "
                                                   "deafrica_cropmask folder (with --benchmark deafrica; default ../shared)"),
    targets: Optional[str] = typer.Option(None, help="with --benchmark: comma-separated target keys (default all), "
                                                     "e.g. kenya,nigeria"),
    flop_seeds: Optional[str] = typer.Option(None, help="comma-separated seeds whose cells also count adaptation FLOPs "
                                                        "(default: the first seed; 'none': no FLOP counting, faster)"),
    config: Optional[Path] = typer.Option(None, help="TOML/YAML file overriding the deep methods' training preset"),
    calib_folds: int = typer.Option(3, help="folds of the training labels used to fit the temperature"),
    views: int = typer.Option(0, help="also fit each method on its labels + N generative views of each ('<method> + views' rows)"),
    pretrain_source: Optional[str] = typer.Option(None, help="sim: also pretrain each meta/pretrained method on the simulated world first ('(sim → real)' rows)"),
    sim_seed: int = typer.Option(1, help="seed of the simulated world used by --pretrain-source sim"),
    home: Optional[Path] = _home_option(),
    zero_shot: bool = typer.Option(False, help="also the zero-shot column (shots 0): meta-trained/pretrained models without fine-tuning, a random forest on other regions"),
    oracle: bool = typer.Option(False, help="also the oracle rows (simulated world only): RF and LSTM on correctly labelled samples of the test districts and year"),
    world: Optional[Path] = typer.Option(None, help="simulated world of the oracle rows (default: the default source's world)"),
    oracle_n: Optional[int] = typer.Option(None, help="oracle samples per target (default 4000)"),
) -> None:
    """Compare TIML against the baselines over seeds and shot counts; write report.json/.md/.html."""
    from cropmeta.evaluate.compare import compare as run_compare
    from cropmeta.evaluate.report import print_summary
    from cropmeta.io.store import use_workspace

    use_workspace(home)
    kwargs = dict(region=region, crop=crop, seeds=seeds, shots=_csv(shots), methods=_csv(methods), out=out,
                  source=source, preset=preset, benchmark=benchmark, root=root, progress=True, views=views,
                  pretrain_source=pretrain_source, sim_seed=sim_seed, config=config, calib_folds=calib_folds,
                  zero_shot=zero_shot, oracle=oracle, world=world, oracle_n=oracle_n)
    if datasets:
        kwargs["datasets"] = _csv(datasets)
    if targets:
        kwargs["targets"] = _csv(targets)
    if flop_seeds:
        kwargs["flop_seeds"] = [] if flop_seeds.strip().lower() == "none" else [int(v) for v in _csv(flop_seeds)]
    report = run_compare(**kwargs)
    _print_data((report.get("config") or {}).get("data"))
    print_summary(report, console)


@app.command()
def calibrate(
    run: Path = typer.Argument(..., help="trained run directory"),
    folds: int = typer.Option(3, help="folds of the run's training labels (never its test set)"),
    home: Optional[Path] = _home_option(),
) -> None:
    """Fit a temperature on out-of-fold predictions of the run's training labels; export uses it."""
    from cropmeta.evaluate.calibration import calibrate_run
    from cropmeta.io.store import use_workspace

    use_workspace(home)

    _print_dict_table("calibration", {k: v for k, v in calibrate_run(run, folds=folds).items()
                                      if isinstance(v, (int, float))})


@app.command()
def export(
    run: Path = typer.Option(..., "--run", help="trained run directory"),
    out: Path = typer.Option(..., "--out", help="output map: NAME.tif (one COG) or NAME.vrt (VRT over per-tile COGs)"),
    inputs: Optional[list[Path]] = typer.Option(None, "--input", help="EE GeoTIFF tile(s) or dir; default: the simulated scene"),
    region: Optional[str] = typer.Option(None, help="map only inside this country (see `cropmeta regions`)"),
    region_file: Optional[Path] = typer.Option(None, help="map only inside the polygon(s) of this file"),
    bbox: Optional[str] = typer.Option(None, help="map only inside min_lon,min_lat,max_lon,max_lat"),
    threshold: float = typer.Option(0.5, help="probability at or above which the class band says crop (0-1)"),
    as_float: bool = _flag(False, "--float", help="float32 probabilities instead of uint8 0–100"),
    workers: Optional[int] = typer.Option(None, help="local Dask workers (>= 1)"),
    scheduler: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of an existing Dask scheduler"),
    truth: Optional[Path] = typer.Option(None, help="truth raster or label file: report map accuracy"),
    class_column: Optional[str] = typer.Option(None, help="--truth label file: column holding the class"),
    crop_values: Optional[str] = typer.Option(None, help="--truth label file: comma-separated values that mean crop"),
    lat_column: Optional[str] = typer.Option(None, help="--truth CSV: latitude column (default lat)"),
    lon_column: Optional[str] = typer.Option(None, help="--truth CSV: longitude column (default lon)"),
    mosaic: str = typer.Option("auto", help="auto (from --out's suffix) | cog | vrt | none (per-tile COGs only)"),
    max_mosaic_gb: float = typer.Option(4.0, help="largest one-COG mosaic written (GB, uncompressed)"),
    start_month: Optional[int] = typer.Option(None, help="inputs longer than the model: use the window from this step (1-based)"),
    overwrite: bool = _flag(False, "--overwrite", help="replace an existing map at --out"),
    home: Optional[Path] = _home_option(),
) -> None:
    """Write a Cloud-Optimised GeoTIFF crop map (+ PNG quick-look, + accuracy with --truth)."""
    from cropmeta.io.store import use_workspace
    from cropmeta.mapping.export import export as run_export

    use_workspace(home)
    opts = _label_opts(class_column=class_column, crop_values=crop_values, lat_column=lat_column,
                       lon_column=lon_column)
    result = run_export(run, out, inputs=inputs, region=region, region_file=region_file, bbox=bbox,
                        threshold=threshold, as_float=as_float, workers=workers, scheduler=scheduler, truth=truth,
                        mosaic=mosaic, progress=True, overwrite=overwrite, max_mosaic_gb=max_mosaic_gb,
                        start_month=start_month, truth_options=opts)
    console.print(f"[green]map:[/] {result.get('map', out)}", soft_wrap=True)
    console.print(f"valid pixels: {result['pixels_valid']:,} of {result['pixels']:,} ({result['valid_share']:.1%})")
    for name in result.get("inputs_without_valid_pixel") or []:
        console.print(f"[yellow]warning:[/] {name}: no valid pixel (nodata in the map)", soft_wrap=True)
    if result.get("quicklook"):
        console.print(f"[green]quick-look:[/] {result['quicklook']}", soft_wrap=True)
    if result.get("accuracy"):
        acc = result["accuracy"]
        _print_dict_table("map accuracy", {k: v for k, v in acc.items() if isinstance(v, (int, float))})


@app.command()
def assess(
    map_path: Path = typer.Argument(..., help="a map written by `cropmeta export`"),
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

    opts = _label_opts(class_column=class_column, crop_values=crop_values, lat_column=lat_column,
                       lon_column=lon_column)
    acc = run_assess(map_path, truth, out_json=out, label_options=opts, run_dir=run)
    _print_dict_table("map accuracy", {k: v for k, v in acc.items() if isinstance(v, (int, float))})


@app.command()
def demo(
    region: str = typer.Option("kenya", help="region whose benchmark target is trained and mapped"),
    out: Path = typer.Option(Path("runs/demo"), help="where the run and the map go (a rerun reuses them)"),
    home: Optional[Path] = _home_option(),
) -> None:
    """Ingest the simulated world, train on REGION (quick preset), export its map with accuracy."""
    from cropmeta.io.store import use_workspace
    from cropmeta.pipeline import demo as run_demo

    use_workspace(home)

    result = run_demo(region=region, out=out, progress=True)
    console.print_json(json.dumps(result, default=str))


models_app = typer.Typer(no_args_is_help=True, help="Pretrained models: download published weights, import TIML checkpoints.")
app.add_typer(models_app, name="models")


@models_app.command("download")
def models_download(
    name: str = typer.Argument(..., help="model name: presto"),
    weights: Optional[Path] = typer.Option(None, help="install this local file instead of downloading"),
    url: Optional[str] = typer.Option(None, help="another location of the published file (its SHA-256 must match)"),
    home: Optional[Path] = typer.Option(None, help="workspace (default $CROPMETA_HOME or ./cropmeta-data)"),
) -> None:
    """Download a model's published weights (SHA-256 checked) into the workspace cache."""
    from cropmeta.models.weights import download_weights

    console.print(f"[green]weights:[/] {download_weights(name, weights=weights, home=home, url=url)}")


@models_app.command("import-timl")
def models_import_timl(
    classifier: Path = typer.Argument(..., help="the TIML paper code's classifier state_dict.pth"),
    encoder: Optional[Path] = typer.Argument(None, help="its encoder_state_dict.pth (omit for a model without one)"),
    out: Path = typer.Option(..., "--out", help="run directory to write"),
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
                       task_info=_csv(task_info), ndvi=ndvi,
                       channels_per_group=channels_per_group, t=t, overwrite=overwrite)
    console.print(f"[green]run directory:[/] {out} ({meta['kind']}, T={meta['t']}, NDVI {meta['ndvi']})")


def main() -> None:
    try:
        app()
    except CropmetaError as e:
        # one line, never wrapped through a path, no markup read from the message
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: stopped; temporary files were removed (finished work is kept to resume)\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
