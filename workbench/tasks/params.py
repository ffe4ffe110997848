"""Parameters of the built-in task types, and the names they are checked against.

Kept apart from the task implementations so that validating a spec (and orchestrating it) never
imports pandas or scikit-learn: those load on the workers, where the tasks run.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ProblemKind(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


# A target column is found by these names (any case) when target_column is not given.
TARGET_NAMES = ("label", "target", "class", "is_fraud", "fraud", "y")

# Built-in datasets (workbench.tasks.datasets implements them; a test keeps the two in step).
BUILTIN_DATASET_NAMES = (
    "synthetic_fraud",
    "sklearn:breast_cancer",
    "sklearn:iris",
    "sklearn:wine",
    "sklearn:diabetes",
    "sklearn:digits",
)

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1_score", "roc_auc", "log_loss")
REGRESSION_METRICS = ("r2", "rmse", "mae")
KNOWN_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})

AlgorithmName = Literal["xgboost", "random_forest", "logistic_regression", "gradient_boosting"]
# Set by Workbench itself (progress reporting); a spec cannot override them.
RESERVED = frozenset({"callbacks"})


def dataset_option_names(name: str) -> list[str]:
    from workbench.tasks import datasets

    return datasets.dataset_option_names(name)


def check_estimator_params(
    algorithm: str, problem: ProblemKind | None, params: dict[str, Any]
) -> None:
    from workbench.tasks import estimators

    estimators.check_estimator_params(algorithm, problem, params)


class PreprocessingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_path: str | None = Field(
        None,
        description="CSV or Parquet file (by suffix); relative to the spec's folder.",
        json_schema_extra={"workbench_input_file": True},
    )
    dataset: str | None = Field(
        None, description=f"A built-in dataset: {', '.join(BUILTIN_DATASET_NAMES)}."
    )
    dataset_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the built-in dataset, e.g. n_rows, seed."
    )
    target_column: str | None = Field(
        None, description=f"Default: the first column named one of {', '.join(TARGET_NAMES)}."
    )
    problem_type: Literal["auto", "classification", "regression"] = "auto"
    test_size: float = Field(0.2, gt=0, lt=1)
    dedupe: bool = True
    impute: Literal["median", "mean", "most_frequent", "drop"] = Field(
        "median", description="Numeric columns; categorical ones use the most frequent value."
    )
    drop_columns: list[str] = Field(default_factory=list)
    random_state: int | None = Field(None, description="Default: global random_state or 42.")

    @model_validator(mode="after")
    def _one_source(self) -> PreprocessingParams:
        if (self.dataset_path is None) == (self.dataset is None):
            raise ValueError("give exactly one of 'dataset_path' (a file) or 'dataset' (built-in)")
        if self.dataset is None:
            if self.dataset_options:
                raise ValueError("'dataset_options' applies only with a built-in 'dataset'")
            return self
        if self.dataset not in BUILTIN_DATASET_NAMES:
            raise ValueError(
                f"unknown dataset {self.dataset!r}; known: {', '.join(BUILTIN_DATASET_NAMES)}"
            )
        accepted = dataset_option_names(self.dataset)
        unknown = sorted(set(self.dataset_options) - set(accepted))
        if unknown:
            raise ValueError(
                f"dataset {self.dataset!r} does not take option(s) {', '.join(unknown)}; "
                f"it accepts: {', '.join(accepted) or 'no options'}"
            )
        return self


class FeatureParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale_numeric: bool = Field(True, description="Standardise numeric columns.")
    pca: int | None = Field(None, ge=1, description="Keep this many principal components.")
    select_k_best: int | None = Field(
        None, ge=1, description="Keep the k features most associated with the target."
    )

    @model_validator(mode="after")
    def _one_reduction(self) -> FeatureParams:
        if self.pca is not None and self.select_k_best is not None:
            raise ValueError("use either 'pca' or 'select_k_best', not both")
        return self


class TrainingParams(BaseModel):
    """Any parameter besides these passes through to the estimator (e.g. n_estimators)."""

    model_config = ConfigDict(extra="allow")

    algorithm: AlgorithmName = "xgboost"
    problem_type: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: as determined by data_preprocessing."
    )
    random_state: int | None = Field(None, description="Default: global random_state or 42.")

    @model_validator(mode="after")
    def _estimator_params_valid(self) -> TrainingParams:
        reserved = sorted(RESERVED & set(self.estimator_params))
        if reserved:
            raise ValueError(f"{', '.join(reserved)} is set by Workbench and cannot be given")
        problem = None if self.problem_type == "auto" else ProblemKind(self.problem_type)
        check_estimator_params(self.algorithm, problem, self.estimator_params)
        return self

    @property
    def estimator_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ValidationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folds: int = Field(5, ge=2, le=100, description="Stratified for classification.")
    shuffle: bool = True
    random_state: int | None = Field(None, description="Default: global random_state or 42.")
    min_metrics: dict[str, float] = Field(
        default_factory=dict, description="Gates, e.g. {f1_score: 0.8}: fail below."
    )
    max_metrics: dict[str, float] = Field(
        default_factory=dict, description="Gates, e.g. {rmse: 10}: fail above."
    )

    @field_validator("min_metrics", "max_metrics")
    @classmethod
    def _known_metrics(cls, gates: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(gates) - set(KNOWN_METRICS))
        if unknown:
            raise ValueError(
                f"unknown metric(s) {', '.join(unknown)}; known metrics: {', '.join(KNOWN_METRICS)}"
            )
        return gates


class EvaluationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank_by: str | None = Field(
        None, description="Metric that picks the best model; default f1_score or r2."
    )

    @field_validator("rank_by")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        if value is not None and value not in KNOWN_METRICS:
            raise ValueError(f"unknown metric {value!r}; known metrics: {', '.join(KNOWN_METRICS)}")
        return value


class InferenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_path: str | None = Field(
        None,
        description="CSV or Parquet to score; default: the upstream test split.",
        json_schema_extra={"workbench_input_file": True},
    )
    output_path: str | None = Field(
        None, description="Parquet file to write; default: predictions.parquet in the run folder."
    )
    partitions: int = Field(8, ge=1, le=100_000, description="Score in this many partitions.")
