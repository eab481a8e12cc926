"""The ``cropmeta`` command: parses flags, calls one library function per command, prints with Rich.
No logic lives here: every command is a call into ``cropmeta`` that the tests call too."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

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
    field_column: Optional[str] = typer.Option(None, help="label column naming each point's field/polygon (default: field_id)"),
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
            "polygons": polygons, "field_column": field_column}
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
) -> None:
    """Meta-train on all other tasks, fine-tune on the target region, evaluate on its test set."""
    from cropmeta.train import train as run_train

    result = run_train(region=region, crop=crop, source=source, preset=preset, seed=seed, out=out, resume=resume,
                       first_order=first_order, device=device, config=config, nprocs=nprocs, shots=shots,
                       learner=learner, progress=True, pretrain_source=pretrain_source, sim_seed=sim_seed)
    target = result.get("target", {})
    _print_dict_table(f"held-out metrics — {target.get('name', region)}", dict(result.get("table", [])))
    if "run_dir" in result:
        console.print(f"[green]run directory:[/] {result['run_dir']}")


@app.command()
def compare(
    region: Optional[str] = typer.Option(None, help="target region"),
    crop: Optional[str] = typer.Option(None),
    seeds: int = typer.Option(5),
    shots: str = typer.Option("20,32,64,128,256,all", help="comma-separated shot counts ('all' = every label, 0 = zero-shot)"),
    methods: str = typer.Option("timl,maml,pretrained,scratch,random-forest",
                                help="any of timl, maml, pretrained, scratch, random-forest, in-context, presto (+sim / +views variants); --zero-shot and --oracle add their rows"),
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
    zero_shot: bool = typer.Option(False, help="also the zero-shot column (shots 0): meta-trained/pretrained models without fine-tuning, a random forest on other regions"),
    oracle: bool = typer.Option(False, help="also the oracle rows (simulated world only): RF and LSTM on correctly labelled samples of the test districts and year"),
    world: Optional[Path] = typer.Option(None, help="simulated world of the oracle rows (default: the default source's world)"),
    oracle_n: Optional[int] = typer.Option(None, help="oracle samples per target (default 4000)"),
) -> None:
    """Compare TIML against the baselines over seeds and shot counts; write report.json/.md/.html."""
    from cropmeta.evaluate.compare import compare as run_compare
    from cropmeta.evaluate.report import print_summary

    kwargs = dict(region=region, crop=crop, seeds=seeds, shots=_csv(shots), methods=_csv(methods), out=out,
                  source=source, preset=preset, benchmark=benchmark, root=root, progress=True, views=views,
                  pretrain_source=pretrain_source, sim_seed=sim_seed, config=config, calib_folds=calib_folds,
                  zero_shot=zero_shot, oracle=oracle, world=world, oracle_n=oracle_n)
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


models_app = typer.Typer(no_args_is_help=True, help="Pretrained models: download published weights.")
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


def main() -> None:
    try:
        app()
    except CropmetaError as e:
        err_console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
