"""One contract for every model registry store: in memory, SQLite (a temp file) and Redis
(a real redis-server). Concurrency is tested with threads in memory and with separate
processes on SQLite and Redis, since those are the stores several processes share."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from workbench.registry.base import AliasChange, ModelDraft, RegistryStore, Stage, ValidationReport
from workbench.registry.errors import (
    AliasNotFoundError,
    ModelNotFoundError,
    RegistryConflictError,
    RegistryError,
    RegistryInputError,
    VersionNotFoundError,
)
from workbench.registry.memory_store import MemoryRegistryStore
from workbench.registry.redis_store import RedisRegistryStore
from workbench.registry.sqlite_store import SqliteRegistryStore

KINDS = ["memory", "sqlite", "redis"]
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Harness:
    kind: str
    store: RegistryStore
    # another store on the same data, as another process would open it (memory: the same one)
    another: Callable[[], RegistryStore]
    location: str  # sqlite file or redis URL, for child processes


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    opened: list[Any] = []

    def track(obj: Any) -> Any:
        opened.append(obj)
        return obj

    if request.param == "memory":
        memory = MemoryRegistryStore()
        yield Harness("memory", memory, lambda: memory, "")
    elif request.param == "sqlite":
        path = str(tmp_path / "registry.db")
        yield Harness(
            "sqlite",
            track(SqliteRegistryStore(path)),
            lambda: track(SqliteRegistryStore(path)),
            path,
        )
    else:
        url = request.getfixturevalue("redis_url")

        def open_redis() -> RegistryStore:
            return RedisRegistryStore(track(redis.Redis.from_url(url)))

        yield Harness("redis", open_redis(), open_redis, url)
    for obj in opened:
        obj.close()


@pytest.fixture
def store(harness: Harness) -> RegistryStore:
    return harness.store


def draft(n: int = 0, **fields: Any) -> ModelDraft:
    base: dict[str, Any] = {
        "artifact_path": f"/artifacts/model-{n}.pkl",
        "checksum": f"sha256:{n:064x}",
        "flavor": "sklearn",
        "signature": {"inputs": [{"name": "x", "type": "double"}]},
        "metrics": {"auc": 0.9 + n / 1000},
        "params": {"max_depth": n, "nested": {"a": [1, 2]}},
        "lineage": {"workflow_id": "wf", "execution_id": f"e{n}", "task_id": "train"},
        "created_by": "alice",
    }
    return ModelDraft(**{**base, **fields})


def registered(store: RegistryStore, count: int, name: str = "churn") -> None:
    for n in range(1, count + 1):
        store.register(name, draft(n))


def stages(store: RegistryStore, name: str = "churn") -> dict[int, Stage]:
    return {mv.version: mv.stage for mv in store.list_versions(name)}


def snapshot(store: RegistryStore) -> Any:
    return [(n, store.list_versions(n), store.history(n)) for n in store.list_names()]


# -- registration --------------------------------------------------------------------------------
def test_versions_start_at_one_and_increase_per_name(store: RegistryStore) -> None:
    before = time.time()
    first = store.register("churn", draft(1))
    assert (first.name, first.version, first.stage, first.aliases) == ("churn", 1, "none", ())
    assert first.metrics == {"auc": pytest.approx(0.901)}
    assert first.params == {"max_depth": 1, "nested": {"a": [1, 2]}}
    assert first.lineage["execution_id"] == "e1" and first.created_by == "alice"
    assert before <= first.created_at <= time.time()
    assert store.register("churn", draft(2)).version == 2
    assert store.register("fraud", draft(3)).version == 1  # counters are per name
    assert store.register("churn", draft(4)).version == 3
    assert store.list_names() == ["churn", "fraud"]
    assert [(v.version, v.checksum) for v in store.list_versions("churn")] == [
        (1, draft(1).checksum),
        (2, draft(2).checksum),
        (3, draft(4).checksum),
    ]
    assert store.get("churn", 3) == store.list_versions("churn")[2]
    assert store.register("x", draft(5, created_at=12.5)).created_at == 12.5


def test_returned_versions_do_not_share_state_with_the_store(store: RegistryStore) -> None:
    mv = store.register("churn", draft(1))
    mv.params["max_depth"] = 99
    store.get("churn", 1).lineage["task_id"] = "changed"
    assert store.get("churn", 1).params["max_depth"] == 1
    assert store.get("churn", 1).lineage["task_id"] == "train"


_CHILD = """
import sys, time
from pathlib import Path
kind, location, proc = sys.argv[1:4]
count, go = int(sys.argv[4]), Path(sys.argv[5])
from workbench.registry.base import ModelDraft
if kind == "sqlite":
    from workbench.registry.sqlite_store import SqliteRegistryStore
    store = SqliteRegistryStore(location)
else:
    import redis
    from workbench.registry.redis_store import RedisRegistryStore
    store = RedisRegistryStore(redis.Redis.from_url(location))
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
for i in range(count):
    mv = store.register("race", ModelDraft("/a", "c", "f", lineage={"by": f"{proc}-{i}"}))
    print(mv.version, flush=True)
"""


def test_concurrent_registration_gives_distinct_consecutive_versions(
    harness: Harness, tmp_path: Path
) -> None:
    workers, each = 2, 20
    if harness.kind == "memory":
        barrier = threading.Barrier(4)

        def register(proc: int) -> None:
            barrier.wait()
            for i in range(10):
                harness.store.register(
                    "race", ModelDraft("/a", "c", "f", lineage={"by": f"{proc}-{i}"})
                )

        threads = [threading.Thread(target=register, args=(p,)) for p in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expected = {f"{p}-{i}" for p in range(4) for i in range(10)}
    else:
        go = tmp_path / "go"
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _CHILD,
                    harness.kind,
                    harness.location,
                    str(p),
                    str(each),
                    str(go),
                ],
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            for p in range(workers)
        ]
        for p in procs:  # both are connected before either registers: they really race
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        seen = []
        for p in procs:
            out, _ = p.communicate(timeout=30)
            assert p.returncode == 0
            seen += [int(line) for line in out.split()]
        assert sorted(seen) == list(range(1, workers * each + 1))  # what each process got
        expected = {f"{p}-{i}" for p in range(workers) for i in range(each)}
    versions = harness.store.list_versions("race")
    assert [v.version for v in versions] == list(range(1, 41))
    assert {v.lineage["by"] for v in versions} == expected  # no registration lost


# -- resolving -----------------------------------------------------------------------------------
def test_resolve_by_number_stage_and_alias(store: RegistryStore) -> None:
    registered(store, 4)
    store.transition("churn", 2, "production", who="ci")
    store.transition("churn", 3, Stage.STAGING, who="ci")
    store.transition("churn", 4, Stage.STAGING, who="ci")
    store.set_alias("churn", "champion", 1, who="alice")
    assert store.resolve("churn", "3").version == 3
    assert store.resolve("churn", "production").version == 2
    assert store.resolve("churn", "staging").version == 4  # the newest of several
    assert store.resolve("churn", "champion").version == 1
    assert store.resolve("churn", "champion").aliases == ("champion",)
    with pytest.raises(AliasNotFoundError, match="champion"):
        store.resolve("churn", "archived")  # nothing archived yet: says what exists
    with pytest.raises(VersionNotFoundError, match=r"no version 9; its versions: 1, 2, 3, 4"):
        store.resolve("churn", "9")


# -- stages --------------------------------------------------------------------------------------
def test_one_production_at_a_time_and_the_previous_is_archived(store: RegistryStore) -> None:
    registered(store, 3)
    first = store.transition("churn", 1, "production", who="ci", why="first")
    assert [(t.version, t.from_stage, t.to_stage) for t in first] == [(1, "none", "production")]
    second = store.transition("churn", 2, "production", who="ci", why="better auc")
    assert [(t.version, t.from_stage, t.to_stage) for t in second] == [
        (1, "production", "archived"),
        (2, "none", "production"),
    ]
    assert stages(store) == {1: "archived", 2: "production", 3: "none"}
    store.transition("churn", 3, "staging", who="ci")
    store.transition("churn", 3, "production", who="ci")
    assert stages(store) == {1: "archived", 2: "archived", 3: "production"}
    assert store.transition("churn", 3, "production", who="ci") == []  # already: no-op
    assert len(store.history("churn")) == 6


def test_archive_previous_false_returns_previous_to_none(store: RegistryStore) -> None:
    registered(store, 2)
    store.transition("churn", 1, "production", who="ci")
    moved = store.transition("churn", 2, "production", who="ci", archive_previous=False)
    assert [(t.version, t.to_stage) for t in moved] == [(1, "none"), (2, "production")]
    assert stages(store) == {1: "none", 2: "production"}


def test_concurrent_promotions_leave_exactly_one_production(harness: Harness) -> None:
    registered(harness.store, 8)
    stores = [harness.another() for _ in range(8)]
    barrier = threading.Barrier(8)

    def promote(version: int) -> None:
        barrier.wait()
        stores[version - 1].transition("churn", version, "production", who=f"w{version}")

    threads = [threading.Thread(target=promote, args=(v,)) for v in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = stages(harness.store)
    assert sorted(final.values()) == ["archived"] * 7 + ["production"]
    # the log is one chain: each promotion archived exactly the one before it
    history = harness.store.history("churn")
    promoted = [t.version for t in history if t.to_stage == "production"]
    archived = [t.version for t in history if t.to_stage == "archived"]
    assert archived == promoted[:-1] and final[promoted[-1]] == "production"


# -- rollback ------------------------------------------------------------------------------------
def test_rollback_returns_production_to_the_previous_one(store: RegistryStore) -> None:
    registered(store, 3)
    for v in (1, 2, 3):
        store.transition("churn", v, "production", who="ci")
    back = store.rollback("churn", who="oncall", why="latency regression")
    assert [(t.version, t.from_stage, t.to_stage, t.who, t.why) for t in back] == [
        (3, "production", "archived", "oncall", "latency regression"),
        (2, "archived", "production", "oncall", "latency regression"),
    ]
    assert store.resolve("churn", "production").version == 2
    store.rollback("churn", who="oncall")
    assert stages(store) == {1: "production", 2: "archived", 3: "archived"}
    before = snapshot(store)
    with pytest.raises(RegistryConflictError, match=r"'churn' cannot roll back: version 1"):
        store.rollback("churn", who="oncall")
    assert snapshot(store) == before


def test_rollback_follows_promotion_order_not_version_order(store: RegistryStore) -> None:
    registered(store, 3)
    for v in (3, 1, 2):
        store.transition("churn", v, "production", who="ci")
    store.rollback("churn", who="oncall")
    assert store.resolve("churn", "production").version == 1
    store.transition("churn", 1, "staging", who="ci")  # demoted, then promoted again
    store.transition("churn", 1, "production", who="ci")
    store.rollback("churn", who="oncall")
    assert store.resolve("churn", "production").version == 3


def test_rollback_without_earlier_production_is_refused(store: RegistryStore) -> None:
    registered(store, 2)
    with pytest.raises(RegistryConflictError, match="no production version"):
        store.rollback("churn", who="oncall")
    store.transition("churn", 2, "production", who="ci")
    before = snapshot(store)
    with pytest.raises(RegistryConflictError, match="first version it ever had in production"):
        store.rollback("churn", who="oncall")
    assert snapshot(store) == before


# -- aliases and history -------------------------------------------------------------------------
def test_moving_an_alias_is_a_recorded_transition(store: RegistryStore) -> None:
    registered(store, 2)
    store.set_alias("churn", "champion", 1, who="alice", why="best so far")
    moved = store.set_alias("churn", "champion", 2, who="bob", why="retrained")
    assert [(t.version, t.alias_changes) for t in moved] == [(2, (AliasChange("champion", 1, 2),))]
    assert store.get("churn", 1).aliases == () and store.get("churn", 2).aliases == ("champion",)
    assert store.set_alias("churn", "champion", 2, who="bob") == []  # already there
    store.set_alias("churn", "challenger", 2, who="bob")
    assert store.get("churn", 2).aliases == ("champion", "challenger")
    removed = store.remove_alias("churn", "champion", who="bob", why="retired")
    assert removed[0].alias_changes == (AliasChange("champion", 2, None),)
    with pytest.raises(AliasNotFoundError, match=r"its aliases: challenger"):
        store.resolve("churn", "champion")


def test_history_records_who_why_and_when_in_order(store: RegistryStore) -> None:
    registered(store, 2)
    start = time.time()
    store.transition("churn", 1, "staging", who="alice", why="candidate")
    store.set_alias("churn", "champion", 1, who="bob", why="won the bake-off")
    store.transition("churn", 1, "production", who="carol", why="ship it")
    store.transition("churn", 2, "production", who="dave", why="newer")
    history = store.history("churn")
    assert [(t.version, t.from_stage, t.to_stage, t.who, t.why) for t in history] == [
        (1, "none", "staging", "alice", "candidate"),
        (1, "staging", "staging", "bob", "won the bake-off"),
        (1, "staging", "production", "carol", "ship it"),
        (1, "production", "archived", "dave", "newer"),
        (2, "none", "production", "dave", "newer"),
    ]
    times = [t.at for t in history]
    assert times == sorted(times) and start <= times[0] and times[-1] <= time.time()
    assert history[1].alias_changes == (AliasChange("champion", None, 1),)
    assert all(t.name == "churn" for t in history)
    assert store.history("fresh" if store.register("fresh", draft()) else "") == []


# -- bad input changes nothing -------------------------------------------------------------------
BAD: list[tuple[str, Callable[[RegistryStore], object], type[RegistryError], str]] = [
    ("unknown model get", lambda s: s.get("nope", 1), ModelNotFoundError, "churn"),
    ("unknown model resolve", lambda s: s.resolve("nope", "1"), ModelNotFoundError, "nope"),
    ("unknown model versions", lambda s: s.list_versions("nope"), ModelNotFoundError, "nope"),
    ("unknown model history", lambda s: s.history("nope"), ModelNotFoundError, "nope"),
    (
        "unknown model transition",
        lambda s: s.transition("nope", 1, "staging", who="a"),
        ModelNotFoundError,
        "registered models: churn",
    ),
    ("unknown model rollback", lambda s: s.rollback("nope", who="a"), ModelNotFoundError, "nope"),
    (
        "unknown model alias",
        lambda s: s.set_alias("nope", "x", 1, who="a"),
        ModelNotFoundError,
        "nope",
    ),
    ("unknown version get", lambda s: s.get("churn", 7), VersionNotFoundError, "1, 2, 3"),
    (
        "unknown version transition",
        lambda s: s.transition("churn", 7, "production", who="a"),
        VersionNotFoundError,
        "no version 7",
    ),
    (
        "unknown version alias",
        lambda s: s.set_alias("churn", "champion", 7, who="a"),
        VersionNotFoundError,
        "no version 7",
    ),
    ("unknown alias resolve", lambda s: s.resolve("churn", "nope"), AliasNotFoundError, "best"),
    (
        "unknown alias remove",
        lambda s: s.remove_alias("churn", "nope", who="a"),
        AliasNotFoundError,
        "its aliases: best",
    ),
    (
        "alias is a stage",
        lambda s: s.set_alias("churn", "production", 1, who="a"),
        RegistryInputError,
        "stage name",
    ),
    (
        "alias is a stage, other case",
        lambda s: s.set_alias("churn", "Staging", 1, who="a"),
        RegistryInputError,
        "stage name",
    ),
    (
        "alias all digits",
        lambda s: s.set_alias("churn", "42", 1, who="a"),
        RegistryInputError,
        "42",
    ),
    (
        "alias with spaces",
        lambda s: s.set_alias("churn", "my alias", 1, who="a"),
        RegistryInputError,
        "invalid alias",
    ),
    ("empty alias", lambda s: s.set_alias("churn", "", 1, who="a"), RegistryInputError, "alias"),
    (
        "remove stage alias",
        lambda s: s.remove_alias("churn", "production", who="a"),
        RegistryInputError,
        "stage name",
    ),
    (
        "unknown stage",
        lambda s: s.transition("churn", 1, "prod", who="a"),
        RegistryInputError,
        "staging, production",
    ),
    (
        "no who",
        lambda s: s.transition("churn", 3, "production", who=" "),
        RegistryInputError,
        "who",
    ),
    (
        "bad model name",
        lambda s: s.register("bad:name", draft()),
        RegistryInputError,
        "invalid model name",
    ),
    ("empty model name", lambda s: s.register("", draft()), RegistryInputError, "model name"),
]


@pytest.mark.parametrize(("case", "call", "error", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_and_changes_nothing(
    store: RegistryStore,
    case: str,
    call: Callable[[RegistryStore], object],
    error: type[RegistryError],
    says: str,
) -> None:
    registered(store, 3)
    store.transition("churn", 2, "production", who="ci")
    store.set_alias("churn", "best", 2, who="ci")
    before = snapshot(store)
    with pytest.raises(error, match=says):
        call(store)
    assert snapshot(store) == before


# -- persistence (the shared stores) -------------------------------------------------------------
def test_another_store_on_the_same_data_sees_everything(harness: Harness) -> None:
    registered(harness.store, 2)
    harness.store.transition("churn", 2, "production", who="ci", why="go")
    harness.store.set_alias("churn", "champion", 1, who="ci")
    other = harness.another()
    assert other.resolve("churn", "production").version == 2
    assert other.resolve("churn", "champion").version == 1
    assert other.history("churn") == harness.store.history("churn")
    assert other.list_versions("churn") == harness.store.list_versions("churn")


def test_a_draft_that_is_not_json_is_refused_and_nothing_is_written(store) -> None:
    from workbench.registry.errors import RegistryInputError

    bad_metrics = ModelDraft(artifact_path="a", checksum="c", flavor="sklearn", metrics={"f1": "x"})
    bad_params = ModelDraft(
        artifact_path="a", checksum="c", flavor="sklearn", params={"x": object()}
    )
    for draft in (bad_metrics, bad_params):
        with pytest.raises(RegistryInputError, match="plain JSON"):
            store.register("fraud", draft)
    assert "fraud" not in store.list_names()


# -- validation reports ----------------------------------------------------------------------------
def report(version: int, passed: bool = True, **fields: Any) -> ValidationReport:
    base: dict[str, Any] = {
        "name": "churn",
        "version": version,
        "passed": passed,
        "gates": [{"metric": "auc", "expression": ">= 0.8", "passed": passed, "reason": "r"}],
        "metrics": {"auc": 0.91},
        "against": "production",
        "champion_version": None,
        "champion_metrics": None,
        "dataset": "test split",
        "who": "ci",
        "at": 100.0 + version,
    }
    return ValidationReport(**{**base, **fields})


def test_validation_reports_are_kept_per_version_in_order(harness: Harness) -> None:
    store = harness.store
    registered(store, 2)
    first, second = report(2, passed=False), report(2, champion_version=1, at=200.0)
    store.add_validation(first)
    store.add_validation(report(1))
    store.add_validation(second)
    assert store.validations("churn", 2) == [first, second]
    assert store.validations("churn", 1) == [report(1)]
    assert harness.another().validations("churn", 2) == [first, second]


def test_a_report_on_an_unknown_version_or_not_json_is_refused(store: RegistryStore) -> None:
    registered(store, 1)
    with pytest.raises(VersionNotFoundError):
        store.add_validation(report(7))
    with pytest.raises(ModelNotFoundError):
        store.add_validation(report(1, name="nope"))
    with pytest.raises(RegistryInputError, match="plain JSON"):
        store.add_validation(report(1, metrics={"auc": float("nan")}))
    with pytest.raises(VersionNotFoundError):
        store.validations("churn", 7)
    assert store.validations("churn", 1) == []
