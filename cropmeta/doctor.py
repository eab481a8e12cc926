"""`cropmeta doctor`: is the installation able to do its job?

Each check returns (name, ok, detail). The CLI prints them as a table and exits non-zero when any
required check fails.
"""

from __future__ import annotations

import importlib
import os
import platform
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


STACK = ["numpy", "torch", "torchvision", "learn2learn", "rasterio", "rioxarray", "xarray", "geopandas",
         "shapely", "pyproj", "h5py", "h5netcdf", "pyarrow", "dask", "distributed", "sklearn", "safetensors",
         "typer", "rich"]


#: `cropmeta fetch` (STAC and Earth Engine sources): reported, not required by the rest of cropmeta
FETCH_STACK = ["pystac", "pystac_client", "odc.stac", "planetary_computer", "ee"]

_DIST = {"sklearn": "scikit-learn", "pystac_client": "pystac-client", "odc.stac": "odc-stac",
         "planetary_computer": "planetary-computer", "ee": "earthengine-api"}


def _version(mod: str) -> Check:
    from importlib.metadata import PackageNotFoundError, version

    try:
        m = importlib.import_module(mod)
        try:
            v = version(_DIST.get(mod, mod))
        except PackageNotFoundError:
            v = str(getattr(m, "__version__", "?"))
        return Check(mod, True, v)
    except Exception as e:  # noqa: BLE001 - any import failure is what we report
        return Check(mod, False, f"import failed: {type(e).__name__}: {e}")


def check_learn2learn() -> Check:
    """A one-step second-order MAML update on a tiny model."""
    try:
        import learn2learn as l2l
        import torch

        torch.manual_seed(0)
        net = torch.nn.Linear(3, 1)
        maml = l2l.algorithms.MAML(net, lr=0.1, first_order=False)
        learner = maml.clone()
        x = torch.randn(4, 3)
        learner.adapt(learner(x).pow(2).mean())
        learner(x).pow(2).mean().backward()
        if net.weight.grad is None or not torch.isfinite(net.weight.grad).all():
            return Check("learn2learn MAML", False, "no finite meta-gradient")
        return Check("learn2learn MAML", True, f"second-order step ok (learn2learn {l2l.__version__})")
    except Exception as e:  # noqa: BLE001
        return Check("learn2learn MAML", False, f"{type(e).__name__}: {e}")


def check_gdal_cog() -> Check:
    """GDAL has the COG driver and can write + read a small COG."""
    try:
        import numpy as np
        import rasterio
        from rasterio.transform import from_origin

        drivers = rasterio.drivers.raster_driver_extensions()  # noqa: F841 - forces GDAL init
        with rasterio.Env() as env:
            if "COG" not in env.drivers():
                return Check("GDAL COG driver", False, "GDAL lacks the COG driver")
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "t.tif"
            with rasterio.open(p, "w", driver="COG", width=8, height=8, count=1, dtype="uint8",
                               crs="EPSG:4326", transform=from_origin(0, 8, 1, 1)) as dst:
                dst.write(np.arange(64, dtype="uint8").reshape(1, 8, 8))
            with rasterio.open(p) as src:
                ok = int(src.read(1)[7, 7]) == 63
        return Check("GDAL COG driver", ok, f"GDAL {rasterio.__gdal_version__}, write/read ok" if ok else "readback mismatch")
    except Exception as e:  # noqa: BLE001
        return Check("GDAL COG driver", False, f"{type(e).__name__}: {e}")


def check_data_dir() -> Check:
    from cropmeta.regions import region_file, region_names

    try:
        n = len(region_names())
        return Check("data directory", n > 0, f"{region_file()} ({n} regions)")
    except Exception as e:  # noqa: BLE001
        return Check("data directory", False, f"{type(e).__name__}: {e}")


def check_workspace() -> Check:
    from cropmeta.io.store import workspace_home

    home = workspace_home().resolve()
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home):
            pass
        return Check("workspace", True, f"{home} writable")
    except OSError as e:
        return Check("workspace", False, f"{home} not writable: {e}")


def check_device() -> Check:
    try:
        import torch

        if torch.cuda.is_available():
            return Check("device", True, f"CUDA: {torch.cuda.get_device_name(0)}", required=False)
        return Check("device", True, f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)",
                     required=False)
    except Exception as e:  # noqa: BLE001
        return Check("device", False, str(e), required=False)


def run_checks() -> list[Check]:
    from cropmeta._version import __version__

    checks = [Check("cropmeta", True, f"{__version__} (Python {platform.python_version()})")]
    checks += [_version(m) for m in STACK]
    checks += [replace(_version(m), name=f"{m} (fetch)", required=False) for m in FETCH_STACK]
    checks += [check_device(), check_learn2learn(), check_gdal_cog(), check_data_dir(), check_workspace()]
    return checks


def doctor_report() -> dict:
    """The checks as data: ``{"ok": every required check passed, "checks": [{check, ok, required, detail}]}``
    (``cropmeta doctor --json``)."""
    checks = run_checks()
    return {"ok": not [c for c in checks if c.required and not c.ok],
            "checks": [{"check": c.name, "ok": bool(c.ok), "required": bool(c.required), "detail": c.detail}
                       for c in checks]}


def run_doctor(console=None) -> bool:
    """Print the checks as a Rich table; True when every required check passes."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    checks = run_checks()
    table = Table(title="cropmeta doctor")
    for col in ("check", "status", "detail"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", c.detail)
    console.print(table)
    bad = [c.name for c in checks if c.required and not c.ok]
    if bad:
        console.print(f"[bold red]broken:[/] {', '.join(bad)} — see the details above")
    else:
        console.print("[bold green]all checks passed[/]")
    return not bad
