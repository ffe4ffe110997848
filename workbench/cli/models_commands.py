"""`workbench models ...`: list and inspect the model registry, move versions between stages
and aliases, roll production back.

Changes go through `ModelLifecycleManager`, so they are atomic, recorded in the history and
checked by the same rules as everywhere else; when the settings name Kafka, the events of a
change are sent there once it is made.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from workbench.cli.output import err, fail, out
from workbench.config import Settings
from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.events.models import Event
    from workbench.registry.base import ModelVersion, Transition, ValidationReport
    from workbench.registry.manager import ModelLifecycleManager

models_app = typer.Typer(
    help="The model registry: list and inspect versions, promote, archive, alias, roll back.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="A cluster profile: its registry in Redis."),
]
WhyOption = Annotated[str, typer.Option("--why", help="The reason, kept in the history.")]
NameArgument = Annotated[str, typer.Argument(help="The model's name.")]
VersionArgument = Annotated[int, typer.Argument(help="A version number.", min=1)]

STAGE_STYLE = {"production": "bold green", "staging": "yellow", "archived": "dim", "none": ""}


class TargetStage(StrEnum):
    PRODUCTION = "production"
    STAGING = "staging"


# -- reading -------------------------------------------------------------------------------------


@models_app.command("ls")
def list_models(as_json: JsonOption = False, profile: ProfileOption = None) -> None:
    """One row per model: its versions, the production and staging versions, its aliases, the
    newest version and when it last changed."""
    with _registry(profile) as (_, lifecycle):
        store = lifecycle.store
        rows = [
            _summary(name, store.list_versions(name), store.history(name))
            for name in sorted(store.list_names())
        ]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("no models registered")
        return
    table = Table("model", "versions", "production", "staging", "aliases", "newest", "changed")
    for row in rows:
        table.add_row(
            Text(row["name"]),
            str(row["versions"]),
            "-" if row["production"] is None else f"v{row['production']}",
            ", ".join(f"v{v}" for v in row["staging"]) or "-",
            Text(", ".join(f"{a} -> v{v}" for a, v in row["aliases"].items()) or "-"),
            f"v{row['newest']}",
            _when(row["last_change_at"]),
        )
    out.print(table)


@models_app.command()
def show(
    target: Annotated[
        str,
        typer.Argument(
            metavar="NAME[@REF]",
            help="A model, or one version of it: NAME@3, NAME@production, NAME@champion.",
        ),
    ],
    as_json: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Every version of a model and its transition history; with @REF (a version number, a
    stage or an alias) that one version in full: signature, metrics, params, lineage, checksum
    and artifact."""
    name, at, ref = target.partition("@")
    with _registry(profile) as (_, lifecycle):
        if at and not ref:
            from workbench.registry.errors import RegistryInputError

            raise RegistryInputError(
                f"nothing after '@' in {target!r}: give a version number, a stage or an alias"
            )
        if ref:
            version = lifecycle.store.resolve(name, ref)
            reports = lifecycle.store.validations(name, version.version)
        else:
            versions = lifecycle.store.list_versions(name)
            history = lifecycle.store.history(name)
    if ref:
        if as_json:
            _print_json({**asdict(version), "validations": [asdict(r) for r in reports]})
        else:
            _print_version(version)
            if reports:
                _print_report(reports[-1], title=f"newest of {len(reports)} validation(s)")
        return
    if as_json:
        _print_json(
            {
                "name": name,
                "versions": [asdict(v) for v in versions],
                "history": [asdict(t) for t in history],
            }
        )
        return
    table = Table("version", "stage", "aliases", "flavor", "metrics", "created", "by", "lineage")
    for v in versions:
        table.add_row(
            f"v{v.version}",
            Text(v.stage.value, style=STAGE_STYLE[v.stage.value]),
            Text(", ".join(v.aliases) or "-"),
            Text(v.flavor),
            Text(_metrics(v.metrics)),
            _when(v.created_at),
            Text(v.created_by),
            Text(_lineage(v.lineage)),
        )
    out.print(table)
    if not history:
        out.print(f"{name}: no transitions yet", style="dim", highlight=False, markup=False)
        return
    moves = Table("at", "who", "version", "change", "why", title=f"history of {name}")
    for t in history:
        moves.add_row(
            _when(t.at), Text(t.who), f"v{t.version}", Text(_change(t)), Text(t.why or "-")
        )
    out.print(moves)


# -- changing ------------------------------------------------------------------------------------


@models_app.command()
def promote(
    name: NameArgument,
    version: VersionArgument,
    stage: Annotated[TargetStage, typer.Option(help="The stage to move it to.")] = (
        TargetStage.PRODUCTION
    ),
    why: WhyOption = "",
    keep_previous: Annotated[
        bool,
        typer.Option(
            "--keep-previous",
            help="Move the current production version to 'none' instead of archiving it.",
        ),
    ] = False,
    require_validation: Annotated[
        bool,
        typer.Option(
            "--require-validation",
            help="Refuse unless the version's newest validation report passed against the "
            "current champion (see `workbench models validate`).",
        ),
    ] = False,
    as_json: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Move a version to production (the current one is archived) or to staging."""
    _change_registry(
        profile,
        as_json,
        name,
        lambda m: m.promote(
            name,
            version,
            stage.value,
            why=why,
            archive_previous=not keep_previous,
            require_validation=require_validation,
        ),
        unchanged=f"{name} v{version} is already in {stage.value}; nothing changed",
    )


@models_app.command()
def archive(
    name: NameArgument,
    version: VersionArgument,
    why: WhyOption = "",
    as_json: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Move a version to 'archived' (a production version leaves production)."""
    _change_registry(
        profile,
        as_json,
        name,
        lambda m: m.archive(name, version, why=why),
        unchanged=f"{name} v{version} is already archived; nothing changed",
    )


@models_app.command()
def rollback(
    name: NameArgument,
    why: WhyOption = "",
    as_json: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Put back the version that was in production before the current one; the current one
    is archived."""
    _change_registry(
        profile, as_json, name, lambda m: m.rollback(name, why=why), unchanged="nothing changed"
    )


@models_app.command()
def alias(
    name: NameArgument,
    alias: Annotated[str, typer.Argument(help="The alias, e.g. champion.")],
    version: Annotated[
        int | None, typer.Argument(help="The version it should name (not with --remove).", min=1)
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias instead.")] = False,
    why: WhyOption = "",
    as_json: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Point ALIAS at VERSION (moving it off any other version), or remove it with --remove."""
    from workbench.registry.errors import RegistryInputError

    if remove == (version is not None):
        problem = "give either VERSION or --remove, not both" if remove else "give a VERSION"
        raise fail(RegistryInputError(f"alias {alias!r}: {problem}"))
    if version is None:
        _change_registry(
            profile,
            as_json,
            name,
            lambda m: m.remove_alias(name, alias, why=why),
            unchanged="nothing changed",
        )
        return
    target = version
    _change_registry(
        profile,
        as_json,
        name,
        lambda m: m.set_alias(name, alias, target, why=why),
        unchanged=f"alias {alias} of {name} already names v{target}; nothing changed",
    )


@models_app.command("validate")
def validate_version(
    name: NameArgument,
    version: VersionArgument,
    gate: Annotated[
        list[str],
        typer.Option(
            "--gate",
            "-g",
            help='A metric and its condition: "f1_score >= 0.8", "roc_auc +0.01 vs champion". '
            "Repeat for several.",
        ),
    ],
    against: Annotated[
        str, typer.Option(help="The champion: a stage, an alias or a version number.")
    ] = "production",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Held-out rows (CSV or Parquet with the target column) to score both models "
            "on; default: compare the metrics recorded at registration.",
        ),
    ] = None,
    as_json: JsonOption = False,
    profile: ProfileOption = None,
) -> None:
    """Check a version against gates and keep the report with it (`promote
    --require-validation` needs a passing one). Exits 1 when a gate fails."""
    with _registry(profile) as (_, lifecycle):
        gates = _gates(gate)
        scorer = None if data is None else _file_scorer(data)
        report = lifecycle.validate(
            name,
            version,
            gates,
            against=against,
            scorer=scorer,
            dataset=None if data is None else str(data),
        )
    if as_json:
        _print_json(asdict(report))
    else:
        _print_report(report, title="kept with the version")
    if not report.passed:
        raise typer.Exit(1)


def _file_scorer(data: Path) -> Callable[[Any], dict[str, float]]:
    """Scores a model on `data`, split on the model's own target column; the file is read
    once per target, not once per model."""
    from functools import cache

    from workbench.tasks.holdout import HeldOut

    held_out = cache(lambda target: HeldOut.from_file(data, target))
    return lambda model: held_out(getattr(model, "target", "")).score(model)


def _gates(given: list[str]) -> dict[str, str]:
    """ "f1_score >= 0.8" -> {"f1_score": ">= 0.8"}; the condition is checked by the registry."""
    from workbench.registry.errors import RegistryInputError

    gates: dict[str, str] = {}
    for text in given:
        metric, _, condition = text.strip().partition(" ")
        for op in (">=", "<=", "==", ">", "<"):  # "f1_score>=0.8" written without spaces
            if op in metric:
                metric, _, rest = metric.partition(op)
                condition = f"{op}{rest} {condition}"
                break
        if not metric or not condition.strip():
            raise RegistryInputError(
                f'gate {text!r}: expected a metric and a condition, e.g. "f1_score >= 0.8" '
                'or "roc_auc +0.01 vs champion"'
            )
        gates[metric] = condition.strip()
    return gates


@models_app.command()
def serve(
    target: Annotated[
        str,
        typer.Argument(metavar="NAME@REF", help="What to serve: fraud@production, fraud@3."),
    ],
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    poll_s: Annotated[
        float, typer.Option("--poll-s", help="How often to look whether REF moved.", min=0.05)
    ] = 1.0,
    profile: ProfileOption = None,
) -> None:
    """Serve a registered model over HTTP: POST /predict ({"rows": [...]}, checked against the
    model's input signature: 422 names the bad field), GET /health, GET /metadata. When REF
    moves (a promotion, a rollback, an alias), the server loads the new version, verified, and
    switches to it without dropping requests."""
    from workbench.registry.errors import RegistryInputError
    from workbench.serving.server import ScoringServer

    # A long-running server: its reloads and failures are the operator's log.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    name, _, ref = target.partition("@")
    with _registry(profile) as (_, lifecycle):
        if not name or not ref:
            raise RegistryInputError(
                f"{target!r}: expected NAME@REF, e.g. fraud@production or fraud@3"
            )
        server = ScoringServer(lifecycle, name, ref, host=host, port=port, poll_interval_s=poll_s)

        def ready(running: ScoringServer) -> None:
            served = running.served.version
            err.print(
                f"serving {name} v{served.version} ({target}) at {running.url}: POST /predict, "
                "GET /health, GET /metadata; Ctrl-C stops",
                highlight=False,
                markup=False,
            )

        server.serve_forever(on_ready=ready)


def _change_registry(
    profile: str | None,
    as_json: bool,
    name: str,
    action: Callable[[ModelLifecycleManager], list[Transition]],
    *,
    unchanged: str,
) -> None:
    """Make one change, then report its transitions and send its events to Kafka."""
    from workbench.registry.base import Stage

    events: list[Event] = []
    with _registry(profile, events) as (settings, lifecycle):
        moved = action(lifecycle)
    if as_json:
        _print_json(
            {"name": name, "changed": bool(moved), "transitions": [asdict(t) for t in moved]}
        )
    elif not moved:
        out.print(unchanged, highlight=False, markup=False)
    else:
        # What arrived in production first: "fraud v3: staging -> production; v2: production
        # -> archived"
        ordered = sorted(moved, key=lambda t: t.to_stage is not Stage.PRODUCTION)
        out.print(
            f"{name} " + "; ".join(f"v{t.version}: {_change(t)}" for t in ordered),
            highlight=False,
            markup=False,
        )
    if events and settings.kafka_bootstrap_servers:  # after the report: the change is made
        _publish(settings, events)


# -- the registry, its errors and its events -----------------------------------------------------


@contextmanager
def _registry(
    profile: str | None, events: list[Event] | None = None
) -> Iterator[tuple[Settings, ModelLifecycleManager]]:
    """The registry of these settings (Redis with a profile that has one, else SQLite in the
    cache folder), closed on leaving; every error becomes a red message and an exit status."""
    from workbench.config import load_profile
    from workbench.registry.manager import ModelLifecycleManager

    try:
        settings = load_profile(profile) if profile else Settings()
        if events is not None and settings.kafka_bootstrap_servers:
            from workbench.events.kafka import producer_options

            producer_options(settings)  # a Kafka setting that cannot work fails before a change
        lifecycle = ModelLifecycleManager.from_settings(
            settings, publish=None if events is None else events.append
        )
    except WorkbenchError as exc:
        raise fail(exc) from None
    try:
        yield settings, lifecycle
    except WorkbenchError as exc:
        raise fail(exc) from None
    except Exception as exc:
        import redis

        if not isinstance(exc, redis.exceptions.RedisError):
            raise
        problem = WorkbenchError(
            f"the registry's Redis did not answer ({exc}); check redis_url in the profile or "
            "WORKBENCH_REDIS_URL"
        )
        raise fail(problem) from None
    finally:
        lifecycle.close()


def _publish(settings: Settings, events: list[Event]) -> None:
    """Send the events of the change just made to Kafka. The change stands either way."""
    from workbench.events.kafka import publish_batch

    reason = ""
    try:
        published = publish_batch(settings, events, client_id="workbench-models")
    except Exception as exc:  # an unexpected failure of the client: the change is made
        published, reason = 0, f" ({exc})"
    if published < len(events):
        err.print(
            f"warning: {len(events) - published} of {len(events)} events did not reach Kafka "
            f"at {settings.kafka_bootstrap_servers}{reason}; the registry change is made",
            style="yellow",
            highlight=False,
            markup=False,
        )


# -- rendering -----------------------------------------------------------------------------------


def _summary(name: str, versions: list[ModelVersion], history: list[Transition]) -> dict[str, Any]:
    from workbench.registry.base import Stage

    changes = [v.created_at for v in versions] + [t.at for t in history]
    return {
        "name": name,
        "versions": len(versions),
        "production": next((v.version for v in versions if v.stage is Stage.PRODUCTION), None),
        "staging": [v.version for v in versions if v.stage is Stage.STAGING],
        "aliases": {a: v.version for v in versions for a in sorted(v.aliases)},
        "newest": max(v.version for v in versions),
        "last_change_at": max(changes),
    }


def _print_version(v: ModelVersion) -> None:
    table = Table(show_header=False, box=None, title=f"{v.name} v{v.version}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("stage", Text(v.stage.value, style=STAGE_STYLE[v.stage.value])),
        ("aliases", ", ".join(v.aliases) or "-"),
        ("flavor", v.flavor),
        ("created", f"{_when(v.created_at)} by {v.created_by or '?'}"),
        ("signature", _mapping(v.signature)),
        ("metrics", _mapping(v.metrics)),
        ("params", _mapping(v.params)),
        ("lineage", _mapping(v.lineage)),
        ("checksum", v.checksum),
        ("artifact", v.artifact_path),
    ]
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else Text(value))
    out.print(table)


def _print_report(report: ValidationReport, title: str) -> None:
    verdict = Text(
        "passed" if report.passed else "failed", style="green" if report.passed else "red"
    )
    champion = "none" if report.champion_version is None else f"v{report.champion_version}"
    heading = Text.assemble(
        f"{report.name} v{report.version} ",
        verdict,
        f" against {report.against} ({champion}) on "
        f"{report.dataset}, {_when(report.at)} by {report.who} — {title}",
    )
    out.print(heading)  # not the table's title: Rich would wrap it to the table's width
    table = Table("metric", "gate", "challenger", "champion", "reason")
    for gate in report.gates:
        style = "green" if gate["passed"] else "red"
        table.add_row(
            Text(gate["metric"], style=style),
            Text(gate["expression"]),
            _number(gate.get("challenger")),
            _number(gate.get("champion")),
            Text(gate["reason"]),
        )
    out.print(table)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _change(t: Transition) -> str:
    """What one transition did: a stage move, alias moves, or both."""
    parts = [] if t.from_stage is t.to_stage else [f"{t.from_stage.value} -> {t.to_stage.value}"]
    for move in t.alias_changes:
        if move.to_version is None:
            parts.append(f"alias {move.alias} removed")
        elif move.from_version is None:
            parts.append(f"alias {move.alias} set")
        else:
            parts.append(f"alias {move.alias} moved from v{move.from_version}")
    return ", ".join(parts) or "no change"


def _metrics(metrics: dict[str, float], shown: int = 3) -> str:
    text = ", ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:shown])
    return text + (", …" if len(metrics) > shown else "") if text else "-"


def _lineage(lineage: dict[str, Any]) -> str:
    parts = [str(lineage[k]) for k in ("execution_id", "task_id") if lineage.get(k)]
    return "/".join(parts) or "-"


def _mapping(values: dict[str, Any]) -> str:
    if not values:
        return "-"
    return "\n".join(f"{k}: {json.dumps(v, default=str)}" for k, v in values.items())


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _print_json(value: Any) -> None:
    # Stages are StrEnums and tuples become lists: json writes them as their values.
    sys.stdout.write(json.dumps(value, default=str) + "\n")
