"""Kafka for the integration tests: one real broker per session, and a private one for the
tests that kill and restart it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.kafka_broker import KafkaBroker


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """Tansu on a free port (or the Kafka at $WORKBENCH_TEST_KAFKA), started on first use.
    Never skipped: a missing binary fails the test with the command that installs it."""
    with KafkaBroker() as broker:
        yield broker


@pytest.fixture
def own_kafka_broker() -> Iterator[KafkaBroker]:
    """A Tansu of this test's own, which it may stop and restart (always Tansu: an external
    Kafka cannot be killed by a test)."""
    with KafkaBroker(use_env=False) as broker:
        yield broker


@pytest.fixture
def kafka_topic() -> str:
    """A topic name no other test uses: the broker creates it on first use."""
    return f"workbench.test.{uuid.uuid4().hex[:12]}"
