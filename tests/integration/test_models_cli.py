"""`workbench models ...` as a user runs it, over a registry holding real fitted models: the
local SQLite registry, the cluster's Redis one, and the transitions sent to Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import redis
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from tests.support.kafka_broker import KafkaBroker, create_topic
from tests.support.redis_server import free_port
from workbench.cli.app import app
from workbench.config import Settings
from workbench.events.models import EventType
from workbench.events.wire import decode
from workbench.registry.base import Stage
from workbench.registry.manager import ModelLifecycleManager

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LINEAGE = {"workflow_id": "fraud", "execution_id": "fraud-7", "task_id": "train"}


def _model(c: float) -> LogisticRegression:
    return LogisticRegression(C=c).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


def _fill(lifecycle: ModelLifecycleManager) -> None:
    """fraud v1..v3 (v1 in production), churn v1 (never promoted)."""
    for c in (1.0, 0.1, 0.01):
        lifecycle.register(
            "fraud",
            _model(c),
            metrics={"f1_score": 0.8 + c / 10, "roc_auc": 0.9},
            params={"C": c},
            signature={"features": ["amount"], "dtypes": {"amount": "float64"}},
            lineage=LINEAGE,
        )
    lifecycle.register("churn", _model(1.0))
    lifecycle.promote("fraud", 1, why="first model")


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelLifecycleManager]:
    """The local registry the command opens (WORKBENCH_CACHE_DIR), filled by `_fill`."""
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "250")  # tables unclipped, so the tests can read them
    for name in ("WORKBENCH_REDIS_URL", "WORKBENCH_KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    lifecycle = ModelLifecycleManager.from_settings(Settings(), who="ana")
    _fill(lifecycle)
    yield lifecycle
    lifecycle.close()


def cli(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["models", *args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def as_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def state(lifecycle: ModelLifecycleManager) -> dict[str, Any]:
    """Every version's stage and aliases and the length of every history."""
    store = lifecycle.store
    return {
        name: (
            [(v.version, v.stage, v.aliases) for v in store.list_versions(name)],
            len(store.history(name)),
        )
        for name in store.list_names()
    }


def stages(lifecycle: ModelLifecycleManager, name: str = "fraud") -> dict[int, str]:
    return {v.version: v.stage.value for v in lifecycle.store.list_versions(name)}


def test_ls_and_show_as_tables_and_json(registry: ModelLifecycleManager) -> None:
    registry.promote("fraud", 2, Stage.STAGING)
    registry.set_alias("fraud", "champion", 1, why="best so far")

    table = cli("ls").stdout
    assert "fraud" in table and "churn" in table and "champion -> v1" in table
    rows = {row["name"]: row for row in as_json("ls")}
    fraud = rows["fraud"]
    assert {k: v for k, v in fraud.items() if k != "last_change_at"} == {
        "name": "fraud",
        "versions": 3,
        "production": 1,
        "staging": [2],
        "aliases": {"champion": 1},
        "newest": 3,
    }
    assert fraud["last_change_at"] == registry.store.history("fraud")[-1].at
    assert rows["churn"]["production"] is None and rows["churn"]["aliases"] == {}

    listing = cli("show", "fraud").stdout
    for text in ("production", "staging", "champion", "sklearn", "fraud-7/train", "f1_score="):
        assert text in listing
    assert "none -> production" in listing and "first model" in listing
    assert "alias champion set" in listing and "best so far" in listing
    shown = as_json("show", "fraud")
    assert [v["stage"] for v in shown["versions"]] == ["production", "staging", "none"]
    assert shown["versions"][0]["aliases"] == ["champion"]
    assert shown["versions"][0]["lineage"] == LINEAGE
    assert [(t["version"], t["from_stage"], t["to_stage"]) for t in shown["history"]][:2] == [
        (1, "none", "production"),
        (2, "none", "staging"),
    ]
    assert shown["history"][-1]["alias_changes"] == [
        {"alias": "champion", "from_version": None, "to_version": 1}
    ]

    one = registry.store.get("fraud", 1)
    full = cli("show", "fraud@champion").stdout
    for text in (one.checksum, one.artifact_path, '"amount"', "C: 1.0", "execution_id"):
        assert text in full
    expected = json.loads(json.dumps({**asdict(one), "validations": []}))
    assert as_json("show", "fraud@champion") == expected
    assert as_json("show", "fraud@1") == expected
    assert as_json("show", "fraud@production") == expected
    assert as_json("show", "fraud@staging")["version"] == 2


def test_promote_archives_the_previous_and_rollback_restores_it(
    registry: ModelLifecycleManager,
) -> None:
    said = cli("promote", "fraud", "2", "--why", "better f1").stdout
    assert said.strip() == "fraud v2: none -> production; v1: production -> archived"
    assert stages(registry) == {1: "archived", 2: "production", 3: "none"}
    assert registry.store.history("fraud")[-1].why == "better f1"

    before = state(registry)
    again = cli("promote", "fraud", "2").stdout
    assert "already in production; nothing changed" in again
    assert state(registry) == before

    moved = as_json("promote", "fraud", "3", "--stage", "staging")
    assert moved["changed"] is True
    assert [(t["version"], t["from_stage"], t["to_stage"]) for t in moved["transitions"]] == [
        (3, "none", "staging")
    ]

    said = cli("rollback", "fraud", "--why", "v2 misbehaves").stdout
    assert said.strip() == "fraud v1: archived -> production; v2: production -> archived"
    assert stages(registry) == {1: "production", 2: "archived", 3: "staging"}
    assert registry.store.history("fraud")[-1].why == "v2 misbehaves"

    cli("promote", "fraud", "3", "--keep-previous")
    assert stages(registry) == {1: "none", 2: "archived", 3: "production"}


def test_archive_and_alias_set_move_and_remove(registry: ModelLifecycleManager) -> None:
    assert cli("archive", "fraud", "3", "--why", "stale").stdout.strip() == (
        "fraud v3: none -> archived"
    )
    assert "already archived; nothing changed" in cli("archive", "fraud", "3").stdout
    assert stages(registry)[3] == "archived"

    assert cli("alias", "fraud", "champion", "2").stdout.strip() == ("fraud v2: alias champion set")
    assert cli("alias", "fraud", "champion", "3", "--why", "retrained").stdout.strip() == (
        "fraud v3: alias champion moved from v2"
    )
    assert "nothing changed" in cli("alias", "fraud", "champion", "3").stdout
    assert as_json("show", "fraud@champion")["version"] == 3
    assert registry.store.get("fraud", 2).aliases == ()

    removed = as_json("alias", "fraud", "champion", "--remove", "--why", "no champion")
    assert removed["transitions"][0]["alias_changes"] == [
        {"alias": "champion", "from_version": 3, "to_version": None}
    ]
    assert registry.store.get("fraud", 3).aliases == ()
    cli("show", "fraud@champion", code=2)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "nope"], 2, "no model named 'nope' in the registry; registered models: churn"),
        (["promote", "nope", "1"], 2, "registered models: churn, fraud"),
        (["promote", "fraud", "9"], 2, "model 'fraud' has no version 9; its versions: 1, 2, 3"),
        (["archive", "fraud", "9"], 2, "has no version 9"),
        (["alias", "fraud", "champion", "9"], 2, "has no version 9"),
        (["show", "fraud@nah"], 2, "has no alias, stage or version 'nah'; its aliases: none"),
        (["show", "fraud@"], 2, "nothing after '@'"),
        (["alias", "fraud", "nah", "--remove"], 2, "has no alias, stage or version 'nah'"),
        (["alias", "fraud", "production", "1"], 2, "is a stage name"),
        (["alias", "fraud", "champion"], 2, "give a VERSION"),
        (["alias", "fraud", "champion", "1", "--remove"], 2, "not both"),
        (["show", "bad name!"], 2, "invalid model name 'bad name!'"),
        (["rollback", "fraud"], 1, "version 1 is the first version it ever had in production"),
        (["rollback", "churn"], 1, "model 'churn' has no production version to roll back"),
        (["promote", "fraud", "two"], 2, "Invalid value for 'version'"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    registry: ModelLifecycleManager, args: list[str], code: int, message: str
) -> None:
    before = state(registry)
    result = cli(*args, code=code)
    assert message in " ".join(result.stderr.split())  # rich wraps long lines
    assert result.stdout == ""
    assert state(registry) == before


def test_the_same_commands_work_on_the_clusters_redis(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = f"models-cli-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKBENCH_REDIS_URL", redis_url)
    monkeypatch.setenv("WORKBENCH_NAMESPACE", namespace)
    monkeypatch.delenv("WORKBENCH_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    lifecycle = ModelLifecycleManager.from_settings(Settings(), who="ana")
    try:
        _fill(lifecycle)
        assert [row["name"] for row in as_json("ls")] == ["churn", "fraud"]
        cli("promote", "fraud", "2", "--why", "better")
        cli("alias", "fraud", "champion", "2")
        assert as_json("show", "fraud@champion")["stage"] == "production"
        cli("rollback", "fraud")
        assert stages(lifecycle) == {1: "production", 2: "archived", 3: "none"}
        before = state(lifecycle)
        assert "its versions: 1, 2, 3" in cli("promote", "fraud", "7", code=2).stderr
        assert state(lifecycle) == before
    finally:
        lifecycle.close()
    # It is the cluster's registry: the keys are in Redis, no SQLite file was made.
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.sismember(f"{namespace}:registry:names", "fraud")
    finally:
        client.close()
    assert not (tmp_path / "cache" / "registry.sqlite").exists()


def test_transitions_reach_kafka(
    registry: ModelLifecycleManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"workbench.test.{uuid.uuid4().hex[:12]}"
    with KafkaBroker() as broker:
        asyncio.run(create_topic(broker.bootstrap, topic, partitions=1))
        monkeypatch.setenv("WORKBENCH_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap)
        monkeypatch.setenv("WORKBENCH_KAFKA_TOPIC", topic)
        result = cli("promote", "fraud", "2", "--why", "better")
        assert result.stderr == ""
        events = asyncio.run(_consume(broker.bootstrap, topic, wanted=2))
    assert [e.type for e in events] == [EventType.MODEL_TRANSITION] * 2
    assert {(e.data["version"], e.data["to_stage"]) for e in events} == {
        (1, "archived"),
        (2, "production"),
    }
    assert all(e.workflow_id == "fraud" and e.data["why"] == "better" for e in events)


def test_an_unreachable_kafka_is_a_warning_and_the_change_stands(
    registry: ModelLifecycleManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKBENCH_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("WORKBENCH_EVENTS_SEND_TIMEOUT_S", "0.5")
    monkeypatch.setenv("WORKBENCH_EVENTS_SHUTDOWN_TIMEOUT_S", "0.5")
    result = cli("promote", "fraud", "2")
    assert "2 of 2 events did not reach Kafka" in " ".join(result.stderr.split())
    assert stages(registry) == {1: "archived", 2: "production", 3: "none"}


async def _consume(bootstrap: str, topic: str, wanted: int) -> list[Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(10):
            while len(records) < wanted:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return [decode(record.value) for record in records]


def test_validate_keeps_a_report_that_promotion_can_require(
    registry: ModelLifecycleManager,
) -> None:
    # fraud v2: f1 0.81 (v1, production: 0.9)
    refused = cli("promote", "fraud", "2", "--require-validation", code=1)
    assert "no validation report" in refused.stderr
    failed = cli(
        "validate", "fraud", "2", "-g", "f1_score>=0.85", "-g", "roc_auc +0 vs champion", code=1
    )
    assert "failed against production (v1)" in failed.stdout
    assert "0.81 does not meet >= 0.85" in failed.stdout
    cli("promote", "fraud", "2", "--require-validation", code=1)

    report = json.loads(cli("validate", "fraud", "2", "--gate", "f1_score >= 0.8", "--json").stdout)
    assert report["passed"] and report["champion_version"] == 1
    assert report["dataset"] == "the metrics recorded at registration"
    assert as_json("show", "fraud@2")["validations"][-1] == report
    assert "newest of 2 validation(s)" in cli("show", "fraud@2").stdout
    cli("promote", "fraud", "2", "--require-validation")
    assert registry.store.resolve("fraud", "production").version == 2


@pytest.mark.parametrize(
    ("gate", "says"),
    [("f1_score at least 0.8", "invalid gate"), ("f1_score", "expected a metric and a condition")],
)
def test_a_malformed_gate_is_refused_and_nothing_is_kept(
    registry: ModelLifecycleManager, gate: str, says: str
) -> None:
    result = cli("validate", "fraud", "2", "--gate", gate, code=2)
    assert says in result.stderr
    assert registry.store.validations("fraud", 2) == []
