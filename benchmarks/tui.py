"""The terminal UI under a steady event load: event-to-screen latency, CPU and memory.

    .venv/bin/python benchmarks/tui.py [--rate 10000] [--seconds 10] [--tasks 50]
                                       [--screen all|workflows|execution|events]

The app (`WorkbenchApp`, headless, 160x50) runs on a real local workbench (`Backend.open()`,
no servers; the Dask cluster is never started). A publisher thread sends one synthetic
execution's events through the workbench's own bus, the path every local event takes: bus ->
`BusSource` -> the watcher's thread -> `LiveFeed` -> the UI's loop -> redraw. First its
`workflow.submitted` and one `task.started` per task, then `task.progress` events (every tenth
a `task.metric`) at `--rate` events/s for `--seconds`, sent in bursts every millisecond so the
rate holds, each stamped with time.time() as it is published.

An event's latency runs from that stamp until the app's `on_frame` hook, which the app calls
once the screen has been redrawn with the batch holding the event (or, when the batch changed
nothing on screen, once the screen is idle); it is split at the moment the event reached the
LiveFeed. Each screen is measured in a fresh app: the workflows list, the execution's DAG
(`ExecutionScreen`) and the event stream. CPU is the process's (user + system) over the run,
in % of one core, split by thread (the UI's loop, the watcher, the publisher, the rest);
memory is RSS before the app starts and its peak, sampled every 100 ms.
Headless, Textual composes every frame but does not encode it for a terminal nor write it.
What the app sets for the whole interpreter holds for the publisher's thread too, as for any
thread of the app: its start-up objects frozen, full garbage collections run only by the UI
between frames.

Figures are printed, never asserted. The exit status is 1 when the pipeline is broken: nothing
was drawn, or the screen does not end up showing the last events (after the run, one final
progress event per task is sent and each screen is checked for exactly those values; the event
screen's last line on screen must be the last event).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # workbench and tui, from a plain checkout

if TYPE_CHECKING:
    from tui.app import WorkbenchApp
    from tui.feed import Batch
    from tui.widgets import LiveTable
    from workbench.events.bus import InProcessBus
    from workbench.events.models import Event

SCREENS = ("workflows", "execution", "events")
TARGET_P99_MS = 50.0  # three frames at 60 Hz
TICK_S = 0.001  # the publisher sends what is due every millisecond
SAMPLE_S = 0.1  # RSS sampling
METRIC_EVERY = 10  # one task.metric per this many events, the rest task.progress
DRAIN_TIMEOUT_S = 30.0  # how long the screen may take to show the last event sent
WORKFLOW_ID = "bench-tui"


# -- the load ---------------------------------------------------------------------------------


@dataclass
class Expected:
    """What the screen must show once the final events are drawn."""

    progress: dict[str, float]
    message: dict[str, str]
    last_line: str  # the event screen's last line contains this


class Publisher:
    """One synthetic execution's events, published through the real bus, seq 1, 2, 3, ..."""

    def __init__(self, bus: InProcessBus, execution_id: str, tasks: int) -> None:
        self.bus = bus
        self.execution_id = execution_id
        self.tasks = [f"task-{n:03d}" for n in range(tasks)]
        self.seq = 0
        self.submitted = self._event("workflow.submitted", data=self._workflow())
        # The steady stream, filled in by `stream` (on its own thread).
        self.first_seq = self.last_seq = 0
        self.published = 0
        self.wall_s = self.cpu_s = 0.0

    def _workflow(self) -> dict[str, object]:
        return {"name": "tui benchmark", "tasks": dict.fromkeys(self.tasks, "train")}

    def _event(self, kind: str, **fields: object) -> Event:
        from workbench.events.models import Event, EventType

        self.seq += 1
        return Event(
            type=EventType(kind),
            execution_id=self.execution_id,
            workflow_id=WORKFLOW_ID,
            instance_id="bench-publisher",
            seq=self.seq,
            timestamp=time.time(),
            **fields,
        )

    def announce(self) -> None:
        """The submitted event, again and again until the watcher has it (it drops repeats)."""
        self.bus.publish(self.submitted)

    def start_tasks(self) -> None:
        for task_id in self.tasks:
            self.bus.publish(self._event("task.started", task_id=task_id, status="running"))

    def _load(self, n: int) -> Event:
        task_id = self.tasks[n % len(self.tasks)]
        if n % METRIC_EVERY == 0:
            return self._event("task.metric", task_id=task_id, metrics={"loss": 1.0 / (n + 1)})
        step = n // len(self.tasks)
        return self._event(
            "task.progress", task_id=task_id, progress=step % 1000 / 1000, message=f"step {step}"
        )

    def stream(self, rate: float, seconds: float) -> None:
        """`rate` events/s for `seconds` (on the publisher's thread)."""
        total = int(rate * seconds)
        self.first_seq = self.seq + 1
        cpu, began = time.thread_time(), time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - began) * rate) + 1)
            while sent < due:
                self.bus.publish(self._load(sent))
                sent += 1
            time.sleep(TICK_S)
        self.wall_s, self.cpu_s = time.perf_counter() - began, time.thread_time() - cpu
        self.published, self.last_seq = total, self.seq

    def finish(self) -> Expected:
        """One last progress event per task, with values none had before."""
        expected = Expected({}, {}, "")
        for n, task_id in enumerate(self.tasks):
            progress = round(0.5 + n / (4 * len(self.tasks)), 4)
            event = self._event(
                "task.progress", task_id=task_id, progress=progress, message=f"final {self.seq + 1}"
            )
            self.bus.publish(event)
            expected.progress[task_id] = progress
            expected.message[task_id] = event.message or ""
            expected.last_line = f"{task_id} {progress:.0%} {event.message}"
        return expected


# -- what the screen showed -------------------------------------------------------------------


@dataclass
class Recorder:
    """`app.on_frame`: every event of the steady stream drawn, and when."""

    execution_id: str
    first_seq: int = 0  # of the steady stream; 0 until it starts
    last_seq: int = 0
    # Arrays, not lists: a list of a million floats is walked by every full collection of the
    # garbage collector, and the app would pay for the benchmark's bookkeeping.
    latency_s: array[float] = field(default_factory=lambda: array("d"))  # published -> drawn
    to_feed_s: array[float] = field(default_factory=lambda: array("d"))  # published -> LiveFeed
    frames: int = 0  # frames with steady-stream events
    feed_dropped: int = 0  # events the LiveFeed left out of a batch (a burst too long)
    seen_seq: int = 0  # highest seq of the execution drawn so far
    first_frame_at: float = 0.0
    last_frame_at: float = 0.0
    quiet_since: float = field(default_factory=time.monotonic)  # the last frame of any kind

    def drained(self, last_seq: int, quiet_s: float = 1.0) -> bool:
        """The stream's last event drawn, or nothing drawn for `quiet_s` (the bus source drops
        the newest events when the watcher is too far behind: the last may never come)."""
        return self.seen_seq >= last_seq or time.monotonic() - self.quiet_since >= quiet_s

    def on_frame(self, batch: Batch) -> None:
        now = time.time()
        self.quiet_since = time.monotonic()
        steady = False
        for event, received in zip(batch.events, batch.received_at, strict=True):
            if event.execution_id != self.execution_id:
                continue
            self.seen_seq = max(self.seen_seq, event.seq)
            if self.first_seq and self.first_seq <= event.seq <= (self.last_seq or event.seq):
                self.latency_s.append(now - event.timestamp)
                self.to_feed_s.append(received - event.timestamp)
                steady = True
        if self.first_seq:
            self.feed_dropped += batch.dropped
        if steady:
            self.frames += 1
            self.first_frame_at = self.first_frame_at or now
            self.last_frame_at = now


class Sampler:
    """RSS every SAMPLE_S, on a thread of its own; CPU by thread between `start` and `stop`."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._cpu_at = 0.0
        self._threads_at: dict[int, float] = {}
        self.cpu_s = 0.0
        self.thread_cpu_s: dict[int, float] = {}

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def _threads(self) -> dict[int, float]:
        return {t.id: t.user_time + t.system_time for t in self.process.threads()}

    def start(self) -> None:
        self.peak_rss = self.process.memory_info().rss
        self._cpu_at, self._threads_at = self._cpu(), self._threads()
        self._thread.start()

    def stop(self) -> None:
        self.cpu_s = self._cpu() - self._cpu_at
        now = self._threads()
        self.thread_cpu_s = {tid: cpu - self._threads_at.get(tid, 0.0) for tid, cpu in now.items()}
        self._stop.set()
        self._thread.join()
        self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)


@dataclass
class PhaseResult:
    screen: str
    recorder: Recorder
    publisher: Publisher
    wall_s: float  # from the first event of the stream until its last was drawn
    cpu_s: float
    cpu_by_thread_s: dict[str, float]
    rss_start: int
    rss_peak: int
    problems: list[str]
    profile: cProfile.Profile | None = None


# -- one screen -------------------------------------------------------------------------------


async def until(condition: Callable[[], bool], timeout: float, poll_s: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll_s)
    return True


def split_cpu(sampler: Sampler, publisher: Publisher) -> dict[str, float]:
    """CPU seconds of the UI's loop, the watcher, the publisher (its own count: its thread has
    ended) and the rest (Textual's workers, the workbench's portal, the sampler)."""
    watcher = next((t for t in threading.enumerate() if t.name == "workbench-watch"), None)
    ui_id = threading.main_thread().native_id
    split = {
        "UI loop": sampler.thread_cpu_s.get(ui_id or 0, 0.0),
        "watcher": sampler.thread_cpu_s.get(watcher.native_id or 0, 0.0) if watcher else 0.0,
        "publisher": publisher.cpu_s,
    }
    split["other threads"] = max(0.0, sampler.cpu_s - sum(split.values()))
    return split


async def run_screen(screen: str, args: argparse.Namespace, number: int) -> PhaseResult:
    from tui.app import WorkbenchApp
    from tui.backend import Backend

    execution_id = f"bench-tui-{number}-{screen}"
    backend = Backend.open()
    try:
        app = WorkbenchApp(backend, mode="events" if screen == "events" else "workflows")
        recorder = Recorder(execution_id)
        app.on_frame = recorder.on_frame
        publisher = Publisher(backend.workbench.orchestrator.bus, execution_id, args.tasks)
        sampler = Sampler()
        rss_start = sampler.process.memory_info().rss
        async with app.run_test(headless=True, size=(160, 50)):
            await set_up(app, screen, publisher, recorder)
            recorder.first_seq = publisher.seq + 1
            profiler = cProfile.Profile() if args.profile else None
            sampler.start()
            began = time.perf_counter()
            if profiler is not None:
                profiler.enable()  # this thread only: the UI's loop
            streaming = threading.Thread(
                target=publisher.stream, args=(args.rate, args.seconds), name="bench-publisher"
            )
            streaming.start()
            await until(lambda: not streaming.is_alive(), args.seconds * 10 + 60, poll_s=0.05)
            recorder.last_seq = publisher.last_seq
            await until(lambda: recorder.drained(publisher.last_seq), DRAIN_TIMEOUT_S)
            wall_s = time.perf_counter() - began
            if profiler is not None:
                profiler.disable()
            sampler.stop()
            cpu_by_thread = split_cpu(sampler, publisher)
            expected = publisher.finish()
            shown = await until(lambda: recorder.seen_seq >= publisher.seq, DRAIN_TIMEOUT_S)
            await asyncio.sleep(0.1)  # anything still due is drawn (there should be nothing)
            problems = check(app, screen, execution_id, expected) if shown else []
            if not shown:
                problems.append("the final events never reached the screen")
            if not recorder.frames:
                problems.append("no frame was drawn with the stream's events")
    finally:
        backend.close()
    return PhaseResult(
        screen,
        recorder,
        publisher,
        wall_s,
        sampler.cpu_s,
        cpu_by_thread,
        rss_start,
        sampler.peak_rss,
        problems,
        profiler,
    )


async def set_up(app: WorkbenchApp, screen: str, publisher: Publisher, recorder: Recorder) -> None:
    """The execution known to the app (and in front, for the DAG screen), its tasks started."""
    from tui.screens.execution import ExecutionScreen

    async def announced() -> bool:
        for _ in range(int(DRAIN_TIMEOUT_S / 0.05)):
            publisher.announce()  # until the watcher is subscribed and has it
            if await until(lambda: recorder.seen_seq >= 1, 0.05):
                return True
        return False

    if not await announced():
        raise SystemExit(f"{screen}: the submitted event never reached the screen")
    if screen == "execution":
        await app.push_screen(ExecutionScreen(publisher.execution_id))
    publisher.start_tasks()
    if not await until(lambda: recorder.seen_seq >= publisher.seq, DRAIN_TIMEOUT_S):
        raise SystemExit(f"{screen}: the task.started events never reached the screen")


# -- correctness ------------------------------------------------------------------------------


def check(app: WorkbenchApp, screen: str, execution_id: str, expected: Expected) -> list[str]:
    """What is wrong with the state and the screen after the final events; [] when nothing."""
    problems = check_state(app, execution_id, expected)
    checks = {"workflows": check_workflows, "execution": check_execution, "events": check_events}
    return problems + checks[screen](app, execution_id, expected)


def check_state(app: WorkbenchApp, execution_id: str, expected: Expected) -> list[str]:
    execution = app.state.executions.get(execution_id)
    if execution is None:
        return [f"the app does not know {execution_id}"]
    wrong = [
        task_id
        for task_id, progress in expected.progress.items()
        if (record := execution.tasks.get(task_id)) is None
        or record.progress != progress
        or record.message != expected.message[task_id]
    ]
    return [f"the app's state is stale for {len(wrong)} tasks, e.g. {wrong[0]}"] if wrong else []


def cell(table: LiveTable, row: str, column: str) -> str | None:
    """A cell's text; None when the table has no such row."""
    try:
        return str(table.get_cell(row, column))
    except KeyError:
        return None


def check_workflows(app: WorkbenchApp, execution_id: str, expected: Expected) -> list[str]:
    from tui import look
    from tui.widgets import LiveTable

    table = app.screen.query_one("#executions", LiveTable)
    shown = cell(table, execution_id, "progress")
    want = look.bar(sum(expected.progress.values()) / len(expected.progress)).plain
    return [] if shown == want else [f"workflows shows progress {shown!r}, not {want!r}"]


def check_execution(app: WorkbenchApp, execution_id: str, expected: Expected) -> list[str]:
    from textual.widgets import Static

    from tui import look
    from tui.screens.execution import ExecutionScreen
    from tui.widgets import LiveTable

    if not isinstance(app.screen, ExecutionScreen):
        return [f"the DAG screen is not in front ({type(app.screen).__name__} is)"]
    table = app.screen.query_one("#tasks", LiveTable)
    wrong = [
        task_id
        for task_id, progress in expected.progress.items()
        if cell(table, task_id, "progress") != look.bar(progress, 8).plain
    ]
    problems = [f"the DAG shows stale progress for {len(wrong)} tasks"] if wrong else []
    selected = next(iter(expected.message))  # the cursor is on the first row
    detail = plain(app.screen.query_one("#task-text", Static).content)
    if expected.message[selected] not in detail:
        problems.append(f"the task detail does not show {expected.message[selected]!r}")
    return problems


def plain(content: object) -> str:
    """The text of a Static's content (a Group of Texts, a Text or a string)."""
    from rich.console import Group

    if isinstance(content, Group):
        return "\n".join(plain(part) for part in content.renderables)
    return str(content)


def check_events(app: WorkbenchApp, execution_id: str, expected: Expected) -> list[str]:
    from tui.widgets import EventLog

    shown = [line for line in app.screen.query_one(EventLog).shown() if line]
    last = shown[-1] if shown else ""
    if expected.last_line in last:
        return []
    return [f"the event log's last line on screen is {last!r}, not the last event"]


# -- the report -------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def mib(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.0f} MiB"


def report(result: PhaseResult) -> None:
    rec, pub = result.recorder, result.publisher
    delivered = len(rec.latency_s)
    reached_feed = delivered + rec.feed_dropped
    print(f"\n== {result.screen} screen ==")
    print(
        f"published {pub.published:,} events in {pub.wall_s:.2f} s "
        f"({pub.published / pub.wall_s:,.0f}/s); drawn {delivered:,}; "
        f"lost before the feed {pub.published - reached_feed:,}, "
        f"left out of a batch {rec.feed_dropped:,}"
    )
    span = rec.last_frame_at - rec.first_frame_at
    fps = (rec.frames - 1) / span if rec.frames > 1 and span > 0 else float("nan")
    print(f"frames drawn with events: {rec.frames:,} ({fps:.1f}/s)")
    print(f"{'latency, ms':<30}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}")
    for name, values in (
        ("published -> screen", rec.latency_s),
        ("published -> LiveFeed", rec.to_feed_s),
    ):
        cuts = [quantile(values, q) * 1e3 for q in (50, 95, 99)]
        worst = max(values, default=float("nan")) * 1e3
        print(f"{name:<30}" + "".join(f"{v:>9.1f}" for v in (*cuts, worst)))
    cores = result.cpu_s / result.wall_s * 100
    split = ", ".join(
        f"{k} {v / result.wall_s * 100:.0f}%" for k, v in result.cpu_by_thread_s.items()
    )
    ui_side = (result.cpu_s - result.cpu_by_thread_s["publisher"]) / result.wall_s * 100
    print(f"CPU: {cores:.0f}% of a core over {result.wall_s:.1f} s ({split})")
    print(f"CPU without the publisher (UI + watcher + the rest): {ui_side:.0f}% of a core")
    print(f"memory: RSS {mib(result.rss_start)} at start, peak {mib(result.rss_peak)}")
    p99 = quantile(rec.latency_s, 99) * 1e3
    verdict = "met" if p99 <= TARGET_P99_MS else "NOT met"
    print(f"p99 event-to-screen {p99:.1f} ms (target <= {TARGET_P99_MS:g} ms): {verdict}")
    for problem in result.problems:
        print(f"BROKEN: {problem}")
    if result.profile is not None:
        print("\nthe UI loop's thread, by own time:")
        pstats.Stats(result.profile, stream=sys.stdout).sort_stats("tottime").print_stats(20)
        print("by cumulative time:")
        pstats.Stats(result.profile, stream=sys.stdout).sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000, help="Events per second.")
    parser.add_argument("--seconds", type=float, default=10.0, help="How long, per screen.")
    parser.add_argument("--tasks", type=int, default=50, help="Tasks of the execution.")
    parser.add_argument("--screen", choices=(*SCREENS, "all"), default="all")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the UI's loop (slows it) and print it."
    )
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.tasks < 1:
        parser.error("--rate and --seconds must be positive, --tasks at least 1")

    scratch = tempfile.TemporaryDirectory(prefix="bench-tui-")
    os.environ["WORKBENCH_CACHE_DIR"] = os.path.join(scratch.name, "cache")  # not the user's
    os.environ["WORKBENCH_HOME"] = os.path.join(scratch.name, "home")
    screens = SCREENS if args.screen == "all" else (args.screen,)
    print(
        f"{args.rate:,.0f} events/s for {args.seconds:g} s per screen, one execution of "
        f"{args.tasks} tasks, headless 160x50, {psutil.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} (other processes skew the figures)"
    )
    broken = False
    with scratch:
        for number, screen in enumerate(screens, 1):
            result = asyncio.run(run_screen(screen, args, number))
            report(result)
            broken = broken or bool(result.problems)
    if broken:
        print("\nthe pipeline is broken: see BROKEN above", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
