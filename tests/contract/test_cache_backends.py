"""One contract for every cache backend: memory, disk, Redis and hybrid (on a real redis-server),
and the null backend where a property applies to it. Backend-specific behaviour follows."""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from workbench.cache.base import BackendStats, CacheBackend
from workbench.cache.disk import HEADER, DiskBackend
from workbench.cache.hybrid import HybridBackend
from workbench.cache.memory import MemoryBackend
from workbench.cache.null import NullBackend
from workbench.cache.redis_backend import RedisBackend
from workbench.errors import CacheError

STORING = ["memory", "disk", "redis", "hybrid"]
CHUNK = 1024  # tiny Redis chunks, so modest payloads take the chunked path
TIERS = {
    "memory": ["memory"],
    "disk": ["disk"],
    "redis": ["redis"],
    "hybrid": ["memory", "redis"],
    "none": ["none"],
}


def key(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def build(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> CacheBackend:
    if kind == "memory":
        return MemoryBackend()
    if kind == "disk":
        return DiskBackend(tmp_path / "cache")
    if kind == "none":
        return NullBackend()
    url = request.getfixturevalue("redis_url")  # the server starts only for Redis cases
    back = RedisBackend(url, chunk_bytes=CHUNK, ttl_s=60)
    return back if kind == "redis" else HybridBackend(MemoryBackend(), back)


@pytest.fixture(params=STORING)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CacheBackend]:
    made = build(request.param, request, tmp_path)
    yield made
    made.close()


@pytest.fixture(params=[*STORING, "none"])
def any_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CacheBackend]:
    made = build(request.param, request, tmp_path)
    yield made
    made.close()


def first_tier(backend: CacheBackend) -> BackendStats:
    return backend.stats()[0]


# -- the contract ------------------------------------------------------------------------------


def test_round_trip(backend: CacheBackend) -> None:
    backend.put(key(1), b"result")
    assert backend.get(key(1)) == b"result"
    assert backend.contains(key(1))


def test_missing_key_is_a_miss(any_backend: CacheBackend) -> None:
    assert any_backend.get(key("absent")) is None
    assert not any_backend.contains(key("absent"))


@pytest.mark.parametrize(
    ("first", "second"), [(10, 20), (10, 5 * CHUNK), (5 * CHUNK, 10), (5 * CHUNK, 3 * CHUNK + 7)]
)
def test_overwrite_replaces(backend: CacheBackend, first: int, second: int) -> None:
    backend.put(key(1), b"a" * first)
    backend.put(key(1), b"b" * second)
    assert backend.get(key(1)) == b"b" * second
    assert first_tier(backend).entries == 1


def test_delete(backend: CacheBackend) -> None:
    backend.put(key(1), b"x" * (3 * CHUNK))
    backend.put(key(2), b"y")
    assert backend.delete(key(1)) is True
    assert backend.get(key(1)) is None
    assert not backend.contains(key(1))
    assert backend.delete(key(1)) is False
    assert backend.get(key(2)) == b"y"


def test_clear_returns_the_count(backend: CacheBackend) -> None:
    for n in range(3):
        backend.put(key(n), bytes([n]) * (n * CHUNK + 1))
    assert backend.clear() == 3
    assert all(backend.get(key(n)) is None for n in range(3))
    assert backend.clear() == 0
    assert first_tier(backend).entries == 0


def test_contains_counts_neither_hit_nor_miss(any_backend: CacheBackend) -> None:
    any_backend.put(key(1), b"v")
    before = [(s.hits, s.misses) for s in any_backend.stats()]
    any_backend.contains(key(1))
    any_backend.contains(key(2))
    assert [(s.hits, s.misses) for s in any_backend.stats()] == before


def test_hits_and_misses_are_counted(any_backend: CacheBackend) -> None:
    any_backend.put(key(1), b"v")
    any_backend.get(key(1))
    any_backend.get(key(1))
    any_backend.get(key(2))
    stats = first_tier(any_backend)
    if isinstance(any_backend, NullBackend):
        assert (stats.hits, stats.misses) == (0, 3)
    else:
        assert (stats.hits, stats.misses) == (2, 1)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00",
        b"\x01",  # Redis's pointer prefix, as a payload
        bytes(range(256)),
        CHUNK * b"\xff",
        2 * CHUNK * b"\x00",
        random.Random(7).randbytes(5 * CHUNK + 13),
    ],
    ids=["empty", "nul", "pointer-prefix", "all-bytes", "one-chunk", "two-chunks", "odd-chunks"],
)
def test_binary_payloads_round_trip(backend: CacheBackend, payload: bytes) -> None:
    backend.put(key(1), payload)
    got = backend.get(key(1))
    assert got == payload
    assert type(got) is bytes


@pytest.mark.parametrize(
    "bad", ["", "a/b", "../etc", "x" * 201, "with space", "caf\u00e9", "a*b", "new\nline"]
)
def test_invalid_keys_are_rejected(any_backend: CacheBackend, bad: str) -> None:
    for call in (
        lambda: any_backend.get(bad),
        lambda: any_backend.put(bad, b"v"),
        lambda: any_backend.contains(bad),
        lambda: any_backend.delete(bad),
    ):
        with pytest.raises(ValueError, match="invalid cache key"):
            call()


@pytest.mark.parametrize("odd", [".", "..", ".hidden", "a", "x" * 200, "A-b_c.d:e", "1:2"])
def test_unusual_valid_keys_round_trip(backend: CacheBackend, odd: str) -> None:
    backend.put(odd, odd.encode())
    assert backend.get(odd) == odd.encode()
    assert backend.delete(odd)


def test_payloads_must_be_bytes(any_backend: CacheBackend) -> None:
    with pytest.raises(TypeError, match="bytes"):
        any_backend.put(key(1), "text")  # type: ignore[arg-type]


def payload_of(writer: int, round_: int) -> bytes:
    """A payload whose every byte depends on who wrote it: a mix of two writes is detectable."""
    seed = hashlib.sha256(f"{writer}/{round_}".encode()).digest()
    return seed * ((3 * CHUNK + 500) // len(seed))


def test_concurrent_writers_of_one_key_never_mix(backend: CacheBackend) -> None:
    writers, rounds = 6, 15
    valid = {payload_of(w, r) for w in range(writers) for r in range(rounds)}
    backend.put(key(1), payload_of(0, 0))
    done = threading.Event()
    bad: list[object] = []

    def write(w: int) -> None:
        for r in range(rounds):
            backend.put(key(1), payload_of(w, r))

    def read() -> None:
        while not done.is_set():
            got = backend.get(key(1))
            if got not in valid:
                bad.append(got if got is None else len(got))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert bad == []
    assert backend.get(key(1)) in valid


def test_concurrent_readers_all_see_the_payload(backend: CacheBackend) -> None:
    payload = random.Random(1).randbytes(4 * CHUNK + 3)
    backend.put(key(1), payload)
    results: list[bytes | None] = []
    lock = threading.Lock()

    def read() -> None:
        got = [backend.get(key(1)) for _ in range(40)]
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 320
    assert all(got == payload for got in results)
    assert first_tier(backend).hits == 320


def test_stats_shape(
    any_backend: CacheBackend, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    kind = request.node.callspec.params["any_backend"]
    any_backend.put(key(1), b"x" * 10)
    any_backend.put(key(2), b"y" * 3000)
    stats = any_backend.stats()
    assert all(isinstance(s, BackendStats) for s in stats)
    assert [s.backend for s in stats] == TIERS[kind]
    for s in stats:
        stored = s.backend != "none"
        assert s.entries == (2 if stored else 0)
        if s.backend == "disk":
            assert s.bytes == 3010 + 2 * HEADER.size  # file bytes
            assert s.location == str(tmp_path / "cache")
        else:
            assert s.bytes == (3010 if stored else 0)
        assert (s.capacity_bytes is not None) == (s.backend in ("memory", "disk"))
        if s.backend == "redis":
            assert s.location == request.getfixturevalue("redis_url")
        if s.backend in ("memory", "none"):
            assert s.location == ""
        assert s.evictions == 0


def test_null_backend_stores_nothing() -> None:
    null = NullBackend()
    null.put(key(1), b"v")
    assert null.get(key(1)) is None
    assert not null.contains(key(1))
    assert null.delete(key(1)) is False
    assert null.clear() == 0
    assert null.stats() == [BackendStats("none", entries=0, bytes=0, hits=0, misses=1)]


# -- memory ------------------------------------------------------------------------------------


def test_memory_total_never_exceeds_capacity() -> None:
    memory = MemoryBackend(capacity_bytes=10_000)
    rng = random.Random(3)
    for n in range(200):
        memory.put(key(n), bytes(rng.randint(0, 3000)))
        assert memory.stats()[0].bytes <= 10_000
    present = [memory.get(key(n)) for n in range(200)]
    assert sum(len(p) for p in present if p is not None) == memory.stats()[0].bytes
    assert memory.stats()[0].evictions == 200 - memory.stats()[0].entries


def test_memory_evicts_least_recently_used() -> None:
    memory = MemoryBackend(capacity_bytes=3000)
    for name in "abc":
        memory.put(name, name.encode() * 1000)
    memory.get("a")
    memory.put("d", b"d" * 1000)
    assert [memory.contains(name) for name in "abcd"] == [True, False, True, True]
    memory.put("e", b"e" * 1000)
    assert [memory.contains(name) for name in "acde"] == [True, False, True, True]
    assert memory.stats()[0].evictions == 2


def test_memory_keeps_no_entry_larger_than_its_capacity() -> None:
    memory = MemoryBackend(capacity_bytes=100)
    memory.put("k", b"small")
    memory.put("k", b"x" * 101)
    assert memory.get("k") is None
    assert memory.stats()[0].bytes == 0


# -- disk --------------------------------------------------------------------------------------


def entry_files(root: Path) -> list[Path]:
    return [p for p in root.glob("*/*") if not p.name.startswith(".")]


def test_disk_total_never_exceeds_capacity(tmp_path: Path) -> None:
    disk = DiskBackend(tmp_path, capacity_bytes=20_000)
    rng = random.Random(4)
    for n in range(120):
        disk.put(key(n), bytes(rng.randint(0, 4000)))
        assert sum(p.stat().st_size for p in entry_files(tmp_path)) <= 20_000
    stats = disk.stats()[0]
    assert stats.bytes <= 20_000
    assert stats.evictions == 120 - stats.entries


def test_disk_evicts_least_recently_used_even_after_a_restart(tmp_path: Path) -> None:
    size = HEADER.size + 1000
    disk = DiskBackend(tmp_path, capacity_bytes=3 * size)
    for name in "abc":
        disk.put(name, name.encode() * 1000)
    disk.get("a")
    disk.close()
    again = DiskBackend(tmp_path, capacity_bytes=3 * size)  # its order comes from the mtimes
    again.put("d", b"d" * 1000)
    assert [again.contains(name) for name in "abcd"] == [True, False, True, True]
    again.put("e", b"e" * 1000)
    assert [again.contains(name) for name in "acde"] == [True, False, True, True]


def test_disk_entries_survive_a_new_instance(tmp_path: Path) -> None:
    first = DiskBackend(tmp_path)
    first.put(key(1), b"kept" * 1000)
    first.close()
    second = DiskBackend(tmp_path)
    assert second.contains(key(1))
    assert second.get(key(1)) == b"kept" * 1000
    assert second.stats()[0].entries == 1


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated-payload": lambda data: data[:-10],
    "truncated-header": lambda data: data[:5],
    "empty": lambda data: b"",
    "garbage": lambda data: random.Random(5).randbytes(len(data)),
    "wrong-magic": lambda data: b"XXXX" + data[4:],
    "trailing-bytes": lambda data: data + b"extra",
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_disk_damaged_file_is_a_miss_and_removed(tmp_path: Path, damage: str) -> None:
    disk = DiskBackend(tmp_path)
    disk.put(key(1), b"p" * 500)
    [path] = entry_files(tmp_path)
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    assert disk.get(key(1)) is None
    assert not path.exists()
    assert disk.stats()[0].misses == 1
    disk.put(key(1), b"fresh")  # and the key works again
    assert disk.get(key(1)) == b"fresh"


def test_disk_file_it_never_wrote_is_a_miss(tmp_path: Path) -> None:
    disk = DiskBackend(tmp_path)
    path = tmp_path / key(9)[:2] / key(9)
    path.parent.mkdir()
    path.write_bytes(b"not a cache entry at all")
    assert disk.get(key(9)) is None


def disk_writer(root: str, writer: int, capacity: int) -> None:
    """A process writing and reading the keys another process writes too; it asserts that every
    read is whole (exit code 1 otherwise)."""
    disk = DiskBackend(Path(root), capacity_bytes=capacity)
    valid = {payload_of(w, r) for w in range(2) for r in range(12)}
    for r in range(12):
        for n in range(8):
            disk.put(key(n), payload_of(writer, r))
            got = disk.get(key((n + 3) % 8))
            assert got is None or got in valid, "a read returned a mixed or partial payload"
    disk.close()


def test_disk_concurrent_writers_from_two_processes(tmp_path: Path) -> None:
    capacity = 6 * (HEADER.size + len(payload_of(0, 0)))  # below 8 keys: evictions race too
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(target=disk_writer, args=(str(tmp_path), w, capacity)) for w in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    valid = {payload_of(w, r) for w in range(2) for r in range(12)}
    disk = DiskBackend(tmp_path, capacity_bytes=capacity)
    present = [disk.get(key(n)) for n in range(8)]
    assert all(got in valid for got in present if got is not None)
    assert any(got is not None for got in present)
    assert [p for p in tmp_path.glob("*/*") if p.name.endswith(".tmp")] == []
    stats = disk.stats()[0]
    assert stats.hits + stats.misses == 2 * 12 * 8 + 8  # both children's counts were merged


def test_disk_hits_and_misses_persist_across_instances(tmp_path: Path) -> None:
    first = DiskBackend(tmp_path)
    first.put(key(1), b"v")
    first.get(key(1))
    first.get(key(2))
    first.close()
    second = DiskBackend(tmp_path)
    assert (second.stats()[0].hits, second.stats()[0].misses) == (1, 1)
    second.get(key(3))
    third = DiskBackend(tmp_path)  # alive beside `second`
    third.get(key(1))
    assert (second.stats()[0].hits, second.stats()[0].misses) == (1, 2)
    assert (third.stats()[0].hits, third.stats()[0].misses) == (2, 2)
    assert (second.stats()[0].hits, second.stats()[0].misses) == (2, 2)  # no double counting


# -- redis -------------------------------------------------------------------------------------


def chunk_keys(url: str, k: str) -> list[bytes | str]:
    client = redis.Redis.from_url(url)
    try:
        return sorted(client.keys(f"workbench:cache:chunk:{k}:*"))
    finally:
        client.close()


def test_redis_entries_expire_chunks_included(redis_url: str) -> None:
    backend = RedisBackend(redis_url, ttl_s=0.2, chunk_bytes=CHUNK)
    backend.put(key(1), b"small")
    backend.put(key(2), b"large" * CHUNK)
    assert backend.get(key(1)) == b"small"
    assert backend.get(key(2)) == b"large" * CHUNK
    assert len(chunk_keys(redis_url, key(2))) == 5
    time.sleep(0.3)
    assert backend.get(key(1)) is None
    assert backend.get(key(2)) is None
    assert not backend.contains(key(2))
    assert chunk_keys(redis_url, key(2)) == []


def test_redis_entry_with_a_missing_chunk_is_a_miss(redis_url: str) -> None:
    backend = RedisBackend(redis_url, chunk_bytes=CHUNK)
    backend.put(key(1), b"z" * (3 * CHUNK))
    client = redis.Redis.from_url(redis_url)
    client.delete(chunk_keys(redis_url, key(1))[1])
    client.close()
    assert backend.get(key(1)) is None
    assert backend.stats()[0].misses == 1
    backend.put(key(1), b"z" * (3 * CHUNK))  # a rewrite heals it
    assert backend.get(key(1)) == b"z" * (3 * CHUNK)


def test_redis_unreachable_is_a_cache_error_with_the_fix() -> None:
    from tests.support.redis_server import free_port

    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(CacheError) as caught:
        RedisBackend(url)
    message = str(caught.value)
    assert "cannot reach Redis at redis://:***@127.0.0.1:" in message
    assert "start redis-server or set WORKBENCH_REDIS_URL" in message
    assert "hunter2" not in message


# -- hybrid ------------------------------------------------------------------------------------


def test_hybrid_promotes_a_redis_hit_into_memory(redis_url: str) -> None:
    front = MemoryBackend()
    hybrid = HybridBackend(front, RedisBackend(redis_url, chunk_bytes=CHUNK))
    hybrid.put(key(1), b"shared" * CHUNK)
    front.delete(key(1))
    assert not front.contains(key(1))
    assert hybrid.contains(key(1))  # Redis still has it
    assert hybrid.get(key(1)) == b"shared" * CHUNK
    assert front.contains(key(1))
    assert hybrid.get(key(1)) == b"shared" * CHUNK
    memory, shared = hybrid.stats()
    assert (memory.hits, memory.misses) == (1, 1)
    assert (shared.hits, shared.misses) == (1, 0)  # the second get never reached Redis
