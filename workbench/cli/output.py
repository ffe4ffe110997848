"""Where the `workbench` command writes, and how it reports a WorkbenchError."""

from __future__ import annotations

import typer
from rich.console import Console

from workbench.errors import WorkbenchError

out = Console()
err = Console(stderr=True)


def fail(exc: WorkbenchError) -> typer.Exit:
    """Print the error (its message says what to do) and exit with its status."""
    err.print(f"error: {exc}", style="red", highlight=False, markup=False)
    return typer.Exit(exc.exit_code)
