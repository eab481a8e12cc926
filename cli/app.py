"""The ``cropmeta`` command: parses flags, calls one library function per command, prints with Rich.
No logic lives here: every command is a call into ``cropmeta`` that the tests call too.

This module builds the Typer app (global options, the commands in help order, the ``models``
group) and :func:`main`, the console entry point; the commands are in :mod:`.data` (doctor,
regions, sim, ingest, fetch, era5-catalogue) and :mod:`.model` (train, compare, calibrate, export,
assess, demo, models download / import-timl); what they share is in :mod:`._common`."""

from __future__ import annotations

import sys

import typer

from cropmeta.errors import CropmetaError

from . import data, model
from ._common import JSON_OUTPUT, flag_option, console

app = typer.Typer(add_completion=True, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="cropmeta: task-informed meta-learning (TIML) for crop maps.")


def _version(value: bool) -> None:
    if value:
        from cropmeta._version import __version__

        console.print(f"cropmeta {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: bool = typer.Option(False, "--version", help="print the version and exit", callback=_version,
                                 is_eager=True, metavar=""),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="say more (-v: progress notes, -vv: debug)",
                                metavar=""),
    quiet: bool = flag_option(False, "--quiet", "-q", help="no progress bars, warnings or notes (results and errors still print); anywhere on the line"),
    json_output: bool = flag_option(False, "--json", help="print each command's result as one JSON object on stdout (for scripts); anywhere on the line"),
) -> None:
    """cropmeta: task-informed meta-learning (TIML) for crop maps."""
    from cropmeta.logs import configure

    JSON_OUTPUT["on"] = bool(json_output)
    console.quiet = bool(json_output)  # stdout carries only the JSON

    configure(verbose=verbose, quiet=quiet)  # -q: no progress bars, warnings or notes; results still print


# the commands, in the order `cropmeta --help` lists them
app.command()(data.doctor)
app.command()(data.regions)
app.command()(data.sim)
app.command()(data.ingest)
app.command()(data.fetch)
app.command("era5-catalogue")(data.era5_catalogue)
app.command()(model.train)
app.command()(model.compare)
app.command()(model.calibrate)
app.command()(model.export)
app.command()(model.assess)
app.command()(model.view)
app.command()(model.demo)

models_app = typer.Typer(no_args_is_help=True, help="Pretrained models: download published weights, import TIML checkpoints.")
app.add_typer(models_app, name="models")
models_app.command("download")(model.models_download)
models_app.command("import-timl")(model.models_import_timl)


#: the global flags, accepted anywhere on the line (``cropmeta train -q …`` as ``cropmeta -q train …``)
GLOBAL_FLAGS = {"-q", "--quiet", "-v", "-vv", "-vvv", "--verbose", "--json"}


def hoist_global_flags(argv: list[str]) -> list[str]:
    """``argv`` with the global flags that follow the command moved before it (up to a ``--``)."""
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut:]
    else:
        head, tail = argv, []
    flags = [a for a in head if a in GLOBAL_FLAGS]
    return flags + [a for a in head if a not in GLOBAL_FLAGS] + tail


#: what Ctrl-C prints (docs/cli.md)
INTERRUPTED = "interrupted: stopped; temporary files were removed (finished work is kept to resume)"


def main() -> None:
    sys.argv[1:] = hoist_global_flags(sys.argv[1:])
    try:
        command = typer.main.get_command(app)
        code = command.main(args=sys.argv[1:], prog_name="cropmeta", standalone_mode=False)
        if code == 130:  # Typer turned Ctrl-C (KeyboardInterrupt) into this exit code
            sys.stderr.write(INTERRUPTED + "\n")
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as e:  # --help, --version
        sys.exit(e.exit_code)
    except typer.Abort:  # Ctrl-C inside a prompt or the parser's own handling
        sys.stderr.write(INTERRUPTED + "\n")
        sys.exit(130)
    except typer.TyperException as e:
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:  # `cropmeta` alone: the help
            typer.echo(ctx.get_help())
            sys.exit(2)
        # a usage error (unknown option, missing value, bad choice): one line like every other error
        where = f"{ctx.command_path}: " if ctx is not None and ctx.command_path else ""
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None and ctx.command_path else ""
        sys.stderr.write(f"error: {where}{e.format_message()}{hint}\n")
        sys.exit(2)
    except CropmetaError as e:
        # one line, never wrapped through a path, no markup read from the message
        sys.stderr.write(f"error: {e}\n")
        sys.exit(2)
    except OSError as e:
        # an output or workspace that cannot be written (a file where a folder should be, no permission,
        # a full disk): one line naming the path, as for any bad input
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        sys.stderr.write(f"error: {where}{e.strerror or e} (check --out / --home)\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED + "\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
