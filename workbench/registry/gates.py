"""Promotion gates: conditions a challenger's metrics must meet, as short expressions.

Forms, per metric (whitespace is free, "vs champion" is case-insensitive):

* ``>= 0.8``, ``> 0.8``, ``<= 10``, ``< 10``, ``== 1``: the challenger's value against a fixed
  number. ``==`` allows for float rounding (relative 1e-9, absolute 1e-12).
* ``+0.01 vs champion``, ``-0.5 vs champion`` (also ``0 vs champion``): the challenger against
  the current champion. A positive margin is how much better the challenger must be, a negative
  one how much worse it may be: ``challenger >= champion + margin``, or, for a metric in
  `lower_is_better` (log_loss, rmse, ...), ``challenger <= champion - margin``.

How the edge cases come out:

* the challenger lacks the metric, or its value is NaN: the gate fails;
* a champion gate when there is no champion (``champion=None``): the gate passes, with reason
  "no champion to compare with", so the first version of a model can be promoted;
* the champion lacks the metric, or its value is NaN: the gate passes the same way, with a
  reason saying so (e.g. a metric added after the champion was registered).

Every row of a `GateReport` carries its reason, so a pass with nothing to compare is visible.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from workbench.registry.errors import RegistryInputError

ACCEPTED_FORMS = (
    ">= 0.8, > 0.8, <= 10, < 10, == 1 (a fixed threshold), or "
    "+0.01 vs champion / -0.5 vs champion (a margin over the current champion)"
)
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_THRESHOLD = re.compile(rf"\s*(>=|<=|==|>|<)\s*([+-]?\s*{_NUMBER})\s*")
_CHAMPION = re.compile(rf"\s*([+-]?)\s*({_NUMBER})\s*vs\s+champion\s*", re.IGNORECASE)

# Metrics where a smaller value is better (the task types' metrics use the same names).
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})

Op = Literal[">=", ">", "<=", "<", "=="]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": _close,
}


@dataclass(frozen=True)
class Gate:
    """One parsed gate. `op` and `threshold` are set for a fixed-threshold gate; `margin` for
    a champion gate (then `op` and `threshold` are None)."""

    metric: str
    expression: str
    op: Op | None = None
    threshold: float | None = None
    margin: float | None = None

    @property
    def vs_champion(self) -> bool:
        return self.margin is not None

    def check(
        self,
        challenger: Mapping[str, float],
        champion: Mapping[str, float] | None,
        lower_is_better: frozenset[str] = frozenset(),
    ) -> GateRow:
        value = _value(challenger, self.metric)
        best = _value(champion, self.metric) if champion is not None else None

        def row(passed: bool, reason: str) -> GateRow:
            return GateRow(self.metric, self.expression, value, best, passed, reason)

        if self.metric not in challenger:
            known = ", ".join(sorted(challenger)) or "none"
            return row(False, f"the challenger has no {self.metric!r} metric; its metrics: {known}")
        assert value is not None
        if math.isnan(value):
            return row(False, f"the challenger's {self.metric} is NaN")
        if self.margin is None:
            assert self.op is not None and self.threshold is not None
            passed = _OPS[self.op](value, self.threshold)
            verdict = "meets" if passed else "does not meet"
            return row(passed, f"{value:g} {verdict} {self.op} {self.threshold:g}")
        if champion is None:
            return row(True, "no champion to compare with")
        if best is None or math.isnan(best):
            what = "no" if best is None else "a NaN"
            return row(True, f"the champion has {what} {self.metric!r} to compare with")
        lower = self.metric in lower_is_better
        if lower:
            bound, passed, op = best - self.margin, value <= best - self.margin, "<="
        else:
            bound, passed, op = best + self.margin, value >= best + self.margin, ">="
        verdict = "meets" if passed else "does not meet"
        direction = "lower is better" if lower else "higher is better"
        return row(
            passed,
            f"{value:g} {verdict} {op} {bound:g} (champion {best:g}, margin {self.margin:+g}, "
            f"{direction})",
        )


@dataclass(frozen=True)
class GateRow:
    metric: str
    expression: str
    challenger: float | None  # None: the challenger lacks the metric
    champion: float | None  # None: no champion, or it lacks the metric
    passed: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "expression": self.expression,
            "challenger": _finite_or_none(self.challenger),
            "champion": _finite_or_none(self.champion),
            "passed": self.passed,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class GateReport:
    rows: tuple[GateRow, ...]

    @property
    def passed(self) -> bool:
        """Every gate passed (no gates: True)."""
        return all(r.passed for r in self.rows)

    @property
    def failed(self) -> tuple[GateRow, ...]:
        return tuple(r for r in self.rows if not r.passed)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (NaN and infinities become null; each row's reason says why)."""
        return {"passed": self.passed, "gates": [r.to_json() for r in self.rows]}


def parse_gate(metric: str, expression: str) -> Gate:
    """The gate `expression` on `metric`; RegistryInputError if it is none of the forms."""
    text = expression if isinstance(expression, str) else ""
    if m := _THRESHOLD.fullmatch(text):
        threshold = float(m.group(2).replace(" ", ""))
        if math.isfinite(threshold):
            op: Op = m.group(1)  # type: ignore[assignment]
            return Gate(metric, expression, op=op, threshold=threshold)
    elif m := _CHAMPION.fullmatch(text):
        margin = float(m.group(1) + m.group(2))
        if math.isfinite(margin):
            return Gate(metric, expression, margin=margin)
    raise RegistryInputError(
        f"invalid gate on {metric!r}: {expression!r}. Accepted forms: {ACCEPTED_FORMS}"
    )


def parse_gates(gates: Mapping[str, str]) -> list[Gate]:
    """Every gate parsed; one RegistryInputError naming all malformed ones."""
    parsed: list[Gate] = []
    bad: list[str] = []
    for metric, expression in gates.items():
        try:
            parsed.append(parse_gate(metric, expression))
        except RegistryInputError:
            bad.append(f"{metric!r}: {expression!r}")
    if bad:
        raise RegistryInputError(
            f"invalid gate(s) {'; '.join(bad)}. Accepted forms: {ACCEPTED_FORMS}"
        )
    return parsed


def evaluate_gates(
    gates: Mapping[str, str],
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    lower_is_better: frozenset[str] = LOWER_IS_BETTER,
) -> GateReport:
    """Check `challenger`'s metrics against every gate (metric -> expression). `champion` is
    the current champion's metrics, or None when there is none (champion gates then pass).
    All expressions are parsed first: a malformed one raises before anything is evaluated."""
    return GateReport(
        tuple(g.check(challenger, champion, lower_is_better) for g in parse_gates(gates))
    )


def _value(metrics: Mapping[str, float] | None, metric: str) -> float | None:
    if metrics is None or metric not in metrics:
        return None
    return float(metrics[metric])


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
