"""The notebooks as a data scientist runs them: JupyterLab in a real browser (Debian's
Chromium through Playwright), every cell run from the Run menu, the live widgets read back from
the page, the model registry's confirmation clicked through. Element screenshots of each widget
are the README's (`WORKBENCH_SCREENSHOTS=docs/screenshots` writes them there)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.notebook.conftest import JupyterLab

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KERNEL = "Python 3 (ipykernel)"
LOAD_TIMEOUT_MS = 60_000
RUN_TIMEOUT_S = 150.0
WIDGET_TIMEOUT_MS = 30_000

# The notebook on show (a lab may keep others open in hidden tabs).
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# A view's widget, as ipywidgets renders it: the VBox's own classes and the view's class on
# the same element. The static fallback (text/html) has neither.
EXECUTION = f"{PANEL} .jp-OutputArea-output .jupyter-widgets.widget-vbox.workbench-execution"
CLUSTER = f"{PANEL} .jp-OutputArea-output .jupyter-widgets.widget-vbox.workbench-cluster"
STUDY = f"{PANEL} .jp-OutputArea-output .jupyter-widgets.widget-vbox.workbench-study"
MODELS = f"{PANEL} .jp-OutputArea-output .jupyter-widgets.widget-vbox.workbench-models"

# Every data-state an execution widget shows, recorded by the page as it changes: the proof
# that the widget moved live rather than appearing finished.
RECORD_STATES = """() => {
  window.__wbStates = [];
  const seen = new Set();
  const record = () => {
    for (const el of document.querySelectorAll('.workbench-execution td [data-state]')) {
      const state = el.dataset.state;
      if (!seen.has(state)) { seen.add(state); window.__wbStates.push(state); }
    }
  };
  new MutationObserver(record).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""

# The notebook's code cells: prompt ("[3]:", "[*]:", "[ ]:"), whether the source is empty,
# and the text of each error output.
CELLS = """panel => [...document.querySelectorAll(panel + ' .jp-CodeCell')].map(cell => ({
  prompt: (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim(),
  empty: !(cell.querySelector('.cm-content')?.textContent || '').trim(),
  errors: [...cell.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.textContent).filter(t => /Traceback|Error/.test(t)),
}))"""


class Session:
    """One browser page on the lab, with what it reported (console errors, page errors)."""

    def __init__(self, page: Any, lab: JupyterLab) -> None:
        self.page = page
        self.lab = lab
        self.console: list[str] = []
        page.on(
            "console",
            lambda m: self.console.append(f"{m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))

    def context(self) -> str:
        """What a failure message carries: the browser console's errors and the lab's log."""
        console = "\n".join(self.console[-40:]) or "(none)"
        return (
            f"\n--- browser console errors ---\n{console}"
            f"\n--- JupyterLab log (tail) ---\n{self.lab.log_tail()}"
        )

    @contextmanager
    def explained(self, what: str) -> Iterator[None]:
        """A failure inside the block, with the console and the log appended to its message."""
        try:
            yield
        except Exception as exc:
            pytest.fail(f"{what}: {type(exc).__name__}: {exc}{self.context()}", pytrace=False)

    # -- notebooks -------------------------------------------------------------------------------
    def open(self, name: str) -> None:
        page = self.page
        with self.explained(f"opening {name}"):
            page.goto(self.lab.notebook_url(name), wait_until="domcontentloaded")
            page.locator(f"{PANEL} .jp-Cell").first.wait_for(timeout=LOAD_TIMEOUT_MS)
            self._accept_kernel_dialog()
            # The file browser off: the notebook (and each widget) gets the page's width. The
            # server's workspace remembers it for the next notebook.
            if page.locator("#jp-left-stack").is_visible():
                page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()
                page.locator("#jp-left-stack").wait_for(state="hidden", timeout=10_000)
            page.wait_for_function(
                "([panel, kernel]) => document.querySelector(panel + ' .jp-KernelName')"
                "?.textContent.trim() === kernel",
                arg=[PANEL, KERNEL],
                timeout=LOAD_TIMEOUT_MS,
            )

    def _accept_kernel_dialog(self) -> None:
        """A notebook without (or with an unknown) kernelspec asks for one: take the default,
        this venv's python3."""
        dialog = self.page.locator(".jp-Dialog")
        try:
            dialog.wait_for(timeout=1500)
        except Exception:
            return  # no dialog: the notebook named its kernel
        self.page.locator(".jp-Dialog .jp-mod-accept").click()
        dialog.wait_for(state="detached", timeout=10_000)

    def run_all(self, name: str) -> None:
        """Run > Run All Cells, then wait until every code cell has run (or one failed)."""
        page = self.page
        with self.explained(f"running {name}"):
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        deadline = time.monotonic() + RUN_TIMEOUT_S
        cells: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            cells = page.evaluate(CELLS, PANEL)
            running = any("*" in c["prompt"] for c in cells)
            errors = [e for c in cells for e in c["errors"]]
            if errors and not running:
                pytest.fail(f"{name} failed:\n" + "\n".join(errors) + self.context(), pytrace=False)
            if not running and all(c["empty"] or c["prompt"][1:-2].isdigit() for c in cells):
                return
            page.wait_for_timeout(250)  # polling interval
        prompts = [c["prompt"] for c in cells]
        pytest.fail(
            f"{name} did not finish in {RUN_TIMEOUT_S:.0f}s (prompts {prompts}){self.context()}",
            pytrace=False,
        )

    def widget(self, selector: str, ready: str, what: str) -> Any:
        """The first widget matching `selector` once the JS predicate `ready(element)` holds."""
        with self.explained(f"waiting for {what}"):
            self.page.wait_for_function(
                f"sel => {{ const el = document.querySelector(sel);"
                f" return !!el && ({ready})(el); }}",
                arg=selector,
                timeout=WIDGET_TIMEOUT_MS,
            )
        return self.page.locator(selector).first


@pytest.fixture
def session(browser_page: Any, jupyter_lab: JupyterLab) -> Iterator[Session]:
    try:
        yield Session(browser_page, jupyter_lab)
    finally:
        jupyter_lab.shutdown_kernels()  # the next notebook gets the CPUs


def task_states(widget: Any) -> list[str]:
    return widget.locator("td [data-state]").evaluate_all("els => els.map(e => e.dataset.state)")


def test_quickstart_runs_live_in_the_browser(session: Session, screenshots: Path) -> None:
    """01: the execution widget renders as a widget, moves, and ends with every task
    succeeded; the cluster widget shows the local cluster."""
    session.open("01_quickstart.ipynb")
    session.page.evaluate(RECORD_STATES)
    session.run_all("01_quickstart.ipynb")

    execution = session.widget(
        EXECUTION,
        "el => { const s = [...el.querySelectorAll('td [data-state]')];"
        " return s.length > 0 && s.every(e => e.dataset.state === 'succeeded'); }",
        "the execution widget with every task succeeded",
    )
    states = task_states(execution)
    assert states and set(states) == {"succeeded"}, [*states, session.context()]
    seen = session.page.evaluate("() => window.__wbStates")
    assert set(seen) - {"succeeded"}, (
        f"the execution widget only ever showed {seen}: it did not update live" + session.context()
    )
    execution.screenshot(path=screenshots / "notebook_execution.png")

    cluster = session.widget(
        CLUSTER, "el => el.textContent.includes('Workers by capability shard')", "the cluster"
    )
    cluster.screenshot(path=screenshots / "notebook_cluster.png")


def test_search_and_model_registry_in_the_browser(session: Session, screenshots: Path) -> None:
    """02: the study widget ends with its history plot; 03: the registry widget's promote
    asks for confirmation, and Cancel changes nothing."""
    session.open("02_hyperparameter_search.ipynb")
    session.run_all("02_hyperparameter_search.ipynb")
    study = session.widget(
        STUDY,
        "el => el.textContent.includes('finished') && !!el.querySelector('svg.history circle')",
        "the finished study with its history plot",
    )
    study.screenshot(path=screenshots / "notebook_study.png")
    session.lab.shutdown_kernels()  # its Dask cluster: 03 gets the CPUs

    session.open("03_model_lifecycle.ipynb")
    session.run_all("03_model_lifecycle.ipynb")
    models = session.widget(
        MODELS, "el => !!el.querySelector('.wb table')", "the model registry with its tables"
    )
    models.screenshot(path=screenshots / "notebook_models.png")

    tables = models.locator(".widget-html .wb").first
    before = tables.inner_html()
    confirm = models.get_by_role("button", name="Confirm")
    cancel = models.get_by_role("button", name="Cancel")
    with session.explained("promote's confirmation"):
        assert not confirm.is_visible(), "the confirm row shows before anything was asked"
        models.get_by_role("button", name="Promote to production").click()
        confirm.wait_for(state="visible", timeout=WIDGET_TIMEOUT_MS)
        question = confirm.locator("xpath=..").inner_text()  # the confirm row
        cancel.click()
        confirm.wait_for(state="hidden", timeout=WIDGET_TIMEOUT_MS)
        models.get_by_text("nothing changed").wait_for(timeout=WIDGET_TIMEOUT_MS)
    assert tables.inner_html() == before, "Cancel changed the registry" + session.context()
    # It asks about the version the dropdown shows: a real one, never "vNone" (a version
    # dropdown whose options were set after it was built has no value in ipywidgets 8).
    assert re.search(r"v\d+ to production\?", question), question
