"""Process groups: found by marker or start time, never a stranger's; SIGKILL after the grace."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.devcluster.processes import (
    MARKER_ENV,
    group_alive,
    signal_group,
    spawn,
    start_time,
    stop_groups,
)
from workbench.devcluster.state import ProcessRecord, ProcessRole

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")

Started = list[subprocess.Popen[bytes]]
IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
# The leader starts a child in its group, then exits: the child is left behind.
LEAVE_CHILD = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; "
    "time.sleep(60)']); print('started', flush=True)"
)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:  # whatever a failed test left
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def launch(
    tmp_path: Path, code: str, marker: str | None, started: list[subprocess.Popen[bytes]]
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    env = dict(os.environ)
    if marker:
        env[MARKER_ENV] = marker
    process = spawn([sys.executable, "-c", code], tmp_path / "p.log", env, tmp_path)
    started.append(process)
    record = ProcessRecord(
        ProcessRole.WORKER,
        "p",
        process.pid,
        str(tmp_path / "p.log"),
        started=start_time(process.pid),
    )
    return process, record


def test_our_process_is_alive_until_stopped(tmp_path: Path, started: Started) -> None:
    process, record = launch(tmp_path, "import time; time.sleep(60)", "m1", started)
    assert os.getpgid(process.pid) == process.pid  # a group of its own
    assert group_alive(record, "m1")
    assert stop_groups([record], "m1", grace_s=5, children=[process]) == []
    assert process.returncode == -signal.SIGTERM
    assert not group_alive(record, "m1")


def test_sigterm_ignored_means_sigkill_after_the_grace(tmp_path: Path, started: Started) -> None:
    process, record = launch(tmp_path, IGNORE_TERM, "m2", started)
    time.sleep(0.5)  # let it install its handler
    began = time.monotonic()
    assert stop_groups([record], "m2", grace_s=0.5, children=[process]) == [record]
    assert process.returncode == -signal.SIGKILL
    assert time.monotonic() - began < 5


def test_a_reused_pid_is_not_ours(tmp_path: Path, started: Started) -> None:
    """Another program now holds the recorded PID: no marker, another start time."""
    process, record = launch(tmp_path, "import time; time.sleep(60)", None, started)
    assert record.started is not None
    stranger = ProcessRecord(record.role, record.name, record.pid, record.log, started=0)
    assert not group_alive(stranger, "m3")
    signal_group(stranger, "m3", signal.SIGKILL)
    time.sleep(0.2)
    assert process.poll() is None  # untouched


def test_a_child_left_in_the_group_is_found_and_stopped(tmp_path: Path, started: Started) -> None:
    process, record = launch(tmp_path, LEAVE_CHILD, "m4", started)
    process.wait(timeout=30)  # the leader is gone, its child is not
    assert group_alive(record, "m4")
    stop_groups([record], "m4", grace_s=5)
    deadline = time.monotonic() + 5
    while group_alive(record, "m4") and time.monotonic() < deadline:
        time.sleep(0.05)  # the orphan is reaped by init, not by us
    assert not group_alive(record, "m4")
