"""Parameters of the built-in task types, and the names they are checked against.

Kept apart from the task implementations so that validating a spec (and orchestrating it) never
imports pandas or scikit-learn: those load on the workers, where the tasks run.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from workbench.registry.gates import LOWER_IS_BETTER
from workbench.spec.models import SearchDimension
from workbench.tasks.search import corner


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

AlgorithmName = Literal["xgboost", "random_forest", "logistic_regression", "gradient_boosting"]
# Set by Workbench itself (progress reporting); a spec cannot override them.
RESERVED = frozenset({"callbacks"})


def dataset_option_names(name: str) -> list[str]:
    from workbench.tasks import datasets

    return datasets.dataset_option_names(name)


def check_estimator_params(
    algorithm: str, problem: ProblemKind | None, params: dict[str, Any], **hint: str
) -> None:
    from workbench.tasks import estimators

    estimators.check_estimator_params(algorithm, problem, params, **hint)


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
    model: str | None = Field(
        None,
        description='A registered model, "name@ref" (ref: a version, stage or alias, e.g. '
        '"fraud@production"), instead of an upstream training task.',
    )

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str | None) -> str | None:
        if value is not None:
            split_model_ref(value)
        return value

    def uncached_reason(self) -> str | None:
        if self.model is None:
            return None
        return f"it scores {self.model} from the model registry, which may have moved since"


def split_model_ref(text: str) -> tuple[str, str]:
    """ "fraud@production" -> ("fraud", "production"); ValueError naming the expected form."""
    from workbench.registry.rules import check_model_name

    name, at, ref = text.partition("@")
    if not at or not name or not ref:
        raise ValueError(
            f'expected "name@ref" (e.g. "fraud@production" or "fraud@3"), got {text!r}'
        )
    check_model_name(name)
    return name, ref


class DeploymentParams(BaseModel):
    """Register the upstream model, check it against gates on held-out data, promote it and
    deploy it to a target."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(description="The registry name; each run adds a version.")
    gates: dict[str, str] = Field(
        default_factory=dict,
        description='Metric -> condition: ">= 0.8" or "+0.01 vs champion" (held-out metrics).',
    )
    against: str = Field("production", description="The champion: a stage, alias or version.")
    stage: Literal["production", "staging"] = Field(
        "production", description="Where a version that passes its gates is promoted."
    )
    fail_on_gates: bool = Field(
        True,
        description="A version that fails its gates fails the task (it stays registered, "
        "not promoted); false: the task succeeds without promoting it.",
    )
    archive_previous: bool = Field(True, description="Archive the version it replaces.")
    target: str = Field("batch", description="Deployment target: batch, http or a plug-in's.")
    target_options: dict[str, Any] = Field(
        default_factory=dict, description='The target\'s options, e.g. {alias: "live"}.'
    )
    holdout_path: str | None = Field(
        None,
        description="A CSV or Parquet file with the target column to validate on; default: "
        "the upstream test split.",
        json_schema_extra={"workbench_input_file": True},
    )

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, name: str) -> str:
        from workbench.registry.rules import check_model_name

        return check_model_name(name)

    @field_validator("gates")
    @classmethod
    def _gates(cls, gates: dict[str, str]) -> dict[str, str]:
        from workbench.registry.gates import parse_gates

        unknown = sorted(set(gates) - set(KNOWN_METRICS))
        if unknown:
            raise ValueError(
                f"unknown metric(s) {', '.join(unknown)}; known metrics: {', '.join(KNOWN_METRICS)}"
            )
        parse_gates(gates)
        return gates

    @model_validator(mode="after")
    def _target(self) -> DeploymentParams:
        from workbench.registry.deployment import load_target

        load_target(self.target).check_options(self.target_options)
        return self

    def uncached_reason(self) -> str:
        return "it changes the model registry, so it runs every time"


class TuningParams(BaseModel):
    """A k-fold cross-validated search over estimator parameters; the output is the model
    refitted with the best ones on the whole train split (as model_training makes it)."""

    model_config = ConfigDict(extra="forbid")

    algorithm: AlgorithmName = "xgboost"
    problem_type: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: as determined by data_preprocessing."
    )
    fixed: dict[str, Any] = Field(
        default_factory=dict, description="Estimator parameters that are not searched."
    )
    search_space: dict[str, SearchDimension] = Field(
        min_length=1, description="Estimator parameter -> its range or choices."
    )
    objective_metric: str | None = Field(
        None, description="The cross-validated metric to optimise; default f1_score or r2."
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description=f"Default: minimize for {', '.join(sorted(LOWER_IS_BETTER))}."
    )
    max_trials: int = Field(20, ge=1, le=10_000)
    n_parallel: int = Field(1, ge=1, le=1_000, description="Trials evaluated at once.")
    folds: int = Field(3, ge=2, le=100, description="Of the train split; stratified for classes.")
    sampler: Literal["tpe", "random", "cmaes", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="Stops a poor trial between its folds."
    )
    seed: int | None = Field(
        None, description="Sampler, folds and estimator; default: global random_state or 42."
    )
    timeout_s: float | None = Field(
        None, gt=0, description="No trial starts after this many seconds; running ones finish."
    )

    @field_validator("fixed")
    @classmethod
    def _fixed_valid(cls, fixed: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        reserved = sorted(RESERVED & set(fixed))
        if reserved:
            raise ValueError(f"{', '.join(reserved)} is set by Workbench and cannot be given")
        if "algorithm" in info.data:
            _check_tuned(info.data, fixed)
        return fixed

    @field_validator("search_space")
    @classmethod
    def _space_valid(
        cls, space: dict[str, SearchDimension], info: ValidationInfo
    ) -> dict[str, SearchDimension]:
        fixed = info.data.get("fixed", {})
        clash = sorted(set(space) & (set(fixed) | RESERVED))
        if clash:
            raise ValueError(f"{', '.join(clash)} cannot be searched: it is fixed or reserved")
        if "algorithm" not in info.data or "fixed" not in info.data:
            return space  # their own errors are reported on their fields
        # Every extreme value a trial may use, with the fixed parameters beside it.
        for name, dim in space.items():
            for label, value in _extremes(dim):
                try:
                    _check_tuned(info.data, {**fixed, name: value})
                except ValueError as exc:
                    raise ValueError(f"{name} = {value!r} ({label}): {exc}") from None
        return space

    @field_validator("objective_metric")
    @classmethod
    def _known_metric(cls, metric: str | None, info: ValidationInfo) -> str | None:
        if metric is None:
            return metric
        if metric not in KNOWN_METRICS:
            raise ValueError(
                f"unknown metric {metric!r}; known metrics: {', '.join(KNOWN_METRICS)}"
            )
        kind = info.data.get("problem_type")
        if kind in list(ProblemKind) and metric not in problem_metrics(kind):
            raise ValueError(
                f"{metric!r} is not a {kind} metric; use one of {', '.join(problem_metrics(kind))}"
            )
        return metric

    @field_validator("direction")
    @classmethod
    def _sensible_direction(cls, direction: str | None, info: ValidationInfo) -> str | None:
        metric = info.data.get("objective_metric")
        if direction is None or metric is None:
            return direction
        if (direction == "maximize") == (metric in LOWER_IS_BETTER):
            better = "lower" if metric in LOWER_IS_BETTER else "higher"
            raise ValueError(
                f"{metric} is better when {better}, so {direction} would look for the worst "
                "model; change 'direction' or leave it out"
            )
        return direction


def problem_metrics(kind: str) -> tuple[str, ...]:
    """The metrics of a classification or a regression model."""
    return CLASSIFICATION_METRICS if kind == ProblemKind.CLASSIFICATION else REGRESSION_METRICS


def _extremes(dim: SearchDimension) -> list[tuple[str, Any]]:
    """(label, value) at the ends of a dimension; every choice of a categorical one."""
    if dim.type == "categorical":
        return [("a choice", choice) for choice in dim.choices or []]
    return [(f"its {end}", corner(dim, end)) for end in ("min", "max")]


def _check_tuned(data: dict[str, Any], params: dict[str, Any]) -> None:
    """check_estimator_params for the algorithm and problem kind validated before (in `data`)."""
    kind = data.get("problem_type", "auto")
    problem = None if kind == "auto" else ProblemKind(kind)
    hint = "Fix it in the hyperparameter_tuning task."
    check_estimator_params(data["algorithm"], problem, params, hint=hint)
