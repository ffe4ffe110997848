"""DiskBackend details beyond the shared contract: layout, leftovers, sharing a directory."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from workbench.cache.disk import HEADER, MAGIC, STALE_TEMP_S, DiskBackend
from workbench.errors import CacheError

KEY = "0f" * 32


def test_layout_is_a_two_level_fan_out_with_a_header(tmp_path: Path) -> None:
    DiskBackend(tmp_path).put(KEY, b"payload")
    data = (tmp_path / "0f" / KEY).read_bytes()
    assert data == HEADER.pack(MAGIC, 7) + b"payload"


@pytest.mark.parametrize("key", [".", "..", ".x"])
def test_dot_keys_stay_inside_the_root(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root"
    disk = DiskBackend(root)
    disk.put(key, b"dot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    [path] = root.glob("*/*")
    assert path.is_file() and path.name == "%" + key
    assert DiskBackend(root).get(key) == b"dot"  # found again by a scan
    assert disk.stats()[0].entries == 1


def test_temp_files_are_not_entries_and_stale_ones_are_removed(tmp_path: Path) -> None:
    disk = DiskBackend(tmp_path)
    disk.put(KEY, b"v")
    fresh = tmp_path / "0f" / f".{KEY}.aaaa.tmp"
    stale = tmp_path / "0f" / f".{KEY}.bbbb.tmp"
    fresh.write_bytes(b"half-written")
    stale.write_bytes(b"left by a writer that died")
    old = time.time() - STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    assert disk.stats()[0].entries == 1
    assert fresh.exists()
    assert not stale.exists()


def test_an_entry_too_large_for_the_capacity_is_not_kept(tmp_path: Path) -> None:
    disk = DiskBackend(tmp_path, capacity_bytes=100)
    disk.put(KEY, b"small")
    disk.put(KEY, b"x" * 100)  # 100 + header > capacity
    assert disk.get(KEY) is None
    assert disk.stats()[0].entries == 0


def test_eviction_spares_an_entry_another_process_just_read(tmp_path: Path) -> None:
    size = HEADER.size + 100
    writer = DiskBackend(tmp_path, capacity_bytes=3 * size)
    reader = DiskBackend(tmp_path, capacity_bytes=3 * size)
    for name in "abc":
        writer.put(name, name.encode() * 100)
    assert reader.get("a") == b"a" * 100  # touches the file; `writer`'s index does not know
    writer.put("d", b"d" * 100)
    assert [writer.contains(name) for name in "abcd"] == [True, False, True, True]


def test_files_vanishing_under_the_index_are_tolerated(tmp_path: Path) -> None:
    size = HEADER.size + 100
    disk = DiskBackend(tmp_path, capacity_bytes=3 * size)
    for name in "abc":
        disk.put(name, name.encode() * 100)
    DiskBackend(tmp_path).clear()  # another process empties the directory
    disk.put("d", b"d" * 100)
    disk.put("e", b"e" * 100)
    assert disk.get("d") == b"d" * 100
    assert disk.stats()[0].entries == 2


def test_corrupt_statistics_count_from_zero(tmp_path: Path) -> None:
    (tmp_path / "stats.json").write_text("{not json")
    disk = DiskBackend(tmp_path)
    disk.get(KEY)
    assert disk.stats()[0].misses == 1
    assert json.loads((tmp_path / "stats.json").read_text())["misses"] == 1


def test_stats_are_written_only_when_something_changed(tmp_path: Path) -> None:
    disk = DiskBackend(tmp_path)
    disk.stats()
    assert not (tmp_path / "stats.json").exists()
    disk.get(KEY)
    disk.close()
    assert json.loads((tmp_path / "stats.json").read_text()) == {
        "hits": 0,
        "misses": 1,
        "evictions": 0,
    }


def test_a_root_that_cannot_be_created_is_a_cache_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CacheError, match="cannot create the disk cache directory"):
        DiskBackend(tmp_path / "file" / "cache")


def test_capacity_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="capacity_bytes"):
        DiskBackend(tmp_path, capacity_bytes=0)
