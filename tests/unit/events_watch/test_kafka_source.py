"""The Kafka source without a broker: its options, its reading of records, an unreachable
broker."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from tests.support.redis_server import free_port
from tests.unit.events_watch.fakes import started
from workbench.config import Settings
from workbench.errors import ProfileError
from workbench.events.kafka_source import KafkaSource, consumer_options
from workbench.events.watch import SourceUnavailable
from workbench.events.wire import encode


@dataclass
class Record:
    value: bytes | None
    key: bytes | None
    topic: str = "t"
    partition: int = 0
    offset: int = 0


def test_the_consumer_takes_the_producers_connection_and_security_settings():
    settings = Settings(
        kafka_bootstrap_servers="k1:9093,k2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="ui",
        kafka_sasl_password=SecretStr("s3cret"),
    )
    options = consumer_options(settings)
    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {
        "bootstrap_servers": "k1:9093,k2:9093",
        "client_id": "workbench-watch",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ui",
        "sasl_plain_password": "s3cret",
    }
    with pytest.raises(ProfileError, match="kafka_sasl_username"):
        consumer_options(settings.model_copy(update={"kafka_sasl_username": None}))
    with pytest.raises(ProfileError, match="kafka_bootstrap_servers"):
        KafkaSource(Settings())


def test_records_of_other_executions_are_filtered_and_bad_ones_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = KafkaSource(Settings(kafka_bootstrap_servers="k:9092"), "x")
    mine = started(1, "a")
    theirs = started(1, "a", execution_id="y")
    with caplog.at_level(logging.WARNING, logger="workbench.events.kafka_source"):
        assert source._read(Record(encode(mine), b"x")) == mine
        assert source._read(Record(encode(theirs), b"y")) is None
        assert source._read(Record(encode(theirs), None)) is None  # unkeyed: by its content
        assert source._read(Record(b"{not json", b"x")) is None
        assert source._read(Record(None, b"x")) is None
        assert source._read(Record(b"garbage", b"y")) is None  # not ours: not even read
    assert source.skipped == 2
    assert len(caplog.records) == 2 and "skipping message t/0@0" in caplog.text
    everything = KafkaSource(Settings(kafka_bootstrap_servers="k:9092"))
    assert everything._read(Record(encode(theirs), b"y")) == theirs


def test_an_unreachable_broker_is_source_unavailable_within_the_connect_timeout():
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")

    async def scenario() -> None:
        source = KafkaSource(settings, connect_timeout_s=1.0)
        began = time.monotonic()
        with pytest.raises(SourceUnavailable, match="not reachable"):
            await source.open()
        assert time.monotonic() - began < 3.0
        await source.close()  # nothing left to close: fine

    asyncio.run(scenario())
