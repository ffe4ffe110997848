"""The cache side of one execution: find the hits, claim the keys it computes, store results,
and record every task's key recipe in the ledger when the run ends (one write per run)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from workbench.cache.entry import CacheEntry
from workbench.cache.flight import Claim
from workbench.cache.ledger import LedgerRecord
from workbench.cache.result_cache import ResultCache
from workbench.dag.records import TaskRecord
from workbench.execution.cache_plan import TaskCachePlan

log = logging.getLogger(__name__)

# Backoff between attempts at writes that failed.
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 5.0


class RunCache:
    def __init__(
        self,
        cache: ResultCache,
        plans: Mapping[str, TaskCachePlan],
        workflow_id: str,
        execution_id: str,
        *,
        retry_s: float = 0.0,
    ) -> None:
        self.cache = cache
        self.plans = plans
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.hits: dict[str, CacheEntry] = {}
        self._claims: dict[str, Claim] = {}
        self._ledger: dict[str, LedgerRecord] = {}
        # Told which tasks' writes are over (stored or not): cluster mode commits a task's
        # completion only after its checkpoint is in.
        self.on_settled: Callable[[list[str]], None] | None = None
        self.retry_s = retry_s
        self._errors: dict[str, Exception] = {}

    async def resolve(self) -> dict[str, CacheEntry]:
        """Find every hit and claim every key this run will compute.

        Lookups run in parallel threads (verifying a large entry is hashing, which releases
        the GIL). Claims are taken in one global order (sorted keys), and a run waits at the
        first key another execution is computing before it takes the next, so two runs never
        wait on each other; after a wait the key is looked up again.
        """
        readers = [tid for tid, plan in self.plans.items() if plan.read and plan.key]
        found = await asyncio.gather(*(asyncio.to_thread(self._lookup, tid) for tid in readers))
        for task_id, entry in zip(readers, found, strict=True):
            if entry is not None:
                self.hits[task_id] = entry
        claimed: set[str] = set()
        for task_id, plan in sorted(self.plans.items(), key=lambda item: item[1].key or ""):
            if plan.key is None or not plan.write or task_id in self.hits:
                continue
            while plan.key not in claimed:  # a twin task of this run shares the first claim
                claim = await self.cache.flights.claim(plan.key)
                if claim is not None:
                    # Another execution may have stored it between our lookup and our claim.
                    entry = await asyncio.to_thread(self._lookup, task_id) if plan.read else None
                    if entry is not None:
                        claim.release()
                        self.hits[task_id] = entry
                        break
                    self._claims[task_id] = claim
                    claimed.add(plan.key)
                    break
                log.info("task %r waits for another execution computing %s", task_id, plan.key)
                await self.cache.flights.wait(plan.key)
                entry = await asyncio.to_thread(self._lookup, task_id) if plan.read else None
                if entry is not None:
                    self.hits[task_id] = entry
                    break
        for task_id in self.hits:
            self._remember(task_id)
        return self.hits

    def _lookup(self, task_id: str) -> CacheEntry | None:
        plan = self.plans[task_id]
        assert plan.key is not None
        entry = self.cache.lookup(plan.key, plan.strategy)
        return entry if entry is not None and _artifacts_present(entry) else None

    def wants(self, task_id: str) -> bool:
        plan = self.plans.get(task_id)
        return plan is not None and plan.write and plan.key is not None

    async def store(
        self, done: Sequence[tuple[str, TaskRecord]], payloads: Sequence[bytes]
    ) -> None:
        """Write computed results (pickled by the workers). Writes that fail are tried again
        for up to `retry_s` (a Redis outage in a cluster: the checkpoint is what a failover
        resumes from), then given up: logged, never fatal. Claims are released once the
        entries are in, so waiters find them; `on_settled` hears of each task once."""
        waiting = dict(
            self._entry(task_id, record, payload)
            for (task_id, record), payload in zip(done, payloads, strict=True)
        )
        delay, deadline = RETRY_FIRST_S, time.monotonic() + self.retry_s
        while True:
            stored = await asyncio.to_thread(self._write, list(waiting.items()))
            self._settle(stored)
            waiting = {tid: entry for tid, entry in waiting.items() if tid not in stored}
            if not waiting or time.monotonic() + delay > deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
        for task_id in waiting:
            log.warning("the result of task %r was not cached: %s", task_id, self._errors[task_id])
        self._settle(set(waiting), stored=False)

    def give_up(self, task_ids: Sequence[str]) -> None:
        """These results could not even be fetched for the cache: settle them unstored."""
        self._settle(set(task_ids), stored=False)

    def _settle(self, task_ids: set[str], *, stored: bool = True) -> None:
        for task_id in task_ids:
            if stored:
                self._remember(task_id)
            self.release(task_id)
        if task_ids and self.on_settled is not None:
            self.on_settled(sorted(task_ids))

    def _entry(self, task_id: str, record: TaskRecord, payload: bytes) -> tuple[str, CacheEntry]:
        meta = {
            "key": self.plans[task_id].key,
            "workflow_id": self.workflow_id,
            "execution_id": self.execution_id,
            "task_id": task_id,
            "task_type": record.task_type,
            "created_at": time.time(),
            "duration_s": record.duration_s,
            "metrics": record.metrics,
            "artifacts": record.artifacts,
            "summary": record.summary,
        }
        return task_id, CacheEntry(result=payload, meta=meta)

    def _write(self, entries: Sequence[tuple[str, CacheEntry]]) -> set[str]:
        stored = set()
        for task_id, entry in entries:
            plan = self.plans[task_id]
            assert plan.key is not None
            try:
                self.cache.store(plan.key, plan.strategy, entry)
            except Exception as exc:
                self._errors[task_id] = exc
            else:
                stored.add(task_id)
        return stored

    def _remember(self, task_id: str) -> None:
        plan = self.plans[task_id]
        if plan.key is not None and plan.inputs is not None:
            self._ledger[task_id] = LedgerRecord(
                plan.key, plan.inputs, self.execution_id, time.time()
            )

    async def finish(self) -> None:
        """Release what is still claimed and write the ledger (it only feeds `explain`: a
        failure to write it is logged, never fatal)."""
        self.release_all()
        if not self._ledger:
            return
        records, self._ledger = self._ledger, {}
        try:
            await asyncio.to_thread(self.cache.ledger.record_many, self.workflow_id, records)
        except Exception as exc:
            log.warning("could not record the cache keys of %s: %s", self.execution_id, exc)

    def release(self, task_id: str) -> None:
        claim = self._claims.pop(task_id, None)
        if claim is not None:
            claim.release()

    def release_all(self) -> None:
        for task_id in list(self._claims):
            self.release(task_id)


def _artifacts_present(entry: CacheEntry) -> bool:
    """A hit whose files (predictions, reports) were deleted since is a miss: rerun, rewrite."""
    for value in entry.artifacts.values():
        path = Path(value)
        if path.is_absolute() and not path.exists():
            return False
    return True
