"""The built-in types as a workflow would chain them, and their registration."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest

from workbench.spec.models import TaskType
from workbench.tasks.base import TaskRef
from workbench.tasks.inference import InferenceParams
from workbench.tasks.registry import REGISTRY

RUNNABLE = [
    "data_preprocessing",
    "feature_extraction",
    "model_training",
    "model_validation",
    "hyperparameter_tuning",
    "model_evaluation",
    "batch_inference",
    "model_deployment",
]


@pytest.mark.parametrize(
    ("dataset", "options", "algorithm", "headline"),
    [
        ("synthetic_fraud", {"n_rows": 500, "fraud_rate": 0.1, "seed": 5}, "xgboost", "f1_score"),
        (
            "synthetic_fraud",
            {"n_rows": 500, "fraud_rate": 0.1, "seed": 5},
            "random_forest",
            "f1_score",
        ),
        ("sklearn:breast_cancer", {}, "logistic_regression", "f1_score"),
        ("sklearn:wine", {}, "gradient_boosting", "f1_score"),
        ("sklearn:diabetes", {}, "xgboost", "r2"),
        ("sklearn:diabetes", {}, "random_forest", "r2"),
        ("sklearn:diabetes", {}, "logistic_regression", "r2"),
        ("sklearn:diabetes", {}, "gradient_boosting", "r2"),
    ],
)
def test_full_chain(run, dataset: str, options: dict, algorithm: str, headline: str) -> None:
    prep = run(
        "data_preprocessing", {"dataset": dataset, "dataset_options": options}, task_id="prep"
    )
    feats = run("feature_extraction", {}, {"prep": prep.output}, task_id="features")
    extra = {} if algorithm == "logistic_regression" else {"n_estimators": 10}
    train = run(
        "model_training",
        {"algorithm": algorithm, **extra},
        {"features": feats.output},
        task_id="train",
    )
    # Outputs travel between Dask workers by pickling.
    trained = pickle.loads(pickle.dumps(train.output))
    validate = run("model_validation", {"folds": 3}, {"train": trained}, task_id="validate")
    assert headline in validate.metrics
    evaluate = run("model_evaluation", {}, {"validate": validate.output}, task_id="evaluate")
    assert headline in evaluate.metrics
    infer = run("batch_inference", {"partitions": 2}, {"evaluate": evaluate.output})
    scored = pd.read_parquet(infer.artifacts["predictions"])
    assert len(scored) == len(prep.output.test) == infer.metrics["rows_scored"]


def test_xgboost_reaches_a_decent_f1_on_fraud(run) -> None:
    prep = run(
        "data_preprocessing",
        {"dataset": "synthetic_fraud", "dataset_options": {"n_rows": 8000, "fraud_rate": 0.05}},
    )
    train = run("model_training", {"n_estimators": 60}, {"prep": prep.output}, cpu=2)
    evaluate = run("model_evaluation", {}, {"train": train.output})
    assert evaluate.metrics["f1_score"] > 0.7


def test_every_builtin_type_is_registered() -> None:
    assert set(REGISTRY.names()) >= {t.value for t in TaskType}
    for name in RUNNABLE:
        definition = REGISTRY.get(name)
        assert definition.available and definition.description
        assert definition.fn is not None
        # Shipped to workers as a module reference; the implementation loads there.
        assert pickle.loads(pickle.dumps(definition.fn)) == definition.fn
        assert isinstance(definition.fn, TaskRef)
        assert callable(definition.fn.load())


def test_inference_dataset_path_is_marked_as_an_input_file(tmp_path: Path) -> None:
    extra = InferenceParams.model_fields["dataset_path"].json_schema_extra
    assert extra == {"workbench_input_file": True}
    assert InferenceParams.model_fields["output_path"].json_schema_extra is None


def test_concurrent_first_lookups_all_see_every_builtin_type() -> None:
    """Submissions check specs on worker threads at once: none may see a half-loaded registry."""
    import threading

    from workbench.tasks.registry import TaskRegistry

    def first_lookups(registry: TaskRegistry, threads: int = 8) -> list[list[str]]:
        seen: list[list[str]] = []
        barrier = threading.Barrier(threads)

        def look() -> None:
            barrier.wait()
            seen.append(registry.names())

        started = [threading.Thread(target=look) for _ in range(threads)]
        for thread in started:
            thread.start()
        for thread in started:
            thread.join()
        return seen

    for _ in range(5):
        seen = first_lookups(TaskRegistry())
        assert len(seen) == 8 and all(set(names) >= set(RUNNABLE) for names in seen), seen
