"""What every command of the ``cropmeta`` CLI shares: the console, help shown as flags, the common
options and the small Rich printers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
import typer.core
from rich.console import Console
from rich.table import Table


def _help_shown_as_flag(get_help_option):
    def wrapper(self, ctx):
        opt = get_help_option(self, ctx)
        if opt is not None:
            opt.metavar = ""  # -h/--help is a flag: no value type in the help table
        return opt
    return wrapper


for _cls in (typer.core.TyperCommand, typer.core.TyperGroup):
    _cls.get_help_option = _help_shown_as_flag(_cls.get_help_option)

console = Console()

HOME_HELP = "workspace folder (default $CROPMETA_HOME or ./cropmeta-data)"


def flag_option(default: bool, *decls: str, help: str, **kw):
    """An on/off flag, shown as a flag (no value type) in the help."""
    return typer.Option(default, *decls, help=help, metavar="", **kw)


def home_option():
    return typer.Option(None, "--home", help=HOME_HELP)



def print_data(rows) -> None:
    """Which datasets a command used (simulated or real pixels)."""
    for d in rows or []:
        console.print(f"data: {d.get('dataset')} ({d.get('pixels')} pixels, T={d.get('t')}, {d.get('samples')} samples)",
                      soft_wrap=True)


def label_option_set(**kw) -> Optional[dict]:
    from cropmeta.io.labels import label_options

    return label_options(**kw) or None


def csv_list(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def print_dict_table(title: str, d: dict) -> None:
    table = Table(title=title)
    table.add_column("key")
    table.add_column("value")
    for k, v in d.items():
        table.add_row(str(k), f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)



def one_run(positional: Optional[Path], option: Optional[Path]) -> Path:
    """The run of a command that takes it as ``RUN`` or ``--run RUN`` (docs/cli.md: the run is ``--run``)."""
    from cropmeta.errors import InputError

    if positional is not None and option is not None and Path(positional) != Path(option):
        raise InputError(f"two runs given ({positional} and --run {option}); give one")
    run = option if option is not None else positional
    if run is None:
        raise InputError("no run given: --run RUN_DIR (a trained run directory)")
    return run


#: ``--json`` (a global flag, anywhere on the line): commands print their result as one JSON object
JSON_OUTPUT = {"on": False}


def emit(result, human=None) -> None:
    """A command's result: one strict-JSON object on stdout with ``--json``, else ``human()`` (Rich)."""
    if JSON_OUTPUT["on"]:
        import sys

        from cropmeta._fs import json_text

        sys.stdout.write(json_text(result, indent=2) + "\n")
        sys.stdout.flush()
    elif human is not None:
        human()
