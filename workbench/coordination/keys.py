"""Redis key names of cluster coordination, and the lease value format. No Redis import here.

Keys (`ns` is the namespace, "workbench" by default, so several clusters can share a Redis):
  `{ns}:leader`              string, PX lease: "{instance id}:{fencing token}"
  `{ns}:leader:token`        integer: the last fencing token handed out (INCR)
  `{ns}:exec:{id}`           hash: one execution (fields in `redis_store`)
  `{ns}:executions`          sorted set: every execution id, scored by submit time
  `{ns}:pending`             sorted set: ids waiting for an owner, scored by submit time
  `{ns}:owner:{instance}`    set: the unfinished executions `instance` owns
  `{ns}:instance:{id}`       string, PX heartbeat TTL: the instance's JSON
  `{ns}:instances`           set: instance ids that heartbeat (pruned lazily when they expire)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_NAMESPACE = "workbench"


def lease_value(instance_id: str, token: int) -> str:
    """What the lease key holds: the holder AND the token of its acquisition, so a check
    against it fences both another instance and an older acquisition of the same one."""
    return f"{instance_id}:{token}"


def parse_lease_value(value: str) -> tuple[str, int]:
    # rpartition: instance ids may contain ':' (host:port); the token never does
    instance_id, _, token = value.rpartition(":")
    return instance_id, int(token)


def check_instance_id(instance_id: str) -> str:
    if not instance_id:
        raise ValueError("instance_id must be a non-empty string")
    return instance_id


def check_namespace(namespace: str) -> str:
    if NAMESPACE_PATTERN.fullmatch(namespace) is None:
        raise ValueError(
            f"invalid Redis namespace {namespace!r}: use 1 to 64 characters from A-Z a-z 0-9 _ . -"
        )
    return namespace


@dataclass(frozen=True)
class Keys:
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        check_namespace(self.namespace)

    @property
    def leader(self) -> str:
        return f"{self.namespace}:leader"

    @property
    def leader_token(self) -> str:
        return f"{self.namespace}:leader:token"

    @property
    def executions(self) -> str:
        return f"{self.namespace}:executions"

    @property
    def pending(self) -> str:
        return f"{self.namespace}:pending"

    @property
    def unfinished(self) -> str:
        return f"{self.namespace}:unfinished"

    @property
    def instances(self) -> str:
        return f"{self.namespace}:instances"

    @property
    def owner_prefix(self) -> str:
        return f"{self.namespace}:owner:"

    @property
    def instance_prefix(self) -> str:
        return f"{self.namespace}:instance:"

    def execution(self, execution_id: str) -> str:
        return f"{self.namespace}:exec:{execution_id}"

    def owner(self, instance_id: str) -> str:
        return self.owner_prefix + instance_id

    def instance(self, instance_id: str) -> str:
        return self.instance_prefix + instance_id
