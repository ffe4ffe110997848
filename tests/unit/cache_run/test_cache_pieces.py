"""Entries, the ledger and single flight, without servers."""

from __future__ import annotations

import asyncio

import pytest

from workbench.cache.entry import CacheEntry, decode_entry, encode_entry
from workbench.cache.flight import LocalFlights
from workbench.cache.keys import KeyInputs
from workbench.cache.ledger import DiskLedger, LedgerRecord, MemoryLedger
from workbench.errors import CacheIntegrityError


def test_entry_round_trip_keeps_header_and_bytes() -> None:
    entry = CacheEntry(result=b"\x00\x01pickled", meta={"metrics": {"f1": 0.8}, "key": "k"})
    back = decode_entry(encode_entry(entry))
    assert back == entry
    assert back.metrics == {"f1": 0.8}


@pytest.mark.parametrize("blob", [b"", b"\x00\x00", b"\x00\x00\x00\x09{}", b"\x00\x00\x00\x02{x"])
def test_damaged_entries_are_integrity_errors(blob: bytes) -> None:
    with pytest.raises(CacheIntegrityError):
        decode_entry(blob)


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_ledger_keeps_the_last_record_per_task(kind: str, tmp_path) -> None:
    ledger = DiskLedger(tmp_path / "ledger") if kind == "disk" else MemoryLedger()
    inputs = KeyInputs(task_type="t", code="c", params={"a": 1})
    assert ledger.last("wf", "a") is None
    ledger.record_many("wf", {"a": LedgerRecord("k1", inputs, "run-1", 1.0)})
    ledger.record_many("wf", {"a": LedgerRecord("k2", inputs, "run-2", 2.0)})
    ledger.record_many("wf", {"b": LedgerRecord("k3", inputs, "run-2", 2.0)})
    assert ledger.last("wf", "a") == LedgerRecord("k2", inputs, "run-2", 2.0)
    assert ledger.last("other", "a") is None


def test_damaged_ledger_file_means_no_history(tmp_path) -> None:
    (tmp_path / "wf.json").write_text("{not json")
    assert DiskLedger(tmp_path).last("wf", "a") is None


async def _flight_scenario() -> list[str]:
    flights = LocalFlights()
    log: list[str] = []

    async def execution(name: str) -> None:
        claim = await flights.claim("k")
        if claim is None:
            log.append(f"{name} waits")
            await flights.wait("k")
            log.append(f"{name} resumes")
            return
        log.append(f"{name} computes")
        await asyncio.sleep(0.05)
        claim.release()
        log.append(f"{name} done")

    await asyncio.gather(execution("a"), execution("b"), execution("c"))
    again = await flights.claim("k")
    assert again is not None, "a released key can be claimed again"
    return log


def test_single_flight_one_computes_others_wait() -> None:
    log = asyncio.run(_flight_scenario())
    assert log[:3] == ["a computes", "b waits", "c waits"]
    assert log.index("a done") < log.index("b resumes")
    assert log.count("a computes") + log.count("b computes") + log.count("c computes") == 1
