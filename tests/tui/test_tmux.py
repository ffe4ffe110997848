"""`workbench tui` as a person runs it: the real command in a real terminal (a tmux pane on a
private tmux server), driven by keystrokes and read back from the screen while a workflow runs
on the local workbench it starts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from tui.keys import APP, keys_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud_detection.yaml"
DATA = "data/transactions.csv"  # where the example reads it, relative to the spec's folder

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

WIDTH, HEIGHT = 160, 45
EXITED = "workbench tui exited with status "
DIALOG = "Submit a workflow file (.yaml, .yml or .json)"


class Tmux:
    """One session on a tmux server of its own (`-L`): never the user's server or config."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"workbench-test-{uuid.uuid4().hex[:12]}"
        self.session = "tui"
        self.env = env

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
            env=self.env,
        )

    def start(self, command: list[str], cwd: Path) -> None:
        # remain-on-exit keeps the pane (and what the process printed last) after it ends.
        self.tmux(
            "new-session", "-d", "-s", self.session, "-x", str(WIDTH), "-y", str(HEIGHT),
            "-c", str(cwd), shlex.join(command),
            ";", "set-option", "-t", self.session, "remain-on-exit", "on",
        )  # fmt: skip

    def pane(self, history: bool = False) -> str:
        """The screen's text (with `history`, also what scrolled off its top)."""
        since = ["-S", "-"] if history else []
        shown = self.tmux("capture-pane", "-p", *since, "-t", self.session, check=False)
        return shown.stdout if shown.returncode == 0 else f"(no pane: {shown.stderr.strip()})"

    def info(self, fmt: str) -> str:
        return self.tmux("display-message", "-p", "-t", self.session, fmt).stdout.strip()

    def keys(self, *keys: str) -> None:
        """Named keys (Enter, Escape, C-u) or single characters, each its own keystroke."""
        for key in keys:
            self.tmux("send-keys", "-t", self.session, key)
            time.sleep(0.05)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.session, "-l", text)

    def kill(self) -> None:
        """Stop this tmux server (and what runs in it) and remove its socket file."""
        socket = self.tmux("display-message", "-p", "#{socket_path}", check=False).stdout.strip()
        self.tmux("kill-server", check=False)
        if socket:
            Path(socket).unlink(missing_ok=True)


def wait_until(
    pane: Tmux,
    ok: Callable[[str], bool],
    what: str,
    timeout: float = 15.0,
    *,
    history: bool = False,
) -> str:
    """Poll the screen until `ok(screen text)`; fail with what was awaited and the last screen."""
    deadline = time.monotonic() + timeout
    while True:
        text = pane.pane(history)
        if ok(text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout:.0f}s the terminal never showed {what}; it shows:\n{text}")
        time.sleep(0.2)


def wait_for_text(pane: Tmux, text: str, timeout: float = 15.0) -> str:
    return wait_until(pane, lambda screen: text in screen, repr(text), timeout)


def wait_gone(pane: Tmux, text: str, timeout: float = 10.0) -> str:
    return wait_until(pane, lambda screen: text not in screen, f"{text!r} go away", timeout)


def execution_rows(screen: str) -> list[str]:
    """The Workflows table's rows (a notification naming an execution is not one)."""
    return re.findall(r"^[│ ]*(fraud_detection-[0-9a-f]+) +Fraud detection ", screen, re.M)


def row_of(screen: str, execution_id: str) -> str:
    rows = (ln for ln in screen.splitlines() if re.match(rf"^[│ ]*{execution_id} ", ln))
    return next(rows, "")


def succeeded(screen: str) -> bool:
    """The one execution's row says succeeded (a failed or cancelled one fails at once)."""
    rows = execution_rows(screen)
    if len(rows) != 1:
        return False
    row = row_of(screen, rows[0])
    if "failed" in row or "cancelled" in row:
        pytest.fail(f"the workflow did not succeed:\n{screen}")
    return "✔ succeeded" in row


def footer(screen: str) -> str:
    return screen.rstrip().splitlines()[-1] if screen.strip() else ""


def wait_for_footer(pane: Tmux, scope: str, timeout: float = 15.0) -> str:
    """Until the footer names every key of `scope` it shows (as tui.keys declares them); Enter
    is the focused table's own key there (open the row), which the footer does not show."""
    words = [k.label or k.description for k in keys_for(scope) if k.footer and k.key != "enter"]
    return wait_until(
        pane, lambda s: all(w in footer(s) for w in words), f"the footer with {words}", timeout
    )


def escape(pane: Tmux) -> None:
    """Esc alone: a key sent right after it would read as Alt+key."""
    pane.keys("Escape")
    time.sleep(0.3)


def last_event(screen: str) -> str:
    """The newest line of the Events log (it follows the stream), without its time."""
    lines = re.findall(r"^[│ ]*\d\d:\d\d:\d\d (.*?)[ │]*$", screen, re.M)
    return lines[-1] if lines else ""


def tui_env(tmp_path: Path) -> dict[str, str]:
    """The user's environment without any workbench or tmux settings, state kept in tmp_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKBENCH_", "TMUX", "TEXTUAL")) and k != "NO_COLOR"
    }
    env.update(
        WORKBENCH_CACHE_DIR=str(tmp_path / "cache"),
        WORKBENCH_CACHE_KEY_FILE=str(tmp_path / "cache.key"),
        WORKBENCH_HOME=str(tmp_path / ".workbench"),
        WORKBENCH_WORKERS="1",
        TERM="xterm-256color",
    )
    return env


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    """The fraud example with a small data file next to it (its data path is relative)."""
    spec = tmp_path / EXAMPLE.name
    shutil.copy(EXAMPLE, spec)
    made = subprocess.run(
        [sys.executable, "-m", "workbench", "datasets", "fraud", DATA, "--rows", "2000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=tui_env(tmp_path),
    )
    assert made.returncode == 0, made.stderr
    return spec


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Tmux]:
    """`workbench tui` running in a 160x45 tmux pane, its footer drawn."""
    if shutil.which("tmux") is None:  # never skipped: CI must run it
        pytest.fail("tmux is not installed: `make services` (part of `make test`) installs it")
    env = tui_env(tmp_path)
    pane = Tmux(env)
    # TERM is set on the command (tmux sets its own in the pane). A shell runs the UI and says
    # how it ended: tmux itself does not always reap the pane's process, nor report its status.
    command = ["sh", "-c", f'env TERM=xterm-256color "$@"; echo "{EXITED}$?"', "sh"]
    command += [sys.executable, "-m", "workbench", "tui"]
    pane.start(command, cwd=tmp_path)
    try:
        wait_for_footer(pane, APP, timeout=30)  # the UI is up
        yield pane
    finally:
        pane.kill()


def test_tui_submits_runs_and_shows_a_workflow_in_a_terminal(
    terminal: Tmux, workflow: Path
) -> None:
    started = time.monotonic()
    tasks = {t["task_id"]: t["task_type"] for t in yaml.safe_load(workflow.read_text())["tasks"]}
    tui = psutil.Process(int(terminal.info("#{pane_pid}"))).children()[0]  # the shell's child
    screen = terminal.pane()
    assert "Workbench — local (no servers)" in screen, screen
    # The Workflows screen, its own keys in the footer next to the app's.
    assert "execution" in screen, screen
    wait_for_footer(terminal, "workflows")

    # Submit through the dialog (a path relative to where the UI was started).
    terminal.keys("s")
    wait_for_text(terminal, DIALOG)
    terminal.type(workflow.name)
    terminal.keys("Enter")
    wait_gone(terminal, DIALOG, timeout=30)

    # Workflows: the execution's row goes to succeeded with all its tasks done.
    screen = wait_until(terminal, succeeded, "the execution's row with ✔ succeeded", timeout=45)
    execution_id = execution_rows(screen)[0]
    row = row_of(screen, execution_id)
    assert f"{len(tasks)}/{len(tasks)}" in row and "100%" in row, row
    workers = tui.children(recursive=True)

    # Its DAG: every task, with its type, succeeded; Esc goes back to the list.
    terminal.keys("Enter")

    def every_task_succeeded(s: str) -> bool:
        return f"{execution_id}  ✔ succeeded" in s and all(
            re.search(rf"\b{task_id}\b.* {task_type} +✔ succeeded", s)
            for task_id, task_type in tasks.items()
        )

    wait_until(terminal, every_task_succeeded, f"the DAG of {execution_id}, all done")
    wait_for_footer(terminal, "execution")
    escape(terminal)
    wait_until(terminal, lambda s: bool(execution_rows(s)), "the Workflows list after Esc")

    # Events: the workflow finished, and nothing came after it (the log follows the stream).
    terminal.keys("5")
    screen = wait_until(
        terminal,
        lambda s: any("workflow.finished" in ln and execution_id in ln for ln in s.splitlines()),
        f"a workflow.finished event of {execution_id}",
    )
    assert last_event(screen).startswith("workflow.finished"), screen

    # A path that does not exist: the dialog says so, stays open and submits nothing.
    terminal.keys("s")
    wait_for_text(terminal, DIALOG)
    terminal.type("no-such-workflow.yaml")
    terminal.keys("Enter")
    screen = wait_for_text(terminal, "file not found")
    assert "nothing was run" in screen and "no-such-workflow.yaml" in screen, screen
    escape(terminal)
    wait_gone(terminal, DIALOG)
    time.sleep(0.5)  # time for a wrongly submitted run to show
    screen = terminal.pane()
    newest = last_event(screen)  # still the Events screen
    assert newest.startswith("workflow.finished") and execution_id in newest, screen
    terminal.keys("2")
    screen = wait_until(terminal, lambda s: bool(execution_rows(s)), "the Workflows list")
    assert execution_rows(screen) == [execution_id], f"a second execution:\n{screen}"

    # Quit: the process ends cleanly, with no traceback, and takes its Dask workers with it.
    terminal.keys("q")
    screen = wait_until(terminal, lambda s: EXITED in s, "the UI's exit", 30, history=True)
    assert f"{EXITED}0" in screen, screen
    assert "Traceback" not in screen and "Error" not in screen, screen
    _, alive = psutil.wait_procs([tui, *workers], timeout=15)
    assert not alive, f"still running after the UI quit: {alive}"
    assert time.monotonic() - started < 60, "the terminal test should stay under a minute"
