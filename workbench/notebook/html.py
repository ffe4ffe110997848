"""HTML pieces shared by the notebook views: one colour and symbol per state, tables, bars.

Pure functions over plain values: the same markup serves the live widgets and the static
fallback (nbconvert, a notebook saved without widget state), so both read alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from workbench.client.overview import ServiceState
from workbench.client.symbols import SYMBOLS
from workbench.dag.states import TaskState, WorkflowStatus

# state -> its colour; the symbol is the one every UI shows (workbench.client.symbols)
COLOURS: dict[str, str] = {
    TaskState.PENDING: "#8a8a8a",
    TaskState.SUBMITTED: "#0f8a9d",
    TaskState.RUNNING: "#b58900",
    TaskState.RETRYING: "#a0479e",
    TaskState.SUCCEEDED: "#2e8b3a",
    TaskState.CACHED: "#2a6fdb",
    TaskState.FAILED: "#d03030",
    TaskState.SKIPPED: "#8a8a8a",
    TaskState.CANCELLED: "#c46a00",
    WorkflowStatus.PENDING: "#8a8a8a",
    WorkflowStatus.RUNNING: "#b58900",
    WorkflowStatus.SUCCEEDED: "#2e8b3a",
    WorkflowStatus.FAILED: "#d03030",
    WorkflowStatus.CANCELLED: "#c46a00",
    "complete": "#2e8b3a",
    "pruned": "#a0479e",
    "fail": "#d03030",
    "retried": "#8a8a8a",
    "production": "#2e8b3a",
    "staging": "#0f8a9d",
    "archived": "#8a8a8a",
    "none": "#8a8a8a",
    ServiceState.OK: "#2e8b3a",
    ServiceState.DOWN: "#d03030",
    ServiceState.NOT_CONFIGURED: "#8a8a8a",
    ServiceState.NOT_STARTED: "#0f8a9d",
}
LOOK = {state: (SYMBOLS[state], colour) for state, colour in COLOURS.items()}

STYLE = (
    "<style>"
    ".wb{font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;line-height:1.45}"
    ".wb table{border-collapse:collapse;margin:4px 0}"
    ".wb th{text-align:left;font-weight:600;border-bottom:1px solid #bbb;padding:2px 10px 2px 0}"
    ".wb td{padding:2px 10px 2px 0;vertical-align:top;white-space:nowrap}"
    ".wb td:last-child{white-space:normal}"  # metrics and ids may wrap, states and bars not
    ".wb .num{text-align:right;font-variant-numeric:tabular-nums}"
    ".wb .dim{color:#8a8a8a}"
    ".wb .bar{display:inline-block;width:110px;height:9px;background:#e4e4e4;"
    "border-radius:4px;vertical-align:middle;overflow:hidden}"
    ".wb .bar>span{display:block;height:100%;border-radius:4px}"
    ".wb .badge{font-size:11px;padding:0 5px;border-radius:7px;color:#fff}"
    ".wb .head{font-weight:600;margin-bottom:2px}"
    ".wb pre{white-space:pre-wrap;font-size:12px;margin:2px 0}"
    "</style>"
)


def symbol(value: str) -> str:
    return LOOK.get(value, ("?", ""))[0]


def state(value: str) -> str:
    """A state as a coloured symbol and its name."""
    mark, colour = LOOK.get(value, ("?", "#444"))
    return (
        f'<span style="color:{colour}" data-state="{escape(value)}">{mark} {escape(value)}</span>'
    )


def bar(fraction: float, colour: str = "#2e8b3a") -> str:
    width = max(0.0, min(1.0, fraction)) * 100
    return f'<span class="bar"><span style="width:{width:.0f}%;background:{colour}"></span></span>'


def badge(text: str, colour: str) -> str:
    return f'<span class="badge" style="background:{colour}">{escape(text)}</span>'


def table(
    head: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int] | None = None
) -> str:
    """Cells are markup already (escape text with `escape`); `numeric` columns align right."""
    numeric = numeric or set()
    cls = [' class="num"' if i in numeric else "" for i in range(len(head))]
    header = "".join(f"<th{cls[i]}>{escape(h)}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f"<td{cls[i]}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def block(*parts: str) -> str:
    """The parts in one styled container."""
    return f'{STYLE}<div class="wb">{"".join(parts)}</div>'


def number(value: float) -> str:
    """Counts as integers with separators, everything else with four significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def metrics(values: dict[str, float], limit: int = 4) -> str:
    shown = list(values.items())[:limit]
    more = len(values) - len(shown)
    text = ", ".join(f"{escape(k)}={number(v)}" for k, v in shown)
    return text + (f' <span class="dim">+{more}</span>' if more > 0 else "")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def error(text: str) -> str:
    """A failure, in red, with the mark every UI uses."""
    return f'<span style="color:{COLOURS[TaskState.FAILED]}">✘ {escape(text)}</span>'


def pre(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"
