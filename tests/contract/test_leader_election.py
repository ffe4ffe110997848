"""One contract for every leader election: in memory and on Redis (a real redis-server), with
the store that checks its fencing tokens. The harness comes from `test_state_store.py`."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from tests.contract.test_state_store import KINDS, SHORT_MS, Harness, build_harness, execution
from workbench.coordination.base import LeaderElection, Refusal
from workbench.dag.states import WorkflowStatus

EXPIRE_S = SHORT_MS / 1000 * 2  # long enough for a SHORT_MS lease to run out


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    yield from build_harness(request)


def acquired(election: LeaderElection) -> int:
    token = election.try_acquire()
    assert token is not None, f"{election.instance_id} could not acquire the lease"
    return token


def test_nobody_holds_the_lease_at_first(harness: Harness) -> None:
    assert harness.election("a").holder() is None


def test_exactly_one_of_racing_contenders_wins(harness: Harness) -> None:
    contenders = [harness.election(f"i{n}") for n in range(12)]
    start = threading.Barrier(len(contenders))
    won: dict[str, int | None] = {}

    def contend(election: LeaderElection) -> None:
        start.wait()
        won[election.instance_id] = election.try_acquire()

    threads = [threading.Thread(target=contend, args=(e,)) for e in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = {name: token for name, token in won.items() if token is not None}
    assert len(won) == len(contenders) and len(winners) == 1
    [(name, token)] = winners.items()
    assert contenders[0].holder() == (name, token)


def test_the_holder_cannot_acquire_again(harness: Harness) -> None:
    a = harness.election("a")
    token = acquired(a)
    assert a.try_acquire() is None  # it renews instead: a token is fresh per acquisition
    assert a.holder() == ("a", token)


def test_tokens_strictly_increase_across_acquisitions(harness: Harness) -> None:
    tokens = []
    for name in ["a", "b", "a", "c", "a"]:
        election = harness.election(name)
        tokens.append(acquired(election))
        assert election.release(tokens[-1])
    expiring = harness.election("b", SHORT_MS)
    tokens.append(acquired(expiring))
    harness.elapse(EXPIRE_S)
    tokens.append(acquired(harness.election("b")))  # the same instance, after its lease ran out
    assert tokens == sorted(set(tokens)) and len(tokens) == 7


def test_renew_extends_the_lease_of_the_holder_only(harness: Harness) -> None:
    a, b = harness.election("a", 300), harness.election("b", 300)
    token = acquired(a)
    for _ in range(4):  # renewed well within its lease, it outlives the lease
        harness.elapse(0.1)
        assert a.renew(token)
    assert a.holder() == ("a", token) and b.try_acquire() is None
    assert not b.renew(token)  # the right token, the wrong instance
    assert not a.renew(token + 1) and not a.renew(token - 1)
    assert a.holder() == ("a", token)


def test_renew_with_the_token_of_an_earlier_acquisition_is_refused(harness: Harness) -> None:
    a = harness.election("a")
    old = acquired(a)
    assert a.release(old)
    new = acquired(a)
    assert not a.renew(old) and not a.release(old)
    assert a.renew(new) and a.holder() == ("a", new)


def test_release_lets_another_acquire_at_once(harness: Harness) -> None:
    a, b = harness.election("a"), harness.election("b")
    token = acquired(a)
    assert not b.release(token)  # not b's to give up
    assert a.holder() == ("a", token)
    assert a.release(token)
    assert a.holder() is None and not a.release(token)
    assert acquired(b) > token


def test_an_expired_lease_lets_another_acquire(harness: Harness) -> None:
    a, b = harness.election("a", SHORT_MS), harness.election("b")
    token = acquired(a)
    assert b.try_acquire() is None
    harness.elapse(EXPIRE_S)
    assert a.holder() is None
    assert not a.renew(token)  # an expired lease is not revived, even with nobody else in it
    assert acquired(b) > token and a.holder() == ("b", token + 1)


def assert_one_holder_at_a_time(seen: list[tuple[str, int] | None], *holders: object) -> None:
    """`seen` (holder() over time) goes through `holders` in order, with maybe nobody before,
    between and after them, and never back: no moment shows a holder replaced by an older one."""
    allowed: list[object] = [None]
    for holder in holders:
        allowed += [holder, None]
    at = 0
    for holder, _ in itertools.groupby(seen):
        later = [i for i in range(at, len(allowed)) if allowed[i] == holder]
        assert later, f"{holder} out of order in {[h for h, _ in itertools.groupby(seen)]}"
        at = later[0]


def test_a_paused_ex_leader_is_fenced_off(harness: Harness) -> None:
    """A acquires, then pauses (no renewal) past its lease; B acquires with a higher token.
    A's renew, release and assign are all refused, and at no moment do two hold the lease:
    a watcher thread polls holder() throughout, and the test looks after every step."""
    store = harness.store
    store.create_execution(execution())
    a, b = harness.election("a", SHORT_MS), harness.election("b")
    observer = harness.election("observer")
    watched: list[tuple[str, int] | None] = []
    stepped: list[tuple[str, int] | None] = []
    watching, stop = threading.Event(), threading.Event()

    def watch() -> None:
        while not stop.is_set():
            watched.append(observer.holder())
            watching.set()

    def look() -> None:
        stepped.append(observer.holder())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert watching.wait(timeout=10)
        token_a = acquired(a)
        look()
        assert store.assign("e1", "i1", leader="a", token=token_a).epoch == 1
        harness.elapse(EXPIRE_S)  # A is paused: no renewal
        look()
        token_b = acquired(b)
        look()
        assert token_b > token_a
        # A wakes up and carries on as if it still led
        assert not a.renew(token_a)
        look()
        assert store.assign("e1", "i2", leader="a", token=token_a).refusal is Refusal.STALE_TOKEN
        assert not a.release(token_a)
        assert a.try_acquire() is None
        look()
        assert store.assign("e1", "i2", leader="b", token=token_b).epoch == 2
        # the owner A appointed is fenced off too: B's assignment moved the epoch on
        refused = store.commit_execution("e1", "i1", 1, WorkflowStatus.SUCCEEDED, {})
        assert refused.refusal is Refusal.NOT_OWNER
        look()
        for _ in range(1000):  # let the watcher see the end too
            if watched[-1] == ("b", token_b):
                break
            time.sleep(0.001)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert stepped == [("a", token_a), None, *[("b", token_b)] * 4]
    assert watched[-1] == ("b", token_b)
    assert_one_holder_at_a_time(watched, ("a", token_a), ("b", token_b))
