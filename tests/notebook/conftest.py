"""The notebooks' tests. Browser fixtures: a private JupyterLab server over a temp copy of
notebooks/ and examples/, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, and this machine's
# closed network refuses its connections (the page's own localhost traffic as well).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
LAB_START_TIMEOUT_S = 60.0

# JupyterLab's user settings for the test server: the light theme (the screenshots), every
# cell in the DOM (windowing would drop off-screen outputs), no news or update checks (no
# network, and no toast over the widgets).
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Light", "adaptive-theme": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


class JupyterLab:
    """A running JupyterLab server: `url`, `token`, `root` (its notebooks folder), `log`."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, token: str, root: Path,
                 log: Path) -> None:  # fmt: skip
        self.process = process
        self.url = f"http://127.0.0.1:{port}/"
        self.token = token
        self.root = root
        self.log = log

    def notebook_url(self, name: str) -> str:
        # `reset`: a fresh workspace, not the tabs the last notebook left open.
        return f"{self.url}lab/tree/{name}?reset&token={self.token}"

    def api(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            f"{self.url}api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Every kernel shut down (and its Dask cluster with it): the next notebook gets the
        machine's CPUs to itself."""
        for kernel in self.api("kernels"):
            with contextlib.suppress(urllib.error.URLError):  # gone already
                self.api(f"kernels/{kernel['id']}", method="DELETE")

    def log_tail(self, limit: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-limit:]


def _wait_ready(lab: JupyterLab) -> None:
    deadline = time.monotonic() + LAB_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with status {lab.process.returncode}:\n{lab.log_tail()}"
            )
        try:
            lab.api("status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)  # polling interval, not a wait for an outcome
    raise RuntimeError(f"JupyterLab did not answer /api/status in {LAB_START_TIMEOUT_S:.0f}s:\n"
                       f"{lab.log_tail()}")  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    """The server, its kernels and what they started (Dask's nannies and workers), whatever
    state they are in. Kernels run in sessions of their own, so killing the server's process
    group would miss them: collect the whole tree first."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # the server shuts its kernels down itself
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    _, alive = psutil.wait_procs(tree, timeout=5)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of notebooks/ and examples/ side by side, so `../examples` resolves from the
    notebooks and nothing the notebooks write (data, outputs) lands in the repository."""
    if not NOTEBOOKS.is_dir():
        pytest.fail(f"{NOTEBOOKS} is missing: the browser test runs its notebooks", pytrace=False)
    root = tmp_path_factory.mktemp("lab")
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "data")
    shutil.copytree(NOTEBOOKS, root / "notebooks", ignore=ignore)
    shutil.copytree(ROOT / "examples", root / "examples", ignore=ignore)
    return root / "notebooks"


@pytest.fixture(scope="module")
def jupyter_lab(lab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """JupyterLab on a free localhost port with a token, its own settings, workspaces,
    runtime and config folders (never the user's), its log in a file; stopped with its kernels
    afterwards, whatever happens."""
    home = tmp_path_factory.mktemp("lab-home")
    settings = home / "settings"
    for plugin, values in LAB_SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        path = settings / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,  # the session's private workbench cache reaches the kernels too
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),  # kernel.json's "python"
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "IPYTHONDIR": str(home / "ipython"),
        "PYTHONUNBUFFERED": "1",
    }
    token = secrets.token_hex(16)
    log = home / "jupyterlab.log"
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={lab_root}",
                "--ServerApp.terminals_enabled=False",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--log-level=WARN",
                *(["--allow-root"] if os.geteuid() == 0 else []),  # containers run as root
            ],
            cwd=lab_root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    lab = JupyterLab(process, port, token, lab_root, log)
    try:
        _wait_ready(lab)
        yield lab
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (no browser of Playwright's own)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make services` installs it (apt-get install chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh page (its own context: no cookies or storage shared) in the light colour
    scheme, at a laptop's viewport."""
    context = chromium.new_context(viewport=VIEWPORT, color_scheme="light")
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: `WORKBENCH_SCREENSHOTS=docs/screenshots` regenerates the README's;
    otherwise a temp folder, so a normal test run leaves the repository clean."""
    target = os.environ.get("WORKBENCH_SCREENSHOTS")
    folder = (ROOT / target) if target else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
