"""How things look: a colour and a symbol per state, bars, durations, numbers. Rich Text only."""

from __future__ import annotations

import time

from rich.text import Text

from workbench.client.overview import ServiceState
from workbench.client.symbols import SYMBOLS
from workbench.dag.states import TaskState, WorkflowStatus

# state -> its style; the symbol is the one every UI shows (workbench.client.symbols)
STATE_STYLE: dict[str, str] = {
    TaskState.PENDING: "grey50",
    TaskState.SUBMITTED: "cyan",
    TaskState.RUNNING: "bold yellow",
    TaskState.RETRYING: "bold magenta",
    TaskState.SUCCEEDED: "bold green",
    TaskState.CACHED: "bold blue",
    TaskState.FAILED: "bold red",
    TaskState.SKIPPED: "grey50",
    TaskState.CANCELLED: "dark_orange",
    WorkflowStatus.PENDING: "grey50",
    WorkflowStatus.RUNNING: "bold yellow",
    WorkflowStatus.SUCCEEDED: "bold green",
    WorkflowStatus.FAILED: "bold red",
    WorkflowStatus.CANCELLED: "dark_orange",
    # trials
    "complete": "bold green",
    "pruned": "magenta",
    "fail": "bold red",
    "retried": "grey50",
    "waiting": "grey50",
    # model stages
    "production": "bold green",
    "staging": "cyan",
    "archived": "grey50",
    "none": "grey62",
}
STATE_LOOK = {state: (SYMBOLS[state], style) for state, style in STATE_STYLE.items()}

SERVICE_STYLE = {
    ServiceState.OK: "bold green",
    ServiceState.DOWN: "bold red",
    ServiceState.NOT_CONFIGURED: "grey50",
    ServiceState.NOT_STARTED: "cyan",
}
SERVICE_LOOK = {state: (SYMBOLS[state], style) for state, style in SERVICE_STYLE.items()}


def state(value: str) -> Text:
    symbol, style = STATE_LOOK.get(value, ("?", ""))
    return Text(f"{symbol} {value}", style=style)


def service(value: ServiceState) -> Text:
    symbol, style = SERVICE_LOOK[value]
    return Text(f"{symbol} {value.value}", style=style)


def bar(fraction: float, width: int = 12) -> Text:
    fraction = min(1.0, max(0.0, fraction))
    full = round(fraction * width)
    text = Text("━" * full, style="green")
    text.append("━" * (width - full), style="grey23")
    text.append(f" {fraction:4.0%}")
    return text


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def metrics(values: dict[str, float], shown: int = 4) -> str:
    items = [f"{k}={v:.4g}" for k, v in list(values.items())[:shown]]
    if len(values) > shown:
        items.append(f"+{len(values) - shown}")
    return " ".join(items) or "-"


def size(num_bytes: float | None) -> str:
    if num_bytes is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num_bytes < 1024 or unit == "GiB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.1f} GiB"


def clock(timestamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(timestamp))
