"""FileFingerprints: content digests of data files, remembered by (path, size, mtime)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from workbench.cache import fingerprints
from workbench.cache.fingerprints import FileFingerprints

AN_HOUR_NS = 3600 * 10**9


def write(path: Path, data: bytes, *, age_ns: int = AN_HOUR_NS) -> Path:
    """Write a file with its mtime `age_ns` in the past (outside the racy window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = time.time_ns() - age_ns
    os.utime(path, ns=(stamp, stamp))
    return path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files actually read (hashed) by FileFingerprints during a test."""
    seen: list[Path] = []
    real = fingerprints._hash_file

    def counting(path: Path) -> tuple[str, os.stat_result, os.stat_result]:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(fingerprints, "_hash_file", counting)
    return seen


def test_the_fingerprint_is_the_content_digest_wherever_the_file_is(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", b"x,y\n1,2\n")
    b = write(tmp_path / "elsewhere" / "b.csv", b"x,y\n1,2\n")
    c = write(tmp_path / "c.csv", b"x,y\n1,3\n")
    fp = FileFingerprints()
    assert fp.fingerprint(a) == fp.fingerprint(b) == hashlib.sha256(b"x,y\n1,2\n").hexdigest()
    assert fp.fingerprint(c) != fp.fingerprint(a)


def test_an_unchanged_file_is_read_once(tmp_path: Path, reads: list[Path]) -> None:
    data = write(tmp_path / "data.csv", b"1,2,3\n")
    fp = FileFingerprints()
    first = fp.fingerprint(data)
    assert fp.fingerprint(data) == first
    assert fp.fingerprint(tmp_path / "." / "data.csv") == first  # the same file, resolved
    assert reads == [data.resolve()]


def test_a_rewrite_is_detected(tmp_path: Path) -> None:
    data = write(tmp_path / "data.csv", b"1,2,3\n")
    fp = FileFingerprints()
    before = fp.fingerprint(data)
    # Same size, new content, a new (but not racy) mtime: what any ordinary rewrite does.
    write(data, b"4,5,6\n", age_ns=AN_HOUR_NS // 2)
    after = fp.fingerprint(data)
    assert after != before
    assert after == hashlib.sha256(b"4,5,6\n").hexdigest()


def test_a_file_modified_within_the_racy_window_is_not_remembered(
    tmp_path: Path, reads: list[Path]
) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(b"fresh\n")  # mtime: now
    fp = FileFingerprints()
    assert fp.fingerprint(data) == fp.fingerprint(data)
    assert len(reads) == 2  # each call re-read it: a same-size rewrite this tick would show
    # Rewritten within the same mtime tick, same size: still seen, nothing was remembered.
    stamp = data.stat().st_mtime_ns
    data.write_bytes(b"again\n")
    os.utime(data, ns=(stamp, stamp))
    assert fp.fingerprint(data) == hashlib.sha256(b"again\n").hexdigest()
    # Once it is old enough, the digest is remembered.
    write(data, b"again\n")
    fp.fingerprint(data)
    fp.fingerprint(data)
    assert len(reads) == 4


def test_the_memo_survives_a_new_instance(tmp_path: Path, reads: list[Path]) -> None:
    data = write(tmp_path / "big.parquet", b"PAR1" * 1000)
    memo = tmp_path / "state" / "fingerprints.json"
    first = FileFingerprints(memo)
    digest = first.fingerprint(data)
    first.save()
    assert memo.is_file()
    assert [p.name for p in memo.parent.iterdir()] == ["fingerprints.json"]  # no temp left
    reads.clear()
    second = FileFingerprints(memo)
    assert second.fingerprint(data) == digest
    assert reads == []  # answered from the saved memo, the file was not read


def test_save_without_a_path_is_a_no_op(tmp_path: Path) -> None:
    fp = FileFingerprints()
    fp.fingerprint(write(tmp_path / "a", b"a"))
    fp.save()
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


@pytest.mark.parametrize(
    "content",
    ["not json at all {", json.dumps([1, 2]), json.dumps({"format": 1, "entries": {"x": 5}})],
)
def test_a_corrupt_memo_is_ignored(tmp_path: Path, content: str) -> None:
    memo = tmp_path / "fingerprints.json"
    memo.write_text(content)
    data = write(tmp_path / "data.csv", b"1\n")
    fp = FileFingerprints(memo)
    assert fp.fingerprint(data) == hashlib.sha256(b"1\n").hexdigest()
    fp.save()  # replaced by a valid memo
    assert FileFingerprints(memo).fingerprint(data) == hashlib.sha256(b"1\n").hexdigest()
    assert json.loads(memo.read_text())["format"] == fingerprints.MEMO_FORMAT


def test_a_folder_hashes_its_visible_files_by_name_and_content(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset.parquet"
    write(dataset / "part-0.parquet", b"zero")
    write(dataset / "year=2024" / "part-1.parquet", b"one")
    fp = FileFingerprints()
    digest = fp.fingerprint(dataset)
    assert len(digest) == 64

    # Hidden files and folders (.DS_Store, Spark's .crc files, .ipynb_checkpoints) do not count.
    write(dataset / ".DS_Store", b"finder")
    write(dataset / ".checkpoints" / "part-0.parquet", b"old")
    assert fp.fingerprint(dataset) == digest

    # A copy elsewhere has the same fingerprint.
    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    assert fp.fingerprint(copy) == digest

    write(dataset / "year=2024" / "part-1.parquet", b"ONE", age_ns=AN_HOUR_NS // 2)
    changed = fp.fingerprint(dataset)
    assert changed != digest
    (dataset / "part-0.parquet").rename(dataset / "part-9.parquet")
    assert fp.fingerprint(dataset) not in (digest, changed)  # names count too
    write(dataset / "part-2.parquet", b"two")
    assert fp.fingerprint(dataset) not in (digest, changed)


def test_a_missing_path_names_itself(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        FileFingerprints().fingerprint(missing)


def test_concurrent_fingerprints_agree(tmp_path: Path) -> None:
    files = [write(tmp_path / f"f{i}.bin", bytes([i]) * 10_000) for i in range(20)]
    expected = [hashlib.sha256(bytes([i]) * 10_000).hexdigest() for i in range(20)]
    fp = FileFingerprints(tmp_path / "memo.json")
    results: list[list[str]] = []

    def work() -> None:
        results.append([fp.fingerprint(f) for f in files])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 8
    fp.save()
    assert len(json.loads((tmp_path / "memo.json").read_text())["entries"]) == 20
