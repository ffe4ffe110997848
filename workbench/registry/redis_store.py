"""The registry on Redis: every machine of a cluster sees the same models.

Keys (`ns` is the namespace, as in `workbench.coordination.keys`; model names never hold ':'):
  `{ns}:registry:names`                   set: every model name
  `{ns}:registry:model:{name}:last`       integer: the last version allocated (INCR)
  `{ns}:registry:model:{name}:versions`   hash: version number -> the version's JSON (`codec`)
  `{ns}:registry:model:{name}:production` list: versions in the order they became production
                                          (rollback's stack; the last is the current one)
  `{ns}:registry:model:{name}:history`    list: transition JSON, oldest first
  `{ns}:registry:model:{name}:validations:{version}`
                                          list: validation report JSON, oldest first

`register` is one Lua script (INCR the counter, HSET the version, SADD the name), so a version
number is never allocated without its version, and concurrent registrations get distinct
consecutive numbers. Transitions, aliases and rollback run the shared `rules` between WATCH
(on the versions hash and the stack) and MULTI/EXEC, retrying when another client wrote in
between: the check and the write are atomic without re-implementing the rules in Lua.
Redis errors propagate unchanged; retrying them is the caller's business.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis as redis_lib

from workbench.coordination.keys import DEFAULT_NAMESPACE, check_namespace
from workbench.registry.base import Transition
from workbench.registry.codec import load_transition, load_version, transition_json, version_json
from workbench.registry.engine import Clock, Rule, RuleStore
from workbench.registry.errors import ModelNotFoundError
from workbench.registry.rules import ModelState

if TYPE_CHECKING:
    import redis

# KEYS: last, versions, names. ARGV: name, version JSON
_REGISTER = """
local version = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], version, ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return version
"""


@dataclass(frozen=True)
class RegistryKeys:
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        check_namespace(self.namespace)

    @property
    def names(self) -> str:
        return f"{self.namespace}:registry:names"

    def _model(self, name: str) -> str:
        return f"{self.namespace}:registry:model:{name}"

    def last(self, name: str) -> str:
        return self._model(name) + ":last"

    def versions(self, name: str) -> str:
        return self._model(name) + ":versions"

    def production(self, name: str) -> str:
        return self._model(name) + ":production"

    def history(self, name: str) -> str:
        return self._model(name) + ":history"

    def validations(self, name: str, version: int) -> str:
        return self._model(name) + f":validations:{version}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisRegistryStore(RuleStore):
    """On a ready redis-py client (bytes or decoded responses); `close` leaves it open unless
    the store was given it to own (`owns_client`)."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str = DEFAULT_NAMESPACE,
        clock: Clock = time.time,
        *,
        owns_client: bool = False,
    ) -> None:
        super().__init__(clock)
        self.keys = RegistryKeys(namespace)
        self._client = client
        self._owns_client = owns_client
        self._register_script = client.register_script(_REGISTER)

    def _register(self, name: str, version_json: str) -> int:
        k = self.keys
        keys = [k.last(name), k.versions(name), k.names]
        return int(self._register_script(keys=keys, args=[name, version_json]))

    def _state(self, name: str, versions: dict[Any, Any], stack: list[Any]) -> ModelState:
        if not versions:
            raise ModelNotFoundError(name, self.list_names())
        loaded = {int(v): load_version(name, int(v), text) for v, text in versions.items()}
        return ModelState(name, loaded, [int(v) for v in stack])

    def _load(self, name: str) -> ModelState:
        pipe = self._client.pipeline(transaction=True)  # one snapshot of both keys
        pipe.hgetall(self.keys.versions(name))
        pipe.lrange(self.keys.production(name), 0, -1)
        versions, stack = pipe.execute()
        return self._state(name, versions, stack)

    def _mutate(self, name: str, rule: Rule) -> list[Transition]:
        k = self.keys
        with self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(k.versions(name), k.production(name))
                    # watched: these run at once, and EXEC fails if either key changes after
                    versions = pipe.hgetall(k.versions(name))
                    stack = pipe.lrange(k.production(name), 0, -1)
                    change = rule(self._state(name, versions, stack))
                    if not change.transitions:
                        pipe.unwatch()
                        return []
                    pipe.multi()
                    pipe.hset(
                        k.versions(name),
                        mapping={str(v): version_json(mv) for v, mv in change.versions.items()},
                    )
                    pipe.delete(k.production(name))
                    if change.production:
                        pipe.rpush(k.production(name), *change.production)
                    pipe.rpush(k.history(name), *(transition_json(t) for t in change.transitions))
                    pipe.execute()
                    return list(change.transitions)
                except redis_lib.WatchError:
                    continue  # another client moved this model: re-read and re-decide

    def _add_validation(self, name: str, version: int, report_json: str) -> None:
        self._client.rpush(self.keys.validations(name, version), report_json)

    def _validations(self, name: str, version: int) -> list[str]:
        return [_text(e) for e in self._client.lrange(self.keys.validations(name, version), 0, -1)]

    def list_names(self) -> list[str]:
        return sorted(_text(n) for n in self._client.smembers(self.keys.names))

    def history(self, name: str) -> list[Transition]:
        pipe = self._client.pipeline(transaction=True)
        pipe.sismember(self.keys.names, name)
        pipe.lrange(self.keys.history(name), 0, -1)
        known, entries = pipe.execute()
        if not known:
            raise ModelNotFoundError(name, self.list_names())
        return [load_transition(e) for e in entries]

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
