"""Children that a test interrupts with SIGINT, as Ctrl-C would."""

from __future__ import annotations

import signal
import subprocess

import psutil


def ctrl_c_works() -> None:
    """Popen's `preexec_fn`: SIGINT interrupts the child even where this test run was started
    in the background by a shell (`cmd &`), which ignores SIGINT for it; children inherit that,
    and Python installs no KeyboardInterrupt handler for a signal it finds ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Ctrl-C `proc` and take its output. If it has not stopped within `timeout`, it and its
    children are killed before the timeout is raised: a failing test leaves nothing running."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        raise


def kill_tree(proc: subprocess.Popen[str]) -> None:
    """SIGKILL `proc` and every process below it, and reap it."""
    if proc.poll() is None:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
    proc.communicate()
