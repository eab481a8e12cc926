"""The ``cropmeta`` command: parses flags, calls one library function per command, prints with Rich.
No logic lives here."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from cropmeta.errors import CropmetaError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Task-informed meta-learning for crop maps.")
console = Console()
err_console = Console(stderr=True)


@app.command()
def doctor() -> None:
    """Check the installation: versions, device, learn2learn, GDAL COG driver, data directory."""
    from cropmeta.doctor import run_doctor

    ok = run_doctor(console)
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    try:
        app()
    except CropmetaError as e:
        err_console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
