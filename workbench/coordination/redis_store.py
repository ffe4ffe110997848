"""The state store on Redis: every instance of a cluster reads and writes the same executions.

An execution is one hash, `{ns}:exec:{id}` (key layout in `keys`), with the fields
  `meta`              JSON: execution_id, workflow_id, spec, base_dir, cache_mode, kind, options
                      (never change)
  `submitted_at`      float, also the score in `{ns}:pending` and `{ns}:executions`
  `status`, `epoch`, `cancel_requested` ("0"/"1"), `owner` (absent while nobody owns it)
  `record`            JSON: the WorkflowExecution record's own fields
  `task:{task id}`    JSON: one TaskRecord each
Every guarded write is one Lua script, so its check and its write are atomic. The scripts
never decode JSON (cjson would round floats to 14 digits): they set whole fields, and
`commit_task` sets only its own task's field, so concurrent commits never lose one another.

The scripts build `{ns}:owner:{previous owner}` inside Lua, so the store needs a standalone
Redis (or one shard): not Redis Cluster. Redis errors (ConnectionError, TimeoutError)
propagate unchanged; retrying them is the caller's business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from workbench.coordination.base import (
    InstanceInfo,
    JobKind,
    Refusal,
    StoredExecution,
    WriteResult,
)
from workbench.coordination.keys import DEFAULT_NAMESPACE, Keys, lease_value
from workbench.dag.states import WorkflowStatus

if TYPE_CHECKING:
    import redis

TASK_FIELD = "task:"
FETCH_BATCH = 200  # executions per pipelined round trip in list_executions

_TERMINAL = ", ".join(f'["{s.value}"] = true' for s in WorkflowStatus if s.terminal)
# Shared by the owner-only scripts: who asks is checked before what state it is in.
_PRELUDE = f"""
local TERMINAL = {{{_TERMINAL}}}
local function refusal(key, owner, epoch)
  local state = redis.call('HMGET', key, 'status', 'owner', 'epoch')
  if not state[1] then return 'UNKNOWN' end
  if state[2] ~= owner or state[3] ~= epoch then return 'NOT_OWNER' end
  if TERMINAL[state[1]] then return 'FINISHED' end
  return nil
end
"""

# KEYS: exec, pending, executions, unfinished. ARGV: id, submitted_at, field, value, ...
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return 1
"""

# KEYS: leader, exec, pending, new owner's index. ARGV: lease value, id, instance, owner prefix
_ASSIGN = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 'STALE_TOKEN'} end
local state = redis.call('HMGET', KEYS[2], 'status', 'owner')
if not state[1] then return {0, 'UNKNOWN'} end
if TERMINAL[state[1]] then return {0, 'FINISHED'} end
if state[2] then redis.call('SREM', ARGV[4] .. state[2], ARGV[2]) end
redis.call('HSET', KEYS[2], 'owner', ARGV[3])
local epoch = redis.call('HINCRBY', KEYS[2], 'epoch', 1)
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
return {1, epoch}
"""

# KEYS: exec. ARGV: owner, epoch, task field, record
_COMMIT_TASK = """
local why = refusal(KEYS[1], ARGV[1], ARGV[2])
if why then return {0, why} end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
return {1}
"""

# KEYS: exec, owner's index, pending, unfinished. ARGV: owner, epoch, status, record, id
_COMMIT_EXECUTION = """
local why = refusal(KEYS[1], ARGV[1], ARGV[2])
if why then return {0, why} end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'record', ARGV[4])
if TERMINAL[ARGV[3]] then
  redis.call('SREM', KEYS[2], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[5])
  redis.call('ZREM', KEYS[4], ARGV[5])
end
return {1}
"""

# KEYS: exec, owner's index, pending. ARGV: owner, epoch, id. The epoch stays: assign bumps it.
_RELEASE = """
local why = refusal(KEYS[1], ARGV[1], ARGV[2])
if why then return {0, why} end
redis.call('HDEL', KEYS[1], 'owner')
redis.call('HSET', KEYS[1], 'status', 'pending')
redis.call('SREM', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[1], 'submitted_at'), ARGV[3])
return {1}
"""

# KEYS: exec
_REQUEST_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {0, 'UNKNOWN'} end
if TERMINAL[status] then return {0, 'FINISHED'} end
redis.call('HSET', KEYS[1], 'cancel_requested', '1')
return {1}
"""

# KEYS: instance index. ARGV: instance key prefix. Prunes the ids whose key expired, in the
# same step as it reads them, so a heartbeat racing the pruning is never dropped.
_LIVE_INSTANCES = """
local live = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local value = redis.call('GET', ARGV[1] .. id)
  if value then table.insert(live, value) else redis.call('SREM', KEYS[1], id) end
end
return live
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _result(reply: list[Any]) -> WriteResult:
    if int(reply[0]) == 1:
        return WriteResult(ok=True, epoch=int(reply[1]) if len(reply) > 1 else None)
    return WriteResult(ok=False, refusal=Refusal[_text(reply[1])])


class RedisStateStore:
    """`StateStore` on a ready redis-py client (bytes or decoded responses both work). The
    client is the caller's: `close` leaves it open for the election and others sharing it."""

    def __init__(self, client: redis.Redis, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.keys = Keys(namespace)
        self._client = client
        script = client.register_script
        self._create = script(_CREATE)
        self._assign = script(_PRELUDE + _ASSIGN)
        self._commit_task = script(_PRELUDE + _COMMIT_TASK)
        self._commit_execution = script(_PRELUDE + _COMMIT_EXECUTION)
        self._release = script(_PRELUDE + _RELEASE)
        self._request_cancel = script(_PRELUDE + _REQUEST_CANCEL)
        self._live_instances = script(_LIVE_INSTANCES)

    # -- executions ----------------------------------------------------------------------------
    def create_execution(self, execution: StoredExecution) -> None:
        """Raises ValueError if the id exists. Status pending and no owner, whatever was given."""
        meta = {
            "execution_id": execution.execution_id,
            "workflow_id": execution.workflow_id,
            "spec": dict(execution.spec),
            "base_dir": execution.base_dir,
            "cache_mode": execution.cache_mode,
            "kind": execution.kind.value,
            "options": dict(execution.options),
        }
        submitted = repr(float(execution.submitted_at))
        fields = {
            "meta": _json(meta),
            "submitted_at": submitted,
            "status": WorkflowStatus.PENDING.value,
            "epoch": str(int(execution.epoch)),
            "cancel_requested": "1" if execution.cancel_requested else "0",
            "record": _json(execution.record),
            **{TASK_FIELD + task_id: _json(r) for task_id, r in execution.tasks.items()},
        }
        k = self.keys
        args = [execution.execution_id, submitted, *(p for f in fields.items() for p in f)]
        created = self._create(
            keys=[k.execution(execution.execution_id), k.pending, k.executions, k.unfinished],
            args=args,
        )
        if not int(created):
            raise ValueError(f"execution {execution.execution_id!r} already exists")

    def get_execution(self, execution_id: str) -> StoredExecution | None:
        return _decode(self._client.hgetall(self.keys.execution(execution_id)))

    def list_executions(
        self, *, owner: str | None = None, status: WorkflowStatus | None = None
    ) -> list[StoredExecution]:
        if owner is not None and status is not None and not status.terminal:
            # exact: the owner index holds precisely the unfinished executions it owns
            ids = [_text(i) for i in self._client.smembers(self.keys.owner(owner))]
        elif status is not None and not status.terminal:
            # the leader's every round: only what has not finished, however long the history
            ids = self._sorted_ids(self.keys.unfinished)
        else:
            ids = self._sorted_ids(self.keys.executions)
        found: list[StoredExecution] = []
        for start in range(0, len(ids), FETCH_BATCH):
            pipe = self._client.pipeline(transaction=False)
            for execution_id in ids[start : start + FETCH_BATCH]:
                pipe.hgetall(self.keys.execution(execution_id))
            for raw in pipe.execute():
                execution = _decode(raw)
                if (
                    execution is not None
                    and (owner is None or execution.owner == owner)
                    and (status is None or execution.status == status)
                ):
                    found.append(execution)
        return sorted(found, key=lambda e: (e.submitted_at, e.execution_id))

    def pending(self) -> list[str]:
        return self._sorted_ids(self.keys.pending)

    def _sorted_ids(self, key: str) -> list[str]:
        members = cast("list[bytes | str]", self._client.zrange(key, 0, -1))
        return [_text(member) for member in members]

    # -- leader-only ---------------------------------------------------------------------------
    def assign(
        self, execution_id: str, instance_id: str, *, leader: str, token: int
    ) -> WriteResult:
        k = self.keys
        keys = [k.leader, k.execution(execution_id), k.pending, k.owner(instance_id)]
        args = [lease_value(leader, token), execution_id, instance_id, k.owner_prefix]
        return _result(self._assign(keys=keys, args=args))

    # -- owner-only ----------------------------------------------------------------------------
    def commit_task(
        self, execution_id: str, owner: str, epoch: int, task_id: str, record: Mapping[str, Any]
    ) -> WriteResult:
        args = [owner, str(int(epoch)), TASK_FIELD + task_id, _json(dict(record))]
        return _result(self._commit_task(keys=[self.keys.execution(execution_id)], args=args))

    def commit_execution(
        self,
        execution_id: str,
        owner: str,
        epoch: int,
        status: WorkflowStatus,
        record: Mapping[str, Any],
    ) -> WriteResult:
        status = WorkflowStatus(status)
        args = [owner, str(int(epoch)), status.value, _json(dict(record)), execution_id]
        return _result(
            self._commit_execution(keys=self._owned_keys(execution_id, owner), args=args)
        )

    def release(self, execution_id: str, owner: str, epoch: int) -> WriteResult:
        args = [owner, str(int(epoch)), execution_id]
        return _result(self._release(keys=self._owned_keys(execution_id, owner), args=args))

    def request_cancel(self, execution_id: str) -> WriteResult:
        return _result(self._request_cancel(keys=[self.keys.execution(execution_id)]))

    def _owned_keys(self, execution_id: str, owner: str) -> list[str]:
        k = self.keys
        return [k.execution(execution_id), k.owner(owner), k.pending, k.unfinished]

    # -- instances -----------------------------------------------------------------------------
    def heartbeat(self, info: InstanceInfo, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        value = _json(
            {
                "instance_id": info.instance_id,
                "capacity": info.capacity,
                "load": info.load,
                "heartbeat_at": info.heartbeat_at,
                "started_at": info.started_at,
                "host": info.host,
                "pid": info.pid,
            }
        )
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self.keys.instance(info.instance_id), value, px=max(1, round(ttl_s * 1000)))
        pipe.sadd(self.keys.instances, info.instance_id)
        pipe.execute()

    def instances(self) -> list[InstanceInfo]:
        raw = self._live_instances(keys=[self.keys.instances], args=[self.keys.instance_prefix])
        live = [InstanceInfo(**json.loads(_text(value))) for value in raw]
        return sorted(live, key=lambda info: info.instance_id)

    def remove_instance(self, instance_id: str) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self.keys.instance(instance_id))
        pipe.srem(self.keys.instances, instance_id)
        pipe.execute()

    def close(self) -> None:
        pass  # the client is the caller's


def _decode(raw: Mapping[bytes | str, bytes | str]) -> StoredExecution | None:
    if not raw:
        return None
    fields = {_text(name): _text(value) for name, value in raw.items()}
    meta = json.loads(fields["meta"])
    return StoredExecution(
        execution_id=meta["execution_id"],
        workflow_id=meta["workflow_id"],
        spec=meta["spec"],
        base_dir=meta["base_dir"],
        cache_mode=meta["cache_mode"],
        kind=JobKind(meta.get("kind", JobKind.WORKFLOW.value)),
        options=meta.get("options", {}),
        status=WorkflowStatus(fields["status"]),
        owner=fields.get("owner"),
        epoch=int(fields["epoch"]),
        submitted_at=float(fields["submitted_at"]),
        cancel_requested=fields["cancel_requested"] == "1",
        tasks={
            name[len(TASK_FIELD) :]: json.loads(value)
            for name, value in fields.items()
            if name.startswith(TASK_FIELD)
        },
        record=json.loads(fields["record"]),
    )
