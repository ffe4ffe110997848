"""Starting, finding and stopping the dev cluster's server processes.

Each server runs in its own session (so its own process group): a Dask nanny's worker child or
anything else a server starts is reached by signalling the group, and Ctrl-C in the terminal
that ran `up` reaches none of them. Every process also carries a marker in its environment
(MARKER_ENV=<cluster id>), and its start time is recorded with its PID. On Linux a group
counts as ours only while its leader is that very process or a member carries the marker, so a
recorded PID that the system has since given to another program is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from workbench.devcluster.state import ProcessRecord

MARKER_ENV = "WORKBENCH_DEV_CLUSTER"
PROC = Path("/proc")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout):
            return True
    except OSError:
        return False


def spawn(
    command: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Start `command` detached (own session, no stdin), stdout and stderr to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot): with the PID, it names one process for
    good. None without /proc, or when it is gone."""
    fields = _stat(PROC / str(pid))
    return int(fields[19]) if fields else None


def _stat(entry: Path) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; None when unreadable."""
    try:
        # The command name (field 2) may hold spaces: the fields after its ')' are fixed.
        return (entry / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(record: ProcessRecord, marker: str) -> list[int] | None:
    """The live processes of `record`'s group that are ours: its leader while it is the very
    process started (same start time), and any member carrying the marker (a child left
    behind). None where there is no /proc to look in."""
    if not PROC.is_dir():
        return None
    wanted = f"{MARKER_ENV}={marker}".encode()
    members = []
    for entry in PROC.iterdir():
        fields = _stat(entry) if entry.name.isdigit() else None
        if fields is None or fields[0] == "Z" or fields[2] != str(record.pgid):
            continue
        pid = int(entry.name)
        if pid == record.pid and record.started is not None and fields[19] == str(record.started):
            members.append(pid)  # redis-server rewrites its environment: known by start time
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or another user's
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                members.append(pid)
    return members


def group_alive(record: ProcessRecord, marker: str) -> bool:
    members = group_members(record, marker)
    if members is not None:
        return bool(members)
    try:  # no /proc (macOS): the group exists, trusted to be ours
        os.killpg(record.pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def signal_group(record: ProcessRecord, marker: str, sig: int) -> None:
    if group_alive(record, marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pgid, sig)


def stop_groups(
    records: Iterable[ProcessRecord],
    marker: str,
    grace_s: float,
    children: Iterable[subprocess.Popen[bytes]] = (),
) -> list[ProcessRecord]:
    """SIGTERM every group, SIGKILL those still alive after `grace_s`. `children` are the
    Popen handles this process holds, reaped as they exit. Returns the groups killed."""
    groups = [r for r in records if group_alive(r, marker)]
    handles = list(children)
    for record in groups:
        signal_group(record, marker, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while True:
        for handle in handles:
            handle.poll()  # reap: a zombie child would hold its PID
        left = [r for r in groups if group_alive(r, marker)]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for record in left:
        signal_group(record, marker, signal.SIGKILL)
    for handle in handles:
        with contextlib.suppress(subprocess.TimeoutExpired):
            handle.wait(timeout=5)
    return left


def tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
