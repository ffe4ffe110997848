"""The notebook views' state, driven by recorded event streams and by a live local workbench,
without a browser: what each widget holds, how often it redraws, and its fallbacks."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.events_watch.fakes import event, execution, finished, progress, started
from workbench.client.workbench import Workbench
from workbench.dag.states import TaskState, WorkflowStatus
from workbench.events.models import Event, EventType
from workbench.events.views import advance
from workbench.events.watch import WatchMode, WatchUpdate
from workbench.hpo.optimizer import OptimizationResult, Trial
from workbench.notebook import live
from workbench.notebook.execution import Execution
from workbench.notebook.live import Throttle
from workbench.notebook.session import Notebook
from workbench.notebook.tuning import Study

GRAPH = {"prepare": [], "train": ["prepare"], "evaluate": ["train"], "report": ["train"]}


class RecordedClient:
    """What an Execution asks of the client, answered from a recorded execution; the watch is
    driven by the test through `updates`."""

    def __init__(self) -> None:
        self.view = execution(
            "x",
            WorkflowStatus.RUNNING,
            prepare=TaskState.PENDING,
            train=TaskState.PENDING,
            evaluate=TaskState.PENDING,
            report=TaskState.PENDING,
        )
        self.callback: Any = None

    def execution(self, execution_id: str) -> Any:
        return self.view

    def dependencies(self, execution_id: str) -> dict[str, list[str]]:
        return GRAPH

    def watch_in_thread(self, callback: Any, execution_id: str) -> Any:
        self.callback = callback
        return self

    def play(self, events: list[Event]) -> None:
        for e in events:
            self.view = advance(self.view, e)
            self.callback(WatchUpdate(self.view, e, WatchMode.LIVE))

    def join(self, timeout: float | None = None) -> bool:
        return True

    def stop(self) -> None:
        pass


def states_in(markup: str) -> list[str]:
    """The task states of an execution's table, in row order."""
    table = markup.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'data-state="([a-z]+)"', table)


def recorded_run() -> list[Event]:
    """prepare comes from the cache, train reports progress and metrics, evaluate fails with
    a traceback, report is skipped: every look a task can have."""
    return [
        event(1, EventType.TASK_CACHED, "prepare", status="cached", metrics={"rows": 20000.0}),
        started(2, "train", data={"worker": "tcp://w1"}),
        progress(3, "train", 0.5),
        event(4, EventType.TASK_METRIC, "train", metrics={"f1_score": 0.5}),
        event(
            5, EventType.TASK_SUCCEEDED, "train", status="succeeded", metrics={"f1_score": 0.8123}
        ),
        started(6, "evaluate"),
        event(
            7,
            EventType.TASK_FAILED,
            "evaluate",
            status="failed",
            message="ValueError: no positive rows",
            data={"traceback": 'Traceback (most recent call last):\n  File "x.py"\nValueError'},
        ),
        event(8, EventType.TASK_SKIPPED, "report", status="skipped"),
        finished(9, "failed"),
    ]


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """As inside an IPython kernel: views build their widget when displayed."""
    monkeypatch.setattr(live, "in_kernel", lambda: True)


def test_the_execution_widget_follows_a_recorded_stream(kernel: None) -> None:
    client = RecordedClient()
    view = Execution(client, "x")  # type: ignore[arg-type]
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    head, table, errors = view.widget.children
    assert states_in(table.value) == ["pending"] * 4
    assert errors.layout.display == "none"  # no failure, no error section

    client.play(recorded_run()[:3])  # prepare cached, train half-way
    view.changed_now()
    assert states_in(table.value) == ["cached", "running", "pending", "pending"]
    assert "cache hit" in table.value and "width:50%" in table.value

    client.play(recorded_run()[3:])
    # The finish is drawn at once, not at the next tick.
    assert states_in(table.value) == ["cached", "succeeded", "failed", "skipped"]
    assert "f1_score=0.8123" in table.value
    assert 'data-state="failed"' in head.value and "4/4 tasks" in head.value
    assert errors.layout.display is None and len(errors.children) == 1
    assert errors.get_title(0).startswith("✘ evaluate: ValueError: no positive rows")
    assert "Traceback (most recent call last)" in errors.children[0].value

    # A redraw keeps the open error section: the same child, not a new one.
    opened = errors.children[0]
    view.changed_now()
    assert errors.children[0] is opened
    # Rows are indented by depth, in graph order.
    assert table.value.index("prepare") < table.value.index("train") < table.value.index("report")


def test_a_burst_is_drawn_at_most_about_ten_times_a_second(kernel: None) -> None:
    client = RecordedClient()
    view = Execution(client, "x")  # type: ignore[arg-type]
    table = view.widget.children[1]
    draws: list[str] = []
    table.observe(lambda change: draws.append(change["new"]), names="value")
    client.play([started(1, "train")])
    began = time.monotonic()
    seq = 2
    while time.monotonic() - began < 1.0:  # a second of progress events, as fast as they come
        client.play([progress(seq, "train", (seq % 1000) / 1000)])
        seq += 1
    time.sleep(0.3)  # the last tick
    elapsed = time.monotonic() - began
    assert seq > 1000, "the stream was too slow to test coalescing"
    assert 3 <= len(draws) <= elapsed / live.REDRAW_S + 2
    assert f"width:{(seq - 1) % 1000 / 10:.0f}%" in draws[-1]  # the last state is drawn


def test_the_throttle_coalesces_and_never_drops_the_last_poke() -> None:
    seen: list[int] = []
    state = {"n": 0}
    throttle = Throttle(lambda: seen.append(state["n"]), interval_s=0.05)
    for n in range(1, 2001):
        state["n"] = n
        throttle.poke()
    deadline = time.monotonic() + 2
    while (not seen or seen[-1] != 2000) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen[-1] == 2000
    assert len(seen) < 50


def test_without_a_widget_front_end_the_views_show_html_and_text() -> None:
    client = RecordedClient()
    view = Execution(client, "x")  # type: ignore[arg-type]
    client.play(recorded_run())
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" not in bundle  # not in a kernel
    assert states_in(bundle["text/html"]) == ["cached", "succeeded", "failed", "skipped"]
    assert "<details>" in bundle["text/html"]  # the traceback folds away in static HTML
    text = bundle["text/plain"]
    assert text.splitlines()[0] == "x: wf · failed · 4/4 tasks"
    assert "error: ValueError: no positive rows" in text
    assert repr(view) == text


def trial_event(number: int, kind: EventType, study: str = "study-1", **data: Any) -> Event:
    return Event(
        type=kind,
        execution_id=study,
        workflow_id=study,
        task_id=f"trial-{number}",
        data={"trial": number, **data},
        instance_id="local",
        seq=2 * number + (1 if kind is EventType.TRIAL_STARTED else 2),
        timestamp=time.time(),
    )


def test_the_study_widget_shows_trials_live_then_the_importances(kernel: None) -> None:
    study = Study("study-1", "maximize", max_trials=3)
    html_widget = study.widget.children[0]
    study.update(trial_event(0, EventType.TRIAL_STARTED, params={"lr": 0.1}))
    study.update(trial_event(1, EventType.TRIAL_STARTED, params={"lr": 0.2}))
    study.update(trial_event(2, EventType.TRIAL_STARTED, study="other"))  # not ours
    study.changed_now()
    assert "0/3 trials complete, 2 running" in html_widget.value
    assert "no completed trial yet" in html_widget.value
    study.update(
        trial_event(1, EventType.TRIAL_FINISHED, params={"lr": 0.2}, value=0.7, state="complete")
    )
    study.update(
        trial_event(0, EventType.TRIAL_FINISHED, params={"lr": 0.1}, value=0.9, state="complete")
    )
    study.update(trial_event(0, EventType.TRIAL_STARTED, params={"lr": 0.1}))  # late: ignored
    study.changed_now()
    value = html_widget.value
    assert "2/3 trials complete, 0 running" in value and "best <b>0.9</b> (trial 0" in value
    assert value.count("<circle") == 2 and '<svg class="history"' in value
    assert study.best is not None and study.best.number == 0

    trials = [
        Trial(0, {"lr": 0.1}, 0.9, "complete", 1.0),
        Trial(1, {"lr": 0.2}, 0.7, "complete", 1.0),
        Trial(2, {"lr": 0.3}, None, "pruned", 0.5),
    ]
    study.finish(OptimizationResult("study-1", 0.9, {"lr": 0.1}, trials, importances={"lr": 1.0}))
    assert "Parameter importances" in html_widget.value and "1 pruned" in html_widget.value
    assert "importance lr: 100%" in study.text()


# -- live: a real local workbench -----------------------------------------------------------------


@pytest.fixture(scope="module")
def notebook() -> Iterator[Notebook]:
    with Workbench.local(workers=1, threads_per_worker=2) as client:
        yield Notebook(client)


def write_workflow(folder: Path, rows: int = 200_000) -> Path:
    """A workflow whose tasks take long enough to be seen running."""
    spec = folder / "slow.yaml"
    spec.write_text(
        "workflow_id: slow\nname: Slow\ntasks:\n"
        "  - {task_id: first, task_type: data_preprocessing, parameters: "
        "{dataset_path: data.csv, target_column: y}}\n"
        "  - {task_id: second, task_type: feature_extraction, dependencies: [first]}\n",
        encoding="utf-8",
    )
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 4)), columns=list("abcd"))
    frame["y"] = rng.integers(0, 2, rows)
    frame.to_csv(folder / "data.csv", index=False)
    return spec


def test_a_live_run_is_drawn_as_it_happens(
    kernel: None, notebook: Notebook, tmp_path: Path
) -> None:
    spec = write_workflow(tmp_path)
    execution_view = notebook.submit(spec)
    table = execution_view.widget.children[1]
    drawn: list[list[str]] = []
    lock = threading.Lock()

    def seen(change: dict[str, Any]) -> None:
        with lock:
            drawn.append(states_in(change["new"]))

    table.observe(seen, names="value")
    final = execution_view.wait(timeout=120)
    assert final.status is WorkflowStatus.SUCCEEDED
    assert states_in(table.value) == ["succeeded", "succeeded"]
    with lock:
        # Drawn while it ran, not only at the end.
        assert any(states != ["succeeded", "succeeded"] for states in drawn), drawn
    assert execution_view.metrics["first"]["rows_in"] == 200_000


def test_the_models_widget_promotes_and_rolls_back_after_a_confirmation(
    kernel: None, notebook: Notebook
) -> None:
    from sklearn.dummy import DummyClassifier

    with notebook.client.models() as registry:
        for f1 in (0.7, 0.8):
            model = DummyClassifier().fit([[0], [1]], [0, 1])
            registry.register("widget-model", model, metrics={"f1_score": f1})
    models = notebook.models
    models.chosen = "widget-model"
    box = models.widget
    models.changed_now()

    def stage_of(version: int) -> str:
        entry = models.entry("widget-model")
        assert entry is not None
        return next(v.stage.value for v in entry.versions if v.version == version)

    assert models._version.value == 2  # the newest is chosen, never none
    models._promote.click()
    assert models._confirm.layout.display is None  # asks first
    assert "Promote widget-model v2 to production?" in models._question.value
    models._no.click()
    assert models._confirm.layout.display == "none" and stage_of(2) == "none"
    assert "nothing changed" in models._status.value

    models._version.value = 1
    models._promote.click()
    models._yes.click()
    assert stage_of(1) == "production"
    models._version.value = 2
    models._promote.click()
    models._yes.click()
    assert (stage_of(1), stage_of(2)) == ("archived", "production")
    assert "widget-model v2 is in production" in models._status.value

    models._rollback.click()
    assert "Roll widget-model back" in models._question.value
    models._yes.click()
    assert (stage_of(1), stage_of(2)) == ("production", "archived")
    assert "production</span> v1" in models._tables.value
    assert box is models.widget


def test_a_refused_change_is_shown_under_the_buttons(kernel: None, notebook: Notebook) -> None:
    models = notebook.models
    with notebook.client.models() as registry:
        if "lonely" not in registry.store.list_names():
            from sklearn.dummy import DummyClassifier

            registry.register("lonely", DummyClassifier().fit([[0], [1]], [0, 1]))
    models.refresh()
    models.chosen = "lonely"
    _ = models.widget  # built: the buttons exist
    models.changed_now()
    models._rollback.click()
    models._yes.click()  # nothing in production to roll back from
    assert "✘" in models._status.value


def test_the_cluster_view_shows_the_local_leader_and_services(
    kernel: None, notebook: Notebook
) -> None:
    cluster = notebook.cluster
    try:
        html = cluster.widget.children[0].value
        assert "leader <b>local</b>" in html
        assert "redis" in html and "not configured" in html
        assert "leader: local" in cluster.text()
    finally:
        cluster.close()


def test_ipywidgets_loads_only_when_a_widget_is_shown() -> None:
    from tests.unit.test_import_fence import packages_loaded_by

    assert packages_loaded_by("import workbench.notebook", {"ipywidgets"}) == set()
    shown = (
        "from workbench.notebook.tuning import Study\n"
        "from workbench.notebook import live\n"
        "live.in_kernel = lambda: True\n"
        "Study('s', 'maximize')._repr_mimebundle_()"
    )
    assert packages_loaded_by(shown, {"ipywidgets"}) == {"ipywidgets"}


@pytest.mark.integration
def test_in_a_cluster_the_study_view_gets_its_trials_live(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In cluster mode an instance runs the study: its trial events reach the notebook through
    Kafka while the search runs. (The last trial's events may land after the result, which
    replaces what the events said, so only those before the last trial are required live.)"""
    from workbench.devcluster import DevCluster
    from workbench.tasks.datasets import write_fraud_csv

    write_fraud_csv(tmp_path / "data.csv", n_rows=2000, seed=2)
    request = {
        "workflow_spec": {
            "workflow_id": "tiny",
            "tasks": [
                {
                    "task_id": "prepare",
                    "task_type": "data_preprocessing",
                    "parameters": {"dataset_path": "data.csv", "target_column": "is_fraud"},
                },
                {
                    "task_id": "train",
                    "task_type": "model_training",
                    "dependencies": ["prepare"],
                    "parameters": {"algorithm": "xgboost", "n_estimators": 10},
                },
            ],
        },
        "base_dir": str(tmp_path),
        "hyperparameter_config": {
            "search_space": {"max_depth": {"type": "integer", "min": 2, "max": 6}},
            "objective_metric": "train_accuracy",
            "max_trials": 2,
            "n_parallel": 1,  # trial 1 starts after trial 0 finished
            "pruner": "none",
            "seed": 3,
        },
    }
    live: list[tuple[str, int]] = []
    update = Study.update

    def spy(study: Study, event: Event) -> None:
        if study.result is None:  # before the search returned
            live.append((event.type.value, int(event.data.get("trial", -1))))
        update(study, event)

    monkeypatch.setattr(Study, "update", spy)
    with (
        DevCluster.up(workers=1, instances=1, folder=tmp_path / "cluster") as cluster,
        Notebook(Workbench.connect(str(cluster.profile_path))) as notebook,
    ):
        study = notebook.optimize(request, display=False)
    assert sorted(t.state for t in study.trials.values()) == ["complete", "complete"]
    assert ("trial.started", 0) in live, live
    assert ("trial.finished", 0) in live, live
    assert ("trial.started", 1) in live, live
