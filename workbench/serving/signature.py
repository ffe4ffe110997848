"""Validate scoring requests against a model's input signature (column -> pandas dtype string).

Each row must carry every feature, non-null and of the trained kind: integer columns take JSON
integers only (no 3.0, no true), float columns take any JSON number (never a string), boolean
columns take true/false, every other dtype (object, str, string, category, ...) takes strings.
Keys the model does not use (ids, ...) are ignored. A valid batch becomes a DataFrame in the
signature's column order with the trained dtypes, ready for `FittedModel.predict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from workbench.errors import DataError

DEFAULT_MAX_ROWS = 10_000
MAX_PROBLEMS = 100  # a bad 10,000-row batch should not produce a 10,000-entry answer
_TEXT_DTYPES = {"object", "str", "string"}


class RowValidationError(DataError):
    """The request's rows do not fit the model's signature; nothing was scored.

    `problems` lists what is wrong, one entry per row and field where that applies:
    `{"row": 3, "field": "amount", "error": "Input should be a valid number",
    "expected": "float64"}` (row and field are None for a problem with the whole body).
    """

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        self.problems = list(problems or [])
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.problems))


@dataclass(frozen=True)
class _Column:
    name: str
    dtype: str  # as trained
    kind: str  # "int", "float", "bool" or "str"


def _kind(dtype: str) -> str:
    lowered = dtype.lower()
    if lowered.startswith(("int", "uint")):
        return "int"
    if lowered.startswith("float"):
        return "float"
    if lowered in ("bool", "boolean"):
        return "bool"
    return "str"


def _field_type(column: _Column) -> Any:
    """The pydantic type of one feature; integers are bounded by their dtype, so a too-large
    number is refused here rather than turning the column into objects."""
    if column.kind == "int":
        try:
            info = np.iinfo(np.dtype(column.dtype.lower()))
            return (int, Field(alias=column.name, ge=int(info.min), le=int(info.max)))
        except TypeError:  # an unusual integer dtype name: unbounded
            return (int, Field(alias=column.name))
    python_type = {"float": float, "bool": bool}.get(column.kind, str)
    return (python_type, Field(alias=column.name))


class SignatureValidator:
    """Checks request bodies `{"rows": [{feature: value, ...}, ...]}` against `signature`."""

    def __init__(self, signature: Mapping[str, Any], *, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        if not signature:
            raise ValueError("a signature needs at least one column")
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.max_rows = max_rows
        self.columns = [_Column(str(c), str(d), _kind(str(d))) for c, d in signature.items()]
        # Fields are named f0, f1, ... with the column as alias: a column may be any string,
        # including one that is not an identifier or that shadows a BaseModel attribute.
        fields = {f"f{i}": _field_type(column) for i, column in enumerate(self.columns)}
        row_model = create_model(
            "Row",
            __config__=ConfigDict(strict=True, extra="ignore", allow_inf_nan=False),
            **fields,
        )
        self._row_model: type[BaseModel] = row_model
        self._rows = TypeAdapter(list[row_model])
        self._expected = {column.name: column.dtype for column in self.columns}

    @property
    def signature(self) -> dict[str, str]:
        return dict(self._expected)

    def validate_rows(self, payload: Any) -> pd.DataFrame:
        """The rows of a parsed JSON body as a DataFrame, or RowValidationError."""
        rows = self._check_body(payload)
        try:
            validated = self._rows.validate_python(rows)
        except ValidationError as exc:
            problems = [self._problem(error) for error in exc.errors()]
            raise _refusal(problems, len(rows)) from None
        data = {
            column.name: [getattr(row, f"f{i}") for row in validated]
            for i, column in enumerate(self.columns)
        }
        return pd.DataFrame(
            {column.name: _as_trained(data[column.name], column) for column in self.columns}
        )

    def _check_body(self, payload: Any) -> list[Any]:
        if not isinstance(payload, dict):
            raise RowValidationError(
                f'the request body must be a JSON object {{"rows": [...]}}, got '
                f"{_json_kind(payload)}"
            )
        if "rows" not in payload:
            raise RowValidationError(
                'the request body has no "rows": send {"rows": [{feature: value, ...}, ...]}'
            )
        rows = payload["rows"]
        if not isinstance(rows, list):
            raise RowValidationError(f'"rows" must be a list of objects, got {_json_kind(rows)}')
        if not rows:
            raise RowValidationError('"rows" is empty: send at least one row to score')
        if len(rows) > self.max_rows:
            raise RowValidationError(
                f"too many rows: {len(rows)} in one request, at most {self.max_rows}; "
                "split the batch"
            )
        not_objects = [
            {
                "row": i,
                "field": None,
                "error": f"a row must be a JSON object, got {_json_kind(row)}",
                "expected": "object",
            }
            for i, row in enumerate(rows)
            if not isinstance(row, dict)
        ]
        if not_objects:
            raise _refusal(not_objects, len(rows))
        return rows

    def _problem(self, error: Mapping[str, Any]) -> dict[str, Any]:
        loc = tuple(error.get("loc", ()))
        row = loc[0] if loc and isinstance(loc[0], int) else None
        field = str(loc[1]) if len(loc) > 1 else None
        message = str(error.get("msg", "invalid value"))
        if error.get("type") != "missing" and error.get("input", "") is None:
            message = "Value is null; every feature needs a value"
        elif error.get("type") == "missing":
            message = "Field required"
        return {
            "row": row,
            "field": field,
            "error": message,
            "expected": self._expected.get(field or "", None),
        }


def _refusal(problems: list[dict[str, Any]], n_rows: int) -> RowValidationError:
    rows = sorted({p["row"] for p in problems if p["row"] is not None})
    shown = problems[:MAX_PROBLEMS]
    first = shown[0]
    where = f"row {first['row']}" + (f", field {first['field']!r}" if first["field"] else "")
    more = "" if len(problems) <= MAX_PROBLEMS else f" (first {MAX_PROBLEMS} listed)"
    return RowValidationError(
        f"{len(rows)} of {n_rows} row(s) do not match the model's signature, "
        f"{len(problems)} problem(s){more}; first: {where}: {first['error']}",
        shown,
    )


def _as_trained(values: list[Any], column: _Column) -> pd.Series:
    """Values in the dtype seen in training; text of a dtype that cannot be rebuilt from its
    name alone (category) stays object, which the model's own transform accepts."""
    if column.kind == "str":
        dtype = column.dtype if column.dtype in _TEXT_DTYPES else "object"
        return pd.Series(values, dtype=dtype, name=column.name)
    try:
        return pd.Series(values, name=column.name).astype(column.dtype)
    except (TypeError, ValueError):  # a dtype name pandas does not know: leave it inferred
        return pd.Series(values, name=column.name)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def validate_rows(
    signature: Mapping[str, Any], payload: Any, *, max_rows: int = DEFAULT_MAX_ROWS
) -> pd.DataFrame:
    """One-off convenience: `SignatureValidator(signature, max_rows=...).validate_rows(...)`."""
    return SignatureValidator(signature, max_rows=max_rows).validate_rows(payload)
