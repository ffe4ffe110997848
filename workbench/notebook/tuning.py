"""A hyperparameter search in a notebook: the trials live, the best value so far, then what
mattered.

`Study` is fed the study's `trial.*` events as the optimizer publishes them; when the search
ends it takes the optimizer's result (the authoritative trials and the parameter importances).
"""

from __future__ import annotations

import threading
from html import escape
from typing import Any

from workbench.events.models import Event, EventType
from workbench.hpo.optimizer import OptimizationResult, Trial
from workbench.hpo.studies import StudySummary
from workbench.notebook import html
from workbench.notebook.live import LiveView

PLOT_W, PLOT_H, PAD = 480, 200, 56  # PAD: room for the value axis' labels
MAX_TRIAL_ROWS = 30  # the newest; the plot shows them all


def history_svg(summary: StudySummary) -> str:
    """Optuna's optimization-history plot as inline SVG: each completed trial's value as a dot,
    the best so far as a step line."""
    points = [
        (t.number, t.value) for t in summary.trials if t.state == "complete" and t.value is not None
    ]
    if not points:
        return '<div class="dim">no completed trial yet</div>'
    curve = summary.best_so_far()
    xs = [n for n, _ in points]
    ys = [v for _, v in points]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    margin = (y1 - y0) * 0.05  # the extreme dots clear the axes
    y0, y1 = y0 - margin, y1 + margin

    def x(n: float) -> float:
        return PAD + (n - x0) / (x1 - x0) * (PLOT_W - PAD - 10)

    def y(v: float) -> float:
        return PLOT_H - PAD + 10 - (v - y0) / (y1 - y0) * (PLOT_H - PAD - 10)

    dots = "".join(
        f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3" fill="#7a9cc6"><title>trial {n}: '
        f"{html.number(v)}</title></circle>"
        for n, v in points
    )
    steps: list[str] = []
    for i, (n, v) in enumerate(curve):
        if i:
            steps.append(f"{x(n):.1f},{y(curve[i - 1][1]):.1f}")
        steps.append(f"{x(n):.1f},{y(v):.1f}")
    line = f'<polyline points="{" ".join(steps)}" fill="none" stroke="#d03030" stroke-width="2"/>'
    axes = (
        f'<line x1="{PAD}" y1="{PLOT_H - PAD + 10}" x2="{PLOT_W - 10}" y2="{PLOT_H - PAD + 10}" '
        'stroke="#999"/>'
        f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{PLOT_H - PAD + 10}" stroke="#999"/>'
        f'<text x="{PAD - 4}" y="14" font-size="10" text-anchor="end">{html.number(y1)}</text>'
        f'<text x="{PAD - 4}" y="{PLOT_H - PAD + 10}" font-size="10" text-anchor="end">'
        f"{html.number(y0)}</text>"
        f'<text x="{PAD}" y="{PLOT_H - PAD + 24}" font-size="10">{x0}</text>'
        f'<text x="{PLOT_W - 10}" y="{PLOT_H - PAD + 24}" font-size="10" text-anchor="end">'
        f"{x1}</text>"
        f'<text x="{(PLOT_W + PAD) / 2}" y="{PLOT_H - 4}" font-size="11" text-anchor="middle">'
        "trial</text>"
    )
    return (
        f'<svg class="history" width="{PLOT_W}" height="{PLOT_H}" '
        f'xmlns="http://www.w3.org/2000/svg">{axes}{dots}{line}</svg>'
        '<div class="dim"><span style="color:#d03030">━</span> best so far · '
        '<span style="color:#7a9cc6">●</span> trial value</div>'
    )


def importances_html(importances: dict[str, float]) -> str:
    if not importances:
        return ""
    rows = [
        [escape(name), f"{html.bar(share, '#2a6fdb')} {share:.0%}"]
        for name, share in sorted(importances.items(), key=lambda kv: -kv[1])
    ]
    return '<div class="head">Parameter importances</div>' + html.table(
        ("parameter", "share"), rows
    )


def params_text(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={html.number(v) if isinstance(v, int | float) and not isinstance(v, bool) else v}"
        for k, v in params.items()
    )


class Study(LiveView):
    """One hyperparameter search: `update(event)` with its trial events, `finish(result)`."""

    CSS_CLASS = "workbench-study"

    def __init__(self, name: str, direction: str, max_trials: int | None = None) -> None:
        super().__init__()
        self.name = name
        self.direction = direction
        self.max_trials = max_trials
        self.trials: dict[int, Trial] = {}
        self.result: OptimizationResult | None = None
        self._lock = threading.Lock()

    @property
    def summary(self) -> StudySummary:
        with self._lock:
            trials = sorted(self.trials.values(), key=lambda t: t.number)
        return StudySummary(self.name, self.direction, trials)

    @property
    def best(self) -> Trial | None:
        return self.summary.best

    @property
    def importances(self) -> dict[str, float]:
        return self.result.importances if self.result else {}

    def update(self, event: Event) -> None:
        """A `trial.*` event of this study (from any thread); other events are ignored."""
        if event.execution_id != self.name or event.type not in (
            EventType.TRIAL_STARTED,
            EventType.TRIAL_FINISHED,
        ):
            return
        data = event.data
        number = int(data.get("trial", -1))
        finished = event.type is EventType.TRIAL_FINISHED
        trial = Trial(
            number=number,
            params=dict(data.get("params") or {}),
            value=data.get("value") if finished else None,
            state=str(data.get("state") or "fail") if finished else "running",
            duration_s=float(data.get("duration_s") or 0.0),
            execution_id=data.get("trial_execution"),
            error=data.get("error"),
        )
        with self._lock:
            known = self.trials.get(number)
            if known is not None and known.state != "running" and not finished:
                return  # a late "started" after the finish
            self.trials[number] = trial
        self.changed()

    def finish(self, result: OptimizationResult) -> None:
        with self._lock:
            self.result = result
            self.trials = {t.number: t for t in result.trials}
        self.changed_now()

    # -- rendering -----------------------------------------------------------------------------
    def header(self) -> str:
        summary = self.summary
        best = summary.best
        of = f"/{self.max_trials}" if self.max_trials else ""
        state = "finished" if self.result else "running"
        return (
            f'<div class="head">Study {escape(self.name)} <span class="dim">{self.direction}, '
            f"{state}</span></div><div>{summary.completed}{of} trials complete, "
            + "".join(
                f"{count} {label}, "
                for kind, label in (("pruned", "pruned"), ("fail", "failed"))
                if (count := sum(1 for t in summary.trials if t.state == kind))
            )
            + f"{summary.running} running"
            + (
                f" · best <b>{html.number(best.value)}</b> (trial {best.number}: "
                f"{escape(params_text(best.params))})"
                if best is not None and best.value is not None
                else ""
            )
            + "</div>"
        )

    def trials_table(self) -> str:
        summary = self.summary
        best = summary.best
        rows = [
            [
                ("★ " if best is not None and t.number == best.number else "") + str(t.number),
                html.state(t.state),
                # A pruned trial's value is where it was stopped, not a result.
                "" if t.value is None or t.state != "complete" else html.number(t.value),
                escape(params_text(t.params)),
                html.duration(t.duration_s) if t.state != "running" else "",
            ]
            for t in summary.trials[-MAX_TRIAL_ROWS:]
        ]
        return html.table(("trial", "state", "value", "parameters", "duration"), rows, {0, 2, 4})

    def html(self) -> str:
        return html.block(
            self.header(),
            '<div style="display:flex;gap:24px;flex-wrap:wrap"><div>',
            self.trials_table(),
            "</div><div>",
            history_svg(self.summary),
            importances_html(self.importances),
            "</div></div>",
        )

    def text(self) -> str:
        summary = self.summary
        best = summary.best
        lines = [f"study {self.name} ({self.direction}): {summary.completed} trials complete"]
        if best is not None and best.value is not None:
            lines.append(
                f"  best {html.number(best.value)} at trial {best.number}: "
                + params_text(best.params)
            )
        for name, share in sorted(self.importances.items(), key=lambda kv: -kv[1]):
            lines.append(f"  importance {name}: {share:.0%}")
        return "\n".join(lines)
