"""cropmeta's command line (installed as the package ``cropmeta_cli``): a thin Typer shell over the library."""
