"""The example notebooks in notebooks/, executed top to bottom in a real kernel (nbclient).

Each runs in a copy of notebooks/ and examples/ under tmp_path (so `../examples` resolves and
the repository's examples/data is never written), with a cache and registry of its own: the
kernel inherits WORKBENCH_CACHE_DIR from this process. The assertions read the outputs a
reader would see: the widget view, the HTML and text fallbacks, and what the cells print.
"""

from __future__ import annotations

import ast
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
EXAMPLES = REPO / "examples"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
CELL_TIMEOUT_S = 240
FRAUD_TASKS = [
    t["task_id"] for t in yaml.safe_load((EXAMPLES / "fraud_detection.yaml").read_text())["tasks"]
]


# -- running a notebook ----------------------------------------------------------------------
class Executed:
    """An executed notebook and what its cells showed."""

    def __init__(self, nb: nbformat.NotebookNode, seconds: float, folder: Path) -> None:
        self.nb = nb
        self.seconds = seconds
        self.folder = folder

    def cell(self, source_start: str) -> nbformat.NotebookNode:
        """The one code cell whose source is `source_start`, else the one starting with it."""
        code = [c for c in self.nb.cells if c.cell_type == "code"]
        found = [c for c in code if c.source.strip() == source_start] or [
            c for c in code if c.source.lstrip().startswith(source_start)
        ]
        assert len(found) == 1, f"{len(found)} cells start with {source_start!r}"
        return found[0]

    def stdout(self, source_start: str) -> str:
        return "".join(
            o.get("text", "")
            for o in self.cell(source_start).outputs
            if o.output_type == "stream" and o.name == "stdout"
        )

    def bundles(self, source_start: str) -> list[dict[str, Any]]:
        """The display data and results of a cell, in order."""
        return [
            o.data
            for o in self.cell(source_start).outputs
            if o.output_type in ("display_data", "execute_result")
        ]

    def widget_values(self) -> list[str]:
        """The last `value` of every widget, as the kernel left them (nbclient stores it)."""
        state = self.nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        return [str(w["state"].get("value", "")) for w in state.values()]

    def widget_html(self, model_id: str) -> str:
        """Every HTML value inside the widget `model_id` (a box: its children's), joined."""
        state = self.nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        widget = state[model_id]["state"]
        values = [str(widget.get("value", ""))]
        for child in widget.get("children", []):
            values.append(self.widget_html(child.removeprefix("IPY_MODEL_")))
        return "".join(values)

    def widget_classes(self) -> set[str]:
        state = self.nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
        return {c for w in state.values() for c in w["state"].get("_dom_classes", [])}


@pytest.fixture
def run_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Execute notebooks/NAME from a copy of notebooks/ next to a copy of examples/."""
    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("data"))
    folder = tmp_path / "notebooks"
    folder.mkdir()
    # A registry and cache of its own (the session's is shared with other tests): the
    # kernel is started after this and inherits it.
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WORKBENCH_CACHE_KEY_FILE", str(tmp_path / "cache.key"))
    monkeypatch.delenv("WORKBENCH_PROFILE", raising=False)

    def execute(name: str) -> Executed:
        shutil.copy(NOTEBOOKS / name, folder / name)
        nb = nbformat.read(folder / name, as_version=4)
        client = NotebookClient(
            nb,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        )
        started = time.monotonic()
        client.execute()
        seconds = time.monotonic() - started
        print(f"{name}: executed in {seconds:.1f}s")
        return Executed(nb, seconds, folder)

    yield execute


# -- reading the views -----------------------------------------------------------------------
def task_states(html: str) -> dict[str, str]:
    """Task id -> state, from the rows of an execution's task table."""
    body = html.split("<tbody>", 1)[1]
    states = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body):
        task = re.search(r"<b>([^<]+)</b>", row)
        state = re.search(r'data-state="([^"]+)"', row)
        assert task and state, row
        states[task.group(1)] = state.group(1)
    return states


def workflow_state(html: str) -> str:
    """The execution's own state, from the header above the task table."""
    header = html.split("<table>", 1)[0]
    found = re.search(r'data-state="([^"]+)"', header)
    assert found, header
    return found.group(1)


def assert_run_succeeded(bundle: dict[str, Any]) -> None:
    assert WIDGET_VIEW in bundle, sorted(bundle)
    html = bundle["text/html"]
    assert workflow_state(html) == "succeeded"
    states = task_states(html)
    assert list(states) == FRAUD_TASKS
    assert set(states.values()) <= {"succeeded", "cached"}, states
    assert f"· succeeded · {len(FRAUD_TASKS)}/{len(FRAUD_TASKS)} tasks" in bundle["text/plain"]


def floats(text: str, *names: str) -> dict[str, float]:
    found = {}
    for name in names:
        match = re.search(rf"{name}=([0-9.]+)", text)
        assert match, f"no {name}= in {text!r}"
        found[name] = float(match.group(1))
    return found


def printed(text: str, label: str) -> Any:
    """The Python literal printed after `label` on its line."""
    match = re.search(rf"^{re.escape(label)}\s*(.+)$", text, re.MULTILINE)
    assert match, f"no {label!r} in {text!r}"
    return ast.literal_eval(match.group(1))


# -- the notebooks ---------------------------------------------------------------------------
def test_quickstart(run_notebook: Any) -> None:
    done = run_notebook("01_quickstart.ipynb")

    # The live view went up when the run started, as a widget with its fallbacks; once the
    # run was over its output was rewritten: the HTML and text saved are the final state.
    (live,) = done.bundles("ex = wb.run(")
    assert_run_succeeded(live)
    assert "succeeded" in done.stdout("ex = wb.run(")
    # The kernel's widget reached the final state too.
    assert any(v.count('data-state="succeeded"') >= len(FRAUD_TASKS) for v in done.widget_values())
    assert "workbench-execution" in done.widget_classes()

    # The metrics table and the printed test-split metrics.
    (table,) = done.bundles("import pandas as pd")
    assert "<table" in table["text/html"]
    for name in ("f1_score", "roc_auc", "validate", "evaluate"):
        assert name in table["text/plain"]
    test = floats(done.stdout('test = ex.metrics["evaluate"]'), "f1_score", "roc_auc")
    assert 0.6 <= test["f1_score"] <= 1.0 and 0.9 <= test["roc_auc"] <= 1.0, test
    assert "scored rows: 20,000" in done.stdout('test = ex.metrics["evaluate"]')

    # Submitted, then shown as the cell ended: its widget went on to the final state while
    # the next cell ran (the kernel's last widget states are in the notebook's metadata).
    (submitted,) = done.bundles("again = wb.submit(")
    assert done.widget_html(submitted[WIDGET_VIEW]["model_id"]).count(
        'data-state="succeeded"'
    ) == 1 + len(FRAUD_TASKS)
    assert "while it runs, the kernel is free: 499999500000" in done.stdout("print(")
    assert re.search(r"fraud_detection-\w+ succeeded", done.stdout("print(")), done.stdout("print(")

    # The local cluster: one instance, the leader, and its workers.
    (cluster,) = done.bundles("wb.cluster")
    assert WIDGET_VIEW in cluster
    assert "leader: local" in cluster["text/plain"]
    assert re.search(r"shard cpu: \S+", cluster["text/plain"]), cluster["text/plain"]
    assert "workbench-cluster" in done.widget_classes()
    # The data was made where `make demo` puts it (here, in the copy).
    assert (done.folder.parent / "examples" / "data" / "transactions.csv").is_file()


def test_hyperparameter_search(run_notebook: Any) -> None:
    done = run_notebook("02_hyperparameter_search.ipynb")

    (final,) = done.bundles("wb = workbench.connect()")  # the live view, settled
    assert "workbench-study" in done.widget_classes()

    out = done.stdout("from collections import Counter")
    trials = printed(out, "trials:")
    assert sum(trials.values()) == 8, trials
    assert trials.get("complete", 0) >= 2, trials
    assert set(trials) <= {"complete", "pruned", "fail"}, trials
    best = re.search(r"best f1_score ([0-9.]+) at trial (\d+)", out)
    assert best, out
    assert 0.5 < float(best.group(1)) <= 1.0

    html, text = final["text/html"], final["text/plain"]
    assert WIDGET_VIEW in final
    assert f"{trials['complete']} trials complete" in text
    assert f"best {float(best.group(1)):.4g} at trial {best.group(2)}" in text
    # The optimization history: one dot per completed trial, the best-so-far line.
    svg = re.search(r'<svg class="history".*?</svg>', html, re.DOTALL)
    assert svg, html[:500]
    assert svg.group(0).count("<circle") == trials["complete"]
    assert "<polyline" in svg.group(0)
    assert "Parameter importances" in html

    (importances,) = done.bundles("import pandas as pd")
    for name in ("n_estimators", "learning_rate", "max_depth"):
        assert name in importances["text/plain"]


def test_model_lifecycle(run_notebook: Any) -> None:
    done = run_notebook("03_model_lifecycle.ipynb")

    out = done.stdout("wb = workbench.connect()")
    assert "runs: succeeded succeeded" in out
    assert printed(out, "registered versions:") == [1, 2]
    (live,) = done.bundles("wb = workbench.connect()")  # the second run's live view
    assert WIDGET_VIEW in live

    # The registry view: both versions, the newer in production (it passed its gates).
    (registry,) = done.bundles("models = wb.models")
    assert WIDGET_VIEW in registry
    assert re.search(r"v2 production\b", registry["text/plain"]), registry["text/plain"]
    assert re.search(r"v1 archived\b", registry["text/plain"]), registry["text/plain"]
    assert printed(done.stdout("def stages("), "stages now:") == {1: "archived", 2: "production"}

    promoted = done.stdout('moved = models.promote("fraud", older)')
    assert "v1: archived -> production" in promoted
    assert "v2: production -> archived" in promoted
    assert printed(promoted, "stages after promote:") == {1: "production", 2: "archived"}

    rolled = done.stdout('moved = models.rollback("fraud")')
    assert "v2: archived -> production" in rolled
    assert printed(rolled, "stages after rollback:") == {1: "archived", 2: "production"}

    (after,) = done.bundles("wb.models")
    assert re.search(r"v2 production\b", after["text/plain"])
    assert 'data-state="production"' in after["text/html"]
    assert "workbench-models" in done.widget_classes()


@pytest.mark.integration
def test_cluster_mode(run_notebook: Any, tmp_path: Path) -> None:
    state_file = tmp_path / "notebooks" / ".workbench" / "dev-cluster" / "state.json"
    try:
        done = run_notebook("04_cluster_mode.ipynb")
    finally:
        _stop_leftover(state_file)

    (cluster,) = done.bundles("wb = workbench.connect(profile)")
    text = cluster["text/plain"]
    assert WIDGET_VIEW in cluster
    assert "(cluster)" in text
    assert re.search(r"leader: (?!none)\S+", text), text
    assert re.search(r"instance \S+ \(leader\)", text), text
    assert "redis ok" in text and "kafka ok" in text and "scheduler ok" in text, text
    workers = re.search(r"shard cpu: (.+)", text)
    assert workers and len(workers.group(1).split(", ")) == 2, text

    assert "succeeded" in done.stdout("ex = wb.run(")
    (final,) = done.bundles("ex = wb.run(")
    assert_run_succeeded(final)
    test = floats(done.stdout('test = ex.metrics["evaluate"]'), "f1_score", "roc_auc")
    assert 0.9 <= test["roc_auc"] <= 1.0, test

    # The last cell stopped everything it started.
    assert "still running: False" in done.stdout("wb.close()")
    assert not state_file.exists()


def _stop_leftover(state_file: Path) -> None:
    """A failed notebook may leave its dev cluster up: stop it (its state file says what)."""
    if not state_file.exists():
        return
    from workbench.devcluster import DevCluster

    cluster = DevCluster.find(state_file)
    if cluster is not None:
        cluster.down(grace_s=5.0)
