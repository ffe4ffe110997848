"""`workbench events tail`: the live event stream of a cluster, as it happens."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Annotated

import typer

from workbench.cli.output import err, fail
from workbench.errors import ProfileError, WorkbenchError

events_app = typer.Typer(help="The live event stream.", no_args_is_help=True)


@events_app.command()
def tail(
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="A cluster profile with kafka_bootstrap_servers.")
    ],
    execution: Annotated[
        str | None, typer.Option("--execution", "-e", help="Only this execution's events.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
) -> None:
    """Print every event from now on (Ctrl-C stops): workflow and task state changes,
    progress and metrics while tasks run, and the cluster's own (leader, instances)."""
    from workbench.config import load_profile
    from workbench.events.kafka_source import KafkaSource
    from workbench.events.wire import encode

    try:
        settings = load_profile(profile)
        if not settings.kafka_bootstrap_servers:
            raise ProfileError(
                f"profile {profile!r} names no kafka_bootstrap_servers: there is no event "
                "stream to tail (`workbench cluster status` shows the state instead)"
            )
    except WorkbenchError as exc:
        raise fail(exc) from None
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def follow() -> None:
        source = KafkaSource(settings, execution, client_id="workbench-events-tail")
        await source.open()
        err.print(f"following {settings.kafka_topic} on {settings.kafka_bootstrap_servers}")
        try:
            async for event in source:
                if as_json:
                    sys.stdout.write(encode(event).decode() + "\n")
                    sys.stdout.flush()
                else:  # one line per event, never wrapped: made for grep and tail -f
                    sys.stdout.write(_line(event) + "\n")
                    sys.stdout.flush()
        finally:
            await source.close()

    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        pass
    except WorkbenchError as exc:
        raise fail(exc) from None


def _line(event: object) -> str:
    from workbench.events.models import Event

    assert isinstance(event, Event)
    when = time.strftime("%H:%M:%S", time.localtime(event.timestamp))
    parts = [when, event.type.value, event.execution_id or "-"]
    if event.task_id:
        parts.append(event.task_id)
    if event.status:
        parts.append(event.status)
    if event.progress is not None:
        parts.append(f"{event.progress:.0%}")
    if event.message:
        parts.append(event.message)
    if event.metrics:
        parts.append(" ".join(f"{k}={v:.4g}" for k, v in event.metrics.items()))
    if event.data and event.type.cluster_level:
        parts.append(json.dumps(event.data, default=str))
    return "  ".join(parts)


@events_app.command()
def schema() -> None:
    """Print the JSON Schema of the events on the stream (what consumers can rely on)."""
    from workbench.events.wire import event_json_schema

    sys.stdout.write(json.dumps(event_json_schema(), indent=2) + "\n")
