"""The scoring server over real HTTP on a free port, with a real SQLite registry and artifacts:
predictions match the model's own, bad rows get a 422 naming row and field, the server follows
its ref as it moves, and keeps the old version when the new one fails its integrity check."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.support.interrupt import ctrl_c_works
from workbench.errors import DataError
from workbench.registry.artifact_errors import ArtifactIntegrityError
from workbench.registry.artifacts import ArtifactStore
from workbench.registry.deployment import DeploymentError
from workbench.registry.errors import AliasNotFoundError, ModelNotFoundError
from workbench.registry.manager import ModelLifecycleManager
from workbench.registry.sqlite_store import SqliteRegistryStore
from workbench.serving.server import ScoringServer, ServingError
from workbench.tasks.data import FittedModel
from workbench.tasks.params import ProblemKind

pytestmark = [pytest.mark.integration, pytest.mark.anyio, pytest.mark.timeout(60)]

SIGNATURE = {"count": "int64", "amount": "float64", "city": "object"}
LABELS = ["legit", "fraud"]


def training_frame(n: int = 80) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "count": rng.integers(0, 20, n).astype("int64"),
            "amount": rng.normal(50.0, 20.0, n),
            "city": pd.Series(rng.choice(["Oslo", "Rome", "Lima"], n), dtype=object),
        }
    )
    codes = ((frame["amount"] > 50) ^ (frame["city"] == "Lima")).astype(int).to_numpy()
    return frame, codes


def classifier(*, flipped: bool = False, labels: list[Any] | None = None) -> FittedModel:
    """A real transformer + estimator; `flipped` learns the opposite labels."""
    frame, codes = training_frame()
    if labels is not None and len(labels) > 2:
        codes = frame["count"].to_numpy() % len(labels)
    transformer = ColumnTransformer(
        [
            ("num", StandardScaler(), ["count", "amount"]),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["city"]),
        ],
        sparse_threshold=0.0,
    )
    X = transformer.fit_transform(frame)
    estimator = LogisticRegression().fit(X, 1 - codes if flipped else codes)
    return FittedModel(
        transformer=transformer,
        estimator=estimator,
        input_signature=dict(SIGNATURE),
        problem=ProblemKind.CLASSIFICATION,
        target="label",
        class_labels=list(labels or LABELS),
    )


def regressor() -> FittedModel:
    frame, _ = training_frame()
    transformer = ColumnTransformer(
        [
            ("num", StandardScaler(), ["count", "amount"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
        ],
        sparse_threshold=0.0,
    )
    estimator = LinearRegression().fit(transformer.fit_transform(frame), frame["amount"] * 2)
    return FittedModel(transformer, estimator, dict(SIGNATURE), ProblemKind.REGRESSION, "y")


ROWS = [
    {"id": "a", "count": 3, "amount": 75.5, "city": "Oslo"},
    {"id": "b", "count": 12, "amount": 20, "city": "Lima"},
    {"id": "c", "count": 0, "amount": 49.9, "city": "Paris"},  # unseen city: ignored by one-hot
]


@pytest.fixture
def manager(tmp_path: Path):
    lifecycle = ModelLifecycleManager(
        SqliteRegistryStore(tmp_path / "r.sqlite"), ArtifactStore(tmp_path / "artifacts"), who="t"
    )
    yield lifecycle
    lifecycle.close()


class Client:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = AsyncHTTPClient(force_instance=True)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
        response: HTTPResponse = await self.http.fetch(
            self.base + path,
            method=method,
            body=raw,
            raise_error=False,
            allow_nonstandard_methods=True,
        )
        assert response.headers["Content-Type"].startswith("application/json")
        return response.code, json.loads(response.body)

    async def get(self, path: str) -> Any:
        code, body = await self.call("GET", path)
        assert code == 200, body
        return body

    async def predict(self, body: Any) -> tuple[int, Any]:
        return await self.call("POST", "/predict", body)


@asynccontextmanager
async def serving(
    manager: ModelLifecycleManager, name: str, ref: str, **kwargs: Any
) -> AsyncIterator[tuple[ScoringServer, Client]]:
    server = ScoringServer(manager, name, ref, **kwargs)
    await server.start()
    client = Client(server.url)
    try:
        yield server, client
    finally:
        client.http.close()
        await server.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition did not become true in time"
        await asyncio.sleep(0.02)


def frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)[list(SIGNATURE)]
    return frame.astype({"amount": "float64", "city": object})


async def test_predictions_and_probabilities_match_the_model(manager) -> None:
    model = classifier()
    manager.register("fraud", model)
    manager.set_alias("fraud", "champion", 1)
    async with serving(manager, "fraud", "champion") as (server, client):
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        code, body = await client.predict({"rows": ROWS})
    assert code == 200, body
    expected = frame_of(ROWS)
    assert body["predictions"] == model.predict(expected).tolist()
    assert set(body["predictions"]) <= set(LABELS)
    assert body["probabilities"] == pytest.approx(model.predict_proba(expected)[:, 1].tolist())
    assert body["positive_class"] == "fraud"
    assert (body["model"], body["version"], body["ref"]) == ("fraud", 1, "champion")


async def test_multiclass_and_regression_answers(manager) -> None:
    labels = [10, 20, 30]
    multi, reg = classifier(labels=labels), regressor()
    manager.register("multi", multi)
    manager.register("reg", reg)
    async with serving(manager, "multi", "1") as (_, client):
        code, body = await client.predict({"rows": ROWS})
    assert code == 200 and body["classes"] == labels
    assert body["predictions"] == multi.predict(frame_of(ROWS)).tolist()
    assert np.allclose(body["probabilities"], multi.predict_proba(frame_of(ROWS)))
    async with serving(manager, "reg", "1") as (_, client):
        code, body = await client.predict({"rows": ROWS})
    assert code == 200 and "probabilities" not in body
    assert body["predictions"] == pytest.approx(reg.predict(frame_of(ROWS)).tolist())


async def test_bad_requests_are_refused_clearly_and_the_server_keeps_working(manager) -> None:
    manager.register("fraud", classifier())
    good = ROWS[0]
    async with serving(manager, "fraud", "1") as (_, client):
        cases = [
            ({k: v for k, v in good.items() if k != "amount"}, "amount", "Field required"),
            ({**good, "amount": "75.5"}, "amount", "Input should be a valid number"),
            ({**good, "count": 3.0}, "count", "Input should be a valid integer"),
            ({**good, "city": 7}, "city", "Input should be a valid string"),
            ({**good, "amount": None}, "amount", "Value is null; every feature needs a value"),
        ]
        for row, field, error in cases:
            code, body = await client.predict({"rows": [good, row]})
            assert code == 422, body
            assert body["problems"] == [
                {"row": 1, "field": field, "error": error, "expected": SIGNATURE[field]}
            ]
            assert "row 1" in body["error"]

        code, body = await client.predict(b'{"rows": [')
        assert code == 400 and "not valid JSON" in body["error"]
        for payload, message in [
            ({"rows": []}, '"rows" is empty'),
            ({"data": [good]}, 'has no "rows"'),
            ([good], "must be a JSON object"),
            ({"rows": [good, 5]}, "a row must be a JSON object"),
        ]:
            code, body = await client.predict(payload)
            assert code == 422 and message in body["error"], body

        code, body = await client.call("GET", "/predict")
        assert code == 405 and "GET" in body["error"]
        code, body = await client.call("POST", "/health", b"{}")
        assert code == 405
        code, body = await client.call("GET", "/nope")
        assert code == 404 and "/nope" in body["error"]

        code, body = await client.predict({"rows": [good]})
        assert code == 200 and len(body["predictions"]) == 1


async def test_the_row_cap(manager) -> None:
    manager.register("fraud", classifier())
    async with serving(manager, "fraud", "1", max_rows=2) as (_, client):
        code, body = await client.predict({"rows": ROWS})
        assert code == 422 and "too many rows: 3 in one request, at most 2" in body["error"]


async def test_health_and_metadata(manager) -> None:
    version = manager.register(
        "fraud",
        classifier(),
        metrics={"f1_score": 0.9},
        params={"C": 1.0},
        lineage={"workflow_id": "wf", "execution_id": "wf-1"},
    )
    manager.promote("fraud", 1)
    async with serving(manager, "fraud", "production") as (_, client):
        health = await client.get("/health")
        meta = await client.get("/metadata")
    assert health["status"] == "ok" and health["last_reload_error"] is None
    assert (health["model"], health["ref"], health["version"]) == ("fraud", "production", 1)
    assert health["loaded_at"].endswith("+00:00")
    assert meta["name"] == "fraud" and meta["version"] == 1 and meta["stage"] == "production"
    assert meta["signature"] == SIGNATURE and meta["flavor"] == "sklearn"
    assert meta["metrics"] == {"f1_score": 0.9} and meta["params"] == {"C": 1.0}
    assert meta["lineage"] == {"workflow_id": "wf", "execution_id": "wf-1"}
    assert meta["checksum"] == version.checksum and meta["created_by"] == "t"
    assert meta["ref"] == "production" and meta["served_since"] and meta["created_at"]
    assert meta["aliases"] == [] and "artifact_path" not in meta


async def test_follows_the_ref_and_keeps_the_old_version_when_the_new_one_is_corrupt(
    manager,
) -> None:
    v1, v2, v3 = classifier(), classifier(flipped=True), classifier()
    manager.register("fraud", v1)
    manager.promote("fraud", 1)
    expected = frame_of(ROWS)
    assert v1.predict(expected).tolist() != v2.predict(expected).tolist()

    async with serving(manager, "fraud", "production", poll_interval_s=0.05) as (server, client):

        async def serving_version(n: int) -> bool:
            return (await client.get("/metadata"))["version"] == n

        manager.register("fraud", v2)
        manager.promote("fraud", 2)
        await eventually(lambda: serving_version(2))
        code, body = await client.predict({"rows": ROWS})
        assert code == 200 and body["version"] == 2
        assert body["predictions"] == v2.predict(expected).tolist()

        third = manager.register("fraud", v3)
        (manager.artifacts.root / third.artifact_path).write_bytes(b"garbage")
        manager.promote("fraud", 3)

        async def integrity_error_shown() -> bool:
            error = (await client.get("/health"))["last_reload_error"]
            return error is not None and "ArtifactIntegrityError" in error

        await eventually(integrity_error_shown)
        assert (await client.get("/metadata"))["version"] == 2
        assert (await client.get("/health"))["version"] == 2
        code, body = await client.predict({"rows": ROWS})
        assert code == 200 and body["predictions"] == v2.predict(expected).tolist()
        assert server.served.version.version == 2

        manager.promote("fraud", 2)  # production back on the served version: all is well

        async def error_cleared() -> bool:
            return (await client.get("/health"))["last_reload_error"] is None

        await eventually(error_cleared)
        assert (await client.get("/metadata"))["stage"] == "production"


async def test_a_removed_alias_keeps_the_served_version(manager) -> None:
    manager.register("fraud", classifier())
    manager.set_alias("fraud", "champion", 1)
    async with serving(manager, "fraud", "champion", poll_interval_s=0.05) as (_, client):
        manager.remove_alias("fraud", "champion")

        async def alias_error() -> bool:
            error = (await client.get("/health"))["last_reload_error"]
            return error is not None and "AliasNotFoundError" in error

        await eventually(alias_error)
        code, _ = await client.predict({"rows": ROWS})
        assert code == 200

        manager.register("fraud", classifier(flipped=True))
        manager.set_alias("fraud", "champion", 2)

        async def on_v2() -> bool:
            health = await client.get("/health")
            return health["version"] == 2 and health["last_reload_error"] is None

        await eventually(on_v2)


async def test_a_slow_prediction_does_not_block_health(manager) -> None:
    manager.register("slow", SlowModel(classifier()))
    async with serving(manager, "slow", "1") as (_, client):
        scoring = asyncio.ensure_future(client.predict({"rows": ROWS}))
        await asyncio.sleep(0.1)  # the prediction is under way
        started = time.monotonic()
        await client.get("/health")
        assert time.monotonic() - started < 0.5
        assert not scoring.done()
        code, _ = await scoring
        assert code == 200


async def test_a_ref_that_does_not_resolve_or_verify_raises_at_start(manager) -> None:
    with pytest.raises(ModelNotFoundError):
        await ScoringServer(manager, "nope", "production").start()
    version = manager.register("fraud", classifier())
    server = ScoringServer(manager, "fraud", "champion")
    with pytest.raises(AliasNotFoundError):
        await server.start()
    assert server.port == 0  # nothing was bound
    (manager.artifacts.root / version.artifact_path).write_bytes(b"garbage")
    with pytest.raises(ArtifactIntegrityError):
        await ScoringServer(manager, "fraud", "1").start()


async def test_a_model_that_fails_answers_json_and_the_server_goes_on(manager) -> None:
    manager.register("broken", BrokenModel())
    async with serving(manager, "broken", "1") as (_, client):
        code, body = await client.predict({"rows": ROWS})
        assert code == 500 and "RuntimeError: boom" in body["error"]
        code, body = await client.predict({"rows": [{**ROWS[0], "city": "refused"}]})
        assert code == 422 and "no such city" in body["error"]
        assert (await client.get("/health"))["status"] == "ok"


def test_serve_forever_stops_cleanly_on_ctrl_c(manager, tmp_path: Path) -> None:
    manager.register("fraud", classifier())
    script = textwrap.dedent(
        f"""
        from workbench.registry.artifacts import ArtifactStore
        from workbench.registry.manager import ModelLifecycleManager
        from workbench.registry.sqlite_store import SqliteRegistryStore
        from workbench.serving.server import ScoringServer

        manager = ModelLifecycleManager(
            SqliteRegistryStore({str(tmp_path / "r.sqlite")!r}),
            ArtifactStore({str(tmp_path / "artifacts")!r}),
        )
        ScoringServer(manager, "fraud", "1").serve_forever(lambda s: print(s.url, flush=True))
        print("bye", flush=True)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_works,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr and process.stderr.read()
        with urllib.request.urlopen(url + "/health", timeout=10) as response:
            assert json.load(response)["version"] == 1
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out.strip() == "bye" and "Traceback" not in err


class SlowModel:
    """A model that takes its time: /health must answer meanwhile."""

    def __init__(self, model: FittedModel) -> None:
        self.model = model
        self.input_signature = model.input_signature

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        time.sleep(1.0)
        return self.model.predict(frame)


class BrokenModel:
    """Fails on every row; refuses the city "refused" the way FittedModel refuses bad data."""

    input_signature = dict(SIGNATURE)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if (frame["city"] == "refused").any():
            raise DataError("no such city")
        raise RuntimeError("boom")


async def test_a_port_in_use_is_a_clear_error(manager) -> None:
    manager.register("fraud", classifier())
    async with serving(manager, "fraud", "1") as (server, _):
        with pytest.raises(ServingError, match=f"cannot listen on 127.0.0.1:{server.port}"):
            await ScoringServer(manager, "fraud", "1", port=server.port).start()


async def test_the_http_target_waits_until_the_server_serves_the_version(manager) -> None:
    manager.register("fraud", classifier())
    manager.promote("fraud", 1)
    async with serving(manager, "fraud", "production", poll_interval_s=0.1) as (server, _):
        manager.register("fraud", classifier(flipped=True))
        manager.promote("fraud", 2)
        options = {"url": server.url, "wait_s": 10}
        deployed = await asyncio.to_thread(manager.deploy, "fraud", 2, "http", options)
        assert (deployed.ref, deployed.address) == ("fraud@production", server.url)
        assert server.served.version.version == 2 and deployed.details["waited_s"] < 10
        # A server that serves another model never picks the version up: a clear error.
        manager.register("other", classifier())
        options = {"url": server.url, "wait_s": 0.5, "alias": "live"}
        with pytest.raises(DeploymentError, match=r"still serves fraud v2 after 0\.5s"):
            await asyncio.to_thread(manager.deploy, "other", 1, "http", options)
