"""Timing helpers shared by the benchmarks: interleaved sampling and percentiles."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

WARMUP = 50


@dataclass(frozen=True)
class LatencyRow:
    name: str
    p50_ms: float
    p99_ms: float
    target_p50_ms: float | None = None


def row(name: str, samples_ns: list[int], target_p50_ms: float | None = None) -> LatencyRow:
    cuts = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return LatencyRow(name, cuts[49] / 1e6, cuts[98] / 1e6, target_p50_ms)


def time_calls(*calls: Callable[[], object], rounds: int) -> list[list[int]]:
    """Nanoseconds per call for each of `calls`, taken in turn each round, so drift (CPU
    frequency, other load) hits them alike."""
    for _ in range(WARMUP):
        for call in calls:
            call()
    samples: list[list[int]] = [[] for _ in calls]
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for call, taken in zip(calls, samples, strict=True):
            start = clock()
            result = call()
            taken.append(clock() - start)
            del result  # freeing the caller's copy of a result is not part of the call
    return samples
