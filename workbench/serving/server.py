"""An HTTP server that scores rows with one registered model, `name@ref`, and follows the ref.

Routes (all JSON):
  POST /predict   {"rows": [{feature: value, ...}, ...]} -> predictions (422: rows refused,
                  400: malformed JSON)
  GET  /health    status, the served version, when it was loaded, the last reload error
  GET  /metadata  the served ModelVersion, plus `ref` and `served_since`

A background loop re-resolves the ref every `poll_interval_s`; when it names another version
(or another artifact), that version is loaded verified and swapped in at once. A version that
fails to load is not served: the old one stays, and /health says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import tornado.httpserver
import tornado.netutil
import tornado.web

from workbench.errors import DataError, WorkbenchError
from workbench.registry.base import ModelVersion
from workbench.registry.manager import ModelLifecycleManager
from workbench.serving.signature import DEFAULT_MAX_ROWS, RowValidationError, SignatureValidator
from workbench.tasks.data import json_safe
from workbench.tasks.params import ProblemKind

log = logging.getLogger("workbench.serving")
access_log = logging.getLogger("workbench.serving.access")

MAX_BODY_BYTES = 64 * 1024 * 1024


class ServingError(WorkbenchError):
    """The model cannot be served as asked (no input signature, no predict method)."""

    exit_code = 2


@dataclass(frozen=True)
class Served:
    """What answers requests: swapped as one object, so a request sees one version
    throughout even when a reload lands while it runs."""

    version: ModelVersion
    model: Any
    validator: SignatureValidator
    loaded_at: float

    @property
    def key(self) -> tuple[int, str]:
        return (self.version.version, self.version.checksum)


class ScoringServer:
    """Serves `name@ref` from `manager`'s registry over HTTP on `host:port` (0: a free port)."""

    def __init__(
        self,
        manager: ModelLifecycleManager,
        name: str,
        ref: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        poll_interval_s: float = 1.0,
        max_rows: int = DEFAULT_MAX_ROWS,
        retry_failed_s: float = 30.0,
        access_log: bool = False,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s}")
        self.manager = manager
        self.name = name
        self.ref = str(ref)
        self.host = host
        self.port = port
        self.poll_interval_s = poll_interval_s
        self.max_rows = max_rows
        # A version that failed to load is tried again this often, not at every poll:
        # re-reading and hashing a large artifact every second would be wasteful.
        self.retry_failed_s = retry_failed_s
        self.access_log = access_log
        self.served_since: float | None = None
        self.last_reload_error: str | None = None
        self._served: Served | None = None
        self._failed: tuple[tuple[int, str], float] | None = None  # (key, when it failed)
        self._http: tornado.httpserver.HTTPServer | None = None
        self._poller: asyncio.Task[None] | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def served(self) -> Served:
        if self._served is None:
            raise RuntimeError("the server is not started; await start() first")
        return self._served

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the model verified, then bind. A ref that does not resolve or an artifact that
        fails its check raises the registry's error, and nothing is bound."""
        if self._http is not None:
            raise RuntimeError("the server is already started")
        self._served = await asyncio.to_thread(self._load, self.ref)
        self.served_since = time.time()
        app = tornado.web.Application(
            [
                (r"/predict", PredictHandler, {"server": self}),
                (r"/health", HealthHandler, {"server": self}),
                (r"/metadata", MetadataHandler, {"server": self}),
            ],
            default_handler_class=NotFoundHandler,
            default_handler_args={"server": self},
            log_function=self._log_request,
        )
        try:
            sockets = tornado.netutil.bind_sockets(self.port, self.host)
        except OSError as exc:
            raise ServingError(
                f"cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); pick another "
                "port with --port, or stop what is using it"
            ) from None
        self.port = sockets[0].getsockname()[1]
        self._http = tornado.httpserver.HTTPServer(app, max_body_size=MAX_BODY_BYTES)
        self._http.add_sockets(sockets)
        self._poller = asyncio.create_task(self._poll_forever(), name="workbench-serving-poll")
        version = self._served.version
        log.info("serving %s v%d (%s) at %s", self.name, version.version, self.ref, self.url)

    async def stop(self) -> None:
        """Stop polling and close the listening sockets and open connections. Idempotent."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        http, self._http = self._http, None
        if http is not None:
            http.stop()
            await http.close_all_connections()
            log.info("stopped serving %s at %s", self.name, self.url)

    def serve_forever(self, on_ready: Callable[[ScoringServer], None] | None = None) -> None:
        """Start, call `on_ready(self)` (to print the URL, say), and serve until Ctrl-C or
        SIGTERM; then stop cleanly and return. Start errors propagate."""
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._serve_until_stopped(on_ready))

    async def _serve_until_stopped(self, on_ready: Callable[[ScoringServer], None] | None) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # Not on Windows or outside the main thread; Ctrl-C still works there.
            loop.add_signal_handler(signal.SIGTERM, stopping.set)
        await self.start()
        try:
            if on_ready is not None:
                on_ready(self)
            await stopping.wait()
        finally:  # Ctrl-C cancels this task: close the sockets before the loop goes
            await self.stop()

    # -- loading and reloading -----------------------------------------------------------------
    def _load(self, ref: str) -> Served:
        """Blocking: the version `ref` names, loaded verified, with its validator."""
        version, model = self.manager.load(self.name, ref)
        signature = version.signature or dict(getattr(model, "input_signature", None) or {})
        if not signature:
            raise ServingError(
                f"model {self.name!r} v{version.version} has no input signature, so requests "
                "cannot be checked; register it with signature={column: dtype, ...}"
            )
        if not callable(getattr(model, "predict", None)):
            raise ServingError(
                f"model {self.name!r} v{version.version} is a {type(model).__name__}, which has "
                "no predict(); register a FittedModel or another object with predict(frame)"
            )
        validator = SignatureValidator(signature, max_rows=self.max_rows)
        return Served(version=version, model=model, validator=validator, loaded_at=time.time())

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.check_for_update()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive any one failure
                self._reload_failed(exc, None)

    async def check_for_update(self) -> bool:
        """Resolve the ref once; load and swap in the version it names when that is not the
        one served. True when a new version was swapped in."""
        current = self.served
        resolved = await asyncio.to_thread(self.manager.store.resolve, self.name, self.ref)
        key = (resolved.version, resolved.checksum)
        if key == current.key:
            # Same model; its stage or aliases may have moved: keep /metadata current.
            self._served = Served(resolved, current.model, current.validator, current.loaded_at)
            self._clear_error()
            return False
        failed = self._failed
        if failed and failed[0] == key and time.monotonic() - failed[1] < self.retry_failed_s:
            return False
        try:
            fresh = await asyncio.to_thread(self._load, str(resolved.version))
        except Exception as exc:
            self._reload_failed(exc, key)
            return False
        self._served = fresh
        self._clear_error()
        log.info("now serving %s v%d (was v%d)", self.name, fresh.version.version, current.key[0])
        return True

    def _reload_failed(self, exc: BaseException, key: tuple[int, str] | None) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if key is not None:
            self._failed = (key, time.monotonic())
        if message != self.last_reload_error:  # log once, not at every poll
            log.warning(
                "still serving %s v%d: %s@%s could not be reloaded: %s",
                self.name,
                self.served.version.version,
                self.name,
                self.ref,
                message,
            )
        self.last_reload_error = message

    def _clear_error(self) -> None:
        self._failed = None
        if self.last_reload_error is not None:
            log.info("%s@%s resolves and loads again", self.name, self.ref)
        self.last_reload_error = None

    # -- scoring -------------------------------------------------------------------------------
    def score(self, served: Served, rows: Any) -> dict[str, Any]:
        """Blocking: validate and score parsed JSON rows with `served`. RowValidationError."""
        frame = served.validator.validate_rows(rows)
        model = served.model
        result: dict[str, Any] = {
            "model": self.name,
            "version": served.version.version,
            "ref": self.ref,
            "predictions": _json(np.asarray(model.predict(frame)).tolist()),
        }
        labels = list(getattr(model, "class_labels", None) or [])
        if getattr(model, "problem", None) == ProblemKind.CLASSIFICATION and len(labels) >= 2:
            proba = np.asarray(model.predict_proba(frame), dtype=np.float64)
            if len(labels) == 2:  # binary: the probability of the positive class
                result["probabilities"] = _json(proba[:, 1].tolist())
                result["positive_class"] = _json(labels[1])
            else:  # multiclass: one list per row, in `classes` order
                result["probabilities"] = _json(proba.tolist())
                result["classes"] = _json(labels)
        return result

    def health(self) -> dict[str, Any]:
        served = self.served
        return {
            "status": "ok",
            "model": self.name,
            "ref": self.ref,
            "version": served.version.version,
            "loaded_at": _iso(served.loaded_at),
            "last_reload_error": self.last_reload_error,
        }

    def metadata(self) -> dict[str, Any]:
        version = asdict(self.served.version)
        version.pop("artifact_path", None)  # a server-side path: none of a client's business
        version["stage"] = str(self.served.version.stage)
        version["aliases"] = list(self.served.version.aliases)
        version["created_at"] = _iso(self.served.version.created_at)
        return {
            **_json(version),
            "ref": self.ref,
            "served_since": _iso(self.served_since),
        }

    def _log_request(self, handler: tornado.web.RequestHandler) -> None:
        status = handler.get_status()
        request = handler.request
        if status >= 500:
            level = logging.WARNING
        else:
            level = logging.INFO if self.access_log else logging.DEBUG
        if access_log.isEnabledFor(level):
            access_log.log(
                level,
                "%d %s %s (%s) %.1fms",
                status,
                request.method,
                request.uri,
                request.remote_ip,
                1000.0 * request.request_time(),
            )


# -- handlers --------------------------------------------------------------------------------
class JsonHandler(tornado.web.RequestHandler):
    def initialize(self, server: ScoringServer) -> None:
        self.scoring = server

    def send(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, allow_nan=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Tornado's own errors (404, 405, 500 ...) as JSON too."""
        body: dict[str, Any] = {"error": self._reason}
        if status_code == 405:
            body["error"] = f"method {self.request.method} is not allowed on {self.request.path}"
        self.send(body, status_code)


class PredictHandler(JsonHandler):
    async def post(self) -> None:
        try:
            payload = json.loads(self.request.body or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            self.send({"error": f"the request body is not valid JSON: {exc}"}, 400)
            return
        served = self.scoring.served  # one version for the whole request
        try:
            # In a thread: validating and scoring a big batch must not stall /health.
            result = await asyncio.to_thread(self.scoring.score, served, payload)
        except RowValidationError as exc:
            self.send({"error": str(exc), "problems": exc.problems}, 422)
            return
        except DataError as exc:  # the model itself refused the rows (valid by signature)
            self.send({"error": str(exc), "problems": []}, 422)
            return
        except Exception as exc:
            log.exception("%s v%d failed to score a request", served.version.name, served.key[0])
            self.send(
                {"error": f"the model failed to score the rows: {type(exc).__name__}: {exc}"}, 500
            )
            return
        self.send(result)


class HealthHandler(JsonHandler):
    def get(self) -> None:
        self.send(self.scoring.health())


class MetadataHandler(JsonHandler):
    def get(self) -> None:
        self.send(self.scoring.metadata())


class NotFoundHandler(JsonHandler):
    def prepare(self) -> None:
        self.send(
            {
                "error": f"no route {self.request.path}; try POST /predict, GET /health, "
                "GET /metadata"
            },
            404,
        )


# -- helpers ---------------------------------------------------------------------------------
def _json(value: Any) -> Any:
    """Plain JSON for a response: numpy scalars as Python ones, NaN and infinities as null."""
    return json_safe(value, finite=True)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()
