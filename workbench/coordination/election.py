"""Leader election on Redis: one lease key, a fresh fencing token per acquisition.

Timing (the caller's loop decides; these are the recommended defaults):
  - the lease lasts `lease_ms` (DEFAULT_LEASE_MS, 2000 ms) from the last acquire or renew;
  - the leader renews every RENEW_EVERY_MS (500 ms), so three renewals may fail in a row
    before the lease runs out;
  - a leader that has not renewed successfully within STEP_DOWN_AFTER_MS (1500 ms) stops acting
    as leader by itself, before the lease can expire and someone else take over. Measure that
    from when the last successful renew (or the acquire) was *sent*: the server extended the
    lease after that, so the leader's view is conservative even with a slow network.
Fencing makes the step-down a matter of liveness, not safety: every leader-only write checks
the token in the store, so a leader that missed its step-down is refused, never obeyed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.coordination.keys import Keys, check_instance_id, lease_value, parse_lease_value

if TYPE_CHECKING:
    import redis

DEFAULT_LEASE_MS = 2000
RENEW_EVERY_MS = 500
STEP_DOWN_AFTER_MS = 1500

# Token and lease value in one script: nobody can see the lease without its token, and two
# contenders can never write the same token.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


def step_down_after_ms(lease_ms: int) -> int:
    """STEP_DOWN_AFTER_MS scaled to another lease: three quarters of it."""
    return lease_ms * STEP_DOWN_AFTER_MS // DEFAULT_LEASE_MS


class RedisLeaderElection:
    """`LeaderElection` on the key `{ns}:leader`; tokens come from `INCR {ns}:leader:token`.

    `try_acquire` by the instance that already holds the lease returns None: it renews instead
    (a token is fresh per acquisition). Redis errors propagate unchanged.
    """

    def __init__(
        self,
        client: redis.Redis,
        instance_id: str,
        *,
        namespace: str = "workbench",
        lease_ms: int = DEFAULT_LEASE_MS,
    ) -> None:
        if lease_ms <= 0:
            raise ValueError(f"lease_ms must be positive, got {lease_ms}")
        self.instance_id = check_instance_id(instance_id)
        self.lease_ms = lease_ms
        self.keys = Keys(namespace)
        self._client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def try_acquire(self) -> int | None:
        token = self._acquire(
            keys=[self.keys.leader, self.keys.leader_token], args=[self.instance_id, self.lease_ms]
        )
        return None if token is None else int(token)

    def renew(self, token: int) -> bool:
        value = lease_value(self.instance_id, token)
        return bool(self._renew(keys=[self.keys.leader], args=[value, self.lease_ms]))

    def release(self, token: int) -> bool:
        value = lease_value(self.instance_id, token)
        return bool(self._release(keys=[self.keys.leader], args=[value]))

    def holder(self) -> tuple[str, int] | None:
        value = self._client.get(self.keys.leader)
        if value is None:
            return None
        return parse_lease_value(value.decode() if isinstance(value, bytes) else str(value))
