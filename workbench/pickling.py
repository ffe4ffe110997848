"""Pickling anything a workflow hands around: plain pickle, cloudpickle where pickle cannot
(lambdas, classes defined in a spec's .py imports, local functions)."""

from __future__ import annotations

import pickle
from typing import Any


def dumps(obj: Any) -> bytes:
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        data: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        return data
