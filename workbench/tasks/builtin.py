"""The built-in task types. Each registry registers them on first use.

Each type is registered with its parameters model (light, from `params`) and a TaskRef to its
implementation, which is imported only on the workers that run it.
"""

from __future__ import annotations

from pydantic import BaseModel

from workbench.spec.models import TaskType
from workbench.tasks import params
from workbench.tasks.base import TaskDefinition, TaskRef
from workbench.tasks.registry import TaskRegistry

BUILTIN: dict[TaskType, tuple[str, type[BaseModel], str]] = {
    TaskType.DATA_PREPROCESSING: (
        "workbench.tasks.preprocessing",
        params.PreprocessingParams,
        "Load a CSV/Parquet file or built-in dataset, dedupe, impute and split it.",
    ),
    TaskType.FEATURE_EXTRACTION: (
        "workbench.tasks.features",
        params.FeatureParams,
        "Scale numerics, one-hot categoricals, optionally PCA or select k best.",
    ),
    TaskType.MODEL_TRAINING: (
        "workbench.tasks.training",
        params.TrainingParams,
        "Train xgboost, random_forest, logistic_regression or gradient_boosting.",
    ),
    TaskType.MODEL_VALIDATION: (
        "workbench.tasks.model_validation",
        params.ValidationParams,
        "K-fold cross-validation of the upstream model with optional metric gates.",
    ),
    TaskType.HYPERPARAMETER_TUNING: (
        "workbench.tasks.tuning",
        params.TuningParams,
        "Search estimator parameters by k-fold CV (Optuna, folds on Dask); refit the best.",
    ),
    TaskType.MODEL_EVALUATION: (
        "workbench.tasks.evaluation",
        params.EvaluationParams,
        "Test-split metrics of one or more trained models; passes on the best one.",
    ),
    TaskType.BATCH_INFERENCE: (
        "workbench.tasks.inference",
        params.InferenceParams,
        "Score a CSV/Parquet file (or the test split) with an upstream or registered model.",
    ),
    TaskType.MODEL_DEPLOYMENT: (
        "workbench.tasks.deployment",
        params.DeploymentParams,
        "Register the upstream model, check its gates on held-out data, promote and deploy it.",
    ),
}

# Their runs are handed the workflow and upstream cache keys, to record with what they make.
RECORDS_LINEAGE = frozenset({TaskType.MODEL_DEPLOYMENT})


def register_builtins(registry: TaskRegistry) -> None:
    for kind, (module, params_model, description) in BUILTIN.items():
        registry.register(
            TaskDefinition(
                name=kind.value,
                fn=TaskRef(module),
                params=params_model,
                description=description,
                records_lineage=kind in RECORDS_LINEAGE,
            )
        )
