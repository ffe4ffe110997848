"""Promotion gate expressions: parsing, thresholds, champion margins, missing metrics."""

from __future__ import annotations

import json
import math

import pytest

from workbench.registry.errors import RegistryInputError
from workbench.registry.gates import Gate, evaluate_gates, parse_gate

LOWER = frozenset({"rmse", "log_loss", "mae"})


@pytest.mark.parametrize(
    ("expression", "op", "threshold"),
    [
        (">= 0.8", ">=", 0.8),
        ("> 0.8", ">", 0.8),
        ("<= 10", "<=", 10.0),
        ("< 10", "<", 10.0),
        ("== 1", "==", 1.0),
        ("  >=0.8  ", ">=", 0.8),
        (">=.5", ">=", 0.5),
        ("<= -1.5", "<=", -1.5),
        ("< 1e-3", "<", 0.001),
    ],
)
def test_threshold_forms_parse(expression: str, op: str, threshold: float) -> None:
    gate = parse_gate("f1_score", expression)
    assert gate == Gate("f1_score", expression, op=op, threshold=threshold)  # type: ignore[arg-type]
    assert not gate.vs_champion


@pytest.mark.parametrize(
    ("expression", "margin"),
    [
        ("+0.01 vs champion", 0.01),
        ("-0.5 vs champion", -0.5),
        ("0 vs champion", 0.0),
        ("  + 0.01   VS   Champion ", 0.01),
    ],
)
def test_champion_forms_parse(expression: str, margin: float) -> None:
    gate = parse_gate("f1_score", expression)
    assert gate.vs_champion and gate.margin == margin and gate.op is None


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "0.8",
        "=> 0.8",
        ">= ",
        ">= abc",
        ">= 0.8 vs champion",
        "+0.01 vs",
        "+0.01 champion",
        "+0.01 vs challenger",
        ">= nan",
        ">= inf",
        "nan vs champion",
        "!= 1",
        ">= 0.8 extra",
    ],
)
def test_malformed_expressions(expression: str) -> None:
    with pytest.raises(RegistryInputError) as info:
        parse_gate("f1_score", expression)
    message = str(info.value)
    assert "'f1_score'" in message and repr(expression) in message
    assert ">= 0.8" in message and "vs champion" in message  # shows the accepted forms


def test_evaluate_reports_every_malformed_gate_before_evaluating() -> None:
    with pytest.raises(RegistryInputError) as info:
        evaluate_gates({"f1_score": "big", "rmse": "<< 3", "accuracy": ">= 0.5"}, {}, None)
    assert "'big'" in str(info.value) and "'<< 3'" in str(info.value)
    assert "accuracy" not in str(info.value).split("Accepted")[0]


@pytest.mark.parametrize(
    ("expression", "value", "passed"),
    [
        (">= 0.8", 0.8, True),
        (">= 0.8", 0.79, False),
        ("> 0.8", 0.8, False),
        ("> 0.8", 0.81, True),
        ("<= 10", 10.0, True),
        ("<= 10", 10.01, False),
        ("< 10", 10.0, False),
        ("< 10", 9.99, True),
        ("== 1", 1.0, True),
        ("== 0.3", 0.1 + 0.2, True),  # float rounding tolerated
        ("== 1", 0.99, False),
    ],
)
def test_threshold_gates(expression: str, value: float, passed: bool) -> None:
    report = evaluate_gates({"m": expression}, {"m": value}, None)
    assert report.passed is passed
    (row,) = report.rows
    assert (row.metric, row.expression, row.challenger, row.champion, row.passed) == (
        "m",
        expression,
        value,
        None,
        passed,
    )
    assert row.reason


def test_thresholds_ignore_lower_is_better() -> None:
    assert evaluate_gates({"rmse": "<= 10"}, {"rmse": 9.0}, None, LOWER).passed
    assert not evaluate_gates({"rmse": ">= 10"}, {"rmse": 9.0}, None, LOWER).passed


@pytest.mark.parametrize(
    ("expression", "challenger", "champion", "passed"),
    [
        ("+0.01 vs champion", 0.81, 0.80, True),
        ("+0.01 vs champion", 0.805, 0.80, False),
        ("-0.05 vs champion", 0.76, 0.80, True),
        ("-0.05 vs champion", 0.74, 0.80, False),
        ("0 vs champion", 0.80, 0.80, True),
    ],
)
def test_champion_margins_higher_is_better(
    expression: str, challenger: float, champion: float, passed: bool
) -> None:
    report = evaluate_gates(
        {"f1_score": expression}, {"f1_score": challenger}, {"f1_score": champion}, LOWER
    )
    assert report.passed is passed
    assert report.rows[0].champion == champion and report.rows[0].challenger == challenger


@pytest.mark.parametrize(
    ("expression", "challenger", "champion", "passed"),
    [
        # must improve (go down) by at least 0.5
        ("+0.5 vs champion", 9.5, 10.0, True),
        ("+0.5 vs champion", 9.6, 10.0, False),
        ("+0.5 vs champion", 10.5, 10.0, False),  # passes only if higher were better
        # may be worse (higher) by up to 0.5
        ("-0.5 vs champion", 10.5, 10.0, True),
        ("-0.5 vs champion", 10.6, 10.0, False),
        ("-0.5 vs champion", 9.0, 10.0, True),
    ],
)
def test_champion_margins_lower_is_better(
    expression: str, challenger: float, champion: float, passed: bool
) -> None:
    report = evaluate_gates({"rmse": expression}, {"rmse": challenger}, {"rmse": champion}, LOWER)
    assert report.passed is passed
    assert "lower is better" in report.rows[0].reason


def test_lower_is_better_flips_the_same_margin() -> None:
    args = ({"x": "+0.1 vs champion"}, {"x": 1.0}, {"x": 0.5})
    assert evaluate_gates(*args, frozenset()).passed
    assert not evaluate_gates(*args, frozenset({"x"})).passed


def test_challenger_missing_the_metric_fails() -> None:
    for expression in (">= 0.8", "+0.01 vs champion"):
        report = evaluate_gates({"f1_score": expression}, {"accuracy": 0.9}, {"f1_score": 0.5})
        assert not report.passed
        (row,) = report.rows
        assert row.challenger is None and not row.passed
        assert "no 'f1_score'" in row.reason and "accuracy" in row.reason


def test_challenger_nan_fails() -> None:
    for expression in (">= 0.8", "< 10", "-1 vs champion"):
        report = evaluate_gates({"m": expression}, {"m": math.nan}, {"m": 0.5})
        assert not report.passed and "NaN" in report.rows[0].reason


def test_no_champion_passes_champion_gates_with_a_reason() -> None:
    report = evaluate_gates({"f1_score": "+0.5 vs champion"}, {"f1_score": 0.1}, None)
    assert report.passed
    assert report.rows[0].reason == "no champion to compare with"
    assert report.rows[0].champion is None


def test_champion_lacking_the_metric_passes_with_a_reason() -> None:
    report = evaluate_gates({"f1_score": "+0.5 vs champion"}, {"f1_score": 0.1}, {"accuracy": 1.0})
    assert report.passed and "champion has no 'f1_score'" in report.rows[0].reason


def test_report_passes_only_if_every_gate_does_and_to_json() -> None:
    gates = {"f1_score": ">= 0.8", "rmse": "+0.1 vs champion", "accuracy": "> 0.9"}
    challenger = {"f1_score": 0.85, "rmse": 2.0, "accuracy": 0.5}
    report = evaluate_gates(gates, challenger, {"rmse": 2.05}, LOWER)
    assert [r.passed for r in report.rows] == [True, False, False]
    assert not report.passed
    assert [r.metric for r in report.failed] == ["rmse", "accuracy"]
    data = report.to_json()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["passed"] is False
    assert data["gates"][1] == {
        "metric": "rmse",
        "expression": "+0.1 vs champion",
        "challenger": 2.0,
        "champion": 2.05,
        "passed": False,
        "reason": data["gates"][1]["reason"],
    }
    assert set(data["gates"][0]) == {
        "metric",
        "expression",
        "challenger",
        "champion",
        "passed",
        "reason",
    }


def test_to_json_has_no_nan() -> None:
    data = evaluate_gates({"m": ">= 1"}, {"m": math.nan}, None).to_json()
    json.dumps(data, allow_nan=False)
    assert data["gates"][0]["challenger"] is None


def test_no_gates_pass() -> None:
    report = evaluate_gates({}, {}, None)
    assert report.passed and report.rows == () and report.to_json() == {"passed": True, "gates": []}
