"""Data commands: doctor, regions, sim, ingest, fetch, era5-catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from cropmeta.io.table_mapping import PRESETS, shipped_mappings

from ._common import HOME_HELP, csv_list, flag_option, home_option, label_option_set, print_dict_table, console, emit


def doctor(home: Optional[Path] = home_option()) -> None:
    """Check the installation: versions, device, learn2learn, GDAL COG driver, data directory."""
    from cropmeta.doctor import run_doctor
    from cropmeta.io.store import use_workspace

    use_workspace(home)

    from ._common import JSON_OUTPUT

    if JSON_OUTPUT["on"]:
        from cropmeta.doctor import doctor_report

        report = doctor_report()
        emit(report)
        raise typer.Exit(0 if report["ok"] else 1)
    raise typer.Exit(0 if run_doctor(console) else 1)


def regions(contains: Optional[str] = typer.Argument(None, metavar="[TEXT]", help="only names containing this text")) -> None:
    """List the named regions (every country, Natural Earth 50m)."""
    from cropmeta.regions import list_regions

    gdf = list_regions()
    if contains:
        gdf = gdf[gdf["name"].str.lower().str.contains(contains.lower())]
    rows = [{"name": r["name"], "iso_a3": str(r["iso_a3"]), "continent": str(r["continent"])} for _, r in gdf.iterrows()]

    def human():
        table = Table(title=f"{len(gdf)} regions")
        for col in ("name", "iso_a3", "continent"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["name"], r["iso_a3"], r["continent"])
        console.print(table)

    emit({"regions": rows}, human)


def sim(
    out: Path = typer.Option(..., "--out", "-o", help="the folder to create for the world"),
    seed: int = typer.Option(0, help="world seed"),
    scene_size: int = typer.Option(128, help="scene size in pixels (square)"),
    overwrite: bool = flag_option(False, "--overwrite", help="replace an existing world at --out"),
) -> None:
    """Write a simulated world (tiles, labels, scenes) to disk for inspection."""
    from cropmeta.sim import generate_world

    path = generate_world(out, seed=seed, scene_size=scene_size, overwrite=overwrite)
    emit({"world": str(path)}, lambda: console.print(f"[green]world written:[/] {path}"))


def ingest(
    region: Optional[str] = typer.Option(None, help="country name (see `cropmeta regions`); default: all"),
    region_file: Optional[Path] = typer.Option(None, help="polygon file defining the region"),
    bbox: Optional[str] = typer.Option(None, help="min_lon,min_lat,max_lon,max_lat"),
    source: Optional[str] = typer.Option(None, help="pixels: a GeoTIFF or folder of EE exports, a CropHarvest root, "
                                                    "or 'sim' (the simulated world; the default without --labels)"),
    labels: Optional[Path] = typer.Option(None, help="label file (GeoJSON/GPKG/SHP/zipped SHP/GeoParquet/CSV); "
                                                     "needs --source; with --table: a table of labels joined by sample id"),
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
    months: Optional[str] = typer.Option(None, help="keep the months START:END (YYYY-MM:YYYY-MM) of longer series (tifs and tables)"),
    table: Optional[Path] = typer.Option(None, help="a sample table (CSV/Parquet/GeoParquet, long or wide) instead of --source/--labels", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    table_mapping: Optional[Path] = typer.Option(None, help="TOML/YAML file saying which table column is what (docs/data-formats.md), or a shipped mapping: " + " | ".join(shipped_mappings()), rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    preset: Optional[str] = typer.Option(None, help="table preset: " + " | ".join(PRESETS), rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    layout: Optional[str] = typer.Option(None, help="table layout: long | wide (default: long when it has the date column)"),
    date_column: Optional[str] = typer.Option(None, help="table: date column of a long table (default date)", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    wide_pattern: Optional[str] = typer.Option(None, help="table: wide column names, default {band}_{step}", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    band: Optional[List[str]] = typer.Option(None, "--band", help="table: COLUMN=BAND, a per-step band (repeatable)", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    static_band: Optional[List[str]] = typer.Option(None, "--static-band", help="table: COLUMN=BAND, a static band (repeatable)", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    non_crop_values: Optional[str] = typer.Option(None, help="table: comma-separated label values that mean non-crop", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    split_column: Optional[str] = typer.Option(None, help="table: column holding train/test", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    region_column: Optional[str] = typer.Option(None, help="table: column holding each sample's region", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    nodata: Optional[str] = typer.Option(None, help="table: comma-separated nodata values (e.g. 65535)", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    scale: Optional[List[str]] = typer.Option(None, "--scale", help="table: BAND=FACTOR (repeatable)", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    step: Optional[str] = typer.Option(None, help="table: month | dekad (default: from the dates)", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    resample: Optional[str] = typer.Option(None, help="table: month: any cadence → months (median of the clear observations)", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    where: Optional[List[str]] = typer.Option(None, "--where", help="table: COLUMN=VALUE, keep only those rows (repeatable; e.g. level=L2A)", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    strict: bool = flag_option(False, "--strict", help="table: refuse incomplete samples and empty bands instead of leaving them out", rich_help_panel="Sample tables (--table; or keys of a --table-mapping file)"),
    benchmark: Optional[str] = typer.Option(None, help="worldcrops | cawa: a real benchmark's samples with its test splits "
                                                        "(--source: its data folder; default ../shared)"),
    allow_failed: bool = flag_option(False, "--allow-failed", help="skip unreadable tiles (reported) instead of stopping"),
    replace: bool = flag_option(False, "--replace", help="let real and simulated datasets of a region replace each other"),
    seed: int = typer.Option(0, help="simulated world seed (with --source sim)"),
    home: Optional[Path] = typer.Option(None, "--home", help=HOME_HELP),
    out: Optional[Path] = typer.Option(None, "--out", hidden=True, help="refused: the workspace is --home"),
) -> None:
    """Build a region's samples into the workspace (idempotent, resumable, atomic)."""
    from cropmeta.ingest import ingest as run_ingest
    from cropmeta.regions import resolve_region

    if out is not None:
        from cropmeta.errors import InputError

        raise InputError(f"ingest --out {out}: the workspace is --home now (--out names what a command creates); "
                         f"use --home {out}")
    if benchmark is not None:
        from cropmeta.ingest import ingest_benchmark

        result = ingest_benchmark(benchmark, root=source, home=home, replace=replace)
        emit({"datasets": {k: str(v) for k, v in result.datasets.items()}, "report": result.report},
             lambda: [console.print(f"[green]dataset[/] {n}: {p}", soft_wrap=True) for n, p in result.datasets.items()])
        return
    reg = None if (region is None and region_file is None and bbox is None) else resolve_region(region, region_file, bbox)
    mapping = opts = None
    if table is not None:
        from cropmeta.io.table_mapping import mapping_from_options

        mapping = mapping_from_options(preset, table_mapping, band=band, static_band=static_band, scale=scale,
                                       layout=layout, date_column=date_column, wide_pattern=wide_pattern,
                                       id_column=id_column, lat_column=lat_column, lon_column=lon_column, crs=crs,
                                       label_column=class_column, crop_values=crop_values,
                                       non_crop_values=non_crop_values, crop_type_column=crop_type_column,
                                       split_column=split_column, region_column=region_column,
                                       field_column=field_column, nodata=nodata, step=step, resample=resample,
                                       start_date=start_date, where=where, strict=strict or None)
    else:
        opts = label_option_set(class_column=class_column, crop_values=crop_values, crop_type_column=crop_type_column,
                           id_column=id_column, layer=layer, lat_column=lat_column, lon_column=lon_column, crs=crs,
                           file_class=file_class, polygons=polygons, field_column=field_column)
    result = run_ingest(region=reg, source=source, labels=labels, seed=seed, home=home, label_options=opts,
                        progress=True, start_date=start_date, allow_failed=allow_failed, replace=replace,
                        start_month=start_month, months=months, table=table, table_mapping=mapping)
    summary = result.report.get("summary", {}) if isinstance(result.report, dict) else {}

    def human():
        for name, path in result.datasets.items():
            console.print(f"[green]dataset[/] {name}: {path}", soft_wrap=True)
        if summary:
            print_dict_table(f"ingest report ({result.report.get('pixels', '?')} pixels)", summary)

    emit({"datasets": {k: str(v) for k, v in result.datasets.items()}, "summary": summary}, human)


def fetch(
    out: Path = typer.Option(..., "--out", "-o", help="the folder to create for the Earth-Engine-layout tifs and manifest.json"),
    labels: Optional[Path] = typer.Option(None, help="label file: one small box per label point"),
    region: Optional[str] = typer.Option(None, help="country name: tiles over the region (for maps)"),
    region_file: Optional[Path] = typer.Option(None, help="polygon file: tiles over it"),
    bbox: Optional[str] = typer.Option(None, help="min_lon,min_lat,max_lon,max_lat: tiles over it"),
    year: Optional[int] = typer.Option(None, help="season: --steps 30-day steps ending YEAR+1-02-01 (default: labels' start_date)"),
    source: str = typer.Option("stac", help="stac (no account) | ee (Earth Engine)"),
    catalog: Optional[str] = typer.Option(None, help="planetary-computer (default) | earth-search | STAC URL | local catalog.json"),
    preset: str = typer.Option("planetary-computer", help="asset keys and default URL: planetary-computer | earth-search"),
    catalog_for: Optional[list[str]] = typer.Option(None, "--catalog-for", help="KIND=URL: another catalogue for s2, s1, dem or era5"),
    collection: Optional[list[str]] = typer.Option(None, "--collection", help="KIND=NAME: collection name for s2, s1, dem or era5"),
    s1_pad_days: int = typer.Option(0, help="widen each window by N days for Sentinel-1"),
    t: int = typer.Option(12, "--steps", help="number of 30-day steps"),
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
    opts = {"class_column": class_column, "crop_values": csv_list(crop_values), "id_column": id_column}
    stac = stac_config(preset, catalog=catalog, catalogs=catalog_for, collections=collection, s1_pad_days=s1_pad_days) \
        if source == "stac" else None
    ee = EEConfig(project=ee_project, mode=ee_mode, folder=folder, bucket=bucket, max_tasks=max_tasks,
                  s1_pad_days=s1_pad_days) if source == "ee" else None
    result = run_fetch(out, labels=labels, region=reg, year=year, source=source, t=t, box_metres=box_metres,
                       tile_px=tile_px, stac=stac, ee=ee, label_options={k: v for k, v in opts.items() if v} or None,
                       progress=True)
    def human():
        console.print(f"[green]fetched[/] {len(result.written)} file(s), {len(result.skipped)} already complete"
                      + (f", {len(result.queued)} Earth Engine task(s) queued" if result.queued else "")
                      + f": {result.out}")
        console.print(f"manifest: {result.manifest}")

    emit({"out": str(result.out), "written": [str(w) for w in result.written], "skipped": [str(w) for w in result.skipped],
          "queued": [str(q) for q in (result.queued or [])], "manifest": str(result.manifest)}, human)


def era5_catalogue(
    netcdf: list[Path] = typer.Argument(..., metavar="NETCDF...", help="CDS ERA5(-Land) monthly means netCDF file(s) with t2m and tp"),
    out: Path = typer.Option(..., "--out", "-o", help="the folder to create for the catalogue (then --catalog-for era5=OUT/catalog.json)"),
) -> None:
    """Turn a Climate Data Store ERA5 monthly download into a local STAC catalogue for `fetch`."""
    from cropmeta.fetch.catalogue import era5_catalogue as build

    cat = build(list(netcdf), out)
    emit({"catalogue": str(cat)}, lambda: console.print(f"[green]ERA5 catalogue:[/] {cat}"))
