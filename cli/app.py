"""The ``cropmeta`` command: parses flags, calls one library function per command, prints with Rich.
No logic lives here: every command is a call into ``cropmeta`` that the tests call too."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from cropmeta.errors import CropmetaError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="cropmeta: task-informed meta-learning (TIML) for crop maps.")
console = Console()
err_console = Console(stderr=True)


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
def doctor() -> None:
    """Check the installation: versions, device, learn2learn, GDAL COG driver, data directory."""
    from cropmeta.doctor import run_doctor

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
    overwrite: bool = typer.Option(False, help="replace an existing world at --out"),
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
    source: Optional[str] = typer.Option(None, help="'sim' (default), a GeoTIFF/dir of EE exports, or a CropHarvest root"),
    labels: Optional[Path] = typer.Option(None, help="label file (GeoJSON/GPKG/SHP/GeoParquet/CSV)"),
    class_column: Optional[str] = typer.Option(None, help="label column holding the class"),
    crop_values: Optional[str] = typer.Option(None, help="comma-separated class values that mean crop"),
    crop_type_column: Optional[str] = typer.Option(None, help="label column holding the crop type (e.g. Crop1)"),
    id_column: Optional[str] = typer.Option(None, help="label column with unique ids"),
    layer: Optional[str] = typer.Option(None, help="layer of a multi-layer file (GeoPackage)"),
    lat_column: Optional[str] = typer.Option(None, help="CSV latitude column (default lat)"),
    lon_column: Optional[str] = typer.Option(None, help="CSV longitude column (default lon)"),
    crs: Optional[str] = typer.Option(None, help="CRS of a label file that has none (e.g. EPSG:32636)"),
    polygons: Optional[str] = typer.Option(None, help="centroid (default) | pixels: every pixel inside a polygon"),
    start_date: Optional[str] = typer.Option(None, help="first time step (YYYY-MM-DD) when file names carry no dates"),
    allow_failed: bool = typer.Option(False, help="skip unreadable tiles (reported) instead of stopping"),
    seed: int = typer.Option(0, help="simulated world seed (with --source sim)"),
    out: Optional[Path] = typer.Option(None, help="workspace (default $CROPMETA_HOME or ./cropmeta-data)"),
) -> None:
    """Build a region's samples into the workspace (idempotent, resumable, atomic)."""
    from cropmeta.ingest import ingest as run_ingest
    from cropmeta.regions import resolve_region

    reg = None if (region is None and region_file is None and bbox is None) else resolve_region(region, region_file, bbox)
    opts = {"class_column": class_column, "crop_values": _csv(crop_values), "crop_type_column": crop_type_column,
            "id_column": id_column, "layer": layer, "lat_column": lat_column, "lon_column": lon_column, "crs": crs,
            "polygons": polygons}
    label_options = {k: v for k, v in opts.items() if v is not None}
    result = run_ingest(region=reg, source=source, labels=labels, seed=seed, home=out,
                        label_options=label_options or None, progress=True, start_date=start_date,
                        allow_failed=allow_failed)
    for name, path in result.datasets.items():
        console.print(f"[green]dataset[/] {name}: {path}")
    summary = result.report.get("summary", {}) if isinstance(result.report, dict) else {}
    if summary:
        _print_dict_table("ingest report", summary)


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
    source: Optional[str] = typer.Option(None, help="data source (default: the simulated world)"),
    preset: str = typer.Option("quick", help="quick (CPU, minutes) or paper (full TIML schedule)"),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, help="run directory"),
    resume: bool = typer.Option(False, help="continue from the last checkpoint in --out"),
    first_order: Optional[bool] = typer.Option(None, "--first-order/--second-order",
                                               help="MAML order (default: the preset's; quick = first, paper = second)"),
    device: Optional[str] = typer.Option(None, help="auto|cpu|cuda (default: the preset's, auto)"),
    config: Optional[Path] = typer.Option(None, help="TOML/YAML file overriding the preset"),
    nprocs: int = typer.Option(1, help="torch.distributed ranks (task-parallel meta-batches)"),
    shots: Optional[int] = typer.Option(None, help="fine-tune on N training labels in total (class-balanced, N/2 positives) instead of all"),
    learner: Optional[str] = typer.Option(None, help="timl (default) | maml | concat | in-context"),
    pretrain_source: Optional[str] = typer.Option(None, help="sim: train on the simulated world first, then on this data"),
    sim_seed: int = typer.Option(1, help="seed of the simulated world used by --pretrain-source sim"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="option override SECTION.KEY=VALUE, repeatable "
                                             "(e.g. finetune.steps=100, meta.remove_auc=false; docs/configuration.md)"),
) -> None:
    """Meta-train on all other tasks, fine-tune on the target region, evaluate on its test set."""
    from cropmeta.api import train_model
    from cropmeta.train.config import parse_assignments

    result = train_model(region, crop, source=source, preset=preset, seed=seed, out=out, resume=resume,
                         first_order=first_order, device=device, config=config, nprocs=nprocs, shots=shots,
                         learner=learner, progress=True, pretrain_source=pretrain_source, sim_seed=sim_seed,
                         overrides=parse_assignments(set_))
    if result is not None:
        _print_dict_table(f"held-out metrics — {result.target.get('name', region)}", dict(result.table))
        console.print(f"[green]run directory:[/] {result.run_dir}")


@app.command()
def compare(
    region: Optional[str] = typer.Option(None, help="target region"),
    crop: Optional[str] = typer.Option(None),
    seeds: int = typer.Option(5),
    shots: str = typer.Option("20,32,64,128,256,all", help="comma-separated shot counts ('all' = every label)"),
    methods: str = typer.Option("timl,maml,pretrained,scratch,random-forest",
                                help="any of timl, maml, pretrained, scratch, random-forest, in-context, presto (+sim / +views variants)"),
    out: Optional[Path] = typer.Option(None, help="report directory"),
    source: Optional[str] = typer.Option(None),
    preset: str = typer.Option("quick"),
    benchmark: Optional[str] = typer.Option(None, help="cropharvest | sim"),
    root: Optional[Path] = typer.Option(None, help="CropHarvest archive root (with --benchmark cropharvest)"),
    config: Optional[Path] = typer.Option(None, help="TOML/YAML file overriding the deep methods' training preset"),
    calib_folds: int = typer.Option(3, help="folds of the training labels used to fit the temperature"),
    views: int = typer.Option(0, help="also fit each method on its labels + N generative views of each ('<method> + views' rows)"),
    pretrain_source: Optional[str] = typer.Option(None, help="sim: also pretrain each meta/pretrained method on the simulated world first ('(sim → real)' rows)"),
    sim_seed: int = typer.Option(1, help="seed of the simulated world used by --pretrain-source sim"),
) -> None:
    """Compare TIML against the baselines over seeds and shot counts; write report.json/.md/.html."""
    from cropmeta.evaluate.compare import compare as run_compare
    from cropmeta.evaluate.report import print_summary

    kwargs = dict(region=region, crop=crop, seeds=seeds, shots=_csv(shots), methods=_csv(methods), out=out,
                  source=source, preset=preset, benchmark=benchmark, root=root, progress=True, views=views,
                  pretrain_source=pretrain_source, sim_seed=sim_seed, config=config, calib_folds=calib_folds)
    print_summary(run_compare(**kwargs), console)


@app.command()
def calibrate(
    run: Path = typer.Argument(..., help="trained run directory"),
    folds: int = typer.Option(3, help="folds of the run's training labels (never its test set)"),
) -> None:
    """Fit a temperature on out-of-fold predictions of the run's training labels; export uses it."""
    from cropmeta.evaluate.calibration import calibrate_run

    _print_dict_table("calibration", {k: v for k, v in calibrate_run(run, folds=folds).items()
                                      if isinstance(v, (int, float))})


@app.command()
def export(
    run: Path = typer.Option(..., "--run", help="trained run directory"),
    out: Path = typer.Option(..., "--out", help="output map (.tif) or directory for many tiles"),
    inputs: Optional[list[Path]] = typer.Option(None, "--input", help="EE GeoTIFF tile(s) or dir; default: the simulated scene"),
    region: Optional[str] = typer.Option(None),
    region_file: Optional[Path] = typer.Option(None),
    bbox: Optional[str] = typer.Option(None),
    threshold: float = typer.Option(0.5),
    as_float: bool = typer.Option(False, "--float", help="float32 probabilities instead of uint8 0–100"),
    workers: Optional[int] = typer.Option(None, help="local Dask workers"),
    scheduler: Optional[str] = typer.Option(None, help="tcp://HOST:PORT of an existing Dask scheduler"),
    truth: Optional[Path] = typer.Option(None, help="truth raster or label file: report map accuracy"),
    mosaic: str = typer.Option("vrt", help="vrt | cog | none (many tiles → a VRT of tile COGs, one COG, or tiles only)"),
) -> None:
    """Write a Cloud-Optimised GeoTIFF crop map (+ PNG quick-look, + accuracy with --truth)."""
    from cropmeta.mapping.export import export as run_export

    result = run_export(run, out, inputs=inputs, region=region, region_file=region_file, bbox=bbox,
                        threshold=threshold, as_float=as_float, workers=workers, scheduler=scheduler, truth=truth,
                        mosaic=mosaic, progress=True)
    console.print(f"[green]map:[/] {result.get('map', out)}")
    if result.get("quicklook"):
        console.print(f"[green]quick-look:[/] {result['quicklook']}")
    if result.get("accuracy"):
        acc = result["accuracy"]
        _print_dict_table("map accuracy", {k: v for k, v in acc.items() if isinstance(v, (int, float))})


@app.command()
def assess(
    map_path: Path = typer.Argument(..., help="a map written by `cropmeta export`"),
    truth: Path = typer.Option(..., help="truth raster (0/1) or label file"),
    out: Optional[Path] = typer.Option(None, help="write the accuracy report here (JSON)"),
) -> None:
    """Map accuracy: confusion matrix, F1, AUC, crop area and its error-adjusted estimate (ha)."""
    from cropmeta.mapping.accuracy import assess as run_assess

    acc = run_assess(map_path, truth, out_json=out)
    _print_dict_table("map accuracy", {k: v for k, v in acc.items() if isinstance(v, (int, float))})


@app.command()
def demo(
    region: str = typer.Option("kenya"),
    out: Path = typer.Option(Path("runs/demo"), help="where the run and the map go"),
) -> None:
    """Ingest the simulated world, train on REGION (quick preset), export its map with accuracy."""
    from cropmeta.pipeline import demo as run_demo

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
        err_console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
