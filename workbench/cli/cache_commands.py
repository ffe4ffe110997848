"""`workbench cache ...`: explain, stats, clear."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from workbench.cli.output import fail, out
from workbench.config import Settings
from workbench.errors import WorkbenchError

cache_app = typer.Typer(help="Inspect and manage the result cache.", no_args_is_help=True)

VERDICT_STYLE = {"hit": "green", "miss": "yellow", "not cached": "dim"}


ProfileOption = Annotated[
    str | None, typer.Option("--profile", "-p", help="A cluster profile: its Redis cache too.")
]


class Store(StrEnum):
    ALL = "all"
    MEMORY = "memory"
    DISK = "disk"
    REDIS = "redis"


@cache_app.command()
def explain(
    file: Annotated[Path, typer.Argument(help="A workflow spec (.yaml, .yml or .json).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    profile: ProfileOption = None,
) -> None:
    """For every task: its key, whether it would hit, and for a miss what changed since its
    last run (parameter, upstream result, data file, code, library version)."""
    from workbench.cache.fingerprints import FileFingerprints
    from workbench.cache.result_cache import ResultCache
    from workbench.execution.cache_explain import explain_workflow
    from workbench.tasks.checks import load_workflow

    try:
        checked = load_workflow(file)
        settings = _settings(profile)
        cache = ResultCache(settings)
        fingerprints = FileFingerprints(settings.cache_dir / "fingerprints.json")
        explanations = explain_workflow(checked, cache, fingerprints)
        cache.close()
    except WorkbenchError as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps([e.to_json() for e in explanations], default=str) + "\n")
        return
    table = Table("task", "type", "strategy", "key", "verdict", "why", expand=True)
    for item in explanations:
        style = VERDICT_STYLE[item.verdict.value]
        table.add_row(
            item.task_id,
            item.task_type,
            item.strategy,
            (item.key or "-")[:12],
            f"[{style}]{item.verdict.value}[/]",
            "\n".join(item.reasons),
        )
    out.print(table)
    hits = sum(1 for e in explanations if e.verdict.value == "hit")
    out.print(f"{hits}/{len(explanations)} tasks would come from the cache")


@cache_app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    profile: ProfileOption = None,
) -> None:
    """Entries, bytes, hits and misses of every cache store this configuration reaches."""
    from dataclasses import asdict

    from workbench.cache.result_cache import ResultCache

    try:
        cache = ResultCache(_settings(profile))
        rows = cache.stats()
        cache.close()
    except WorkbenchError as exc:
        raise fail(exc) from None
    if as_json:
        sys.stdout.write(json.dumps([asdict(r) for r in rows]) + "\n")
        return
    table = Table("store", "location", "entries", "size", "hits", "misses", "hit rate", "evicted")
    for row in rows:
        lookups = row.hits + row.misses
        rate = f"{row.hits / lookups:.0%}" if lookups else "-"
        size = _size(row.bytes) + (f" / {_size(row.capacity_bytes)}" if row.capacity_bytes else "")
        table.add_row(
            row.backend,
            row.location,
            f"{row.entries:,}",
            size,
            f"{row.hits:,}",
            f"{row.misses:,}",
            rate,
            f"{row.evictions:,}",
        )
    out.print(table)
    out.print("memory is per process: a new `workbench` command starts with it empty", style="dim")


@cache_app.command()
def clear(
    store: Annotated[Store, typer.Option(help="Which store to empty.")] = Store.ALL,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    profile: ProfileOption = None,
) -> None:
    """Remove cached results (the record of earlier runs that `explain` reads is kept)."""
    from workbench.cache.result_cache import ResultCache

    try:
        cache = ResultCache(_settings(profile))
        backends = [
            b for b in cache.configured_backends() if store is Store.ALL or b.name == store.value
        ]
        if not backends:
            raise WorkbenchError(
                f"no {store.value} store is configured (Redis needs WORKBENCH_REDIS_URL)"
            )
        where = ", ".join(s.location or s.backend for b in backends for s in b.stats())
        if not yes and not typer.confirm(f"remove every cached result in {where}?"):
            raise typer.Exit(1)
        removed = cache.clear(backends)
        cache.close()
    except WorkbenchError as exc:
        raise fail(exc) from None
    out.print(f"removed {removed:,} cached results from {where}")


def _settings(profile: str | None) -> Settings:
    from workbench.config import load_profile

    return load_profile(profile) if profile else Settings()


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
