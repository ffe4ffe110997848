"""Sealing entries with an HMAC bound to their key, and where the secret comes from."""

from __future__ import annotations

import multiprocessing
import stat
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from workbench.cache.integrity import (
    HEADER_BYTES,
    default_key_file,
    load_secret,
    seal,
    unseal,
)
from workbench.errors import CacheError, CacheIntegrityError

KEY = "ab" * 32
SECRET = b"s3cret"


@pytest.mark.parametrize("payload", [b"", b"x", bytes(range(256)) * 100])
def test_round_trip(payload: bytes) -> None:
    sealed = seal(KEY, payload, SECRET)
    assert len(sealed) == HEADER_BYTES + len(payload)
    assert unseal(KEY, sealed, SECRET) == payload


def test_a_flipped_byte_anywhere_is_rejected() -> None:
    sealed = seal(KEY, b"payload" * 10, SECRET)
    for i in range(len(sealed)):
        damaged = bytearray(sealed)
        damaged[i] ^= 0x01
        with pytest.raises(CacheIntegrityError, match="is ignored"):
            unseal(KEY, bytes(damaged), SECRET)


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (b"", "bad marker"),
        (b"\x80\x05pickle", "bad marker"),
        (seal(KEY, b"payload", SECRET)[:20], "truncated"),
        (seal(KEY, b"payload", SECRET)[:-1], "tag mismatch"),
    ],
)
def test_damage_is_named(blob: bytes, reason: str) -> None:
    with pytest.raises(CacheIntegrityError, match=reason):
        unseal(KEY, blob, SECRET)


def test_an_unknown_version_is_rejected() -> None:
    sealed = bytearray(seal(KEY, b"payload", SECRET))
    sealed[3] = 2
    with pytest.raises(CacheIntegrityError, match="unsupported format version 2"):
        unseal(KEY, bytes(sealed), SECRET)


def test_an_entry_copied_under_another_key_is_rejected() -> None:
    sealed = seal(KEY, b"payload", SECRET)
    with pytest.raises(CacheIntegrityError, match="tag mismatch"):
        unseal("cd" * 32, sealed, SECRET)


def test_another_secret_is_rejected_with_a_hint() -> None:
    sealed = seal(KEY, b"payload", SECRET)
    with pytest.raises(CacheIntegrityError, match="WORKBENCH_CACHE_SECRET"):
        unseal(KEY, sealed, b"other")


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret is empty"):
        seal(KEY, b"payload", b"")


def test_the_configured_secret_wins(tmp_path: Path) -> None:
    key_file = tmp_path / "cache.key"
    key_file.write_text("from-file")
    assert load_secret("from-env", key_file) == b"from-env"
    assert load_secret("from-env", tmp_path / "absent.key") == b"from-env"
    assert not (tmp_path / "absent.key").exists()


def test_the_key_file_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "config" / "workbench" / "cache.key"
    first = load_secret(None, key_file)
    assert len(first) == 64 and bytes.fromhex(first.decode())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_secret("", key_file) == first  # an empty WORKBENCH_CACHE_SECRET is unset
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["cache.key"]  # no temp left


def test_a_key_file_written_by_hand_is_used_as_is(tmp_path: Path) -> None:
    key_file = tmp_path / "cache.key"
    key_file.write_text("  shared across machines \n")
    assert load_secret(None, key_file) == b"shared across machines"


def test_an_empty_key_file_says_what_to_do(tmp_path: Path) -> None:
    key_file = tmp_path / "cache.key"
    key_file.write_text("\n")
    with pytest.raises(CacheError, match="is empty: delete it") as caught:
        load_secret(None, key_file)
    assert str(key_file) in str(caught.value)


def test_an_unreadable_key_file_says_what_to_do(tmp_path: Path) -> None:
    key_file = tmp_path / "cache.key"
    key_file.mkdir()  # unreadable as a file even for root
    with pytest.raises(CacheError, match="cannot read the cache key file") as caught:
        load_secret(None, key_file)
    assert "WORKBENCH_CACHE_SECRET" in str(caught.value)


def test_the_default_key_file_is_in_the_user_config_dir() -> None:
    path = default_key_file()
    assert path.name == "cache.key"
    assert path.parent.name == "workbench"


def load_in_child(key_file: str, barrier: Barrier, results: multiprocessing.Queue[bytes]) -> None:
    barrier.wait()  # all start at once, to race for the file
    results.put(load_secret(None, Path(key_file)))


def test_processes_racing_to_generate_the_key_all_get_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "cache.key"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results: multiprocessing.Queue[bytes] = context.Queue()
    procs = [
        context.Process(target=load_in_child, args=(str(key_file), barrier, results))
        for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    secrets = {results.get(timeout=30) for _ in procs}
    for proc in procs:
        proc.join(timeout=30)
    assert [proc.exitcode for proc in procs] == [0] * 4
    assert secrets == {key_file.read_text().strip().encode()}
