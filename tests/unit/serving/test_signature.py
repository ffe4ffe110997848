"""Request rows checked against a model's signature: strict kinds, no nulls, extra keys ignored,
clear problems with the row and field, and a frame in the trained order and dtypes."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from workbench.errors import DataError, WorkbenchError
from workbench.serving.signature import RowValidationError, SignatureValidator, validate_rows

SIGNATURE = {"count": "int64", "amount": "float64", "city": "object", "flag": "bool"}
GOOD = {"count": 3, "amount": 12.5, "city": "Oslo", "flag": True}


def problems_of(payload: Any, signature: dict[str, str] = SIGNATURE, **kwargs: Any) -> list:
    with pytest.raises(RowValidationError) as caught:
        SignatureValidator(signature, **kwargs).validate_rows(payload)
    return caught.value.problems


def test_valid_rows_become_a_frame_in_signature_order_with_trained_dtypes() -> None:
    rows = [{"id": "x-1", **GOOD}, {"flag": False, "city": "Rome", "amount": 7, "count": -2}]
    frame = SignatureValidator(SIGNATURE).validate_rows({"rows": rows})
    assert list(frame.columns) == list(SIGNATURE)  # extra "id" dropped, order as signed
    assert {c: str(t) for c, t in frame.dtypes.items()} == SIGNATURE
    assert frame["amount"].tolist() == [12.5, 7.0]  # a JSON int is a fine float
    assert frame["count"].tolist() == [3, -2]


def test_other_dtypes_map_to_their_kind() -> None:
    signature = {"small": "uint8", "n": "Int64", "x": "float32", "text": "str", "c": "category"}
    row = {"small": 255, "n": 1, "x": 0.5, "text": "a", "c": "b"}
    frame = validate_rows(signature, {"rows": [row]})
    assert str(frame["small"].dtype) == "uint8" and str(frame["x"].dtype) == "float32"
    assert frame["c"].tolist() == ["b"]
    assert problems_of({"rows": [{**row, "small": 256}]}, signature)[0]["field"] == "small"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("amount", "12.5", "Input should be a valid number"),  # string in a float column
        ("amount", True, "Input should be a valid number"),
        ("amount", float("nan"), "Input should be a finite number"),
        ("count", 3.0, "Input should be a valid integer"),  # float in an int column
        ("count", True, "Input should be a valid integer"),
        ("count", 2**64, "Input should be less than or equal to 9223372036854775807"),
        ("city", 42, "Input should be a valid string"),  # number in a text column
        ("flag", "true", "Input should be a valid boolean"),
        ("flag", 1, "Input should be a valid boolean"),
        ("amount", None, "Value is null; every feature needs a value"),
        ("city", None, "Value is null; every feature needs a value"),
    ],
)
def test_a_wrong_value_names_row_field_and_expected_dtype(field: str, value: Any, error: str):
    problems = problems_of({"rows": [GOOD, {**GOOD, field: value}]})
    assert problems == [{"row": 1, "field": field, "error": error, "expected": SIGNATURE[field]}]


def test_a_missing_feature_is_reported_for_each_row() -> None:
    without = {k: v for k, v in GOOD.items() if k != "amount"}
    problems = problems_of({"rows": [without, GOOD, without]})
    assert [(p["row"], p["field"], p["error"]) for p in problems] == [
        (0, "amount", "Field required"),
        (2, "amount", "Field required"),
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([GOOD], "must be a JSON object"),
        ("rows", "must be a JSON object"),
        ({"data": [GOOD]}, 'has no "rows"'),
        ({"rows": GOOD}, '"rows" must be a list'),
        ({"rows": []}, '"rows" is empty'),
    ],
)
def test_a_malformed_body_is_refused_with_a_clear_message(payload: Any, message: str) -> None:
    with pytest.raises(RowValidationError, match=message) as caught:
        SignatureValidator(SIGNATURE).validate_rows(payload)
    assert caught.value.problems == []


def test_rows_that_are_not_objects_are_named() -> None:
    problems = problems_of({"rows": [GOOD, [1, 2], "x"]})
    assert [(p["row"], p["error"]) for p in problems] == [
        (1, "a row must be a JSON object, got a list"),
        (2, "a row must be a JSON object, got a string"),
    ]


def test_too_many_rows_are_refused() -> None:
    with pytest.raises(RowValidationError, match="too many rows: 4 in one request, at most 3"):
        SignatureValidator(SIGNATURE, max_rows=3).validate_rows({"rows": [GOOD] * 4})
    assert len(SignatureValidator(SIGNATURE, max_rows=3).validate_rows({"rows": [GOOD] * 3})) == 3


def test_column_names_need_not_be_identifiers() -> None:
    signature = {"model_config": "object", "amount (EUR)": "float64", "2nd": "int64"}
    row = {"model_config": "a", "amount (EUR)": 1.5, "2nd": 2}
    assert validate_rows(signature, {"rows": [row]}).iloc[0].tolist() == ["a", 1.5, 2]
    problems = problems_of({"rows": [{**row, "amount (EUR)": "x"}]}, signature)
    assert problems[0]["field"] == "amount (EUR)"


def test_the_problem_list_is_capped_but_the_message_counts_all() -> None:
    with pytest.raises(RowValidationError, match="500 of 500 row") as caught:
        SignatureValidator(SIGNATURE).validate_rows({"rows": [{}] * 500})
    assert len(caught.value.problems) == 100


def test_the_error_is_a_workbench_data_error_and_pickles() -> None:
    with pytest.raises(RowValidationError) as caught:
        validate_rows(SIGNATURE, {"rows": [{}]})
    error = caught.value
    assert isinstance(error, DataError) and isinstance(error, WorkbenchError)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.problems == error.problems


def test_an_empty_signature_or_cap_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        SignatureValidator({})
    with pytest.raises(ValueError):
        SignatureValidator(SIGNATURE, max_rows=0)
