"""The registry in one SQLite file: a single machine, several processes.

Every write runs in one `BEGIN IMMEDIATE` transaction, which takes the file's write lock
before reading: two processes allocating a version or moving a stage on the same file queue
up (for up to `timeout` seconds) instead of both reading the same state. WAL lets readers
go on while one writes.

Tables: `models` (name, last allocated version, production stack as JSON), `versions`
(name, version, the version's JSON), `transitions` and `validations` (append-only, `seq` gives
the order).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.registry.base import Transition
from workbench.registry.codec import load_transition, load_version, transition_json, version_json
from workbench.registry.engine import Clock, Rule, RuleStore
from workbench.registry.errors import ModelNotFoundError
from workbench.registry.rules import ModelState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
  name TEXT PRIMARY KEY,
  last_version INTEGER NOT NULL,
  production TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS versions (
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  data TEXT NOT NULL,
  PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS transitions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_name ON transitions (name, seq);
CREATE TABLE IF NOT EXISTS validations (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  version INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS validations_by_version ON validations (name, version, seq);
"""


class SqliteRegistryStore(RuleStore):
    def __init__(self, path: str | Path, *, timeout: float = 30.0, clock: Clock = time.time):
        super().__init__(clock)
        # isolation_level=None: this module issues BEGIN itself, so it can say IMMEDIATE
        self._db = sqlite3.connect(
            str(path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()  # one connection, shared by this process's threads
        with self._lock:  # outside a transaction: SQLite refuses to switch inside one
            self._db.execute("PRAGMA journal_mode=WAL")
        with self._write() as db:  # executescript would COMMIT on its own: one at a time
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _names(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM models ORDER BY name")]

    def _register(self, name: str, version_json: str) -> int:
        with self._write() as db:
            row = db.execute("SELECT last_version FROM models WHERE name = ?", (name,)).fetchone()
            version = 1 if row is None else row[0] + 1
            db.execute(
                "INSERT INTO models (name, last_version) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version",
                (name, version),
            )
            db.execute(
                "INSERT INTO versions (name, version, data) VALUES (?, ?, ?)",
                (name, version, version_json),
            )
            return version

    def _read(self, name: str) -> ModelState:
        row = self._db.execute("SELECT production FROM models WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ModelNotFoundError(name, self._names())
        rows = self._db.execute("SELECT version, data FROM versions WHERE name = ?", (name,))
        versions = {v: load_version(name, v, data) for v, data in rows}
        return ModelState(name, versions, json.loads(row[0]))

    def _load(self, name: str) -> ModelState:
        # one deferred transaction: the version rows and the stack are read at one snapshot
        with self._lock:
            self._db.execute("BEGIN")
            try:
                return self._read(name)
            finally:
                self._db.execute("COMMIT")

    def _mutate(self, name: str, rule: Rule) -> list[Transition]:
        with self._write() as db:
            change = rule(self._read(name))
            db.executemany(
                "UPDATE versions SET data = ? WHERE name = ? AND version = ?",
                [(version_json(mv), name, v) for v, mv in change.versions.items()],
            )
            db.execute(
                "UPDATE models SET production = ? WHERE name = ?",
                (json.dumps(change.production), name),
            )
            db.executemany(
                "INSERT INTO transitions (name, data) VALUES (?, ?)",
                [(name, transition_json(t)) for t in change.transitions],
            )
            return list(change.transitions)

    def _add_validation(self, name: str, version: int, report_json: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO validations (name, version, data) VALUES (?, ?, ?)",
                (name, version, report_json),
            )

    def _validations(self, name: str, version: int) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM validations WHERE name = ? AND version = ? ORDER BY seq",
                (name, version),
            )
            return [data for (data,) in rows]

    def list_names(self) -> list[str]:
        with self._lock:
            return self._names()

    def history(self, name: str) -> list[Transition]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if self._db.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone():
                    rows = self._db.execute(
                        "SELECT data FROM transitions WHERE name = ? ORDER BY seq", (name,)
                    )
                    return [load_transition(data) for (data,) in rows]
                raise ModelNotFoundError(name, self._names())
            finally:
                self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
