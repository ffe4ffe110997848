"""Cache keys change with every input that decides a result, and only with those."""

from __future__ import annotations

from dataclasses import replace

import pytest

from workbench.cache.keys import ChangeKind, KeyInputs, canonical_json, changes_between

BASE = KeyInputs(
    task_type="model_training",
    code="c0de",
    functions={"workbench.tasks.training:run": "aa", "workbench.tasks.training:_fit": "bb"},
    libraries={"scikit-learn": "1.9.0", "xgboost": "3.2.0"},
    params={"algorithm": "xgboost", "hyperparameters": {"max_depth": 5, "eta": 0.1}},
    globals={"random_state": 7},
    upstream={"features": "f" * 64},
    files={"dataset_path": "d" * 64},
)


@pytest.mark.parametrize(
    "changed",
    [
        replace(BASE, task_type="model_validation"),
        replace(BASE, code="c0de2"),
        replace(BASE, libraries={**BASE.libraries, "xgboost": "3.3.0"}),
        replace(BASE, params={**BASE.params, "algorithm": "random_forest"}),
        replace(BASE, params={**BASE.params, "hyperparameters": {"max_depth": 6, "eta": 0.1}}),
        replace(BASE, globals={"random_state": 8}),
        replace(BASE, globals={}),
        replace(BASE, upstream={"features": "e" * 64}),
        replace(BASE, upstream={**BASE.upstream, "extra": "a" * 64}),
        replace(BASE, files={"dataset_path": "e" * 64}),
    ],
)
def test_every_input_changes_the_key(changed: KeyInputs) -> None:
    assert changed.key() != BASE.key()


def test_what_cannot_change_a_result_leaves_the_key_alone() -> None:
    reordered = replace(
        BASE,
        params={"hyperparameters": {"eta": 0.1, "max_depth": 5}, "algorithm": "xgboost"},
        libraries={"xgboost": "3.2.0", "scikit-learn": "1.9.0"},
    )
    renamed_upstream = replace(BASE, upstream={"feature_step": "f" * 64})
    # `functions` only explains which definition changed; `code` already covers them.
    assert reordered.key() == BASE.key()
    assert renamed_upstream.key() == BASE.key()


def test_key_is_a_stable_sha256_hex() -> None:
    assert BASE.key() == KeyInputs.from_json(BASE.to_json()).key()
    assert len(BASE.key()) == 64
    int(BASE.key(), 16)


def test_canonical_json_ignores_mapping_order() -> None:
    assert canonical_json({"b": 1, "a": [1, {"y": 2, "x": 1}]}) == canonical_json(
        {"a": [1, {"x": 1, "y": 2}], "b": 1}
    )


def test_changes_name_what_differs() -> None:
    after = replace(
        BASE,
        params={**BASE.params, "algorithm": "random_forest"},
        globals={"random_state": 8},
        upstream={"features": "e" * 64},
        files={"dataset_path": "e" * 64},
        libraries={**BASE.libraries, "xgboost": "3.3.0"},
        functions={**BASE.functions, "workbench.tasks.training:_fit": "cc"},
        code="c0de2",
    )
    changes = changes_between(BASE, after)
    kinds = [(c.kind, c.name) for c in changes]
    assert kinds == [
        (ChangeKind.PARAMETER, "algorithm"),
        (ChangeKind.GLOBAL_PARAMETER, "random_state"),
        (ChangeKind.DATA_FILE, "dataset_path"),
        (ChangeKind.UPSTREAM, "features"),
        (ChangeKind.LIBRARY, "xgboost"),
        (ChangeKind.CODE, "workbench.tasks.training:_fit"),
    ]
    text = [c.describe() for c in changes]
    assert text[0] == 'parameter \'algorithm\': "xgboost" -> "random_forest"'
    assert text[4] == 'library version \'xgboost\': "3.2.0" -> "3.3.0"'
    assert text[5] == "code of workbench.tasks.training:_fit changed"


def test_no_changes_between_equal_recipes() -> None:
    assert changes_between(BASE, KeyInputs.from_json(BASE.to_json())) == []


def test_added_and_removed_parameters_are_changes() -> None:
    after = replace(BASE, params={"algorithm": "xgboost", "n_estimators": 10})
    changes = {c.name: (c.before, c.after) for c in changes_between(BASE, after)}
    assert changes == {
        "hyperparameters": ({"max_depth": 5, "eta": 0.1}, None),
        "n_estimators": (None, 10),
    }
