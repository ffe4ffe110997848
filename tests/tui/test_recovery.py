"""The banner: losing Kafka or Redis under a running UI (cluster mode, real servers) shows
what is wrong and what the UI does about it; when they are back it goes away by itself."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import yaml
from textual.pilot import Pilot

from tests.support.cluster import RedisProcess
from tests.support.kafka_broker import KafkaBroker, create_topic
from tests.tui.conftest import drive, until
from tui.app import WorkbenchApp
from tui.backend import Backend
from tui.screens.base import Banner
from workbench.client.overview import ServiceState
from workbench.events.watch import WatchMode

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def banner_text(app: WorkbenchApp) -> str:
    banner = app.screen.query_one(Banner)
    return str(banner.content) if banner.display else ""


def test_losing_kafka_or_redis_shows_a_banner_that_clears_when_they_are_back(
    tmp_path: Path,
) -> None:
    redis_server = RedisProcess(tmp_path / "redis")
    redis_server.start()
    topic = f"workbench.tui.{uuid.uuid4().hex[:8]}"
    try:
        with KafkaBroker(use_env=False) as broker:
            asyncio.run(create_topic(broker.bootstrap, topic))
            profile = tmp_path / "cluster.yaml"
            profile.write_text(
                yaml.safe_dump(
                    {
                        "redis_url": redis_server.url,
                        "kafka_bootstrap_servers": broker.bootstrap,
                        "kafka_topic": topic,
                        "namespace": "tui-recovery",
                    }
                )
            )

            async def scenario(app: WorkbenchApp, pilot: Pilot[None]) -> None:
                def healthy() -> bool:
                    overview = app.state.overview
                    return (
                        overview is not None
                        and overview.service("redis").state is ServiceState.OK
                        and overview.service("kafka").state is ServiceState.OK
                        and app.state.mode is WatchMode.LIVE
                        and banner_text(app) == ""
                    )

                await until(pilot, healthy, "a healthy start", timeout=30)

                await asyncio.to_thread(broker.stop)
                await until(
                    pilot, lambda: "Live events lost" in banner_text(app), "the Kafka banner", 30
                )
                assert "reconnecting by itself" in banner_text(app)
                await asyncio.to_thread(broker.restart)
                await create_topic(broker.bootstrap, topic)
                await until(pilot, healthy, "Kafka back, banner gone", timeout=60)

                await asyncio.to_thread(redis_server.stop)
                await until(
                    pilot, lambda: "Redis unreachable" in banner_text(app), "the Redis banner", 30
                )
                await asyncio.to_thread(redis_server.start)
                await until(pilot, healthy, "Redis back, banner gone", timeout=60)

            drive(Backend.open(str(profile)), scenario)
    finally:
        redis_server.stop()
