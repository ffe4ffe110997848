"""`workbench.connect()`: the workbench as a data scientist meets it in a notebook.

Every method returns an object that shows itself: a live widget in Jupyter, a readable HTML
or text summary anywhere else. The work itself is done by the client `Workbench`
(`wb.client`), so a notebook, a script, the CLI and the terminal UI all see the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.client.workbench import Workbench
from workbench.execution.cache_plan import CacheMode
from workbench.hpo.optimizer import OptimizationRequest, load_request, new_study_name, parse_request
from workbench.notebook.cluster import Cluster
from workbench.notebook.execution import Execution
from workbench.notebook.live import LiveView, in_kernel, settle, show
from workbench.notebook.models import Models
from workbench.notebook.tuning import Study
from workbench.orchestrator.orchestrator import WorkflowInput


class Notebook:
    """What `connect()` returns. `with connect() as wb:` closes it (and a local cluster)."""

    def __init__(self, client: Workbench, profile: str | None = None) -> None:
        self.client = client
        self.profile = profile
        self._views: list[LiveView] = []
        self._models: Models | None = None
        self._cluster: Cluster | None = None

    def _keep(self, view: Any) -> Any:
        self._views.append(view)
        return view

    # -- workflows -----------------------------------------------------------------------------
    def submit(
        self, spec_or_path: WorkflowInput, *, cache: CacheMode | str = CacheMode.USE
    ) -> Execution:
        """Start a workflow and return at once; the execution displays as a live widget."""
        execution_id = self.client.submit_blocking(spec_or_path, cache=cache)
        return self._keep(Execution(self.client, execution_id))

    def run(
        self,
        spec_or_path: WorkflowInput,
        *,
        cache: CacheMode | str = CacheMode.USE,
        display: bool = True,
    ) -> Execution:
        """Run a workflow to the end. In a notebook its live widget is shown as it starts
        (`display=False`: not), so the cell shows every task moving while it waits."""
        execution = self.submit(spec_or_path, cache=cache)
        shown = show(execution) if display and in_kernel() else None
        execution.wait()
        settle(shown, execution)
        return execution

    def execution(self, execution_id: str) -> Execution:
        """An execution started elsewhere (the CLI, another notebook), followed live."""
        return self._keep(Execution(self.client, execution_id))

    # -- tuning --------------------------------------------------------------------------------
    def optimize(
        self,
        request: OptimizationRequest | dict[str, Any] | str | Path,
        *,
        importances: bool = True,
        display: bool = True,
    ) -> Study:
        """Search hyperparameters (the seed's request: a workflow and its
        `hyperparameter_config`, or the path of a request file). In a notebook the trials and
        the best-so-far plot are shown live, then the parameter importances."""
        parsed = (
            load_request(Path(request))
            if isinstance(request, str | Path)
            else parse_request(request)
        )
        config = parsed.hyperparameter_config
        name = new_study_name(parsed)
        study = self._keep(Study(name, config.direction, config.max_trials))
        shown = show(study) if display and in_kernel() else None
        stop = self._follow_trials(study)
        try:
            result = self.client.optimize(parsed, importances=importances, study_name=name)
        finally:
            stop()
        study.finish(result)
        settle(shown, study)
        return study

    def _follow_trials(self, study: Study) -> Callable[[], None]:
        """Feed `study` its trial events; returns what stops it. Locally the optimizer runs in
        this process and publishes on its bus; in a cluster an instance runs the study and its
        events arrive through the watch stream (Kafka), as events of no execution."""
        if self.client.orchestrator.cluster is None:
            return self.client.subscribe(study.update).close
        watch = self.client.watch_in_thread(lambda update: None, on_other=study.update)
        return watch.stop

    # -- registry and cluster ------------------------------------------------------------------
    @property
    def models(self) -> Models:
        """The model registry, with promote and roll-back buttons (one live view, read again
        each time it is asked for)."""
        if self._models is None:
            self._models = self._keep(Models(self.client))
        else:
            self._models.refresh()
        return self._models

    @property
    def cluster(self) -> Cluster:
        """Instances (the leader marked), workers by capability shard, service health (one
        live view, re-read every few seconds once shown)."""
        if self._cluster is None:
            self._cluster = self._keep(Cluster(self.client))
        else:
            self._cluster.refresh()
        return self._cluster

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        for view in self._views:
            for stop in ("stop", "close"):
                method = getattr(view, stop, None)
                if method is not None:
                    method()
        self._views.clear()
        self.client.close()

    def __enter__(self) -> Notebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "local (no servers)" if self.profile is None else f"cluster profile {self.profile}"
        return f"<workbench {where}>"


def connect(profile: str | None = None) -> Notebook:
    """A workbench for this notebook: local without a profile (a Dask cluster in this process
    tree, started on first use, no servers), a cluster's client with one (a name under
    `clusters/` or a path)."""
    return Notebook(Workbench.connect(profile), profile)
