"""Tuning: the hyperparameter studies, the selected study's live trial table and its
best-so-far curve. Studies are read from where their trials are kept (a journal locally, Redis
in a cluster) when the screen is in front: every couple of seconds, and at once on trial events."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

from tui import look
from tui.screens.base import ReadingScreen

if TYPE_CHECKING:
    from workbench.hpo.studies import StudySummary


def value(state: str, objective: float | None) -> Text:
    """A trial's objective value. A pruned trial's is the last intermediate value it reported,
    not comparable with the finished ones: greyed and in parentheses."""
    if state == "pruned" and objective is not None:
        return Text(f"({objective:.4g})", style="grey50")
    return Text(look.number(objective))


def trial_ticks(first: int, last: int, most: int = 6) -> list[int]:
    """Whole trial numbers from `first` to `last` for the x axis, `most` of them at most."""
    step = max(1, -(-(last - first) // (most - 1)))
    ticks = list(range(first, last + 1, step))
    if ticks[-1] != last and last - ticks[-1] >= step / 2:
        ticks.append(last)
    return ticks


class TuningScreen(ReadingScreen[list["StudySummary"]]):
    SCOPE = "tuning"
    READ_EVERY_S = 2.0
    READ_ON = "trial."
    WHAT = "the studies"

    def __init__(self) -> None:
        super().__init__()
        self.studies: dict[str, StudySummary] = {}
        self.chosen: str | None = None

    def body(self) -> ComposeResult:
        studies: DataTable[object] = DataTable(id="studies", cursor_type="row")
        studies.border_title = "Studies"
        for column in ("study", "direction", "trials", "complete", "running", "best"):
            studies.add_column(column, key=column)
        yield studies
        with Horizontal(id="study-detail"):
            trials: DataTable[object] = DataTable(
                id="trials", cursor_type="row", zebra_stripes=True
            )
            trials.border_title = "Trials"
            for column in ("#", "state", "value", "duration", "params"):
                trials.add_column(column, key=column)
            yield trials
            yield PlotextPlot(id="curve")

    def fetch(self) -> list[StudySummary]:
        return self.workbench_app.backend.studies()

    def got(self, studies: list[StudySummary]) -> None:
        self.studies = {s.name: s for s in studies}
        table = self.query_one("#studies", DataTable)
        names = [s.name for s in reversed(studies)]  # the newest first
        if self.chosen not in self.studies:
            self.chosen = names[0] if names else None
        table.clear()
        for name in names:
            study = self.studies[name]
            best = study.best
            table.add_row(
                name,
                study.direction,
                str(len(study.trials)),
                str(study.completed),
                str(study.running),
                look.number(None if best is None else best.value),
                key=name,
            )
        if self.chosen is not None:
            table.move_cursor(row=names.index(self.chosen), animate=False)
        self._show_study()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if event.data_table.id == "studies" and key in self.studies and key != self.chosen:
            self.chosen = str(key)
            self._show_study()

    def _show_study(self) -> None:
        study = self.studies.get(self.chosen or "")
        trials = self.query_one("#trials", DataTable)
        trials.clear()
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        if study is None:
            plt.xticks()  # the default ticks again
            plt.title("no study yet: run one with `workbench hpo FILE`")
            plot.refresh()
            return
        for trial in sorted(study.trials, key=lambda t: t.number, reverse=True):
            params = " ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in trial.params.items()
            )
            trials.add_row(
                str(trial.number),
                look.state(trial.state),
                value(trial.state, trial.value),
                look.duration(trial.duration_s),
                params,
                key=str(trial.number),
            )
        done = [
            (t.number, t.value)
            for t in study.trials
            if t.state == "complete" and t.value is not None
        ]
        curve = study.best_so_far()
        plt.title(f"{study.name}: best so far ({study.direction})")
        plt.xlabel("trial")
        numbers = [t.number for t in study.trials]
        if numbers:  # whole trial numbers along the bottom, a few of them
            ticks = trial_ticks(min(numbers), max(numbers))
            plt.xticks([float(n) for n in ticks], [str(n) for n in ticks])
            if len(ticks) > 1:
                plt.xlim(ticks[0], max(numbers))
        if done:
            plt.scatter([n for n, _ in done], [v for _, v in done], marker="dot", label="trial")
        if curve:
            plt.plot([n for n, _ in curve], [v for _, v in curve], marker="braille", label="best")
        plot.refresh()
