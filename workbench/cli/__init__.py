"""The `workbench` command line (Typer)."""
